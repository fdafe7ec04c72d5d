"""Helpers for node tests: an in-process node plugin over a real unix-socket gRPC server, and the
cleanup that guarantees no loop device or mount outlives a test, even a failing one."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc

from csi_block_driver import publish_context as pc
from csi_block_driver.attach.loop import LoopBackend
from csi_block_driver.host import HostRunner, Mounter, mounts
from csi_block_driver.identity import IdentityService
from csi_block_driver.node import NodeConfig, NodeService
from csi_block_driver.proto import csi_pb2, csi_pb2_grpc
from csi_block_driver.server import build_server, stop_server

MiB = 1 << 20


def unmount_under(root: Path) -> None:
    """Unmount everything mounted at or below ``root`` (deepest first)."""
    real = os.path.realpath(root)
    for _ in range(8):
        points = sorted(
            {
                m.mount_point
                for m in mounts()
                if m.mount_point == real or m.mount_point.startswith(real + "/")
            },
            key=len,
            reverse=True,
        )
        if not points:
            return
        for point in points:
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)


def detach_loops_under(root: Path) -> None:
    """Detach every loop device whose backing file lives under ``root``."""
    out = subprocess.run(
        ["losetup", "--list", "--json", "-O", "NAME,BACK-FILE"], capture_output=True, text=True, check=False
    ).stdout
    if not out.strip():
        return
    real = os.path.realpath(root)
    for dev in json.loads(out).get("loopdevices", []):
        back = (dev.get("back-file") or "").replace(" (deleted)", "")
        if back.startswith(real + "/") or back.startswith(str(root) + "/"):
            subprocess.run(["losetup", "--detach", dev["name"]], capture_output=True, check=False)


def loops_backed_by(path: Path) -> list[str]:
    out = subprocess.run(
        ["losetup", "--list", "--json", "-O", "NAME,BACK-FILE"], capture_output=True, text=True, check=False
    ).stdout
    if not out.strip():
        return []
    return [
        d["name"]
        for d in json.loads(out).get("loopdevices", [])
        if (d.get("back-file") or "").replace(" (deleted)", "") == str(path)
    ]


@dataclass
class NodeEnv:
    root: Path
    backing_dir: Path
    state_dir: Path
    endpoint: str
    node: csi_pb2_grpc.NodeStub
    identity: csi_pb2_grpc.IdentityStub
    service: NodeService

    def new_volume(self, size: int = 64 * MiB) -> tuple[str, dict[str, str]]:
        """A backing file as the storage core would create it; (volume id, publish context)."""
        vol_uuid = str(uuid.uuid4())
        path = self.backing_dir / f"{vol_uuid}.img"
        with open(path, "wb") as f:
            f.truncate(size)
        return f"1:{vol_uuid}", {pc.UUID: vol_uuid, pc.SUBSYSTEM_NQN: "nqn.2024-08.com.vastdata:test:sub"}


def block_cap(
    mode: csi_pb2.VolumeCapability.AccessMode.Mode = csi_pb2.VolumeCapability.AccessMode.SINGLE_NODE_WRITER,
) -> csi_pb2.VolumeCapability:
    return csi_pb2.VolumeCapability(
        block=csi_pb2.VolumeCapability.BlockVolume(),
        access_mode=csi_pb2.VolumeCapability.AccessMode(mode=mode),
    )


def mount_cap(
    fs: str = "ext4",
    mode: csi_pb2.VolumeCapability.AccessMode.Mode = csi_pb2.VolumeCapability.AccessMode.SINGLE_NODE_WRITER,
) -> csi_pb2.VolumeCapability:
    return csi_pb2.VolumeCapability(
        mount=csi_pb2.VolumeCapability.MountVolume(fs_type=fs),
        access_mode=csi_pb2.VolumeCapability.AccessMode(mode=mode),
    )


@contextlib.contextmanager
def node_env(
    root: Path, node_id: str = "nqn.2014-08.org.nvmexpress:uuid:11111111-2222-3333-4444-555555555555"
) -> Iterator[NodeEnv]:
    backing = root / "block"
    backing.mkdir()
    state = root / "state"
    endpoint = f"unix://{root}/csi.sock"
    runner = HostRunner()
    service = NodeService(
        NodeConfig(node_id=node_id, state_dir=str(state)), LoopBackend(runner, str(backing)), Mounter(runner)
    )
    ident = IdentityService(
        "block.csi.vastdata.com", controller=False, checks=[service.backend.prerequisites]
    )
    server = build_server(
        endpoint,
        [
            lambda s: csi_pb2_grpc.add_NodeServicer_to_server(service, s),
            lambda s: csi_pb2_grpc.add_IdentityServicer_to_server(ident, s),
        ],
    )
    server.start()
    channel = grpc.insecure_channel(endpoint)
    try:
        yield NodeEnv(
            root=root,
            backing_dir=backing,
            state_dir=state,
            endpoint=endpoint,
            node=csi_pb2_grpc.NodeStub(channel),
            identity=csi_pb2_grpc.IdentityStub(channel),
            service=service,
        )
    finally:
        channel.close()
        stop_server(server, endpoint, 1)
        unmount_under(root)
        detach_loops_under(root)
