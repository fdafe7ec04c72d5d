"""Typed errors of the VMS client, and the ONE place that maps an HTTP answer to them.

Every error carries the HTTP status (None when no answer came back), the server's message and
the request's method and path. None of them ever carries a credential: the path is the URL path
without the query string, and the server's message is passed through the shared redaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubevast_common.logs import redact_text

_MAX_MESSAGE = 500
UNIQUE_MARKERS = ("must be unique", "already exists")
TOKEN_EXPIRED_MARKER = "token is invalid or expired"


class VmsError(Exception):
    """Base of every error the client raises."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        method: str = "",
        path: str = "",
        fields: Mapping[str, list[str]] | None = None,
    ) -> None:
        self.message = redact_text(message)[:_MAX_MESSAGE]
        self.status = status
        self.method = method
        self.path = path
        self.fields: dict[str, list[str]] = {
            k: [redact_text(m) for m in v] for k, v in (fields or {}).items()
        }
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.method} {self.path}".strip()
        status = f" -> {self.status}" if self.status is not None else ""
        head = f"{where}{status}: " if where or status else ""
        return f"{head}{self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep the keyword-only attributes across pickling (multiprocessing, logging handlers).
        return (_rebuild, (type(self), self.message, self.status, self.method, self.path, self.fields))


def _rebuild(cls: type[VmsError], message: str, status: int | None, method: str, path: str,
             fields: dict[str, list[str]]) -> VmsError:
    return cls(message, status=status, method=method, path=path, fields=fields)


class NotFound(VmsError):
    """404: the object (or the route) does not exist."""


class Conflict(VmsError):
    """The object clashes with an existing one (400 "must be unique", or 409)."""


class InUse(Conflict):
    """409: the object is in use (a mapped volume, a view that still holds volumes...)."""


class InvalidRequest(VmsError):
    """400/422 other than a uniqueness clash; ``fields`` maps each bad field to its messages."""


class Unauthorized(VmsError):
    """401/403 that logging in again did not cure (bad credentials, expired API token...)."""


class PermissionDenied(Unauthorized):
    """403 for a valid principal that may not do this (e.g. another tenant's object)."""


class CapacityExceeded(VmsError):
    """507: the cluster has no room for the allocation."""


class Unavailable(VmsError):
    """5xx, connection failure or timeout, after the retries the request was allowed."""


class Timeout(Unavailable):
    """A deadline passed: a request's timeout, the retry budget or a vtask wait."""


class TlsError(Unavailable):
    """TLS handshake or certificate verification failed (not retried: it will not heal)."""


class TaskFailed(VmsError):
    """A vtask ended in state FAILED; ``message`` holds its messages."""


class MultipleFound(VmsError):
    """``find_one`` matched more than one object."""


def server_message(body: Any) -> tuple[str, dict[str, list[str]]]:
    """The human message and the field map of a DRF-style error body."""
    if isinstance(body, Mapping):
        fields: dict[str, list[str]] = {}
        detail = body.get("detail")
        for key, value in body.items():
            if key == "detail":
                continue
            if isinstance(value, list):
                fields[str(key)] = [str(v) for v in value]
            elif isinstance(value, (str, int, float)):
                fields[str(key)] = [str(value)]
            elif isinstance(value, Mapping):
                fields[str(key)] = [f"{k}: {v}" for k, v in value.items()]
        if isinstance(detail, str) and detail:
            return detail, fields
        if detail is not None:
            return str(detail), fields
        if fields:
            return "; ".join(f"{k}: {' '.join(v)}" for k, v in fields.items()), fields
        return str(dict(body)), fields
    if isinstance(body, list):
        return "; ".join(str(v) for v in body), {}
    if body is None:
        return "", {}
    return str(body).strip(), {}


def is_token_expired(status: int, body: Any) -> bool:
    """True for the answers after which a Bearer client should refresh its token."""
    if status == 401:
        return True
    if status != 403:
        return False
    message, _ = server_message(body)
    return TOKEN_EXPIRED_MARKER in message.lower() or TOKEN_EXPIRED_MARKER in str(body).lower()


def error_from_response(status: int, body: Any, *, method: str, path: str,
                        reason: str = "") -> VmsError:
    """Map one non-2xx answer to the typed error (the ONE mapping of the client)."""
    message, fields = server_message(body)
    if not message:
        message = reason or f"HTTP {status}"
    kwargs: dict[str, Any] = {"status": status, "method": method, "path": path, "fields": fields}
    if status == 404:
        return NotFound(message, **kwargs)
    if status == 409:
        return InUse(message, **kwargs)
    if status in (400, 422):
        unique = any(marker in m.lower() for msgs in fields.values() for m in msgs
                     for marker in UNIQUE_MARKERS)
        if unique or any(marker in message.lower() for marker in UNIQUE_MARKERS):
            return Conflict(message, **kwargs)
        return InvalidRequest(message, **kwargs)
    if status == 401:
        return Unauthorized(message, **kwargs)
    if status == 403:
        if is_token_expired(status, body):
            return Unauthorized(message, **kwargs)
        return PermissionDenied(message, **kwargs)
    if status == 507:
        return CapacityExceeded(message, **kwargs)
    if status == 504:
        return Timeout(message, **kwargs)
    if status >= 500 or status == 429:
        return Unavailable(message, **kwargs)
    return VmsError(message, **kwargs)
