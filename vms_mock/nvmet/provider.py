"""What the NVMe/TCP target needs to know about subsystems, hosts and volumes.

The target depends only on :class:`NamespaceProvider`; ``service.py`` adapts the emulator's
state (``vms_mock.core_api``) to it, and tests use :class:`StaticNamespaceProvider` over real
backing files.
"""

from __future__ import annotations

import threading
import uuid as uuidlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol


def _guid_bytes(value: object) -> bytes:
    if isinstance(value, bytes | bytearray):
        raw = bytes(value)
    elif isinstance(value, uuidlib.UUID):
        raw = value.bytes
    elif isinstance(value, str):
        raw = bytes.fromhex(value.replace("-", "").replace(":", "").strip())
    else:
        raise ValueError(f"cannot read a 16-byte identifier from {value!r}")
    if len(raw) != 16:
        raise ValueError(f"identifier {value!r} is not 16 bytes")
    return raw


@dataclass(frozen=True)
class NamespaceRecord:
    """One volume exposed as a namespace of a subsystem."""

    nsid: int
    volume_id: int | str
    nguid: bytes
    uuid: uuidlib.UUID
    size: int  # bytes
    backing_path: str

    @classmethod
    def of(cls, *, nsid: int, volume_id: int | str, nguid: object, uuid: object, size: int,
           backing_path: str) -> NamespaceRecord:
        """Build from loosely typed fields (hex strings, UUID strings) and validate them."""
        if not 1 <= int(nsid) < 0xFFFFFFFF:
            raise ValueError(f"nsid {nsid!r} out of range")
        return cls(nsid=int(nsid), volume_id=volume_id, nguid=_guid_bytes(nguid),
                   uuid=uuidlib.UUID(bytes=_guid_bytes(uuid)), size=int(size),
                   backing_path=str(backing_path))


class NamespaceProvider(Protocol):
    """Read-only view of the storage state the target serves. Calls must be cheap and non-blocking."""

    def visible_subsystems(self, host_nqn: str) -> Sequence[str]:
        """NQNs of the subsystems where ``host_nqn`` has at least one mapped volume."""
        ...

    def subsystem_exists(self, subsystem_nqn: str) -> bool: ...

    def host_allowed(self, host_nqn: str, subsystem_nqn: str) -> bool: ...

    def namespaces(self, subsystem_nqn: str, host_nqn: str) -> Sequence[NamespaceRecord]:
        """The namespaces ``host_nqn`` sees in the subsystem (its mapped volumes)."""
        ...

    def change_seq(self) -> int:
        """Increases on every change of mappings or volumes."""
        ...


@dataclass
class _Subsystem:
    nqn: str
    namespaces: dict[int, NamespaceRecord] = field(default_factory=dict)
    hosts: dict[str, set[int]] = field(default_factory=dict)  # host NQN -> mapped NSIDs


class StaticNamespaceProvider:
    """An in-process provider over real backing files, for tests and benchmarks.

    Thread-safe; every mutation bumps ``change_seq`` so a running target notices it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subsystems: dict[str, _Subsystem] = {}
        self._seq = 0

    def add_subsystem(self, nqn: str) -> None:
        with self._lock:
            self._subsystems.setdefault(nqn, _Subsystem(nqn))
            self._seq += 1

    def add_namespace(self, subsystem_nqn: str, record: NamespaceRecord,
                      hosts: Iterable[str] = ()) -> None:
        with self._lock:
            sub = self._subsystems.setdefault(subsystem_nqn, _Subsystem(subsystem_nqn))
            sub.namespaces[record.nsid] = record
            for h in hosts:
                sub.hosts.setdefault(h, set()).add(record.nsid)
            self._seq += 1

    def map_host(self, subsystem_nqn: str, host_nqn: str, nsid: int) -> None:
        with self._lock:
            self._subsystems[subsystem_nqn].hosts.setdefault(host_nqn, set()).add(nsid)
            self._seq += 1

    def unmap_host(self, subsystem_nqn: str, host_nqn: str, nsid: int) -> None:
        with self._lock:
            nsids = self._subsystems[subsystem_nqn].hosts.get(host_nqn, set())
            nsids.discard(nsid)
            if not nsids:
                self._subsystems[subsystem_nqn].hosts.pop(host_nqn, None)
            self._seq += 1

    def resize(self, subsystem_nqn: str, nsid: int, size: int) -> None:
        with self._lock:
            sub = self._subsystems[subsystem_nqn]
            rec = sub.namespaces[nsid]
            with open(rec.backing_path, "r+b") as f:
                f.truncate(size)
            sub.namespaces[nsid] = NamespaceRecord(rec.nsid, rec.volume_id, rec.nguid, rec.uuid, size,
                                                   rec.backing_path)
            self._seq += 1

    def replace_with(self, other: StaticNamespaceProvider) -> None:
        """Take over another provider's subsystems (a configuration reload) as one change."""
        with other._lock:
            subsystems = dict(other._subsystems)
        with self._lock:
            self._subsystems = subsystems
            self._seq += 1

    # --- NamespaceProvider -----------------------------------------------------------------
    def visible_subsystems(self, host_nqn: str) -> list[str]:
        with self._lock:
            return [s.nqn for s in self._subsystems.values() if s.hosts.get(host_nqn)]

    def subsystem_exists(self, subsystem_nqn: str) -> bool:
        with self._lock:
            return subsystem_nqn in self._subsystems

    def host_allowed(self, host_nqn: str, subsystem_nqn: str) -> bool:
        with self._lock:
            sub = self._subsystems.get(subsystem_nqn)
            return bool(sub and sub.hosts.get(host_nqn))

    def namespaces(self, subsystem_nqn: str, host_nqn: str) -> list[NamespaceRecord]:
        with self._lock:
            sub = self._subsystems.get(subsystem_nqn)
            if not sub:
                return []
            return [sub.namespaces[n] for n in sorted(sub.hosts.get(host_nqn, ())) if n in sub.namespaces]

    def change_seq(self) -> int:
        with self._lock:
            return self._seq
