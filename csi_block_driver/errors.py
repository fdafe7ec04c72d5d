"""The driver's errors, and the ONE place that turns any error into a gRPC status.

Domain code raises :class:`CsiError` subclasses (each names its gRPC code) or lets a
``vms_client`` error or a host-command error propagate; :func:`to_status` is the only mapping
from those to the code the CO sees, so the same situation always gets the same code and an
unexpected exception is INTERNAL with its type named, never a silent UNKNOWN.
"""

from __future__ import annotations

import grpc

from kubevast_common.logs import redact_text


class CsiError(Exception):
    """An error with a CSI-mandated gRPC code. The message names the offending field/value."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str) -> None:
        self.message = redact_text(message)
        super().__init__(self.message)


class InvalidArgument(CsiError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(CsiError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(CsiError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(CsiError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class OutOfRange(CsiError):
    code = grpc.StatusCode.OUT_OF_RANGE


class ResourceExhausted(CsiError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Aborted(CsiError):
    """Another operation on the same volume/snapshot/name is in flight: the CO retries later."""

    code = grpc.StatusCode.ABORTED


class Unavailable(CsiError):
    code = grpc.StatusCode.UNAVAILABLE


class Unimplemented(CsiError):
    code = grpc.StatusCode.UNIMPLEMENTED


class Internal(CsiError):
    code = grpc.StatusCode.INTERNAL


class HostCommandError(Exception):
    """A host command (losetup, mount, mkfs, nvme...) failed; carries argv, exit code, stderr."""

    def __init__(self, argv: list[str], returncode: int | None, stderr: str) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = redact_text(stderr.strip())[:2000]
        rc = "timed out" if returncode is None else f"exit {returncode}"
        super().__init__(f"{' '.join(self.argv)}: {rc}: {self.stderr}")


def _vms_status(exc: Exception) -> tuple[grpc.StatusCode, str] | None:
    """Map a ``vms_client`` error; None when ``exc`` is not one."""
    try:
        from vms_client import errors as vms
    except ImportError:  # pragma: no cover - the node plugin does not need the client
        return None
    if not isinstance(exc, vms.VmsError):
        return None
    text = f"VMS: {exc}"
    # Order matters: subclasses before their bases.
    table: list[tuple[type[Exception], grpc.StatusCode]] = [
        (vms.NotFound, grpc.StatusCode.NOT_FOUND),
        # 409: the object is still in use (a mapped volume, a view holding volumes): the caller
        # must change the state first, which is what FAILED_PRECONDITION tells the CO.
        (vms.InUse, grpc.StatusCode.FAILED_PRECONDITION),
        (vms.Conflict, grpc.StatusCode.ALREADY_EXISTS),
        (vms.CapacityExceeded, grpc.StatusCode.RESOURCE_EXHAUSTED),
        (vms.Timeout, grpc.StatusCode.DEADLINE_EXCEEDED),
        (vms.Unavailable, grpc.StatusCode.UNAVAILABLE),
        (vms.InvalidRequest, grpc.StatusCode.INVALID_ARGUMENT),
        (vms.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
        (vms.Unauthorized, grpc.StatusCode.UNAUTHENTICATED),
        (vms.TaskFailed, grpc.StatusCode.INTERNAL),
        (vms.MultipleFound, grpc.StatusCode.INTERNAL),
    ]
    for cls, code in table:
        if isinstance(exc, cls):
            return code, text
    return grpc.StatusCode.INTERNAL, text


def to_status(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The gRPC code and message for any exception raised while serving an RPC."""
    if isinstance(exc, CsiError):
        return exc.code, exc.message
    if isinstance(exc, Exception):
        mapped = _vms_status(exc)
        if mapped is not None:
            return mapped
    if isinstance(exc, HostCommandError):
        return grpc.StatusCode.INTERNAL, f"host command failed: {exc}"
    if isinstance(exc, TimeoutError):
        return grpc.StatusCode.DEADLINE_EXCEEDED, f"timed out: {redact_text(str(exc))}"
    return grpc.StatusCode.INTERNAL, f"internal error ({type(exc).__name__}): {redact_text(str(exc))}"
