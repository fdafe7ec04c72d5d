"""Wire the NVMe/TCP target to the emulator's state (``vms_mock.core_api.StorageCore``).

``vms-mock`` calls :func:`start_nvmet`; the returned target has ``.ports`` (``{"io", "discovery"}``)
and ``close()``. The adapter below is the only place that knows the core API's record shapes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from .provider import NamespaceRecord
from .target import NvmeTarget

log = logging.getLogger("vms_mock.nvmet")


class CoreNamespaceProvider:
    """:class:`~vms_mock.nvmet.provider.NamespaceProvider` over a ``StorageCore``."""

    def __init__(self, core: Any) -> None:
        self.core = core

    def visible_subsystems(self, host_nqn: str) -> list[str]:
        return [s.nqn for s in self.core.visible_subsystems(host_nqn)]

    def subsystem_exists(self, subsystem_nqn: str) -> bool:
        return self.core.subsystem(subsystem_nqn) is not None

    def host_allowed(self, host_nqn: str, subsystem_nqn: str) -> bool:
        return bool(self.core.host_allowed(host_nqn, subsystem_nqn))

    def namespaces(self, subsystem_nqn: str, host_nqn: str) -> list[NamespaceRecord]:
        out = []
        for ns in self.core.namespaces(subsystem_nqn, host_nqn):
            try:
                out.append(NamespaceRecord.of(nsid=ns.nsid, volume_id=ns.volume_id, nguid=ns.nguid,
                                              uuid=ns.uuid, size=ns.size, backing_path=str(ns.backing_path)))
            except ValueError as exc:  # a record the target cannot serve is skipped, not fatal
                log.warning("volume not exposed as a namespace",
                            extra={"volume_id": getattr(ns, "volume_id", None), "error": str(exc)})
        return out

    def change_seq(self) -> int:
        return int(self.core.change_seq())


async def start_nvmet(core: Any, host: str, io_port: int, discovery_port: int) -> NvmeTarget:
    """Start the target for ``vms-mock`` on ``host`` (ports 0 = pick free ones)."""
    target = NvmeTarget(CoreNamespaceProvider(core), host=host, io_port=io_port,
                        discovery_port=discovery_port)
    await target.start()
    loop = asyncio.get_running_loop()

    def on_change(event: str, payload: dict[str, Any]) -> None:
        # Called in the committing thread: hand over to the loop, which re-reads namespaces now
        # instead of at the next poll.
        if event.startswith(("volume.", "mapping.", "view.")):
            if asyncio._get_running_loop() is loop:
                # API handlers commit on the loop thread itself: a plain call_soon spares every
                # create/delete the self-pipe write and the extra loop wake-up of the threadsafe one
                loop.call_soon(target.request_refresh)
                return
            with contextlib.suppress(RuntimeError):  # the loop is already closed at shutdown
                loop.call_soon_threadsafe(target.request_refresh)

    subscribe = getattr(core, "subscribe", None)
    if callable(subscribe):
        subscribe(on_change)
    return target
