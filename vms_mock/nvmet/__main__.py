"""Run the NVMe/TCP target alone over a static JSON configuration (kernel tests, benchmarks).

Config format::

    {"subsystems": [{"nqn": "nqn....", "namespaces": [
        {"nsid": 1, "volume_id": 1, "nguid": "<32 hex>", "uuid": "<uuid>", "size": 67108864,
         "backing_path": "/path/vol.img", "hosts": ["nqn.host..."]}]}]}

SIGHUP re-reads the file (e.g. a grown ``size``): connected hosts get a namespace-changed event.
``vms-mock`` itself serves the target from its API state (``vms_mock.nvmet.service``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys

from kubevast_common.logs import add_logging_args, setup_logging
from kubevast_common.metrics import add_metrics_args, serve_metrics

from .provider import NamespaceRecord, StaticNamespaceProvider
from .target import NvmeTarget

log = logging.getLogger("vms_mock.nvmet")


def load_provider(path: str) -> StaticNamespaceProvider:
    with open(path) as f:
        cfg = json.load(f)
    provider = StaticNamespaceProvider()
    for sub in cfg.get("subsystems", []):
        provider.add_subsystem(sub["nqn"])
        for ns in sub.get("namespaces", []):
            rec = NamespaceRecord.of(nsid=ns["nsid"], volume_id=ns.get("volume_id", ns["nsid"]),
                                     nguid=ns["nguid"], uuid=ns["uuid"], size=ns["size"],
                                     backing_path=ns["backing_path"])
            provider.add_namespace(sub["nqn"], rec, hosts=ns.get("hosts", []))
    return provider


async def serve(args: argparse.Namespace) -> None:
    provider = load_provider(args.config)
    target = NvmeTarget(provider, host=args.host, io_port=args.io_port,
                        discovery_port=args.discovery_port, advertise_addr=args.advertise_addr,
                        io_workers=args.io_workers)
    await target.start()
    metrics_port = serve_metrics(args.metrics_address)
    if args.ready_file:
        tmp = args.ready_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"host": args.host, "io_port": target.ports["io"],
                       "discovery_port": target.ports["discovery"], "metrics_port": metrics_port,
                       "pid": os.getpid()}, f)
        os.replace(tmp, args.ready_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def reload() -> None:  # SIGHUP: re-read the config; connected hosts get namespace-changed events
        try:
            provider.replace_with(load_provider(args.config))
            log.info("configuration reloaded", extra={"config": args.config})
        except (OSError, ValueError, KeyError) as exc:
            log.error("configuration reload failed; keeping the old one", extra={"error": str(exc)})

    loop.add_signal_handler(signal.SIGHUP, reload)
    await stop.wait()
    await target.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vms_mock.nvmet",
                                     description="Serve block volumes over NVMe/TCP from a static config.")
    parser.add_argument("--config", required=True, help="JSON file with subsystems and namespaces")
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default: 127.0.0.1)")
    parser.add_argument("--io-port", type=int, default=4420, help="I/O controller port; 0 picks one")
    parser.add_argument("--discovery-port", type=int, default=8009, help="discovery port; 0 picks one")
    parser.add_argument("--advertise-addr", default=None,
                        help="TRADDR in discovery log entries (default: the address the host reached)")
    parser.add_argument("--io-workers", type=int, default=16, help="threads doing backing file I/O")
    parser.add_argument("--ready-file", default=None,
                        help="write {host, io_port, discovery_port, metrics_port, pid} here when listening")
    add_metrics_args(parser, "")
    add_logging_args(parser)
    args = parser.parse_args(argv)
    setup_logging(args.log_level, args.log_format)
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
