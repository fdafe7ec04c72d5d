"""``vms-mock``: the VAST Management Service emulator as one process.

Serves the VMS REST API (FastAPI/uvicorn) and, when their modules are present, the storage core's
S3 endpoint and NVMe/TCP target in the same asyncio loop, all over one durable state directory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

from kubevast_common.logs import add_logging_args, setup_logging
from kubevast_common.metrics import add_metrics_args, serve_metrics
from vms_mock import faults as faults_mod

log = logging.getLogger("vms_mock")

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "t": 10**12, "tb": 10**12, "p": 10**15, "pb": 10**15, "kib": 2**10, "mib": 2**20,
          "gib": 2**30, "tib": 2**40, "pib": 2**50, "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40,
          "pi": 2**50}


def parse_size(text: str) -> int:
    """``1TiB``, ``500GiB``, ``1.5T``, ``10GB`` or plain bytes -> bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in _UNITS:
        raise argparse.ArgumentTypeError(f"invalid size {text!r} (examples: 1TiB, 500GiB, 10GB, 4096)")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def parse_fault(text: str) -> faults_mod.FaultRule:
    try:
        return faults_mod.parse_spec(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vms-mock",
        description="Emulator of the VAST Management Service REST API with a storage core that "
                    "serves S3 and NVMe/TCP. State is durable in --data-dir (SQLite, WAL).",
        epilog="FAULT SPEC (--fault, repeatable):\n" + (faults_mod.__doc__ or "").split("\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--data-dir", type=Path, default=Path(os.environ.get("VMS_MOCK_DATA_DIR", "vms-data")),
                       help="state directory: vms.sqlite3, audit.jsonl, block/, fs/, tls/ "
                            "(default: $VMS_MOCK_DATA_DIR or ./vms-data)")
    where.add_argument("--in-memory", action="store_true",
                       help="keep API state in memory (files in a temporary directory); for unit tests")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address every listener binds (default: 127.0.0.1)")
    parser.add_argument("--api-port", type=int, default=8080, help="REST API port; 0 picks a free one")
    parser.add_argument("--s3-port", type=int, default=9000, help="S3 endpoint port; 0 picks a free one")
    parser.add_argument("--nvme-port", type=int, default=4420, help="NVMe/TCP I/O port; 0 picks a free one")
    parser.add_argument("--discovery-port", type=int, default=8009,
                        help="NVMe/TCP discovery port; 0 picks a free one")
    parser.add_argument("--no-s3", action="store_true", help="do not start the S3 endpoint")
    parser.add_argument("--s3-block-cache", type=parse_size, default=parse_size("256MiB"),
                        help="memory for recently uploaded large objects, served to GETs from it (large "
                             "objects bypass the page cache; default: 256MiB; 0 turns it off)")
    parser.add_argument("--no-nvme", action="store_true", help="do not start the NVMe/TCP target")
    parser.add_argument("--tls", action="store_true",
                        help="serve HTTPS with a CA and server certificate generated in <data-dir>/tls")
    parser.add_argument("--seed", type=Path, default=None,
                        help="YAML seed applied to a new data directory (default: the built-in "
                             "vms_mock/seed_default.yaml: admin/admin, tenant1-admin, policies, a VIP pool "
                             "and a BLOCK subsystem view)")
    parser.add_argument("--capacity", type=parse_size, default=parse_size("1TiB"),
                        help="storage core capacity for volumes, snapshots and S3 data (default: 1TiB)")
    parser.add_argument("--fault", type=parse_fault, action="append", default=[], metavar="SPEC",
                        help="inject a fault (syntax below)")
    parser.add_argument("--enable-admin", action="store_true",
                        help="serve /api/admin/faults/ and /api/admin/expire_tokens/ (super-admin only)")
    parser.add_argument("--ready-file", type=Path, default=None,
                        help="write one JSON object {api_url, s3_url, nvme_host, nvme_port, discovery_port, "
                             "data_dir, ca_file, pid} here once every listener is up")
    parser.add_argument("--token-ttl", type=float, default=3600.0, help="access token lifetime, seconds")
    parser.add_argument("--refresh-ttl", type=float, default=86400.0, help="refresh token lifetime, seconds")
    parser.add_argument("--vtask-delay", type=float, default=0.05,
                        help="seconds a bulk-mapping vtask stays RUNNING before it completes")
    parser.add_argument("--snapshot-expiry-interval", type=float, default=5.0,
                        help="seconds between sweeps that delete snapshots past expiration_time (0: never)")
    parser.add_argument("--sys-version", default="5.3.0", help="version reported by versions/ and clusters/")
    add_metrics_args(parser, default="")
    add_logging_args(parser)
    return parser


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must be IPPROTO_TCP (not 0): asyncio only sets TCP_NODELAY on such sockets, and without
    # it every response written in two parts waits ~40 ms for the client's delayed ACK
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def _write_ready(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, path)  # readers never see half a file


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


async def _start_optional(module: str, func: str, *args: Any, **kwargs: Any) -> Any:
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        log.warning("service not available", extra={"module": module, "error": str(exc)})
        return None
    return await getattr(mod, func)(*args, **kwargs)


async def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from vms_mock.app import create_app
    from vms_mock.audit import AuditLog
    from vms_mock.core_api import StorageCore
    from vms_mock.domain import Settings, Vms
    from vms_mock.httpproto import CoalescingHttpToolsProtocol
    from vms_mock.seed import SeedError, apply_seed, load_seed
    from vms_mock.store import Store
    from vms_mock.tls import ensure_tls

    tmpdir = None
    if args.in_memory:
        tmpdir = Path(tempfile.mkdtemp(prefix="vms-mock-"))
        data_dir, db_path, audit_path = tmpdir, ":memory:", None
    else:
        data_dir = args.data_dir.resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        db_path, audit_path = str(data_dir / "vms.sqlite3"), data_dir / "audit.jsonl"
    store = Store(db_path)
    core = StorageCore(store, data_dir, args.capacity)
    vms = Vms(store, core, Settings(sys_version=args.sys_version, vtask_delay=args.vtask_delay,
                                    snapshot_reaper_interval=args.snapshot_expiry_interval,
                                    access_ttl=args.token_ttl, refresh_ttl=args.refresh_ttl))
    if store.get_meta("seeded") is None:
        try:
            n = apply_seed(vms, load_seed(args.seed))
        except (SeedError, OSError) as exc:
            log.error("seed failed", extra={"error": str(exc)})
            return 2
        store.set_meta("seeded", "1")
        log.info("seeded a new state", extra={"objects": n, "seed": str(args.seed or "built-in")})
    vms.recover()
    vms.start_reaper()
    faults = faults_mod.Faults()
    for rule in args.fault:
        faults.add(rule)
    audit = AuditLog(store, audit_path)
    asgi, _app = create_app(vms, faults, audit, enable_admin=args.enable_admin)

    tls = ensure_tls(data_dir / "tls", args.host) if args.tls else None
    if tls:
        print(f"vms-mock CA certificate: {tls.ca_file}", file=sys.stderr, flush=True)
    sock = _bind(args.host, args.api_port)
    api_port = sock.getsockname()[1]
    config = uvicorn.Config(asgi, log_config=None, access_log=False, http=CoalescingHttpToolsProtocol,
                            lifespan="off",
                            ssl_certfile=str(tls.cert_file) if tls else None,
                            ssl_keyfile=str(tls.key_file) if tls else None, timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)

    def _stop(*_: Any) -> None:
        server.should_exit = True

    # uvicorn restores these handlers after serve() and re-raises the signal into them
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if serving.done():
            serving.result()
            return 1
        await asyncio.sleep(0.01)
    host = _url_host(args.host)
    scheme = "https" if tls else "http"
    s3 = nvmet = None
    try:
        if not args.no_s3:
            s3 = await _start_optional("vms_mock.s3.service", "start_s3", core, args.host, args.s3_port, tls,
                                       block_cache=args.s3_block_cache)
        if not args.no_nvme:
            nvmet = await _start_optional("vms_mock.nvmet.service", "start_nvmet", core, args.host,
                                          args.nvme_port, args.discovery_port)
        metrics_port = serve_metrics(args.metrics_address)
        nvme_ports = getattr(nvmet, "ports", None) or {}
        io_port = nvme_ports.get("io") if isinstance(nvme_ports, dict) else getattr(nvmet, "port", None)
        ready = {
            "api_url": f"{scheme}://{host}:{api_port}",
            "s3_url": f"{scheme}://{host}:{s3.port}" if s3 is not None else None,
            "nvme_host": host if nvmet is not None else None,
            "nvme_port": io_port if nvmet is not None else None,
            "discovery_port": nvme_ports.get("discovery") if isinstance(nvme_ports, dict) else None,
            "data_dir": str(data_dir),
            "ca_file": str(tls.ca_file) if tls else None,
            "metrics_port": metrics_port,
            "pid": os.getpid(),
        }
        if args.ready_file:
            _write_ready(args.ready_file, ready)
        log.info("vms-mock ready", extra=ready)
        await serving
    finally:
        for svc in (nvmet, s3):
            if svc is not None:
                with contextlib.suppress(Exception):
                    await svc.close()
        vms.close()
        audit.close()
        core.close()
        store.close()
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)
    log.info("vms-mock stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level, args.log_format)
    return asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())
