"""The standalone target process (`python -m vms_mock.nvmet`): ready file, SIGHUP reload, SIGTERM."""

from __future__ import annotations

import asyncio
import json
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import ROOT
from vms_mock.nvmet import identify as idf
from vms_mock.nvmet import wire as w
from vms_mock.nvmet.initiator import Initiator

SUBNQN = "nqn.2024-01.com.vastdata:standalone"
HOST = "nqn.2014-08.org.nvmexpress:uuid:7a7a7a7a-0000-4000-8000-000000000001"
SIZE = 16 << 20


def _config(path: Path, backing: Path, size: int) -> None:
    path.write_text(json.dumps({"subsystems": [{"nqn": SUBNQN, "namespaces": [{
        "nsid": 3, "nguid": "0f" * 16, "uuid": "0b0b0b0b-1111-4222-8333-444444444444", "size": size,
        "backing_path": str(backing), "hosts": [HOST]}]}]}))


def test_standalone_target_serves_reloads_and_stops(tmp_path: Path) -> None:
    backing = tmp_path / "vol.img"
    backing.write_bytes(b"")
    with open(backing, "r+b") as f:
        f.truncate(SIZE)
    cfg = tmp_path / "cfg.json"
    _config(cfg, backing, SIZE)
    ready = tmp_path / "ready.json"
    with open(tmp_path / "target.log", "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vms_mock.nvmet", "--config", str(cfg), "--io-port", "0",
             "--discovery-port", "0", "--ready-file", str(ready), "--log-format", "text"],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "target.log").read_text()
            time.sleep(0.05)
        info = json.loads(ready.read_text())
        assert info["pid"] == proc.pid

        async def scenario() -> None:
            d = await Initiator.connect("127.0.0.1", info["discovery_port"], w.DISCOVERY_NQN, HOST, kato_ms=0)
            assert [e["subnqn"] for e in await d.discovery_entries()] == [SUBNQN]
            await d.close()
            c = await Initiator.connect("127.0.0.1", info["io_port"], SUBNQN, HOST)
            (await c.set_features(w.FEAT_ASYNC_EVENT, idf.OAES_NS_ATTR)).check()
            (await c.write(3, 0, b"\x5a" * 4096)).check()
            aer = asyncio.create_task(c.async_event(timeout=15))
            with open(backing, "r+b") as f:
                f.truncate(2 * SIZE)
            _config(cfg, backing, 2 * SIZE)
            proc.send_signal(signal.SIGHUP)
            (await aer).check()
            ns = (await c.identify(idf.CNS_NAMESPACE, 3)).check().data
            assert struct.unpack_from("<Q", ns)[0] == 2 * SIZE // 512
            await c.close()

        asyncio.run(asyncio.wait_for(scenario(), 60))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        with open(backing, "rb") as f:
            assert f.read(4096) == b"\x5a" * 4096
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
