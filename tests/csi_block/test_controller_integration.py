"""Controller (and controller+node) over real gRPC, a real driver process and a real vms-mock."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest

from csi_block_driver import publish_context as pc
from csi_block_driver.proto import csi_pb2
from tests.conftest import require_root
from tests.vmsproc import VmsProcess

from .driverproc import DriverProcess
from .nodekit import block_cap, detach_loops_under, mount_cap, unmount_under

pytestmark = [pytest.mark.root, pytest.mark.slow]

MiB = 1 << 20
GOOD_NQN = "nqn.2014-08.org.nvmexpress:uuid:0f0e0d0c-0b0a-0908-0706-050403020100"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[VmsProcess, DriverProcess]]:
    require_root()
    root = tmp_path_factory.mktemp("ctl")
    vms = VmsProcess(root / "vms", s3=False, capacity="64GiB")
    vms.start()
    driver = DriverProcess(root / "drv", vms)
    try:
        driver.start()
        yield vms, driver
    finally:
        driver.stop()
        vms.stop()
        unmount_under(root)
        detach_loops_under(root)


def create_req(name: str, size: int = 16 * MiB, **kw: Any) -> csi_pb2.CreateVolumeRequest:
    return csi_pb2.CreateVolumeRequest(
        name=name,
        capacity_range=csi_pb2.CapacityRange(required_bytes=size),
        volume_capabilities=[block_cap()],
        **kw,
    )


def code_of(fn: object, req: object) -> tuple[grpc.StatusCode, str]:
    try:
        fn(req)  # type: ignore[operator]
    except grpc.RpcError as exc:
        return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


def vms_volumes(vms: VmsProcess) -> list[dict[str, object]]:
    return list(vms.api("GET", "volumes/").json())


def test_unknown_parameters_are_named(stack: tuple[VmsProcess, DriverProcess]) -> None:
    vms, drv = stack
    code, msg = code_of(
        drv.controller.CreateVolume,
        create_req(
            "bad-params",
            parameters={
                "subsystem": "block-default",
                "colour": "red",
                "qos": "x",
                "csi.storage.k8s.io/pvc/name": "ok",
            },
        ),
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "'colour'" in msg and "'qos'" in msg and "pvc/name" not in msg
    code, msg = code_of(drv.controller.CreateVolume, create_req("bad-sub", parameters={"subsystem": "nope"}))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "nope" in msg
    code, msg = code_of(
        drv.controller.CreateVolume, create_req("bad-qos", mutable_parameters={"qosPolicy": "gold"})
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "gold" in msg
    code, msg = code_of(drv.controller.CreateVolume, create_req("bad-fs", parameters={"fsType": "zfs"}))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "fsType" in msg
    assert not [v for v in vms_volumes(vms) if "bad" in str(v["name"])], "nothing half-created"


def test_capacity_rules(stack: tuple[VmsProcess, DriverProcess]) -> None:
    _, drv = stack
    c = drv.controller
    exact = c.CreateVolume(
        csi_pb2.CreateVolumeRequest(
            name="cap-exact",
            volume_capabilities=[block_cap()],
            capacity_range=csi_pb2.CapacityRange(required_bytes=20 * MiB, limit_bytes=20 * MiB),
        )
    )
    assert exact.volume.capacity_bytes == 20 * MiB
    code, _ = code_of(c.CreateVolume, create_req("cap-exact", 40 * MiB))
    assert code == grpc.StatusCode.ALREADY_EXISTS
    code, msg = code_of(
        c.CreateVolume,
        csi_pb2.CreateVolumeRequest(
            name="cap-bad",
            volume_capabilities=[block_cap()],
            capacity_range=csi_pb2.CapacityRange(required_bytes=2 * MiB, limit_bytes=MiB),
        ),
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "limit_bytes" in msg
    code, _ = code_of(
        c.CreateVolume,
        csi_pb2.CreateVolumeRequest(
            name="cap-odd",
            volume_capabilities=[block_cap()],
            capacity_range=csi_pb2.CapacityRange(required_bytes=4097, limit_bytes=5000),
        ),
    )
    assert code == grpc.StatusCode.OUT_OF_RANGE
    code, msg = code_of(c.CreateVolume, create_req("cap-huge", 1 << 40))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, msg  # VMS 507
    long_name = "pvc-" + "x" * 124
    vol = c.CreateVolume(create_req(long_name))
    assert c.CreateVolume(create_req(long_name)).volume.volume_id == vol.volume.volume_id
    for v in (exact, vol):
        c.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=v.volume.volume_id))


def test_fifty_parallel_creates_of_one_name_make_one_volume(stack: tuple[VmsProcess, DriverProcess]) -> None:
    vms, drv = stack
    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(lambda _: drv.controller.CreateVolume(create_req("pvc-parallel")), range(50)))
    ids = {r.volume.volume_id for r in results}
    assert len(ids) == 1
    named = [v for v in vms_volumes(vms) if str(v["name"]).startswith("/csi/csi-pvc-parallel-")]
    assert len(named) == 1
    drv.controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=ids.pop()))


def test_publish_registry_and_unpublish(stack: tuple[VmsProcess, DriverProcess]) -> None:
    vms, drv = stack
    c = drv.controller
    vol = c.CreateVolume(create_req("pvc-pub")).volume
    code, msg = code_of(
        c.ControllerPublishVolume,
        csi_pb2.ControllerPublishVolumeRequest(
            volume_id=vol.volume_id, node_id="fake-node-id-1", volume_capability=block_cap()
        ),
    )
    assert code == grpc.StatusCode.NOT_FOUND and "NQN" in msg
    code, _ = code_of(
        c.ControllerPublishVolume,
        csi_pb2.ControllerPublishVolumeRequest(
            volume_id="1:00000000-0000-0000-0000-000000000000",
            node_id=GOOD_NQN,
            volume_capability=block_cap(),
        ),
    )
    assert code == grpc.StatusCode.NOT_FOUND
    req = csi_pb2.ControllerPublishVolumeRequest(
        volume_id=vol.volume_id, node_id=GOOD_NQN, volume_capability=block_cap()
    )
    ctx = c.ControllerPublishVolume(req).publish_context
    assert c.ControllerPublishVolume(req).publish_context == ctx  # idempotent
    assert ctx[pc.SUBSYSTEM_NQN] == "nqn.2024-08.com.vastdata:default:block-default"
    assert ctx[pc.UUID] == vol.volume_context[pc.UUID] and ctx[pc.NGUID]
    assert ctx[pc.TARGETS].startswith("127.0.0.1:")
    hosts = [h for h in vms.api("GET", "blockhosts/").json() if h["nqn"] == GOOD_NQN]
    assert len(hosts) == 1
    listed = {
        e.volume.volume_id: list(e.status.published_node_ids)
        for e in c.ListVolumes(csi_pb2.ListVolumesRequest()).entries
    }
    assert listed[vol.volume_id] == [GOOD_NQN]
    # A single-node volume cannot go to a second node.
    other = "nqn.2014-08.org.nvmexpress:uuid:99999999-0000-0000-0000-000000000000"
    code, _ = code_of(
        c.ControllerPublishVolume,
        csi_pb2.ControllerPublishVolumeRequest(
            volume_id=vol.volume_id, node_id=other, volume_capability=block_cap()
        ),
    )
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    for _ in range(2):
        c.ControllerUnpublishVolume(
            csi_pb2.ControllerUnpublishVolumeRequest(volume_id=vol.volume_id, node_id=GOOD_NQN)
        )
    assert (
        vms.api("GET", "blockhostvolumes/", params={"volume__id": vol.volume_id.split(":")[0]}).json() == []
    )
    c.ControllerPublishVolume(req)
    c.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=vol.volume_id))  # unmaps too
    assert (
        vms.api("GET", "blockhostvolumes/", params={"volume__id": vol.volume_id.split(":")[0]}).json() == []
    )
    c.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=vol.volume_id))  # idempotent


def test_list_pagination_and_tokens(stack: tuple[VmsProcess, DriverProcess]) -> None:
    _, drv = stack
    c = drv.controller
    made = [c.CreateVolume(create_req(f"pvc-page-{i}")).volume.volume_id for i in range(5)]
    seen: list[str] = []
    token = ""
    while True:
        resp = c.ListVolumes(csi_pb2.ListVolumesRequest(max_entries=2, starting_token=token))
        assert len(resp.entries) <= 2
        seen += [e.volume.volume_id for e in resp.entries]
        token = resp.next_token
        if not token:
            break
    assert set(made) <= set(seen) and len(seen) == len(set(seen))
    code, _ = code_of(c.ListVolumes, csi_pb2.ListVolumesRequest(starting_token="bogus"))
    assert code == grpc.StatusCode.ABORTED
    code, _ = code_of(c.ListVolumes, csi_pb2.ListVolumesRequest(max_entries=-1))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    for vid in made:
        c.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=vid))


def test_snapshots_clones_and_data(stack: tuple[VmsProcess, DriverProcess], tmp_path: Path) -> None:
    """Write through the node, snapshot, clone from snapshot and from volume: the data travels."""
    vms, drv = stack
    c, n = drv.controller, drv.node
    node_id = n.NodeGetInfo(csi_pb2.NodeGetInfoRequest()).node_id
    src = c.CreateVolume(create_req("pvc-src", 16 * MiB)).volume

    def attach(vol: csi_pb2.Volume, name: str) -> tuple[str, str, dict[str, str]]:
        ctx = dict(
            c.ControllerPublishVolume(
                csi_pb2.ControllerPublishVolumeRequest(
                    volume_id=vol.volume_id, node_id=node_id, volume_capability=block_cap()
                )
            ).publish_context
        )
        staging = str(tmp_path / f"stage-{name}")
        target = str(tmp_path / f"pod-{name}" / "dev")
        n.NodeStageVolume(
            csi_pb2.NodeStageVolumeRequest(
                volume_id=vol.volume_id,
                staging_target_path=staging,
                volume_capability=block_cap(),
                publish_context=ctx,
            )
        )
        n.NodePublishVolume(
            csi_pb2.NodePublishVolumeRequest(
                volume_id=vol.volume_id,
                staging_target_path=staging,
                target_path=target,
                volume_capability=block_cap(),
                publish_context=ctx,
            )
        )
        return staging, target, ctx

    def detach(vol: csi_pb2.Volume, staging: str, target: str) -> None:
        n.NodeUnpublishVolume(csi_pb2.NodeUnpublishVolumeRequest(volume_id=vol.volume_id, target_path=target))
        n.NodeUnstageVolume(
            csi_pb2.NodeUnstageVolumeRequest(volume_id=vol.volume_id, staging_target_path=staging)
        )
        c.ControllerUnpublishVolume(
            csi_pb2.ControllerUnpublishVolumeRequest(volume_id=vol.volume_id, node_id=node_id)
        )

    staging, target, _ = attach(src, "src")
    with open(target, "r+b") as dev:
        dev.write(b"before-snapshot")
        dev.flush()
    detach(src, staging, target)
    snap = c.CreateSnapshot(
        csi_pb2.CreateSnapshotRequest(name="snap-data", source_volume_id=src.volume_id)
    ).snapshot
    assert snap.ready_to_use and snap.size_bytes == 16 * MiB and snap.source_volume_id == src.volume_id
    again = c.CreateSnapshot(csi_pb2.CreateSnapshotRequest(name="snap-data", source_volume_id=src.volume_id))
    assert again.snapshot.snapshot_id == snap.snapshot_id
    other = c.CreateVolume(create_req("pvc-other")).volume
    code, _ = code_of(
        c.CreateSnapshot, csi_pb2.CreateSnapshotRequest(name="snap-data", source_volume_id=other.volume_id)
    )
    assert code == grpc.StatusCode.ALREADY_EXISTS
    by_src = c.ListSnapshots(csi_pb2.ListSnapshotsRequest(source_volume_id=src.volume_id)).entries
    assert [e.snapshot.snapshot_id for e in by_src] == [snap.snapshot_id]
    assert not c.ListSnapshots(csi_pb2.ListSnapshotsRequest(snapshot_id="999:0123456789abcdef")).entries
    assert (
        c.GetSnapshot(csi_pb2.GetSnapshotRequest(snapshot_id=snap.snapshot_id)).snapshot.snapshot_id
        == snap.snapshot_id
    )

    from_snap = c.CreateVolume(
        create_req(
            "pvc-from-snap",
            32 * MiB,
            volume_content_source=csi_pb2.VolumeContentSource(
                snapshot=csi_pb2.VolumeContentSource.SnapshotSource(snapshot_id=snap.snapshot_id)
            ),
        )
    ).volume
    assert from_snap.content_source.snapshot.snapshot_id == snap.snapshot_id
    assert from_snap.capacity_bytes == 32 * MiB
    from_vol = c.CreateVolume(
        create_req(
            "pvc-from-vol",
            16 * MiB,
            volume_content_source=csi_pb2.VolumeContentSource(
                volume=csi_pb2.VolumeContentSource.VolumeSource(volume_id=src.volume_id)
            ),
        )
    ).volume
    for vol, name in ((from_snap, "fs"), (from_vol, "fv")):
        staging, target, _ = attach(vol, name)
        with open(target, "rb") as clone_dev:
            assert clone_dev.read(15) == b"before-snapshot"
        detach(vol, staging, target)
    # A clone whose limit is below its source's size is refused (from a volume and from a snapshot),
    # and leaves no volume and no transient snapshot behind; without a limit it keeps the source size.
    for kind, content in (
        (
            "vol",
            csi_pb2.VolumeContentSource(
                volume=csi_pb2.VolumeContentSource.VolumeSource(volume_id=src.volume_id)
            ),
        ),
        (
            "snap",
            csi_pb2.VolumeContentSource(
                snapshot=csi_pb2.VolumeContentSource.SnapshotSource(snapshot_id=snap.snapshot_id)
            ),
        ),
    ):
        before = len(vms_volumes(vms))
        code, _ = code_of(
            c.CreateVolume,
            csi_pb2.CreateVolumeRequest(
                name=f"pvc-too-small-{kind}",
                volume_capabilities=[block_cap()],
                volume_content_source=content,
                capacity_range=csi_pb2.CapacityRange(required_bytes=8 * MiB, limit_bytes=8 * MiB),
            ),
        )
        assert code == grpc.StatusCode.OUT_OF_RANGE, kind
        assert len(vms_volumes(vms)) == before, kind
    small = c.CreateVolume(
        create_req(
            "pvc-small-ok",
            8 * MiB,
            volume_content_source=csi_pb2.VolumeContentSource(
                volume=csi_pb2.VolumeContentSource.VolumeSource(volume_id=src.volume_id)
            ),
        )
    ).volume
    assert small.capacity_bytes == 16 * MiB
    c.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=small.volume_id))
    names = [s["name"] for s in vms.api("GET", "snapshots/").json()]
    assert not [x for x in names if "clonetmp" in x]
    for vol in (src, other, from_snap, from_vol):
        c.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=vol.volume_id))
    c.DeleteSnapshot(csi_pb2.DeleteSnapshotRequest(snapshot_id=snap.snapshot_id))
    c.DeleteSnapshot(csi_pb2.DeleteSnapshotRequest(snapshot_id=snap.snapshot_id))
    assert vms.api("GET", "snapshots/").json() == []


def test_expand_online_with_filesystem_and_modify_qos(
    stack: tuple[VmsProcess, DriverProcess], tmp_path: Path
) -> None:
    vms, drv = stack
    c, n = drv.controller, drv.node
    node_id = n.NodeGetInfo(csi_pb2.NodeGetInfoRequest()).node_id
    cap = mount_cap("xfs")
    vol = c.CreateVolume(
        csi_pb2.CreateVolumeRequest(
            name="pvc-grow",
            capacity_range=csi_pb2.CapacityRange(required_bytes=320 * MiB),
            volume_capabilities=[cap],
            parameters={"fsType": "xfs"},
        )
    ).volume
    assert vol.volume_context["fsType"] == "xfs"
    ctx = c.ControllerPublishVolume(
        csi_pb2.ControllerPublishVolumeRequest(
            volume_id=vol.volume_id, node_id=node_id, volume_capability=cap
        )
    ).publish_context
    staging, target = str(tmp_path / "s"), str(tmp_path / "t")
    n.NodeStageVolume(
        csi_pb2.NodeStageVolumeRequest(
            volume_id=vol.volume_id, staging_target_path=staging, volume_capability=cap, publish_context=ctx
        )
    )
    n.NodePublishVolume(
        csi_pb2.NodePublishVolumeRequest(
            volume_id=vol.volume_id,
            staging_target_path=staging,
            target_path=target,
            volume_capability=cap,
            publish_context=ctx,
        )
    )
    grown = c.ControllerExpandVolume(
        csi_pb2.ControllerExpandVolumeRequest(
            volume_id=vol.volume_id, capacity_range=csi_pb2.CapacityRange(required_bytes=512 * MiB)
        )
    )
    assert grown.capacity_bytes == 512 * MiB and grown.node_expansion_required
    node_grown = n.NodeExpandVolume(
        csi_pb2.NodeExpandVolumeRequest(volume_id=vol.volume_id, volume_path=target)
    )
    assert node_grown.capacity_bytes == 512 * MiB
    stats = n.NodeGetVolumeStats(
        csi_pb2.NodeGetVolumeStatsRequest(volume_id=vol.volume_id, volume_path=target)
    )
    assert stats.usage[0].total > 400 * MiB and not stats.volume_condition.abnormal
    code, _ = code_of(
        c.ControllerExpandVolume,
        csi_pb2.ControllerExpandVolumeRequest(
            volume_id=vol.volume_id, capacity_range=csi_pb2.CapacityRange(limit_bytes=64 * MiB)
        ),
    )
    assert code == grpc.StatusCode.OUT_OF_RANGE
    c.ControllerModifyVolume(
        csi_pb2.ControllerModifyVolumeRequest(
            volume_id=vol.volume_id, mutable_parameters={"qosPolicy": "default-volume-qos"}
        )
    )
    raw = vms.api("GET", f"volumes/{vol.volume_id.split(':')[0]}/").json()
    qos = next(q for q in vms.api("GET", "qospolicies/").json() if q["name"] == "default-volume-qos")
    assert raw["qos_policy_id"] == qos["id"]
    code, msg = code_of(
        c.ControllerModifyVolume,
        csi_pb2.ControllerModifyVolumeRequest(volume_id=vol.volume_id, mutable_parameters={"iops": "5"}),
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "iops" in msg
    got = c.ControllerGetVolume(csi_pb2.ControllerGetVolumeRequest(volume_id=vol.volume_id))
    assert list(got.status.published_node_ids) == [node_id] and not got.status.volume_condition.abnormal
    n.NodeUnpublishVolume(csi_pb2.NodeUnpublishVolumeRequest(volume_id=vol.volume_id, target_path=target))
    n.NodeUnstageVolume(
        csi_pb2.NodeUnstageVolumeRequest(volume_id=vol.volume_id, staging_target_path=staging)
    )
    c.ControllerUnpublishVolume(
        csi_pb2.ControllerUnpublishVolumeRequest(volume_id=vol.volume_id, node_id=node_id)
    )
    c.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=vol.volume_id))


def test_vms_outage_is_unavailable_not_unknown(tmp_path: Path) -> None:
    require_root()
    with (
        VmsProcess(
            tmp_path / "vms", s3=False, nvme=False, faults=["error=503,method=POST,path=/volumes/$"]
        ) as vms,
        DriverProcess(tmp_path / "drv", vms, mode="controller", extra_args=["--vms-timeout", "5"]) as drv,
    ):
        code, msg = code_of(drv.controller.CreateVolume, create_req("pvc-outage"))
        assert code == grpc.StatusCode.UNAVAILABLE, msg
        assert vms_volumes(vms) == []


def _wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _vms_calls(drv: DriverProcess, method: str, path_part: str, after: int) -> int:
    """How many VMS requests the driver's debug log shows as answered since line ``after``."""
    return sum(
        1
        for line in drv.log_path.read_text(errors="replace").splitlines()[after:]
        if '"vms request"' in line and f'"vms_method": "{method}"' in line and path_part in line
    )


def _log_len(drv: DriverProcess) -> int:
    return len(drv.log_path.read_text(errors="replace").splitlines())


def test_controller_killed_mid_create_then_retried_makes_one_volume(tmp_path: Path) -> None:
    """Kill -9 the controller mid-create, restart, retry: one volume and no orphan, both when the VMS
    never saw the create through and when it finished it after the controller died."""
    require_root()
    # The VMS holds creates and clones for 3 s, so the controller dies while they are in flight.
    faults = [
        "latency=3s,times=3,method=POST,path=/volumes/$",
        "latency=3s,times=1,method=POST,path=/clone_volume/$",
    ]
    with VmsProcess(tmp_path / "vms", s3=False, nvme=False, faults=faults) as vms:
        drv = DriverProcess(
            tmp_path / "drv", vms, mode="controller", extra_args=["--log-level", "debug"]
        ).start()
        try:
            # (a) killed while the VMS holds the POST: the VMS drops the call of the dead client.
            mark = _log_len(drv)
            threading.Thread(
                target=code_of, args=(drv.controller.CreateVolume, create_req("pvc-crash-a")), daemon=True
            ).start()
            # block-API probe + lookup by name answered: the POST is on its way.
            _wait_for(lambda: _vms_calls(drv, "GET", "volumes/", mark) >= 2, 20, "the lookup")
            time.sleep(0.5)
            drv.kill()
            time.sleep(3.5)
            assert vms_volumes(vms) == []
            drv.start()
            vol_a = drv.controller.CreateVolume(create_req("pvc-crash-a")).volume
            assert len(vms_volumes(vms)) == 1

            # (b) the VMS completes the create, but the controller never learns it: freeze it while
            # its POST is held (its connection stays open), let the VMS answer, then kill it.
            mark = _log_len(drv)
            threading.Thread(
                target=code_of, args=(drv.controller.CreateVolume, create_req("pvc-crash-b")), daemon=True
            ).start()
            _wait_for(lambda: _vms_calls(drv, "GET", "volumes/", mark) >= 1, 20, "the lookup")
            time.sleep(0.5)
            drv.pause()
            _wait_for(lambda: len(vms_volumes(vms)) == 2, 10, "the VMS to finish the orphaned create")
            drv.kill()
            drv.start()
            vol_b = drv.controller.CreateVolume(create_req("pvc-crash-b")).volume
            assert drv.controller.CreateVolume(create_req("pvc-crash-b")).volume.volume_id == vol_b.volume_id
            assert len(vms_volumes(vms)) == 2

            # (c) a clone from a volume goes through a transient snapshot: die after the VMS made the
            # clone but before the controller removed that snapshot; the retry removes it.
            clone = create_req(
                "pvc-crash-clone",
                volume_content_source=csi_pb2.VolumeContentSource(
                    volume=csi_pb2.VolumeContentSource.VolumeSource(volume_id=vol_a.volume_id)
                ),
            )
            mark = _log_len(drv)
            threading.Thread(target=code_of, args=(drv.controller.CreateVolume, clone), daemon=True).start()
            _wait_for(lambda: _vms_calls(drv, "POST", "snapshots/", mark) >= 1, 20, "the transient snapshot")
            time.sleep(0.5)
            drv.pause()
            _wait_for(lambda: len(vms_volumes(vms)) == 3, 10, "the VMS to finish the orphaned clone")
            drv.kill()
            assert len(vms.api("GET", "snapshots/").json()) == 1, "the dead controller left its snapshot"
            drv.start()
            cloned = drv.controller.CreateVolume(clone).volume
            assert cloned.content_source.volume.volume_id == vol_a.volume_id
            assert len(vms_volumes(vms)) == 3
            assert vms.api("GET", "snapshots/").json() == [], "the retry removed the transient snapshot"
            for v in (cloned, vol_a, vol_b):
                drv.controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=v.volume_id))
            assert vms_volumes(vms) == []
        finally:
            drv.kill()


def test_probe_follows_vms_reachability(tmp_path: Path) -> None:
    vms = VmsProcess(tmp_path / "vms", s3=False, nvme=False)
    vms.start()
    try:
        with DriverProcess(tmp_path / "drv", vms, mode="controller") as drv:
            assert drv.identity.Probe(csi_pb2.ProbeRequest()).ready.value
            caps = drv.identity.GetPluginCapabilities(csi_pb2.GetPluginCapabilitiesRequest()).capabilities
            assert csi_pb2.PluginCapability.Service.CONTROLLER_SERVICE in [c.service.type for c in caps]
            vms.stop()
            t0 = time.monotonic()
            code, msg = code_of(drv.identity.Probe, csi_pb2.ProbeRequest())
            assert code == grpc.StatusCode.FAILED_PRECONDITION and "VMS is not reachable" in msg
            assert time.monotonic() - t0 < 15, "a probe must answer quickly when the VMS is down"
    finally:
        vms.stop()


def test_restarted_node_plugin_restages_its_volumes(tmp_path: Path) -> None:
    """kill -9 the plugin, lose every mount and loop device (a reboot), start it again: the
    persisted staging state brings the staging mount and the pod's bind mount back."""
    require_root()
    with VmsProcess(tmp_path / "vms", s3=False, nvme=False) as vms:
        drv = DriverProcess(tmp_path / "drv", vms).start()
        try:
            c, n = drv.controller, drv.node
            node_id = n.NodeGetInfo(csi_pb2.NodeGetInfoRequest()).node_id
            cap = mount_cap("ext4")
            vol = c.CreateVolume(create_req("pvc-reboot", 64 * MiB)).volume
            ctx = c.ControllerPublishVolume(
                csi_pb2.ControllerPublishVolumeRequest(
                    volume_id=vol.volume_id, node_id=node_id, volume_capability=cap
                )
            ).publish_context
            staging, target = str(tmp_path / "stage"), str(tmp_path / "pod" / "vol")
            n.NodeStageVolume(
                csi_pb2.NodeStageVolumeRequest(
                    volume_id=vol.volume_id,
                    staging_target_path=staging,
                    volume_capability=cap,
                    publish_context=ctx,
                )
            )
            n.NodePublishVolume(
                csi_pb2.NodePublishVolumeRequest(
                    volume_id=vol.volume_id,
                    staging_target_path=staging,
                    target_path=target,
                    volume_capability=cap,
                    publish_context=ctx,
                )
            )
            Path(target, "kept").write_text("across the reboot")
            drv.kill()
            unmount_under(tmp_path)
            detach_loops_under(tmp_path)
            assert not os.path.ismount(target)
            drv.start()
            assert os.path.ismount(staging) and os.path.ismount(target)
            assert Path(target, "kept").read_text() == "across the reboot"
            assert drv.node.NodeGetInfo(csi_pb2.NodeGetInfoRequest()).node_id == node_id, "stable node id"
            drv.node.NodeUnpublishVolume(
                csi_pb2.NodeUnpublishVolumeRequest(volume_id=vol.volume_id, target_path=target)
            )
            drv.node.NodeUnstageVolume(
                csi_pb2.NodeUnstageVolumeRequest(volume_id=vol.volume_id, staging_target_path=staging)
            )
            drv.controller.ControllerUnpublishVolume(
                csi_pb2.ControllerUnpublishVolumeRequest(volume_id=vol.volume_id, node_id=node_id)
            )
            drv.controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=vol.volume_id))
        finally:
            drv.stop()
