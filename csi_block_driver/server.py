"""gRPC plumbing: unix-socket listener, per-RPC logging/metrics/error mapping, graceful stop.

Every servicer method is wrapped once here, so servicers contain only CSI logic: they raise
errors (mapped to codes in :mod:`csi_block_driver.errors`) and never touch ``context``.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict
from prometheus_client import Counter, Histogram

from csi_block_driver.errors import to_status
from kubevast_common.logs import REDACTED, redact
from kubevast_common.unixsocket import remove_stale_socket, socket_path, unlink_socket

log = logging.getLogger(__name__)

RPC_TOTAL = Counter("csi_rpc_total", "CSI RPCs served, by method and gRPC code", ["method", "code"])
RPC_ERRORS = Counter(
    "csi_rpc_errors_total", "CSI RPCs that failed, by method and gRPC code", ["method", "code"]
)
RPC_LATENCY = Histogram(
    "csi_rpc_duration_seconds",
    "CSI RPC latency, by method",
    ["method"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
RPC_STARTED = Counter("csi_rpc_started_total", "CSI RPCs started, by method", ["method"])

# Fields that may hold secrets beyond the `secrets` maps (the spec marks mount_flags as sensitive).
_SENSITIVE_FIELDS = {"secrets", "mount_flags"}


def loggable(message: Any) -> dict[str, Any]:
    """A request/response as a dict with every secret-bearing field replaced by ``***``."""
    try:
        doc = MessageToDict(message, preserving_proto_field_name=True)
    except Exception:  # not a protobuf message
        return {"repr": type(message).__name__}
    return redact(_drop_sensitive(doc))


def _drop_sensitive(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: (REDACTED if k in _SENSITIVE_FIELDS and v else _drop_sensitive(v)) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_drop_sensitive(v) for v in value]
    return value


def _wrap(method: str, fn: Callable[[Any, grpc.ServicerContext], Any]) -> Callable[..., Any]:
    def handler(request: Any, context: grpc.ServicerContext) -> Any:
        started = time.monotonic()
        RPC_STARTED.labels(method).inc()
        log.debug("rpc start", extra={"rpc": method, "request": loggable(request)})
        try:
            response = fn(request, context)
        except Exception as exc:
            code, message = to_status(exc)
            elapsed = time.monotonic() - started
            RPC_TOTAL.labels(method, code.name).inc()
            RPC_ERRORS.labels(method, code.name).inc()
            RPC_LATENCY.labels(method).observe(elapsed)
            level = (
                logging.ERROR if code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN) else logging.INFO
            )
            log.log(
                level,
                "rpc failed",
                exc_info=code == grpc.StatusCode.INTERNAL,
                extra={
                    "rpc": method,
                    "code": code.name,
                    "error": message,
                    "duration_ms": round(elapsed * 1000, 1),
                    "request": loggable(request),
                },
            )
            context.abort(code, message)
        elapsed = time.monotonic() - started
        RPC_TOTAL.labels(method, "OK").inc()
        RPC_LATENCY.labels(method).observe(elapsed)
        log.info("rpc ok", extra={"rpc": method, "duration_ms": round(elapsed * 1000, 1)})
        return response

    return handler


class _Interceptor(grpc.ServerInterceptor):
    """Wraps every unary-unary handler with logging, metrics and the error mapping."""

    def intercept_service(self, continuation: Callable[..., Any], handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = handler_call_details.method.rsplit("/", 1)[-1]
        return grpc.unary_unary_rpc_method_handler(
            _wrap(method, handler.unary_unary),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def build_server(
    endpoint: str, register: list[Callable[[grpc.Server], None]], workers: int = 16
) -> grpc.Server:
    """A started-ready (not yet started) server listening on the unix socket of ``endpoint``."""
    path = socket_path(endpoint)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    remove_stale_socket(path)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="csi-rpc"),
        interceptors=[_Interceptor()],
        options=[("grpc.so_reuseport", 0)],
    )
    for add in register:
        add(server)
    if server.add_insecure_port(f"unix://{path}") == 0:
        raise OSError(f"could not listen on {endpoint}")
    return server


def stop_server(server: grpc.Server, endpoint: str, grace: float) -> None:
    """Stop taking RPCs, let in-flight ones finish for ``grace`` seconds, remove the socket."""
    server.stop(grace).wait(grace + 5)
    with contextlib.suppress(ValueError):
        unlink_socket(socket_path(endpoint))
