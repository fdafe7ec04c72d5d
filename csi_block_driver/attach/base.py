"""The attach-backend interface: how a node turns a published volume into a local block device.

A backend never trusts a cached device name: it finds the device from the volume's identity
(namespace NGUID/UUID for NVMe/TCP, backing file for loop) every time, because device names
change across reconnects and reboots.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any

from csi_block_driver import publish_context as pc
from csi_block_driver.errors import InvalidArgument


@dataclass(frozen=True)
class AttachTarget:
    """Everything a backend needs to find or attach one volume (from the publish context)."""

    volume_id: str
    uuid: str
    nguid: str = ""
    subsystem_nqn: str = ""
    addresses: tuple[str, ...] = field(default_factory=tuple)  # "host:port" of the I/O targets

    @classmethod
    def from_publish_context(cls, volume_id: str, context: dict[str, str]) -> AttachTarget:
        uuid = context.get(pc.UUID, "").strip()
        if not uuid:
            raise InvalidArgument(
                f"publish_context has no {pc.UUID!r}: the volume was not published by this driver's "
                "ControllerPublishVolume"
            )
        addrs = tuple(a.strip() for a in context.get(pc.TARGETS, "").split(",") if a.strip())
        return cls(
            volume_id=volume_id,
            uuid=uuid.lower(),
            nguid=context.get(pc.NGUID, "").lower(),
            subsystem_nqn=context.get(pc.SUBSYSTEM_NQN, ""),
            addresses=addrs,
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["addresses"] = list(self.addresses)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AttachTarget:
        return cls(
            volume_id=d["volume_id"],
            uuid=d["uuid"],
            nguid=d.get("nguid", ""),
            subsystem_nqn=d.get("subsystem_nqn", ""),
            addresses=tuple(d.get("addresses", ())),
        )


class AttachBackend(ABC):
    name: str

    @abstractmethod
    def prerequisites(self) -> list[str]:
        """Problems that stop this backend from working on this host (empty = ready)."""

    @abstractmethod
    def attach(self, target: AttachTarget) -> str:
        """Make the volume's block device present; return its path. Idempotent."""

    @abstractmethod
    def find_device(self, target: AttachTarget) -> str | None:
        """The volume's block device path if attached, else None."""

    @abstractmethod
    def detach(self, target: AttachTarget, still_staged: list[AttachTarget]) -> None:
        """Release the device. ``still_staged`` are the other volumes staged on this node (for
        shared connections). Idempotent; raises when the release could not be confirmed."""

    @abstractmethod
    def rescan(self, target: AttachTarget) -> None:
        """Make the kernel see a new size of an attached volume."""
