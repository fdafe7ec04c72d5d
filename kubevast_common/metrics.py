"""Prometheus metrics endpoint shared by every kubevast server."""

from __future__ import annotations

import logging

from prometheus_client import start_http_server

log = logging.getLogger(__name__)


def serve_metrics(address: str | None) -> int | None:
    """Start the /metrics HTTP endpoint on ``host:port`` (port 0 picks a free one).

    Returns the bound port, or None when ``address`` is empty (metrics disabled).
    """
    if not address:
        return None
    host, _, port = address.rpartition(":")
    server, _thread = start_http_server(int(port), addr=host or "0.0.0.0")
    bound = int(server.server_port)
    log.info("metrics listening", extra={"address": f"{host or '0.0.0.0'}:{bound}"})
    return bound


def add_metrics_args(parser: object, default: str) -> None:
    parser.add_argument(  # type: ignore[attr-defined]
        "--metrics-address", default=default,
        help=f"host:port for the Prometheus /metrics endpoint; empty disables it (default: {default})")
