"""`cosi-driver`: the kubevast COSI driver (v1alpha1 + v1alpha2 on one socket)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from typing import Any

from kubevast_common.logs import add_logging_args, setup_logging
from kubevast_common.metrics import add_metrics_args, serve_metrics
from kubevast_common.unixsocket import socket_path, unlink_socket

log = logging.getLogger("cosi_driver")
DEFAULT_NAME = "cosi.vastdata.com"


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name) or default


def _pod_namespace() -> str:
    try:
        with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace") as f:
            return f.read().strip() or "cosi-driver"
    except OSError:
        return "cosi-driver"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cosi-driver",
        epilog="Subcommand: `cosi-driver operator --help` runs the companion operator instead.",
        description="COSI driver for a VAST-style platform: buckets become S3 bucket views, each "
        "BucketAccess gets its own platform user and key pair. Serves cosi.v1alpha1 and "
        "sigs.k8s.io.cosi.v1alpha2 on one unix socket.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--endpoint",
        default=_env("COSI_ENDPOINT", "unix:///var/lib/cosi/cosi.sock"),
        help="unix socket to serve on (env COSI_ENDPOINT)",
    )
    p.add_argument(
        "--driver-name", default=_env("COSI_DRIVER_NAME", DEFAULT_NAME), help="name reported by DriverGetInfo"
    )
    g = p.add_argument_group("VMS connection (flags/env for development; --vms-secret-dir in Kubernetes)")
    g.add_argument(
        "--vms-secret-dir",
        default=_env("VMS_SECRET_DIR"),
        help="mounted Secret directory with endpoint, username+password or api_token, ca.crt, tenant",
    )
    g.add_argument(
        "--vms-secrets-root",
        default=_env("VMS_SECRETS_ROOT"),
        help="directory of named credential sets (<root>/<name>/) for classes with vmsCredentials",
    )
    g.add_argument("--vms-endpoint", default=_env("VMS_ENDPOINT"), help="VMS URL (env VMS_ENDPOINT)")
    g.add_argument("--vms-username", default=_env("VMS_USERNAME"), help="env VMS_USERNAME")
    g.add_argument("--vms-password", default=None, help="prefer env VMS_PASSWORD (flags show up in ps)")
    g.add_argument("--vms-api-token", default=None, help="prefer env VMS_API_TOKEN")
    g.add_argument("--vms-tenant", default=_env("VMS_TENANT"), help="default tenant name (env VMS_TENANT)")
    g.add_argument("--vms-ca-bundle", default=_env("VMS_CA_BUNDLE"), help="PEM CA bundle for the VMS")
    g.add_argument("--vms-insecure", action="store_true", help="do not verify the VMS TLS certificate")
    s = p.add_argument_group("S3 endpoint handed to applications")
    s.add_argument(
        "--s3-endpoint", default=_env("S3_ENDPOINT", ""), help="S3 URL (class parameter endpoint overrides)"
    )
    s.add_argument("--region", default=_env("S3_REGION", "us-east-1"), help="S3 region reported to clients")
    s.add_argument("--addressing-style", default="path", choices=["path", "virtual"])
    s.add_argument(
        "--bucket-owner",
        default="cosi-bucket-owner",
        help="platform user that owns driver-made buckets (holds no keys)",
    )
    k = p.add_argument_group(
        "key store (where minted secrets are kept so repeat grants return the same keys)"
    )
    k.add_argument(
        "--key-store",
        default=_env("COSI_KEY_STORE", "auto"),
        choices=["auto", "kubernetes", "file"],
        help="auto = kubernetes when running in a pod, else file",
    )
    k.add_argument(
        "--key-store-dir",
        default=_env("COSI_KEY_STORE_DIR", "/var/lib/cosi-driver/keys"),
        help="directory of the file store",
    )
    k.add_argument(
        "--key-store-key-file",
        default=_env("COSI_KEY_STORE_KEY_FILE"),
        help="Fernet key of the file store (default <dir>/store.key, created 0600)",
    )
    k.add_argument(
        "--namespace",
        default=_env("POD_NAMESPACE") or _pod_namespace(),
        help="namespace of the kubernetes store's Secrets (env POD_NAMESPACE)",
    )
    p.add_argument("--max-workers", type=int, default=32, help="concurrent RPCs")
    p.add_argument(
        "--tombstone-seconds",
        type=float,
        default=600.0,
        help="refuse a Create/Grant for a name deleted/revoked this recently (stale sidecar retries)",
    )
    p.add_argument(
        "--inflight-wait",
        type=float,
        default=30.0,
        help="seconds an identical concurrent request waits for the first before ABORTED",
    )
    add_metrics_args(p, _env("COSI_METRICS_ADDRESS", "127.0.0.1:9811") or "")
    add_logging_args(p)
    return p


def vms_settings(args: argparse.Namespace) -> Any:
    from cosi_driver.backends import VmsSettings, settings_from_dir

    if args.vms_secret_dir:
        return settings_from_dir(args.vms_secret_dir, verify=not args.vms_insecure)
    if not args.vms_endpoint:
        raise SystemExit("cosi-driver: give --vms-secret-dir or --vms-endpoint (env VMS_ENDPOINT)")
    password = args.vms_password or os.environ.get("VMS_PASSWORD")
    token = args.vms_api_token or os.environ.get("VMS_API_TOKEN")
    if not token and not (args.vms_username and password):
        raise SystemExit("cosi-driver: give VMS_API_TOKEN or VMS_USERNAME + VMS_PASSWORD")
    return VmsSettings(
        endpoint=args.vms_endpoint,
        username=args.vms_username,
        password=password,
        api_token=token,
        tenant=args.vms_tenant,
        ca_bundle=args.vms_ca_bundle,
        verify=not args.vms_insecure,
    )


def key_store(args: argparse.Namespace) -> Any:
    from cosi_driver.keystore import FileKeyStore, KubernetesKeyStore

    kind = args.key_store
    if kind == "auto":
        kind = "kubernetes" if os.environ.get("KUBERNETES_SERVICE_HOST") else "file"
    if kind == "file":
        return FileKeyStore(args.key_store_dir, args.key_store_key_file)
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:  # out of cluster (development, e2e): $KUBECONFIG
        config.load_kube_config()
    return KubernetesKeyStore(args.namespace, client.CoreV1Api())


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["operator"]:
        from cosi_driver.operator.main import main as operator_main

        return operator_main(argv[1:])
    args = parser().parse_args(argv)
    setup_logging(args.log_level, args.log_format)
    from cosi_driver.backends import BackendRegistry
    from cosi_driver.provisioner import Defaults, Provisioner
    from cosi_driver.server import build_server

    settings = vms_settings(args)
    provisioner = Provisioner(
        BackendRegistry(settings, args.vms_secrets_root),
        key_store(args),
        Defaults(
            endpoint=args.s3_endpoint,
            region=args.region,
            addressing_style=args.addressing_style,
            bucket_owner=args.bucket_owner,
            inflight_wait=args.inflight_wait,
            tombstone_seconds=args.tombstone_seconds,
        ),
    )
    serve_metrics(args.metrics_address)
    try:
        server = build_server(provisioner, args.driver_name, args.endpoint, args.max_workers)
    except (RuntimeError, ValueError, OSError) as exc:
        log.error("cannot serve", extra={"error": str(exc)})
        return 1
    server.start()
    log.info(
        "cosi driver serving",
        extra={
            "endpoint": args.endpoint,
            "driver": args.driver_name,
            "vms": settings.endpoint,
            "versions": ["v1alpha1", "v1alpha2"],
        },
    )
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("shutting down", extra={"signal": signal.Signals(signum).name})
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    stop.wait()
    server.stop(grace=10).wait()
    unlink_socket(socket_path(args.endpoint))
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
