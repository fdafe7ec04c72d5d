"""Optional Prometheus metrics of the client (request count and latency, retries, renewals).

The collectors live in the default registry, created once per process, so a driver's /metrics
endpoint shows them without extra wiring. ``VmsConfig(metrics=False)`` turns recording off.
"""

from __future__ import annotations

from typing import Protocol

from prometheus_client import Counter, Histogram

REQUESTS = Counter(
    "vms_client_requests_total", "HTTP requests sent to the VMS, by outcome",
    ["method", "resource", "status"])
LATENCY = Histogram(
    "vms_client_request_duration_seconds", "Time until the VMS answered one HTTP request",
    ["method", "resource"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
RETRIES = Counter(
    "vms_client_retries_total", "Requests sent again after a retryable failure",
    ["method", "resource", "reason"])
RENEWALS = Counter(
    "vms_client_token_renewals_total", "Requests that found their token expired and renewed it")


class RequestObserver(Protocol):
    """Hook called once per HTTP attempt (``status`` is the code, or "error" without one)."""

    def request_done(self, method: str, resource: str, status: str, seconds: float) -> None: ...
    def retried(self, method: str, resource: str, reason: str) -> None: ...
    def token_renewed(self) -> None: ...


class PrometheusObserver:
    def request_done(self, method: str, resource: str, status: str, seconds: float) -> None:
        REQUESTS.labels(method, resource, status).inc()
        LATENCY.labels(method, resource).observe(seconds)

    def retried(self, method: str, resource: str, reason: str) -> None:
        RETRIES.labels(method, resource, reason).inc()

    def token_renewed(self) -> None:
        RENEWALS.inc()


class NullObserver:
    def request_done(self, method: str, resource: str, status: str, seconds: float) -> None:
        pass

    def retried(self, method: str, resource: str, reason: str) -> None:
        pass

    def token_renewed(self) -> None:
        pass
