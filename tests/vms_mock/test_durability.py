"""State survives a clean restart and kill -9; uniqueness holds under 50 parallel creates."""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import requests

from tests.vmsproc import VmsProcess


def test_state_survives_restart_and_kill9(fresh_vms: VmsProcess) -> None:
    fresh_vms.extra_args = ["--vtask-delay", "600"]  # bulk-mapping vtasks stay RUNNING until the kill
    vms = fresh_vms.start()
    s = vms.session()
    names = []
    for i in range(20):
        name = f"persist-{i}-{uuid.uuid4().hex[:6]}"
        assert s.post(vms.url("quotas/"), json={"name": name, "path": f"/p/{name}"}).status_code == 201
        names.append(name)
    key = s.post(vms.url("users/"), json={"name": "persist-user"}).json()
    pair = s.post(vms.url(f"users/{key['id']}/access_keys/"), json={}).json()
    vol = s.post(vms.url("volumes/", "v5"), json={"name": "/k", "view_id": 1, "size": 1 << 30}).json()
    backing = vms.data_dir / "block" / f"{vol['uuid']}.img"
    orphan = vms.data_dir / "block" / f"{uuid.uuid4()}.img"
    orphan.write_bytes(b"")  # as if killed after creating a file whose row never committed
    backing.unlink()  # as if killed before the file of a committed row was created
    host = s.post(vms.url("blockhosts/", "v5"),
                  json={"name": "h", "nqn": "nqn.2014-08.org.nvmexpress:h"}).json()
    pairs = {"pairs_to_add": [{"host_id": host["id"], "volume_id": vol["id"]}]}
    task = s.patch(vms.url("blockhostvolumes/bulk/", "v5"), json=pairs).json()["async_task"]
    assert s.get(vms.url(f"vtasks/{task['id']}/")).json()["state"] == "RUNNING"
    vms.kill9()  # no chance to flush anything: only committed transactions count
    ghost = {"time": "2026-01-01T00:00:00Z", "principal": "ghost", "tenant": None, "method": "POST",
             "path": "/api/v1/quotas/", "object_id": "1", "status": 201, "outcome": "success"}
    with (vms.data_dir / "audit.jsonl").open("a") as fh:  # a line whose batch never reached SQLite
        fh.write(json.dumps(ghost) + "\n")
    vms.extra_args = []
    vms.start()
    assert backing.stat().st_size == 1 << 30 and not orphan.exists()  # files follow the rows
    deadline = time.monotonic() + 20  # the interrupted vtask resumes and completes
    while time.monotonic() < deadline:
        if vms.api("GET", f"vtasks/{task['id']}/").json()["state"] != "RUNNING":
            break
        time.sleep(0.05)
    assert vms.api("GET", f"vtasks/{task['id']}/").json()["state"] == "COMPLETED"
    assert len(vms.api("GET", "blockhostvolumes/", params={"volume__id": str(vol["id"])}).json()) == 1
    # the queryable audit table holds every line of audit.jsonl, also the ones batched at the kill
    lines = (vms.data_dir / "audit.jsonl").read_text().splitlines()
    audit = vms.session().get(vms.url("audit/"), params={"page_size": "1"}).json()
    assert audit["count"] == len(lines) + 1  # + this session's login
    ghosts = vms.api("GET", "audit/", params={"principal": "ghost"}).json()
    assert [(g["method"], g["status"], g["object_id"]) for g in ghosts] == [("POST", 201, "1")]
    s = vms.session()  # the token signing key is durable too
    got = {q["name"] for q in s.get(vms.url("quotas/"), params={"path__startswith": "/p/"}).json()}
    assert got == set(names)
    user = s.get(vms.url(f"users/{key['id']}/")).json()
    assert [k["key"] for k in user["access_keys"]] == [pair["access_key"]]
    assert "secret_key" not in json.dumps(user)
    # the next id continues after the crash: ids are never reused
    new = s.post(vms.url("quotas/"), json={"name": "after-crash", "path": "/p/after"}).json()
    assert new["id"] > max(q["id"] for q in s.get(vms.url("quotas/")).json() if q["name"] != "after-crash")
    assert vms.stop() == 0  # SIGTERM is a clean exit
    vms.start()
    assert vms.api("GET", "quotas/", params={"name": "after-crash"}).json()[0]["id"] == new["id"]


def test_fifty_parallel_creates_make_one_object(fresh_vms: VmsProcess) -> None:
    vms = fresh_vms.start()
    token = vms.token()
    name = f"race-{uuid.uuid4().hex[:8]}"

    def create(_: int) -> requests.Response:
        return requests.post(vms.url("blockhosts/", "v5"), timeout=30,
                             headers={"Authorization": f"Bearer {token}"},
                             json={"name": name, "nqn": f"nqn.2014-08.org.nvmexpress:uuid:{uuid.uuid4()}"})

    with ThreadPoolExecutor(max_workers=50) as pool:
        responses = list(pool.map(create, range(50)))
    codes = sorted(r.status_code for r in responses)
    assert codes.count(201) == 1, codes
    assert codes.count(400) == 49, codes
    unique_error = {"name": ["This field must be unique."]}
    assert all(r.json() == unique_error for r in responses if r.status_code == 400)
    assert len(vms.api("GET", "blockhosts/", params={"name": name}).json()) == 1
