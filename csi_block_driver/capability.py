"""Validation of VolumeCapability messages, shared by the controller and the node services."""

from __future__ import annotations

from collections.abc import Iterable

from csi_block_driver.errors import InvalidArgument
from csi_block_driver.proto import csi_pb2

AccessMode = csi_pb2.VolumeCapability.AccessMode
SUPPORTED_FS = ("ext4", "xfs")
DEFAULT_FS = "ext4"

# A block volume served over NVMe/TCP can be attached to many hosts; a filesystem on it must not
# be mounted read-write by two hosts (ext4/xfs are not cluster filesystems).
_BLOCK_MODES = {
    AccessMode.SINGLE_NODE_WRITER,
    AccessMode.SINGLE_NODE_READER_ONLY,
    AccessMode.MULTI_NODE_READER_ONLY,
    AccessMode.MULTI_NODE_SINGLE_WRITER,
    AccessMode.MULTI_NODE_MULTI_WRITER,
    AccessMode.SINGLE_NODE_SINGLE_WRITER,
    AccessMode.SINGLE_NODE_MULTI_WRITER,
}
_MOUNT_MODES = {
    AccessMode.SINGLE_NODE_WRITER,
    AccessMode.SINGLE_NODE_READER_ONLY,
    AccessMode.MULTI_NODE_READER_ONLY,
    AccessMode.SINGLE_NODE_SINGLE_WRITER,
    AccessMode.SINGLE_NODE_MULTI_WRITER,
}
READ_ONLY_MODES = {AccessMode.SINGLE_NODE_READER_ONLY, AccessMode.MULTI_NODE_READER_ONLY}
SINGLE_NODE_MODES = {
    AccessMode.SINGLE_NODE_WRITER,
    AccessMode.SINGLE_NODE_READER_ONLY,
    AccessMode.SINGLE_NODE_SINGLE_WRITER,
    AccessMode.SINGLE_NODE_MULTI_WRITER,
}


def unsupported_reason(cap: csi_pb2.VolumeCapability) -> str | None:
    """Why this driver cannot serve ``cap`` (None when it can)."""
    which = cap.WhichOneof("access_type")
    mode = cap.access_mode.mode
    if which is None:
        return "volume_capability.access_type (block or mount) is required"
    if not cap.HasField("access_mode") or mode == AccessMode.UNKNOWN:
        return "volume_capability.access_mode is required"
    if which == "block":
        if mode not in _BLOCK_MODES:
            return f"access mode {AccessMode.Mode.Name(mode)} is not supported for block volumes"
        return None
    fs = cap.mount.fs_type or DEFAULT_FS
    if fs not in SUPPORTED_FS:
        return f"fs_type {cap.mount.fs_type!r} is not supported (supported: {', '.join(SUPPORTED_FS)})"
    if mode not in _MOUNT_MODES:
        return (
            f"access mode {AccessMode.Mode.Name(mode)} is not supported for filesystem volumes "
            "(ext4/xfs cannot be shared read-write between nodes)"
        )
    return None


def require_supported(cap: csi_pb2.VolumeCapability, field: str = "volume_capability") -> None:
    reason = unsupported_reason(cap)
    if reason:
        raise InvalidArgument(f"{field}: {reason}")


def require_all_supported(caps: Iterable[csi_pb2.VolumeCapability]) -> None:
    caps = list(caps)
    if not caps:
        raise InvalidArgument("volume_capabilities is required")
    for i, cap in enumerate(caps):
        require_supported(cap, f"volume_capabilities[{i}]")
