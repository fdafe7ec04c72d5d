"""Deterministic, hashed backend names and the driver's opaque ids.

A CSI name (up to 128 characters of any Unicode) maps to ``<prefix>-<readable>-<sha256[:16]>``:
the hash covers the WHOLE name, so two names never collide however long they are; only the
human-readable middle is shortened. The same name always gives the same backend name, which is
what makes CreateVolume/CreateSnapshot idempotent across retries, restarts and replicas.
"""

from __future__ import annotations

import hashlib
import re

_READABLE_MAX = 40
_UNSAFE = re.compile(r"[^a-z0-9]+")


def digest(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:16]


def backend_name(prefix: str, name: str) -> str:
    readable = _UNSAFE.sub("-", name.lower()).strip("-")[:_READABLE_MAX].strip("-") or "x"
    return f"{prefix}-{readable}-{digest(name)}"


def is_backend_name(prefix: str, value: str) -> bool:
    return bool(re.fullmatch(rf"{re.escape(prefix)}-[a-z0-9-]+-[0-9a-f]{{16}}", value))


def volume_path(group: str, backend: str) -> str:
    """The VMS volume name: ``/<volume group>/<backend name>``."""
    return f"/{group.strip('/')}/{backend}"


# CSI ids: "<vms id>:<uuid>" for volumes (the uuid guards against a reused numeric id and names
# the storage core's backing file), "<vms id>:<name digest>" for snapshots.
def volume_id(vms_id: int, uuid: str) -> str:
    return f"{vms_id}:{uuid}"


def parse_volume_id(value: str) -> tuple[int, str] | None:
    m = re.fullmatch(r"(\d{1,18}):([0-9a-fA-F-]{8,64})", value)
    return (int(m.group(1)), m.group(2).lower()) if m else None


def snapshot_id(vms_id: int, backend: str) -> str:
    return f"{vms_id}:{backend.rsplit('-', 1)[-1]}"


def parse_snapshot_id(value: str) -> tuple[int, str] | None:
    m = re.fullmatch(r"(\d{1,18}):([0-9a-f]{16})", value)
    return (int(m.group(1)), m.group(2)) if m else None
