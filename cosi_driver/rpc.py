"""What every RPC handler shares: error mapping to a status, metrics, one log line per call."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
from prometheus_client import Counter, Gauge, Histogram

from cosi_driver.errors import status_of

log = logging.getLogger("cosi_driver.rpc")

RPCS = Counter("cosi_rpc_total", "COSI RPCs handled", ["version", "method", "code"])
LATENCY = Histogram(
    "cosi_rpc_duration_seconds",
    "COSI RPC latency",
    ["version", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
INFLIGHT = Gauge("cosi_rpc_inflight", "COSI RPCs being handled", ["version"])

F = TypeVar("F", bound=Callable[..., Any])


def guarded(version: str) -> Callable[[F], F]:
    """Wrap a servicer method: map any exception to its gRPC status (never UNKNOWN), record metrics."""

    def wrap(method: F) -> F:
        name = method.__name__

        @functools.wraps(method)
        def handler(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
            started = time.perf_counter()
            INFLIGHT.labels(version).inc()
            code = grpc.StatusCode.OK
            message = ""
            try:
                return method(self, request, context)
            except Exception as exc:
                code, message = status_of(exc)
                if code in (grpc.StatusCode.INTERNAL,):
                    log.exception("rpc failed", extra={"version": version, "method": name})
                context.abort(code, message)
            finally:
                elapsed = time.perf_counter() - started
                INFLIGHT.labels(version).dec()
                RPCS.labels(version, name, code.name).inc()
                LATENCY.labels(version, name).observe(elapsed)
                log.info(
                    "rpc",
                    extra={
                        "version": version,
                        "method": name,
                        "code": code.name,
                        "ms": round(elapsed * 1000, 1),
                        "error": message or None,
                    },
                )

        return handler  # type: ignore[return-value]

    return wrap
