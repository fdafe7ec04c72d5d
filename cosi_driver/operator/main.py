"""`cosi-driver operator` (also `cosi-operator`): the kopf companion operator.

* every COSI credentials Secret (v1alpha1 ``BucketInfo`` JSON or v1alpha2 ``COSI_S3_*``) gets a
  flat sibling ``<name>-s3`` with ``AWS_ACCESS_KEY_ID`` & co., kept in sync, owned by its source;
* BucketClaims / BucketAccesses of this driver get Warning Events for what users must fix
  (bad class parameters, unsupported auth type, not ready for long);
* platform objects of this driver whose Kubernetes objects are gone are reported (default) or
  removed (``--orphan-policy=delete``).
"""

from __future__ import annotations

import argparse
import logging
import threading
from typing import Any

from kubevast_common.logs import add_logging_args, setup_logging
from kubevast_common.metrics import add_metrics_args, serve_metrics

log = logging.getLogger("cosi_driver.operator")
VERSIONS = ("v1alpha1", "v1alpha2")


def parser() -> argparse.ArgumentParser:
    from cosi_driver import cli

    p = argparse.ArgumentParser(
        prog="cosi-driver operator", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--driver-name", default=cli.DEFAULT_NAME, help="only classes with this driverName")
    p.add_argument(
        "--orphan-policy",
        choices=["report", "delete"],
        default="report",
        help="what to do with platform objects whose Kubernetes objects are gone",
    )
    p.add_argument("--orphan-interval", type=float, default=300.0, help="seconds between orphan passes")
    p.add_argument(
        "--orphan-grace",
        type=float,
        default=600.0,
        help="an object must look orphaned this long before it is reported/removed",
    )
    p.add_argument(
        "--event-grace",
        type=float,
        default=120.0,
        help="seconds a claim/access may stay not ready before a Warning Event",
    )
    p.add_argument("--check-interval", type=float, default=60.0, help="seconds between claim/access checks")
    p.add_argument(
        "--no-orphans", action="store_true", help="do not connect to the VMS (projection + events only)"
    )
    vms = cli.parser()
    for action in vms._actions:  # reuse the driver's VMS and key-store flags verbatim
        if action.dest in (
            "vms_secret_dir",
            "vms_secrets_root",
            "vms_endpoint",
            "vms_username",
            "vms_password",
            "vms_api_token",
            "vms_tenant",
            "vms_ca_bundle",
            "vms_insecure",
            "key_store",
            "key_store_dir",
            "key_store_key_file",
            "namespace",
            "s3_endpoint",
            "region",
        ):
            p._add_action(action)
    add_metrics_args(p, "127.0.0.1:9812")
    add_logging_args(p)
    return p


# uid -> (check function, latest body) of the BucketClaims / BucketAccesses seen by the watches
watched: dict[str, tuple[Any, dict[str, Any]]] = {}
_recorders: dict[int, Any] = {}


def _recorder(kube: Any) -> Any:
    """One EventRecorder per Kube (the watch handlers and the re-check thread share its memory)."""
    from cosi_driver.operator import handlers

    if id(kube) not in _recorders:
        _recorders[id(kube)] = handlers.EventRecorder(kube)
    return _recorders[id(kube)]


def register(registry: Any, kube: Any, args: argparse.Namespace) -> None:
    import kopf

    from cosi_driver.operator import handlers

    recorder = _recorder(kube)

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> Any:
        # a private registry has no default login handler: use the kubernetes client's config
        # (in-cluster service account, else $KUBECONFIG), as the KubeApi boundary does
        return kopf.login_via_client(**kwargs)

    @kopf.on.event("", "v1", "secrets", registry=registry)
    def on_secret(**kwargs: Any) -> None:
        event, body = kwargs["event"], kwargs["body"]
        obj = dict(body)
        if event.get("type") == "DELETED":
            handlers.remove_projection(kube, obj)
        else:
            handlers.project_secret(kube, obj)

    for version in VERSIONS:
        for plural, check in (
            ("bucketclaims", handlers.check_claim),
            ("bucketaccesses", handlers.check_access),
        ):
            # Watch-only (no kopf timers: those put finalizers on the user's COSI objects, which
            # would block their deletion whenever the operator is down). The latest body is kept
            # and re-checked periodically by the watcher thread for the not-ready-for-long case.
            @kopf.on.event(
                "objectstorage.k8s.io", version, plural, registry=registry, id=f"watch-{plural}-{version}"
            )
            def on_object(check: Any = check, **kwargs: Any) -> None:
                body = dict(kwargs["body"])
                key = str(body.get("metadata", {}).get("uid"))
                if kwargs["event"].get("type") == "DELETED":
                    watched.pop(key, None)
                    return
                watched[key] = (check, body)
                check(kube, recorder, body, args.driver_name, args.event_grace)


def recheck_loop(kube: Any, args: argparse.Namespace, stop: threading.Event) -> None:
    """Re-check every watched claim/access (a claim can become 'not ready for too long' with no
    change to the object itself)."""
    recorder = _recorder(kube)
    while not stop.wait(args.check_interval):
        for check, body in list(watched.values()):
            try:
                check(kube, recorder, body, args.driver_name, args.event_grace)
            except Exception as exc:
                log.error(
                    "check failed", extra={"object": body.get("metadata", {}).get("name"), "error": str(exc)}
                )


def orphan_loop(reconciler: Any, interval: float, stop: threading.Event) -> None:
    """Periodic platform-vs-cluster pass (a plain thread: it watches no Kubernetes resource)."""
    while not stop.is_set():
        try:
            report = reconciler.run_once()
            log.info(
                "orphan pass",
                extra={
                    "users": report.users,
                    "buckets": report.buckets,
                    "removed": report.removed_users + report.removed_buckets,
                    "errors": report.errors,
                },
            )
        except Exception as exc:
            log.error("orphan pass failed", extra={"error": str(exc)})
        stop.wait(interval)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    setup_logging(args.log_level, args.log_format)
    import kopf

    from cosi_driver.operator.kube import KubeApi

    kube = KubeApi()
    reconciler = None
    if not args.no_orphans:
        from cosi_driver import cli
        from cosi_driver.backends import BackendRegistry
        from cosi_driver.operator.reconcile import OrphanReconciler
        from cosi_driver.provisioner import Defaults, Provisioner

        settings = cli.vms_settings(args)
        backends = BackendRegistry(settings, args.vms_secrets_root)
        provisioner = Provisioner(
            backends, cli.key_store(args), Defaults(endpoint=args.s3_endpoint, region=args.region)
        )
        reconciler = OrphanReconciler(
            kube, backends.client(), provisioner, args.orphan_policy, args.orphan_grace
        )
    registry = kopf.OperatorRegistry()
    register(registry, kube, args)
    serve_metrics(args.metrics_address)
    stop = threading.Event()
    log.info("operator starting", extra={"driver": args.driver_name, "orphan_policy": args.orphan_policy})
    if reconciler is not None:
        threading.Thread(
            target=orphan_loop, args=(reconciler, args.orphan_interval, stop), daemon=True, name="orphans"
        ).start()
    settings = kopf.OperatorSettings()
    settings.posting.enabled = False  # our Events are the deliberate ones (handlers.EventRecorder)
    kopf.run(settings=settings, registry=registry, clusterwide=True, standalone=True, stop_flag=stop)
    return 0
