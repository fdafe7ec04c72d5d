"""Domain errors of the COSI driver and the ONE place that maps them (and VMS client errors)
to gRPC status codes.

The sidecars treat INVALID_ARGUMENT, ALREADY_EXISTS and UNIMPLEMENTED as terminal and retry
everything else, so the choice of code decides whether a user must fix something or the system
heals by retrying. Messages are redacted before they leave the process.
"""

from __future__ import annotations

import grpc

from kubevast_common.logs import redact_text


class CosiError(Exception):
    """Base of every error the domain logic raises on purpose."""

    code = grpc.StatusCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(redact_text(message))
        self.message = redact_text(message)


class InvalidArgument(CosiError):
    """Bad or unknown request fields or parameters (terminal: the user must fix them)."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class AlreadyExists(CosiError):
    """The name exists on the platform with incompatible parameters (terminal)."""

    code = grpc.StatusCode.ALREADY_EXISTS


class NotFound(CosiError):
    code = grpc.StatusCode.NOT_FOUND


class Aborted(CosiError):
    """Another operation on the same bucket / access is in flight (retry later)."""

    code = grpc.StatusCode.ABORTED


class BucketNotEmpty(CosiError):
    """Deleting a bucket that still holds objects without the opt-in force-empty (retryable)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class RecentlyRemoved(CosiError):
    """A Create/Grant for a name this driver just deleted/revoked: a stale retry of a sidecar
    whose object is being deleted (COSI names carry the object's UID, so a live object never
    reuses one). Refused so the retry cannot bring the bucket or principal back."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class Misconfigured(CosiError):
    """The driver lacks a setting the request needs (e.g. no S3 endpoint to hand out)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class BackendUnavailable(CosiError):
    code = grpc.StatusCode.UNAVAILABLE


class KeyStoreError(CosiError):
    """The driver cannot read or write its credential store (retryable)."""

    code = grpc.StatusCode.UNAVAILABLE


def status_of(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """gRPC code and message for any exception raised below the protocol layer."""
    if isinstance(exc, CosiError):
        return exc.code, exc.message
    # Imported lazily so the protocol layer loads even when the client package is broken.
    from vms_client import errors as vms

    if isinstance(exc, vms.NotFound):
        return grpc.StatusCode.NOT_FOUND, f"platform object not found: {exc}"
    if isinstance(exc, vms.Conflict):
        return grpc.StatusCode.ABORTED, f"concurrent change on the platform, retry: {exc}"
    if isinstance(exc, vms.InvalidRequest):
        fields = ", ".join(sorted(exc.fields)) or "request"
        return grpc.StatusCode.INVALID_ARGUMENT, f"platform rejected {fields}: {exc}"
    if isinstance(exc, vms.PermissionDenied):
        return grpc.StatusCode.PERMISSION_DENIED, f"platform denied the driver's principal: {exc}"
    if isinstance(exc, vms.Unauthorized):
        return grpc.StatusCode.UNAUTHENTICATED, f"platform credentials rejected: {exc}"
    if isinstance(exc, vms.CapacityExceeded):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, f"platform out of capacity: {exc}"
    if isinstance(exc, vms.Timeout):
        return grpc.StatusCode.DEADLINE_EXCEEDED, f"platform timed out: {exc}"
    if isinstance(exc, vms.Unavailable):
        return grpc.StatusCode.UNAVAILABLE, f"platform unavailable: {exc}"
    if isinstance(exc, vms.VmsError):
        return grpc.StatusCode.INTERNAL, f"platform error: {exc}"
    return grpc.StatusCode.INTERNAL, redact_text(f"internal error: {type(exc).__name__}: {exc}")
