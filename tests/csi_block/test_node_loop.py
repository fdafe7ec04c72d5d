"""Node service over real gRPC with real loop devices, mkfs and mounts (root)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from csi_block_driver.attach.loop import LoopBackend
from csi_block_driver.host import HostRunner, Mounter, mount_at
from csi_block_driver.identity import IdentityService
from csi_block_driver.node import NodeConfig, NodeService
from csi_block_driver.proto import csi_pb2
from tests.conftest import require_root

from .nodekit import MiB, NodeEnv, block_cap, loops_backed_by, mount_cap, node_env

pytestmark = pytest.mark.root
CAP_SYS_RESOURCE = 24


def has_capability(bit: int) -> bool:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> bit & 1)
    return False


@pytest.fixture
def env(tmp_path: Path) -> Iterator[NodeEnv]:
    require_root()
    with node_env(tmp_path) as e:
        yield e


def _stage(env: NodeEnv, vid: str, ctx: dict[str, str], cap: csi_pb2.VolumeCapability) -> str:
    staging = str(env.root / "staging" / vid.replace(":", "_"))
    os.makedirs(staging, exist_ok=True)
    env.node.NodeStageVolume(
        csi_pb2.NodeStageVolumeRequest(
            volume_id=vid, staging_target_path=staging, volume_capability=cap, publish_context=ctx
        )
    )
    return staging


def _code(exc: pytest.ExceptionInfo[grpc.RpcError]) -> grpc.StatusCode:
    return exc.value.code()


def test_block_stage_publish_unpublish_unstage(env: NodeEnv) -> None:
    vid, ctx = env.new_volume(32 * MiB)
    backing = env.backing_dir / f"{ctx['uuid']}.img"
    staging = _stage(env, vid, ctx, block_cap())
    _stage(env, vid, ctx, block_cap())  # idempotent
    assert len(loops_backed_by(backing)) == 1
    target = str(env.root / "pods" / "target")  # parent does not exist, target must become a FILE
    req = csi_pb2.NodePublishVolumeRequest(
        volume_id=vid,
        staging_target_path=staging,
        target_path=target,
        volume_capability=block_cap(),
        publish_context=ctx,
    )
    for _ in range(3):
        env.node.NodePublishVolume(req)
    st = os.stat(target)
    assert stat.S_ISBLK(st.st_mode), "the device must be bind-mounted onto the target file"
    with open(target, "r+b") as dev:  # the data really goes to the backing file
        dev.seek(MiB)
        dev.write(b"kubevast!" * 100)
        dev.flush()
        os.fsync(dev.fileno())
    with open(backing, "rb") as f:
        f.seek(MiB)
        assert f.read(9) == b"kubevast!"
    stats = env.node.NodeGetVolumeStats(csi_pb2.NodeGetVolumeStatsRequest(volume_id=vid, volume_path=target))
    assert stats.usage[0].total == 32 * MiB
    assert not stats.volume_condition.abnormal
    for _ in range(2):
        env.node.NodeUnpublishVolume(csi_pb2.NodeUnpublishVolumeRequest(volume_id=vid, target_path=target))
    assert not os.path.exists(target)
    for _ in range(2):
        env.node.NodeUnstageVolume(
            csi_pb2.NodeUnstageVolumeRequest(volume_id=vid, staging_target_path=staging)
        )
    assert loops_backed_by(backing) == []


@pytest.mark.parametrize("fs", ["ext4", "xfs"])
def test_mount_stage_formats_publishes_readonly_and_expands(env: NodeEnv, fs: str) -> None:
    size = 320 * MiB if fs == "xfs" else 64 * MiB  # mkfs.xfs refuses filesystems under 300 MiB
    vid, ctx = env.new_volume(size)
    backing = env.backing_dir / f"{ctx['uuid']}.img"
    staging = _stage(env, vid, ctx, mount_cap(fs))
    m = mount_at(staging)
    assert m is not None and m.fstype == fs
    Path(staging, "hello").write_text("world")
    rw = str(env.root / "pods" / "rw")
    ro = str(env.root / "pods" / "ro")
    env.node.NodePublishVolume(
        csi_pb2.NodePublishVolumeRequest(
            volume_id=vid,
            staging_target_path=staging,
            target_path=rw,
            volume_capability=mount_cap(fs),
            publish_context=ctx,
        )
    )
    env.node.NodePublishVolume(
        csi_pb2.NodePublishVolumeRequest(
            volume_id=vid,
            staging_target_path=staging,
            target_path=ro,
            volume_capability=mount_cap(fs),
            publish_context=ctx,
            readonly=True,
        )
    )
    assert Path(rw, "hello").read_text() == "world"
    with pytest.raises(OSError):
        Path(ro, "nope").write_text("x")
    # Grow the backing file as the storage core does on a VMS resize, then expand on the node.
    # Online ext4 growth needs CAP_SYS_RESOURCE, which some sandboxes drop (xfs needs SYS_ADMIN).
    if fs == "xfs" or has_capability(CAP_SYS_RESOURCE):
        with open(backing, "r+b") as f:
            f.truncate(size + 64 * MiB)
        resp = env.node.NodeExpandVolume(csi_pb2.NodeExpandVolumeRequest(volume_id=vid, volume_path=rw))
        assert resp.capacity_bytes == size + 64 * MiB
    stats = env.node.NodeGetVolumeStats(csi_pb2.NodeGetVolumeStatsRequest(volume_id=vid, volume_path=rw))
    by_unit = {u.unit: u for u in stats.usage}
    assert by_unit[csi_pb2.VolumeUsage.BYTES].total > size * 0.8
    assert by_unit[csi_pb2.VolumeUsage.INODES].total > 0
    for target in (rw, ro):
        env.node.NodeUnpublishVolume(csi_pb2.NodeUnpublishVolumeRequest(volume_id=vid, target_path=target))
        assert not os.path.exists(target)
    env.node.NodeUnstageVolume(csi_pb2.NodeUnstageVolumeRequest(volume_id=vid, staging_target_path=staging))
    assert mount_at(staging) is None
    assert loops_backed_by(backing) == []
    # Staging again keeps the data: an existing filesystem is never reformatted.
    staging = _stage(env, vid, ctx, mount_cap(fs))
    assert Path(staging, "hello").read_text() == "world"
    env.node.NodeUnstageVolume(csi_pb2.NodeUnstageVolumeRequest(volume_id=vid, staging_target_path=staging))


def test_block_expand_detects_block_target_without_capability(env: NodeEnv) -> None:
    vid, ctx = env.new_volume(16 * MiB)
    staging = _stage(env, vid, ctx, block_cap())
    target = str(env.root / "t" / "dev")
    env.node.NodePublishVolume(
        csi_pb2.NodePublishVolumeRequest(
            volume_id=vid,
            staging_target_path=staging,
            target_path=target,
            volume_capability=block_cap(),
            publish_context=ctx,
        )
    )
    with open(env.backing_dir / f"{ctx['uuid']}.img", "r+b") as f:
        f.truncate(48 * MiB)
    resp = env.node.NodeExpandVolume(csi_pb2.NodeExpandVolumeRequest(volume_id=vid, volume_path=target))
    assert resp.capacity_bytes == 48 * MiB
    env.node.NodeUnpublishVolume(csi_pb2.NodeUnpublishVolumeRequest(volume_id=vid, target_path=target))
    env.node.NodeUnstageVolume(csi_pb2.NodeUnstageVolumeRequest(volume_id=vid, staging_target_path=staging))


def test_restarted_plugin_restages_from_persisted_state(env: NodeEnv) -> None:
    vid, ctx = env.new_volume(64 * MiB)
    backing = env.backing_dir / f"{ctx['uuid']}.img"
    staging = _stage(env, vid, ctx, mount_cap("ext4"))
    target = str(env.root / "pods" / "p")
    env.node.NodePublishVolume(
        csi_pb2.NodePublishVolumeRequest(
            volume_id=vid,
            staging_target_path=staging,
            target_path=target,
            volume_capability=mount_cap(),
            publish_context=ctx,
        )
    )
    Path(target, "f").write_text("data")
    # Simulate a node reboot: mounts and loop devices are gone, only the state dir survives.
    for path in (target, staging):
        os.system(f"umount {path}")
    for dev in loops_backed_by(backing):
        os.system(f"losetup -d {dev}")
    assert mount_at(staging) is None
    runner = HostRunner()
    fresh = NodeService(
        NodeConfig(node_id="nqn.2014-08.org.nvmexpress:uuid:x", state_dir=str(env.state_dir)),
        LoopBackend(runner, str(env.backing_dir)),
        Mounter(runner),
    )
    assert fresh.recover() == []
    assert mount_at(staging) is not None and mount_at(target) is not None
    assert Path(target, "f").read_text() == "data"


def test_validation_errors_name_the_field(env: NodeEnv) -> None:
    vid, ctx = env.new_volume()
    cases = [
        (
            env.node.NodeStageVolume,
            csi_pb2.NodeStageVolumeRequest(
                staging_target_path="/x", volume_capability=block_cap(), publish_context=ctx
            ),
            "volume_id",
        ),
        (
            env.node.NodeStageVolume,
            csi_pb2.NodeStageVolumeRequest(volume_id=vid, volume_capability=block_cap(), publish_context=ctx),
            "staging_target_path",
        ),
        (
            env.node.NodeStageVolume,
            csi_pb2.NodeStageVolumeRequest(volume_id=vid, staging_target_path="/x", publish_context=ctx),
            "volume_capability",
        ),
        (
            env.node.NodeStageVolume,
            csi_pb2.NodeStageVolumeRequest(
                volume_id=vid,
                staging_target_path="/x",
                volume_capability=mount_cap("btrfs"),
                publish_context=ctx,
            ),
            "fs_type",
        ),
        (
            env.node.NodePublishVolume,
            csi_pb2.NodePublishVolumeRequest(
                volume_id=vid, staging_target_path="/x", volume_capability=block_cap()
            ),
            "target_path",
        ),
        (env.node.NodeUnpublishVolume, csi_pb2.NodeUnpublishVolumeRequest(volume_id=vid), "target_path"),
        (env.node.NodeUnstageVolume, csi_pb2.NodeUnstageVolumeRequest(staging_target_path="/x"), "volume_id"),
        (env.node.NodeGetVolumeStats, csi_pb2.NodeGetVolumeStatsRequest(volume_id=vid), "volume_path"),
        (env.node.NodeExpandVolume, csi_pb2.NodeExpandVolumeRequest(volume_path="/x"), "volume_id"),
    ]
    for rpc, req, field in cases:
        with pytest.raises(grpc.RpcError) as err:
            rpc(req)
        assert _code(err) == grpc.StatusCode.INVALID_ARGUMENT, (field, err.value)
        assert field in (err.value.details() or ""), (field, err.value.details())


def test_unknown_volumes(env: NodeEnv) -> None:
    with pytest.raises(grpc.RpcError) as err:
        env.node.NodeGetVolumeStats(
            csi_pb2.NodeGetVolumeStatsRequest(volume_id="nope", volume_path="some/path")
        )
    assert _code(err) == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as err:
        env.node.NodeExpandVolume(csi_pb2.NodeExpandVolumeRequest(volume_id="nope", volume_path="some/path"))
    assert _code(err) == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as err:
        env.node.NodePublishVolume(
            csi_pb2.NodePublishVolumeRequest(
                volume_id="nope",
                staging_target_path="/x",
                target_path=str(env.root / "t"),
                volume_capability=block_cap(),
            )
        )
    assert _code(err) == grpc.StatusCode.FAILED_PRECONDITION
    # Unpublish/unstage of what is not there is OK (idempotent).
    env.node.NodeUnpublishVolume(
        csi_pb2.NodeUnpublishVolumeRequest(volume_id="nope", target_path=str(env.root / "t"))
    )
    env.node.NodeUnstageVolume(csi_pb2.NodeUnstageVolumeRequest(volume_id="nope", staging_target_path="/x"))


def test_stage_of_missing_backing_file_is_failed_precondition_and_leaves_nothing(env: NodeEnv) -> None:
    vid, ctx = env.new_volume()
    (env.backing_dir / f"{ctx['uuid']}.img").unlink()
    staging = str(env.root / "s")
    with pytest.raises(grpc.RpcError) as err:
        env.node.NodeStageVolume(
            csi_pb2.NodeStageVolumeRequest(
                volume_id=vid, staging_target_path=staging, volume_capability=block_cap(), publish_context=ctx
            )
        )
    assert _code(err) == grpc.StatusCode.FAILED_PRECONDITION
    env.node.NodeUnstageVolume(csi_pb2.NodeUnstageVolumeRequest(volume_id=vid, staging_target_path=staging))
    assert env.service.store.all() == []


def test_node_info_capabilities_and_probe(env: NodeEnv) -> None:
    info = env.node.NodeGetInfo(csi_pb2.NodeGetInfoRequest())
    assert info.node_id.startswith("nqn.")
    caps = {
        c.rpc.type for c in env.node.NodeGetCapabilities(csi_pb2.NodeGetCapabilitiesRequest()).capabilities
    }
    rpc = csi_pb2.NodeServiceCapability.RPC
    assert {rpc.STAGE_UNSTAGE_VOLUME, rpc.EXPAND_VOLUME, rpc.GET_VOLUME_STATS, rpc.VOLUME_CONDITION} <= caps
    assert env.identity.Probe(csi_pb2.ProbeRequest()).ready.value is True
    plugin = env.identity.GetPluginCapabilities(csi_pb2.GetPluginCapabilitiesRequest())
    kinds = [c.WhichOneof("type") for c in plugin.capabilities]
    assert kinds == ["volume_expansion"]  # a node-only plugin does not claim the controller service
    assert plugin.capabilities[0].volume_expansion.type == csi_pb2.PluginCapability.VolumeExpansion.ONLINE


def test_probe_fails_when_backing_dir_is_gone(tmp_path: Path) -> None:
    require_root()
    backend = LoopBackend(HostRunner(), str(tmp_path / "missing"))
    ident = IdentityService("x", controller=False, checks=[backend.prerequisites])
    from csi_block_driver.errors import FailedPrecondition

    with pytest.raises(FailedPrecondition, match="loop backing dir"):
        ident.Probe(csi_pb2.ProbeRequest(), None)


def test_volume_condition_reports_a_lost_mount(env: NodeEnv) -> None:
    vid, ctx = env.new_volume(64 * MiB)
    staging = _stage(env, vid, ctx, mount_cap("ext4"))
    target = str(env.root / "pods" / "c")
    env.node.NodePublishVolume(
        csi_pb2.NodePublishVolumeRequest(
            volume_id=vid,
            staging_target_path=staging,
            target_path=target,
            volume_capability=mount_cap(),
            publish_context=ctx,
        )
    )
    req = csi_pb2.NodeGetVolumeStatsRequest(volume_id=vid, volume_path=target)
    assert not env.node.NodeGetVolumeStats(req).volume_condition.abnormal
    os.system(f"umount {target}")  # someone unmounted it behind the plugin's back
    cond = env.node.NodeGetVolumeStats(req).volume_condition
    assert cond.abnormal and "not mounted" in cond.message
    env.node.NodeUnpublishVolume(csi_pb2.NodeUnpublishVolumeRequest(volume_id=vid, target_path=target))
    env.node.NodeUnstageVolume(csi_pb2.NodeUnstageVolumeRequest(volume_id=vid, staging_target_path=staging))
