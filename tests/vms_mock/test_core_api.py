"""The storage-core façade (core_api) over real state built through the domain layer."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vms_mock.auth import Principal
from vms_mock.core_api import (
    MAPPING_CHANGED,
    META_BLOCK_BYTES,
    META_S3_BYTES,
    VOLUME_RESIZED,
    CapacityExceeded,
    StorageCore,
)
from vms_mock.domain import Settings, Vms
from vms_mock.seed import apply_seed, load_seed
from vms_mock.store import Store

ADMIN = Principal(manager_id=1, username="admin", role="super_admin", tenant_id=None, tenant_name=None,
                  via="test")
GiB = 1 << 30


@pytest.fixture
def vms(tmp_path: Path) -> Iterator[Vms]:
    store = Store(str(tmp_path / "vms.sqlite3"))
    core = StorageCore(store, tmp_path, 10 * GiB)
    v = Vms(store, core, Settings(vtask_delay=0.0))
    apply_seed(v, load_seed(None))
    yield v
    v.close()
    core.close()
    store.close()


def _wait_task(v: Vms, task_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        task = v.store.get("vtasks", task_id)
        assert task is not None
        if task["state"] != "RUNNING":
            return task
        time.sleep(0.01)
    raise AssertionError("vtask still RUNNING")


def test_access_keys_buckets_and_policies(vms: Vms) -> None:
    core = vms.core
    owner = vms.create(ADMIN, "users", {"name": "alice"})
    other = vms.create(ADMIN, "users", {"name": "bob"})
    pair = vms.create_access_key(ADMIN, owner["id"])
    rec = core.lookup_access_key(pair["access_key"])
    assert rec is not None and rec.secret_key == pair["secret_key"] and rec.user_name == "alice"
    assert rec.enabled and rec.tenant_id == 1
    assert pair["secret_key"] not in repr(rec)
    assert core.lookup_access_key("NOPE") is None
    vms.create(ADMIN, "views", {"path": "/buckets/b1", "create_dir": True, "protocols": ["S3"],
                                "bucket": "bkt1",
                                "bucket_owner": "alice", "s3_versioning": True, "s3_locks": True,
                                "s3_locks_retention_mode": "COMPLIANCE", "s3_locks_retention_period": "2y"})
    bv = core.get_bucket_view("bkt1")
    assert bv is not None and bv.bucket_owner == "alice" and bv.s3_locks and bv.s3_versioning
    assert bv.default_retention_mode == "COMPLIANCE" and bv.default_retention_days == 730
    assert bv.quota_hard_limit is None
    vms.create(ADMIN, "quotas", {"name": "q-b1", "path": "/buckets/b1", "hard_limit": 12345})
    assert core.get_bucket_view("bkt1").quota_hard_limit == 12345  # type: ignore[union-attr]
    assert core.get_bucket_view("missing") is None
    assert core.fs_path("/buckets/b1") == core.data_dir / "fs" / "buckets" / "b1"
    assert core.fs_path("/buckets/b1").is_dir()
    with pytest.raises(ValueError):
        core.fs_path("/../etc")
    doc = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b1/*"}]})
    pol = vms.create(ADMIN, "s3policies", {"name": "read-b1", "policy": doc})
    off = vms.create(ADMIN, "s3policies", {"name": "off", "policy": doc, "enabled": False})
    vms.update(ADMIN, "users", other["id"], {"s3_policies_ids": [pol["id"], off["id"]]})
    assert core.user_policies(other["id"]) == [doc]
    assert core.user_policies(owner["id"]) == []


def test_block_visibility_namespaces_and_events(vms: Vms) -> None:
    core = vms.core
    events: list[tuple[str, dict[str, Any]]] = []
    core.subscribe(lambda name, payload: events.append((name, payload)))
    sub = vms.store.find("views", [("name", "exact", "block-default")])[0][0]
    v1 = vms.create(ADMIN, "volumes", {"name": "/g/1", "view_id": sub["id"], "size": GiB})
    v2 = vms.create(ADMIN, "volumes", {"name": "/g/2", "view_id": sub["id"], "size": 2 * GiB})
    host = vms.create(ADMIN, "blockhosts", {"name": "node1", "nqn": "nqn.2014-08.org.nvmexpress:uuid:n1"})
    nqn = "nqn.2014-08.org.nvmexpress:uuid:n1"
    assert core.visible_subsystems(nqn) == []  # nothing mapped: the subsystem is hidden
    assert not core.host_allowed(nqn, sub["nqn"])
    seq = core.change_seq()
    task = vms.bulk_map(ADMIN, {"pairs_to_add": [{"host_id": host["id"], "volume_id": v2["id"]}]})
    assert _wait_task(vms, task["async_task"]["id"])["state"] == "COMPLETED"
    assert core.change_seq() > seq
    assert [s.nqn for s in core.visible_subsystems(nqn)] == [sub["nqn"]]
    assert core.host_allowed(nqn, sub["nqn"])
    ns = core.namespaces(sub["nqn"], nqn)
    assert [(n.nsid, n.volume_id, n.size) for n in ns] == [(2, v2["id"], 2 * GiB)]
    assert ns[0].nguid == v2["nguid"] and ns[0].uuid == v2["uuid"]
    assert ns[0].backing_path.stat().st_size == 2 * GiB
    assert core.namespaces(sub["nqn"], "nqn.other") == []
    vms.update(ADMIN, "volumes", v2["id"], {"size": 3 * GiB})
    assert core.namespaces(sub["nqn"], nqn)[0].size == 3 * GiB
    names = [e[0] for e in events]
    assert MAPPING_CHANGED in names and VOLUME_RESIZED in names
    resized = next(p for n, p in events if n == VOLUME_RESIZED)
    assert resized == {"volume_id": v2["id"], "uuid": v2["uuid"], "view_id": sub["id"], "size": 3 * GiB}
    del v1


def test_s3_usage_counts_against_capacity(vms: Vms) -> None:
    core = vms.core
    sub = vms.store.find("views", [("name", "exact", "block-default")])[0][0]
    vms.create(ADMIN, "volumes", {"name": "/big", "view_id": sub["id"], "size": 8 * GiB})
    assert core.check_s3_capacity(2 * GiB) and not core.check_s3_capacity(2 * GiB + 1)
    core.report_s3_usage(GiB)
    with pytest.raises(CapacityExceeded):
        core.report_s3_usage(GiB + 1)
    assert core.used_bytes() == 9 * GiB
    core.report_s3_usage(-GiB)
    assert core.free_bytes() == 2 * GiB


def test_s3_usage_is_not_a_change_and_its_cache_follows_every_commit(vms: Vms) -> None:
    """S3 byte counts move neither change_seq (lookup caches, the NVMe target) nor a stale
    used_bytes: block reservations, rolled-back transactions and concurrent reports all show."""
    core = vms.core
    seq = core.change_seq()
    core.report_s3_usage(GiB)
    assert core.change_seq() == seq
    assert core.used_bytes() == GiB
    sub = vms.store.find("views", [("name", "exact", "block-default")])[0][0]
    vms.create(ADMIN, "volumes", {"name": "/c", "view_id": sub["id"], "size": 2 * GiB})
    assert core.change_seq() > seq
    assert core.used_bytes() == 3 * GiB
    with pytest.raises(RuntimeError), vms.store.tx():
        core.reserve_block(4 * GiB)
        assert core.used_bytes() == 7 * GiB  # inside the transaction: its own change shows
        raise RuntimeError("roll back")
    assert core.used_bytes() == 3 * GiB
    threads = [threading.Thread(target=lambda: [core.report_s3_usage(1) for _ in range(200)])
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert core.used_bytes() == 3 * GiB + 800
    core.flush_s3_usage()  # S3 counts reach the database lazily (S3_USAGE_FLUSH)
    assert vms.store.sum_meta_ints(META_BLOCK_BYTES, META_S3_BYTES) == core.used_bytes()
    core.report_s3_usage(-800)
    deadline = time.monotonic() + 5
    while vms.store.sum_meta_ints(META_S3_BYTES) != GiB and time.monotonic() < deadline:
        time.sleep(0.05)
    assert vms.store.sum_meta_ints(META_S3_BYTES) == GiB  # flushed by its timer
    core.set_s3_usage(5)  # a recount replaces the figure
    assert core.used_bytes() == 2 * GiB + 5


def test_facade_is_safe_from_many_threads(vms: Vms) -> None:
    core = vms.core
    user = vms.create(ADMIN, "users", {"name": "t"})
    keys = [vms.create_access_key(ADMIN, user["id"])["access_key"] for _ in range(5)]
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            for _ in range(200):
                for k in keys:
                    assert core.lookup_access_key(k) is not None
        except BaseException as exc:  # collected for the main thread
            errors.append(exc)

    def writer() -> None:
        for i in range(100):
            vms.create(ADMIN, "quotas", {"name": f"w{i}", "path": f"/w/{i}"})

    threads = [threading.Thread(target=reader) for _ in range(4)] + [threading.Thread(target=writer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors


def test_expired_snapshots_are_reaped_with_their_copies(vms: Vms) -> None:
    from datetime import UTC, datetime, timedelta

    sub = vms.store.find("views", [("name", "exact", "block-default")])[0][0]
    vms.create(ADMIN, "volumes", {"name": "/s/v", "view_id": sub["id"], "size": GiB})
    soon = datetime.now(UTC) + timedelta(seconds=1)
    snap = vms.create(ADMIN, "snapshots", {"name": "short", "path": "/block-default/s/v/",
                                           "expiration_time": soon})
    keep = vms.create(ADMIN, "snapshots", {"name": "keep", "path": "/block-default/s/v/",
                                           "expiration_time": soon, "indestructible": True})
    later = vms.create(ADMIN, "snapshots", {"name": "later", "path": "/block-default/s/v/",
                                            "expiration_time": soon + timedelta(days=1)})
    assert vms.core.used_bytes() == 4 * GiB
    assert vms.reap_expired_snapshots() == 0
    time.sleep(2.1)
    assert vms.reap_expired_snapshots() == 1
    assert vms.store.get("snapshots", snap["id"]) is None
    assert not (vms.core.snapshot_dir / str(snap["id"])).exists()
    assert vms.store.get("snapshots", keep["id"]) and vms.store.get("snapshots", later["id"])
    assert vms.core.used_bytes() == 3 * GiB


def test_snapshot_left_pending_by_a_crash_is_hidden_then_removed(vms: Vms) -> None:
    vms.core.reserve_block(GiB)  # what the interrupted create had reserved
    row = vms.store.insert("snapshots", {"name": "torn", "path": "/x/", "tenant_id": 1, "_pending": True,
                                         "_bytes": GiB, "_volumes": []}, {"name": "name:1:torn"})
    (vms.core.snapshot_dir / str(row["id"])).mkdir()
    assert vms.list_objs(ADMIN, "snapshots", {}).results == []
    assert vms.list_objs(ADMIN, "snapshots", {}).raw in (None, [])
    with pytest.raises(Exception, match="Not found"):
        vms.get_obj(ADMIN, "snapshots", row["id"])
    vms.recover()
    assert vms.store.get("snapshots", row["id"]) is None
    assert not (vms.core.snapshot_dir / str(row["id"])).exists()
    assert vms.core.used_bytes() == 0
    again = vms.create(ADMIN, "snapshots", {"name": "torn", "path": "/x/"})  # the name is free again
    assert again["name"] == "torn" and "_pending" not in again
