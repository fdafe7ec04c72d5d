"""``csi-block-driver``: the kubevast block CSI plugin (controller, node, or both on one socket).

Examples:
  csi-block-driver --mode controller --endpoint unix:///csi/csi.sock --vms-secret-dir /etc/vms
  csi-block-driver --mode node --attach-backend nvme-tcp --endpoint unix:///csi/csi.sock
  csi-block-driver --mode all --attach-backend loop --loop-backing-dir /var/lib/vms/block \\
      --vms-endpoint http://127.0.0.1:8080 --vms-username admin --vms-password ...
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from csi_block_driver import identity
from csi_block_driver.proto import csi_pb2_grpc
from csi_block_driver.server import build_server, stop_server
from kubevast_common.logs import add_logging_args, setup_logging
from kubevast_common.metrics import add_metrics_args, serve_metrics

log = logging.getLogger("csi_block_driver")


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="csi-block-driver", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--endpoint",
        default=_env("CSI_ENDPOINT", "unix:///csi/csi.sock"),
        help="unix:// socket to serve CSI on (env CSI_ENDPOINT); a stale socket is removed",
    )
    p.add_argument(
        "--mode",
        choices=["controller", "node", "all"],
        default=_env("CSI_MODE", "all"),
        help="which CSI services to serve (env CSI_MODE; default all)",
    )
    p.add_argument(
        "--driver-name",
        default=identity.DEFAULT_NAME,
        help=f"CSI driver name (default {identity.DEFAULT_NAME})",
    )
    p.add_argument(
        "--grace-period",
        type=float,
        default=10.0,
        help="seconds in-flight RPCs get to finish on SIGTERM/SIGINT (default 10)",
    )
    p.add_argument("--workers", type=int, default=16, help="gRPC worker threads (default 16)")
    add_metrics_args(p, ":9810")
    add_logging_args(p)

    vms = p.add_argument_group("VMS (controller)")
    vms.add_argument("--vms-endpoint", default=_env("VMS_ENDPOINT"), help="VMS URL (env VMS_ENDPOINT)")
    vms.add_argument("--vms-username", default=_env("VMS_USERNAME"), help="env VMS_USERNAME")
    vms.add_argument(
        "--vms-password",
        default=_env("VMS_PASSWORD"),
        help="env VMS_PASSWORD (prefer --vms-secret-dir: flags show up in ps)",
    )
    vms.add_argument("--vms-api-token", default=_env("VMS_API_TOKEN"), help="env VMS_API_TOKEN")
    vms.add_argument(
        "--vms-tenant", default=_env("VMS_TENANT"), help="tenant name for tenant-scoped managers"
    )
    vms.add_argument("--vms-ca-bundle", default=_env("VMS_CA_BUNDLE"), help="PEM CA bundle to verify the VMS")
    vms.add_argument("--vms-insecure", action="store_true", help="do not verify the VMS TLS certificate")
    vms.add_argument(
        "--vms-secret-dir",
        default=_env("VMS_SECRET_DIR"),
        help="directory with files endpoint, username, password | api_token, [ca.crt], [tenant]",
    )
    vms.add_argument("--vms-timeout", type=float, default=30.0, help="seconds per VMS request (default 30)")

    ctl = p.add_argument_group("controller")
    ctl.add_argument(
        "--subsystem",
        default="csi-block",
        help="default block subsystem (VMS view name) for volumes; StorageClass parameter "
        "'subsystem' overrides it (default csi-block)",
    )
    ctl.add_argument(
        "--volume-group",
        default="csi",
        help="default volume group (first path element of VMS volume names; default csi)",
    )
    ctl.add_argument("--name-prefix", default="csi", help="prefix of VMS object names (default csi)")
    ctl.add_argument(
        "--vip-pool", default=None, help="VIP pool whose addresses are the NVMe/TCP targets handed to nodes"
    )
    ctl.add_argument(
        "--target-addresses",
        default=None,
        help="comma-separated host:port NVMe/TCP targets (overrides --vip-pool)",
    )
    ctl.add_argument("--nvme-port", type=int, default=4420, help="NVMe/TCP I/O port of VIP addresses")
    ctl.add_argument(
        "--default-volume-size",
        type=int,
        default=1 << 30,
        help="bytes when CreateVolume gives no capacity (default 1GiB)",
    )
    ctl.add_argument("--vtask-timeout", type=float, default=60.0, help="seconds to wait for VMS vtasks")

    node = p.add_argument_group("node")
    node.add_argument(
        "--attach-backend",
        choices=["nvme-tcp", "loop"],
        default=_env("CSI_ATTACH_BACKEND"),
        help="how volumes are attached (REQUIRED in node mode; never guessed): nvme-tcp, or loop "
        "for development hosts that share a filesystem with the storage core",
    )
    node.add_argument(
        "--loop-backing-dir",
        default=None,
        help="loop backend: the storage core's block/ directory holding <uuid>.img files",
    )
    node.add_argument(
        "--state-dir",
        default="/var/lib/kubevast-csi",
        help="where staging state is persisted (default /var/lib/kubevast-csi)",
    )
    node.add_argument(
        "--hostnqn-file",
        "--host-nqn-file",
        dest="hostnqn_file",
        default="/etc/nvme/hostnqn",
        help="host NQN file = node id; generated and persisted when missing",
    )
    node.add_argument(
        "--node-name",
        default=_env("NODE_NAME"),
        help="Kubernetes node name (env NODE_NAME); only logged - the node id is the host NQN",
    )
    node.add_argument("--hostid-file", default=None, help="host ID file (default: hostid next to hostnqn)")
    p.add_argument(
        "--max-volumes-per-node",
        type=int,
        default=0,
        help="volumes one node may have attached (node: reported in NodeGetInfo and enforced at "
        "stage; controller: enforced at publish per block host); 0 = no limit",
    )
    node.add_argument("--default-fs-type", choices=["ext4", "xfs"], default="ext4")
    node.add_argument(
        "--nvme-ctrl-loss-tmo",
        type=int,
        default=600,
        help="seconds a lost controller is retried (-1 forever: survives array upgrades but "
        "blocks node shutdown; default 600)",
    )
    node.add_argument("--nvme-reconnect-delay", type=int, default=10)
    node.add_argument("--nvme-keep-alive-tmo", type=int, default=5)
    node.add_argument("--nvme-nr-io-queues", type=int, default=0, help="0 = kernel default")
    node.add_argument(
        "--nvme-use-fabrics-device",
        action="store_true",
        help="connect by writing /dev/nvme-fabrics instead of running nvme-cli",
    )
    return p


def vms_config(ns: argparse.Namespace) -> Any:
    from vms_client import VmsConfig

    fields: dict[str, Any] = {
        "endpoint": ns.vms_endpoint,
        "username": ns.vms_username,
        "password": ns.vms_password,
        "api_token": ns.vms_api_token,
        "tenant": ns.vms_tenant,
        "ca_bundle": ns.vms_ca_bundle,
    }
    if ns.vms_secret_dir:
        d = Path(ns.vms_secret_dir)
        for key, filename in (
            ("endpoint", "endpoint"),
            ("username", "username"),
            ("password", "password"),
            ("api_token", "api_token"),
            ("tenant", "tenant"),
        ):
            f = d / filename
            if f.is_file() and f.read_text().strip():
                fields[key] = f.read_text().strip()
        if (d / "ca.crt").is_file():
            fields["ca_bundle"] = str(d / "ca.crt")
    if not fields["endpoint"]:
        raise SystemExit(
            "controller mode needs the VMS endpoint: --vms-endpoint, VMS_ENDPOINT or --vms-secret-dir"
        )
    fields = {k: v for k, v in fields.items() if v is not None}
    return VmsConfig(verify=not ns.vms_insecure, timeout=ns.vms_timeout, **fields)


def build_node(ns: argparse.Namespace) -> tuple[Any, Callable[[], list[str]]]:
    from csi_block_driver import hostnqn
    from csi_block_driver.attach.base import AttachBackend
    from csi_block_driver.host import HostRunner, Mounter
    from csi_block_driver.node import NodeConfig, NodeService

    if not ns.attach_backend:
        raise SystemExit("node mode needs --attach-backend (nvme-tcp or loop); it is never chosen silently")
    try:
        nqn, host_id = hostnqn.load_or_create(ns.hostnqn_file, ns.hostid_file)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"node identity: {exc}") from exc
    runner = HostRunner()
    backend: AttachBackend
    if ns.attach_backend == "loop":
        from csi_block_driver.attach.loop import LoopBackend

        if not ns.loop_backing_dir:
            raise SystemExit("--attach-backend=loop needs --loop-backing-dir (the storage core's block/ dir)")
        backend = LoopBackend(runner, ns.loop_backing_dir)
    else:
        from csi_block_driver.attach.nvme_tcp import NvmeOptions, NvmeTcpBackend

        backend = NvmeTcpBackend(
            runner,
            NvmeOptions(
                host_nqn=nqn,
                host_id=host_id,
                ctrl_loss_tmo=ns.nvme_ctrl_loss_tmo,
                reconnect_delay=ns.nvme_reconnect_delay,
                keep_alive_tmo=ns.nvme_keep_alive_tmo,
                nr_io_queues=ns.nvme_nr_io_queues,
                use_fabrics_device=ns.nvme_use_fabrics_device,
            ),
        )
    problems = backend.prerequisites()
    if problems:
        raise SystemExit(
            f"node prerequisites for the {backend.name} backend are not met:\n  - " + "\n  - ".join(problems)
        )
    service = NodeService(
        NodeConfig(
            node_id=nqn,
            state_dir=ns.state_dir,
            max_volumes_per_node=ns.max_volumes_per_node,
            default_fs_type=ns.default_fs_type,
        ),
        backend,
        Mounter(runner),
    )
    log.info(
        "node identity", extra={"node_id": nqn, "node_name": ns.node_name, "attach_backend": backend.name}
    )
    for problem in service.recover():
        log.warning("re-stage problem", extra={"problem": problem})
    return service, backend.prerequisites


def build_controller(ns: argparse.Namespace) -> tuple[Any, Callable[[], list[str]]]:
    from csi_block_driver.controller import ControllerConfig, ControllerService
    from vms_client import VmsClient

    config = vms_config(ns)
    client = VmsClient(config)
    probe_client = VmsClient(config.model_copy(update={"retries": 0, "timeout": 5.0, "connect_timeout": 2.0}))
    targets = [a.strip() for a in (ns.target_addresses or "").split(",") if a.strip()]
    cfg = ControllerConfig(
        subsystem=ns.subsystem,
        volume_group=ns.volume_group,
        name_prefix=ns.name_prefix,
        vip_pool=ns.vip_pool,
        target_addresses=targets,
        nvme_port=ns.nvme_port,
        default_size=ns.default_volume_size,
        vtask_timeout=ns.vtask_timeout,
        max_volumes_per_node=ns.max_volumes_per_node,
    )
    service = ControllerService(client, cfg, probe_client)
    return service, service.probe


def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    setup_logging(ns.log_level, ns.log_format)
    registrations: list[Callable[[grpc.Server], None]] = []
    checks: list[Callable[[], list[str]]] = []
    if ns.mode in ("controller", "all"):
        controller, check = build_controller(ns)
        registrations.append(lambda s: csi_pb2_grpc.add_ControllerServicer_to_server(controller, s))
        checks.append(check)
    if ns.mode in ("node", "all"):
        node, check = build_node(ns)
        registrations.append(lambda s: csi_pb2_grpc.add_NodeServicer_to_server(node, s))
        checks.append(check)
    ident = identity.IdentityService(
        ns.driver_name, controller=ns.mode in ("controller", "all"), checks=checks
    )
    registrations.append(lambda s: csi_pb2_grpc.add_IdentityServicer_to_server(ident, s))

    serve_metrics(ns.metrics_address)
    try:
        server = build_server(ns.endpoint, registrations, workers=ns.workers)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"cannot serve on {ns.endpoint}: {exc}") from exc
    stop = threading.Event()

    def _on_signal(signum: int, _frame: Any) -> None:
        log.info("signal received, shutting down", extra={"signal": signal.Signals(signum).name})
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    server.start()
    log.info("serving", extra={"endpoint": ns.endpoint, "mode": ns.mode, "driver": ns.driver_name})
    stop.wait()
    stop_server(server, ns.endpoint, ns.grace_period)
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
