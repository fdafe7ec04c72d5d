"""End to end through a real vms-mock process: REST API state drives what NVMe/TCP hosts see."""

from __future__ import annotations

import asyncio
import struct
import time
import uuid
from pathlib import Path

from tests.vmsproc import VmsProcess
from vms_mock.nvmet import identify as idf
from vms_mock.nvmet import wire as w
from vms_mock.nvmet.initiator import Initiator

HOST = f"nqn.2014-08.org.nvmexpress:uuid:{uuid.uuid4()}"
STRANGER = f"nqn.2014-08.org.nvmexpress:uuid:{uuid.uuid4()}"
SIZE = 32 << 20


def _wait_task(vms: VmsProcess, task_id: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        state = vms.api("GET", f"vtasks/{task_id}/").json()["state"]
        if state == "COMPLETED":
            return
        assert state != "FAILED" and time.monotonic() < deadline, state
        time.sleep(0.05)


def _map(vms: VmsProcess, key: str, host_id: int, volume_id: int) -> None:
    r = vms.api("PATCH", "blockhostvolumes/bulk/", "v5",
                json={key: [{"host_id": host_id, "volume_id": volume_id}]})
    assert r.status_code in (200, 202), r.text
    _wait_task(vms, int(r.json()["async_task"]["id"]))


def test_api_mappings_drive_discovery_namespaces_and_resize(tmp_path: Path) -> None:
    with VmsProcess(tmp_path / "vms", s3=False) as vms:
        assert vms.nvme_port and vms.discovery_port, "vms-mock did not start the NVMe/TCP target"
        suffix = uuid.uuid4().hex[:8]
        r = vms.api("POST", "views/", "v5", json={"name": f"sub-{suffix}", "path": f"/sub-{suffix}",
                                                  "protocols": ["BLOCK"], "tenant_id": 1, "create_dir": True})
        assert r.status_code == 201, r.text
        view = r.json()
        subnqn = view["nqn"]
        r = vms.api("POST", "volumes/", "v5", json={"name": f"/grp/vol-{suffix}", "view_id": view["id"],
                                                    "size": SIZE})
        assert r.status_code == 201, r.text
        volume = r.json()
        r = vms.api("POST", "blockhosts/", "v5", json={"name": f"host-{suffix}", "tenant_id": 1, "nqn": HOST,
                                                       "os_type": "LINUX", "connectivity_type": "TCP"})
        assert r.status_code == 201, r.text
        host = r.json()
        backing = vms.data_dir / "block" / f"{volume['uuid']}.img"

        async def scenario() -> None:
            addr = str(vms.nvme_host)
            # Before the mapping: nothing to discover and the subsystem refuses the host.
            d = await Initiator.connect(addr, int(vms.discovery_port or 0), w.DISCOVERY_NQN, HOST, kato_ms=0)
            assert await d.discovery_entries() == []
            try:
                await Initiator.connect(addr, int(vms.nvme_port or 0), subnqn, HOST)
                raise AssertionError("connect without a mapping must be refused")
            except w.NvmeError as e:
                assert e.status == w.CONNECT_INVALID_HOST

            await asyncio.to_thread(_map, vms, "pairs_to_add", host["id"], volume["id"])
            entries = await d.discovery_entries()
            assert [(e["subnqn"], e["trsvcid"]) for e in entries] == [(subnqn, str(vms.nvme_port))]
            await d.close()
            stranger = await Initiator.connect(addr, int(vms.discovery_port or 0), w.DISCOVERY_NQN, STRANGER,
                                               kato_ms=0)
            assert await stranger.discovery_entries() == []
            await stranger.close()

            c = await Initiator.connect(addr, int(vms.nvme_port or 0), subnqn, HOST, hdgst=True, ddgst=True)
            active = (await c.identify(idf.CNS_ACTIVE_NS)).check().data
            nsid = struct.unpack_from("<I", active)[0]
            assert nsid != 0 and struct.unpack_from("<I", active, 4)[0] == 0
            ns = (await c.identify(idf.CNS_NAMESPACE, nsid)).check().data
            assert struct.unpack_from("<Q", ns)[0] == SIZE // 512
            assert ns[104:120].hex() == volume["nguid"].replace("-", "").lower()
            descs = (await c.identify(idf.CNS_NS_DESCRIPTORS, nsid)).check().data
            assert uuid.UUID(bytes=bytes(descs[4 + 16 + 4:4 + 16 + 4 + 16])) == uuid.UUID(volume["uuid"])

            data = bytes(range(256)) * 2048  # 512 KiB through R2T
            (await c.write(nsid, 100, data, fua=True)).check()
            assert (await c.read(nsid, 100, len(data) // 512)).check().data == data
            with open(backing, "rb") as f:
                f.seek(100 * 512)
                assert f.read(len(data)) == data

            # Expand through the API: a namespace-attribute-changed event, then the new size.
            (await c.set_features(w.FEAT_ASYNC_EVENT, idf.OAES_NS_ATTR)).check()
            aer = asyncio.create_task(c.async_event(timeout=20))
            r = await asyncio.to_thread(vms.api, "PATCH", f"volumes/{volume['id']}/", "v5",
                                        json={"size": 2 * SIZE})
            assert r.status_code == 200, r.text
            ev = (await aer).check()
            assert (ev.result >> 16) & 0xFF == w.LOG_CHANGED_NS
            changed = (await c.get_log_page(w.LOG_CHANGED_NS, 4096)).check().data
            assert struct.unpack_from("<I", changed)[0] == nsid
            ns = (await c.identify(idf.CNS_NAMESPACE, nsid)).check().data
            assert struct.unpack_from("<Q", ns)[0] == 2 * SIZE // 512
            (await c.write(nsid, 2 * SIZE // 512 - 8, data[:4096])).check()

            # Unmapping removes the namespace from the live controller and from discovery.
            aer = asyncio.create_task(c.async_event(timeout=20))
            await asyncio.to_thread(_map, vms, "pairs_to_remove", host["id"], volume["id"])
            (await aer).check()
            assert (await c.read(nsid, 0, 1)).status == w.INVALID_NS
            await c.close()

        asyncio.run(asyncio.wait_for(scenario(), 120))


def test_block_data_and_mappings_survive_a_vms_mock_restart(tmp_path: Path) -> None:
    with VmsProcess(tmp_path / "vms", s3=False) as vms:
        suffix = uuid.uuid4().hex[:8]
        view = vms.api("POST", "views/", "v5", json={"name": f"r-{suffix}", "path": f"/r-{suffix}",
                                                     "protocols": ["BLOCK"], "tenant_id": 1,
                                                     "create_dir": True}).json()
        volume = vms.api("POST", "volumes/", "v5", json={"name": f"/grp/r-{suffix}", "view_id": view["id"],
                                                         "size": SIZE}).json()
        host = vms.api("POST", "blockhosts/", "v5", json={"name": f"rh-{suffix}", "tenant_id": 1,
                                                          "nqn": HOST, "os_type": "LINUX",
                                                          "connectivity_type": "TCP"}).json()
        _map(vms, "pairs_to_add", host["id"], volume["id"])
        data = bytes(range(256)) * 64  # 16 KiB

        async def write() -> int:
            c = await Initiator.connect(str(vms.nvme_host), int(vms.nvme_port or 0), view["nqn"], HOST)
            nsid = struct.unpack_from("<I", (await c.identify(idf.CNS_ACTIVE_NS)).check().data)[0]
            (await c.write(nsid, 64, data)).check()
            (await c.flush(nsid)).check()
            await c.close()
            return int(nsid)

        nsid = asyncio.run(asyncio.wait_for(write(), 60))
        vms.restart()  # new process, new ephemeral ports, same data dir

        async def read_back() -> None:
            c = await Initiator.connect(str(vms.nvme_host), int(vms.nvme_port or 0), view["nqn"], HOST)
            assert (await c.read(nsid, 64, len(data) // 512)).check().data == data
            await c.close()

        asyncio.run(asyncio.wait_for(read_back(), 60))
