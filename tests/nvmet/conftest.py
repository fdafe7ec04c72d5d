"""A real target on loopback over real sparse backing files, driven by the project's initiator."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from vms_mock.nvmet import NamespaceRecord, NvmeTarget, StaticNamespaceProvider

SUBNQN = "nqn.2024-01.com.vastdata:vms-mock:subsystem-a"
OTHER_SUBNQN = "nqn.2024-01.com.vastdata:vms-mock:subsystem-b"
HOST = "nqn.2014-08.org.nvmexpress:uuid:11111111-1111-1111-1111-111111111111"
HOST2 = "nqn.2014-08.org.nvmexpress:uuid:22222222-2222-2222-2222-222222222222"
STRANGER = "nqn.2014-08.org.nvmexpress:uuid:99999999-9999-9999-9999-999999999999"
SIZE = 64 << 20
NGUID = bytes.fromhex("00112233445566778899aabbccddeeff")
NS_UUID = uuid.UUID("6f0ab2f4-6c0e-4bfa-9a8c-0d1f3e2a4b5c")


class Env:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.provider = StaticNamespaceProvider()
        self.backing = self.make_backing("vol1", SIZE)
        self.provider.add_namespace(SUBNQN, NamespaceRecord(1, 101, NGUID, NS_UUID, SIZE, str(self.backing)),
                                    hosts=[HOST, HOST2])
        self.provider.add_subsystem(OTHER_SUBNQN)
        self.target: NvmeTarget | None = None

    def make_backing(self, name: str, size: int) -> Path:
        path = self.tmp / f"{name}.img"
        with open(path, "wb") as f:
            f.truncate(size)
        return path

    @property
    def io_port(self) -> int:
        assert self.target
        return self.target.ports["io"]

    @property
    def discovery_port(self) -> int:
        assert self.target
        return self.target.ports["discovery"]

    def run(self, scenario: Callable[[Env], Awaitable[None]], timeout: float = 60) -> None:
        async def main() -> None:
            self.target = NvmeTarget(self.provider, io_port=0, discovery_port=0, poll_interval=0.05)
            await self.target.start()
            try:
                await asyncio.wait_for(scenario(self), timeout)
            finally:
                await self.target.close()

        asyncio.run(main())


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(tmp_path)
