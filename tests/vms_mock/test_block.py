"""Block storage: volumes with sparse backing files, grow, mappings via vtasks, snapshots, clones
and capacity (507)."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

import requests

from tests.vmsproc import VmsProcess

GiB = 1 << 30


def _subsystem(vms: VmsProcess, s: requests.Session) -> dict[str, Any]:
    name = f"sub-{uuid.uuid4().hex[:8]}"
    r = s.post(vms.url("views/", "v5"), json={"name": name, "path": f"/{name}", "protocols": ["BLOCK"]})
    assert r.status_code == 201, r.text
    return r.json()


def _wait_task(vms: VmsProcess, s: requests.Session, task_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        task = s.get(vms.url(f"vtasks/{task_id}/")).json()
        if task["state"] != "RUNNING":
            return task
        time.sleep(0.02)
    raise AssertionError("vtask still RUNNING")


def _backing(vms: VmsProcess, vol: dict[str, Any]) -> Path:
    return vms.data_dir / "block" / f"{vol['uuid']}.img"


def test_volume_file_is_sparse_and_grows(vms: VmsProcess, admin: requests.Session) -> None:
    sub = _subsystem(vms, admin)
    r = admin.post(vms.url("volumes/", "v5"), json={"name": "/grp/vol-a", "view_id": sub["id"], "size": GiB})
    assert r.status_code == 201, r.text
    vol = r.json()
    assert len(vol["nguid"]) == 32 and int(vol["nguid"], 16) >= 0
    assert str(uuid.UUID(vol["uuid"])) == vol["uuid"]
    assert vol["nsid"] == 1 and vol["subsystem_name"] == sub["name"] and vol["tenant_name"] == "default"
    path = _backing(vms, vol)
    st = path.stat()
    assert st.st_size == GiB and st.st_blocks * 512 < 1 << 20  # sparse
    second = admin.post(vms.url("volumes/", "v5"), json={"name": "/grp/vol-b", "view_id": sub["id"],
                                                         "size": GiB}).json()
    assert second["nsid"] == 2
    r = admin.patch(vms.url(f"volumes/{vol['id']}/", "v5"), json={"size": 2 * GiB})
    assert r.status_code == 200 and r.json()["size"] == 2 * GiB
    assert path.stat().st_size == 2 * GiB
    r = admin.patch(vms.url(f"volumes/{vol['id']}/", "v5"), json={"size": GiB})
    assert r.status_code == 400 and "size" in r.json()
    assert path.stat().st_size == 2 * GiB
    r = admin.post(vms.url("volumes/", "v5"), json={"name": "/x", "view_id": 1, "size": 1000})
    assert r.status_code == 400 and "size" in r.json()
    nfs = admin.post(vms.url("views/"), json={"path": f"/nfs-{uuid.uuid4().hex[:6]}", "create_dir": True,
                                              "policy_id": 1}).json()
    r = admin.post(vms.url("volumes/", "v5"), json={"name": "/x", "view_id": nfs["id"], "size": GiB})
    assert r.status_code == 400 and "view_id" in r.json()
    assert admin.delete(vms.url(f"volumes/{second['id']}/", "v5")).status_code == 204
    assert not _backing(vms, second).exists()


def test_mapping_vtasks_and_forced_delete(vms: VmsProcess, admin: requests.Session) -> None:
    sub = _subsystem(vms, admin)
    vol = admin.post(vms.url("volumes/", "v5"),
                     json={"name": "/m/v", "view_id": sub["id"], "size": GiB}).json()
    host = admin.post(vms.url("blockhosts/", "v5"), json={
        "name": f"h-{uuid.uuid4().hex[:6]}", "nqn": f"nqn.2014-08.org.nvmexpress:uuid:{uuid.uuid4()}",
        "os_type": "LINUX", "ana": "OPTIMIZED", "connectivity_type": "TCP"}).json()
    pair = {"host_id": host["id"], "volume_id": vol["id"]}
    r = admin.patch(vms.url("blockhostvolumes/bulk/", "v5"), json={"pairs_to_add": [pair]})
    assert r.status_code == 200
    task = _wait_task(vms, admin, r.json()["async_task"]["id"])
    assert task["state"] == "COMPLETED" and task["messages"]
    maps = admin.get(vms.url("blockhostvolumes/", "v5"), params={"volume__id": vol["id"],
                                                                 "block_host__id": host["id"]}).json()
    assert [(m["volume"]["id"], m["block_host"]["id"]) for m in maps] == [(vol["id"], host["id"])]
    # adding again is idempotent
    r = admin.patch(vms.url("blockhostvolumes/bulk/", "v5"), json={"pairs_to_add": [pair]})
    assert _wait_task(vms, admin, r.json()["async_task"]["id"])["state"] == "COMPLETED"
    assert len(admin.get(vms.url("blockhostvolumes/", "v5"), params={"volume__id": vol["id"]}).json()) == 1
    # unknown ids fail the task, nothing applied
    r = admin.patch(vms.url("blockhostvolumes/bulk/", "v5"),
                    json={"pairs_to_add": [{"host_id": host["id"], "volume_id": 999999}]})
    failed = _wait_task(vms, admin, r.json()["async_task"]["id"])
    assert failed["state"] == "FAILED" and "999999" in failed["messages"][0]
    bad = admin.patch(vms.url("blockhostvolumes/bulk/", "v5"), json={})
    assert bad.status_code == 400
    r = admin.delete(vms.url(f"volumes/{vol['id']}/", "v5"))
    assert r.status_code == 409
    r = admin.delete(vms.url(f"volumes/{vol['id']}/", "v5"), params={"force": "true"})
    assert r.status_code == 204
    assert admin.get(vms.url("blockhostvolumes/", "v5"), params={"volume__id": vol["id"]}).json() == []
    assert not _backing(vms, vol).exists()


def test_snapshot_copies_data_and_clone_has_equal_content(vms: VmsProcess, admin: requests.Session) -> None:
    sub = _subsystem(vms, admin)
    vol = admin.post(vms.url("volumes/", "v5"), json={"name": "/g/src", "view_id": sub["id"],
                                                      "size": 64 << 20}).json()
    other = admin.post(vms.url("volumes/", "v5"), json={"name": "/g/other", "view_id": sub["id"],
                                                        "size": 64 << 20}).json()
    src = _backing(vms, vol)
    payload = os.urandom(4096)
    with src.open("r+b") as f:
        f.seek(10 << 20)
        f.write(payload)
    snap_path = f"{sub['path']}/g/src/"
    r = admin.post(vms.url("snapshots/"), json={"name": f"s-{uuid.uuid4().hex[:6]}", "path": snap_path})
    assert r.status_code == 201, r.text
    snap = r.json()
    assert snap["created"].endswith("Z") and snap["path"] == snap_path
    with src.open("r+b") as f:  # later writes must not reach the snapshot
        f.seek(10 << 20)
        f.write(b"\0" * 4096)
    r = admin.post(vms.url(f"snapshots/{snap['id']}/clone_volume/"),
                   json={"target_subsystem_id": sub["id"], "target_volume_path": "/g/clone"})
    assert r.status_code == 201, r.text
    clone = r.json()
    assert clone["size"] == 64 << 20 and clone["uuid"] != vol["uuid"] and clone["nguid"] != vol["nguid"]
    cpath = _backing(vms, clone)
    assert cpath.stat().st_size == 64 << 20
    assert cpath.stat().st_blocks * 512 < 8 << 20  # copied sparse
    with cpath.open("rb") as f:
        f.seek(10 << 20)
        assert f.read(4096) == payload
        f.seek(0)
        assert f.read(4096) == b"\0" * 4096
    # a snapshot of the whole subsystem captures both volumes: no single-volume clone from it
    whole = admin.post(vms.url("snapshots/"), json={"name": f"w-{uuid.uuid4().hex[:6]}",
                                                    "path": sub["path"] + "/"}).json()
    assert whole["volumes_count"] == 3
    r = admin.post(vms.url(f"snapshots/{whole['id']}/clone_volume/"),
                   json={"target_subsystem_id": sub["id"], "target_volume_path": "/g/c2"})
    assert r.status_code == 400
    r = admin.post(vms.url("snapshots/"), json={"name": "noslash", "path": "/x"})
    assert r.status_code == 400 and "path" in r.json()
    assert admin.delete(vms.url(f"snapshots/{whole['id']}/")).status_code == 204
    assert not (vms.data_dir / "snapshots" / str(whole["id"])).exists()
    del other


def test_capacity_is_enforced_with_507(fresh_vms: VmsProcess) -> None:
    fresh_vms.capacity = "3GiB"
    vms = fresh_vms.start()
    s = vms.session()
    cl = s.get(vms.url("clusters/")).json()[0]
    assert cl["usable_capacity_bytes"] == 3 * GiB and cl["free_usable_capacity_bytes"] == 3 * GiB
    sub = _subsystem(vms, s)
    a = s.post(vms.url("volumes/", "v5"), json={"name": "/a", "view_id": sub["id"], "size": 2 * GiB}).json()
    r = s.post(vms.url("volumes/", "v5"), json={"name": "/b", "view_id": sub["id"], "size": 2 * GiB})
    assert r.status_code == 507 and r.json()["detail"].startswith("Insufficient capacity")
    assert s.get(vms.url("volumes/", "v5"), params={"name": "/b"}).json() == []
    assert len(list((vms.data_dir / "block").glob("*.img"))) == 1  # nothing written
    r = s.patch(vms.url(f"volumes/{a['id']}/", "v5"), json={"size": 4 * GiB})
    assert r.status_code == 507
    assert s.get(vms.url(f"volumes/{a['id']}/", "v5")).json()["size"] == 2 * GiB
    r = s.post(vms.url("snapshots/"), json={"name": "too-big", "path": f"{sub['path']}/a/"})
    assert r.status_code == 507  # a 2 GiB copy does not fit in the 1 GiB left
    cl = s.get(vms.url("clusters/")).json()[0]
    assert cl["free_usable_capacity_bytes"] == GiB and cl["logical_space_in_use"] == 2 * GiB
    assert s.delete(vms.url(f"volumes/{a['id']}/", "v5")).status_code == 204
    assert s.get(vms.url("clusters/")).json()[0]["free_usable_capacity_bytes"] == 3 * GiB


def test_tenant_isolation_for_block_objects(vms: VmsProcess, admin: requests.Session) -> None:
    foreign_sub = _subsystem(vms, admin)
    foreign = admin.post(vms.url("volumes/", "v5"), json={"name": "/t/foreign", "view_id": foreign_sub["id"],
                                                          "size": GiB}).json()
    t1 = vms.session("tenant1-admin", "tenant1-admin")
    sub = _subsystem(vms, t1)
    assert sub["tenant_id"] == 2 and sub["nqn"].startswith("nqn.2024-08.com.vastdata:tenant1:")
    r = t1.post(vms.url("volumes/", "v5"), json={"name": "/t/x", "view_id": foreign_sub["id"], "size": GiB})
    assert r.status_code == 400 and "view_id" in r.json()  # another tenant's view does not exist for it
    mine = t1.post(vms.url("volumes/", "v5"), json={"name": "/t/mine", "view_id": sub["id"], "size": GiB})
    assert mine.status_code == 201 and mine.json()["tenant_name"] == "tenant1"
    host = t1.post(vms.url("blockhosts/", "v5"), json={
        "name": "t1-host", "nqn": f"nqn.2014-08.org.nvmexpress:uuid:{uuid.uuid4()}"}).json()
    assert {v["tenant_id"] for v in t1.get(vms.url("volumes/", "v5")).json()} == {2}
    assert t1.get(vms.url(f"volumes/{foreign['id']}/", "v5")).status_code == 404
    r = t1.patch(vms.url("blockhostvolumes/bulk/", "v5"),
                 json={"pairs_to_add": [{"host_id": host["id"], "volume_id": foreign["id"]}]})
    assert _wait_task(vms, t1, r.json()["async_task"]["id"])["state"] == "FAILED"
    assert admin.get(vms.url("blockhostvolumes/", "v5"), params={"volume__id": foreign["id"]}).json() == []
    r = t1.patch(vms.url("blockhostvolumes/bulk/", "v5"),
                 json={"pairs_to_add": [{"host_id": host["id"], "volume_id": mine.json()["id"]}]})
    assert _wait_task(vms, t1, r.json()["async_task"]["id"])["state"] == "COMPLETED"
