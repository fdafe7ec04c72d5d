"""CSI Node service: stage (attach + format + mount), publish (bind mounts), expand, stats.

Staging state is persisted before the host is touched (intent first), so a crash at any point
leaves a record that a retry or NodeUnstageVolume can finish or undo, and a restarted plugin
re-attaches and re-mounts what it had staged (:meth:`NodeService.recover`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

from csi_block_driver import capability
from csi_block_driver.attach.base import AttachBackend, AttachTarget
from csi_block_driver.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from csi_block_driver.host import Mounter, mount_at
from csi_block_driver.locks import VolumeLocks
from csi_block_driver.node_state import StagedVolume, StateStore
from csi_block_driver.proto import csi_pb2, csi_pb2_grpc

log = logging.getLogger(__name__)

AccessMode = csi_pb2.VolumeCapability.AccessMode
NodeCap = csi_pb2.NodeServiceCapability.RPC


@dataclass
class NodeConfig:
    node_id: str
    state_dir: str
    max_volumes_per_node: int = 0
    default_fs_type: str = capability.DEFAULT_FS


def _require(value: str, field: str) -> str:
    if not value:
        raise InvalidArgument(f"{field} is required")
    return value


class NodeService(csi_pb2_grpc.NodeServicer):
    def __init__(self, config: NodeConfig, backend: AttachBackend, mounter: Mounter) -> None:
        if not config.node_id:
            raise ValueError("refusing to serve with an empty node id")
        self.cfg = config
        self.backend = backend
        self.mounter = mounter
        self.store = StateStore(config.state_dir)
        self.locks = VolumeLocks()
        # Serialises attach/detach decisions that depend on the other staged volumes (refcounts).
        self._attach_lock = threading.Lock()

    # ---- helpers --------------------------------------------------------------------------

    def _attach(self, rec: StagedVolume) -> str:
        with self._attach_lock:
            return self.backend.attach(rec.attach_target())

    def _device(self, rec: StagedVolume) -> str:
        device = self.backend.find_device(rec.attach_target())
        return device or self._attach(rec)

    def _mount_staging(self, rec: StagedVolume, device: str) -> None:
        current = mount_at(rec.staging_path)
        if current is not None:
            if os.path.realpath(current.source) != os.path.realpath(device):
                raise AlreadyExists(
                    f"staging path {rec.staging_path} is already mounted from {current.source}, "
                    f"not from volume {rec.volume_id}'s device {device}"
                )
            return
        existing = self.mounter.fs_type(device)
        if not existing:
            log.info(
                "formatting", extra={"volume_id": rec.volume_id, "device": device, "fs_type": rec.fs_type}
            )
            self.mounter.mkfs(device, rec.fs_type)
        elif existing != rec.fs_type:
            raise FailedPrecondition(
                f"volume {rec.volume_id} already holds a {existing} filesystem, "
                f"not the requested {rec.fs_type}; refusing to reformat it"
            )
        options = list(rec.mount_flags)
        if rec.access_mode in capability.READ_ONLY_MODES:
            options.append("ro")
        Path(rec.staging_path).mkdir(parents=True, exist_ok=True)
        self.mounter.mount(device, rec.staging_path, rec.fs_type, options)

    # ---- stage ----------------------------------------------------------------------------

    def NodeStageVolume(self, request, context):
        volume_id = _require(request.volume_id, "volume_id")
        staging = _require(request.staging_target_path, "staging_target_path")
        if not request.HasField("volume_capability"):
            raise InvalidArgument("volume_capability is required")
        cap = request.volume_capability
        capability.require_supported(cap)
        target = AttachTarget.from_publish_context(volume_id, dict(request.publish_context))
        is_block = cap.WhichOneof("access_type") == "block"
        fs_type = (
            ""
            if is_block
            else (cap.mount.fs_type or request.volume_context.get("fsType") or self.cfg.default_fs_type)
        )
        with self.locks.hold(volume_id):
            rec = self.store.get(volume_id)
            if rec is not None:
                if rec.staging_path != staging:
                    raise FailedPrecondition(f"volume {volume_id} is already staged at {rec.staging_path}")
                if rec.access_type != ("block" if is_block else "mount") or (
                    fs_type and rec.fs_type != fs_type
                ):
                    raise AlreadyExists(
                        f"volume {volume_id} is already staged with another capability "
                        f"({rec.access_type} {rec.fs_type})"
                    )
            else:
                if self.cfg.max_volumes_per_node and len(self.store.all()) >= self.cfg.max_volumes_per_node:
                    raise FailedPrecondition(
                        f"node already has {self.cfg.max_volumes_per_node} volumes staged"
                    )
                rec = StagedVolume(
                    volume_id=volume_id,
                    staging_path=staging,
                    access_type="block" if is_block else "mount",
                    fs_type=fs_type,
                    mount_flags=list(cap.mount.mount_flags) if not is_block else [],
                    access_mode=cap.access_mode.mode,
                    target=target.to_dict(),
                )
                self.store.put(rec)  # intent first: a crash from here on is undone by Unstage
            Path(staging).mkdir(parents=True, exist_ok=True)
            device = self._attach(rec)
            if not is_block:
                self._mount_staging(rec, device)
            log.info(
                "staged", extra={"volume_id": volume_id, "device": device, "access_type": rec.access_type}
            )
        return csi_pb2.NodeStageVolumeResponse()

    def NodeUnstageVolume(self, request, context):
        volume_id = _require(request.volume_id, "volume_id")
        staging = _require(request.staging_target_path, "staging_target_path")
        with self.locks.hold(volume_id):
            rec = self.store.get(volume_id)
            if rec is None:
                return csi_pb2.NodeUnstageVolumeResponse()
            if rec.access_type == "mount":
                self.mounter.umount(staging if staging == rec.staging_path else rec.staging_path)
            with self._attach_lock:
                others = [r.attach_target() for r in self.store.all() if r.volume_id != volume_id]
                self.backend.detach(rec.attach_target(), others)
            self.store.delete(volume_id)
            log.info("unstaged", extra={"volume_id": volume_id})
        return csi_pb2.NodeUnstageVolumeResponse()

    # ---- publish --------------------------------------------------------------------------

    def NodePublishVolume(self, request, context):
        volume_id = _require(request.volume_id, "volume_id")
        target_path = _require(request.target_path, "target_path")
        staging = _require(request.staging_target_path, "staging_target_path")
        if not request.HasField("volume_capability"):
            raise InvalidArgument("volume_capability is required")
        cap = request.volume_capability
        capability.require_supported(cap)
        is_block = cap.WhichOneof("access_type") == "block"
        readonly = request.readonly or cap.access_mode.mode in capability.READ_ONLY_MODES
        with self.locks.hold(volume_id):
            rec = self.store.get(volume_id)
            if rec is None:
                raise FailedPrecondition(f"volume {volume_id} is not staged on this node")
            if rec.staging_path != staging:
                raise FailedPrecondition(f"volume {volume_id} is staged at {rec.staging_path}, not {staging}")
            if rec.access_type != ("block" if is_block else "mount"):
                raise InvalidArgument(
                    f"volume {volume_id} was staged as {rec.access_type}; cannot publish it as "
                    f"{'block' if is_block else 'mount'}"
                )
            current = mount_at(target_path)
            if current is not None:
                if rec.published.get(target_path) is not None and rec.published[target_path] != readonly:
                    raise AlreadyExists(
                        f"{target_path} is already published with readonly={rec.published[target_path]}"
                    )
                return csi_pb2.NodePublishVolumeResponse()
            if cap.access_mode.mode == AccessMode.SINGLE_NODE_SINGLE_WRITER:
                busy = [p for p in rec.published if p != target_path and mount_at(p) is not None]
                if busy:
                    raise FailedPrecondition(
                        f"volume {volume_id} has access mode SINGLE_NODE_SINGLE_WRITER and is "
                        f"already published at {busy[0]}"
                    )
            rec.published[target_path] = readonly
            self.store.put(rec)
            if is_block:
                device = self._device(rec)
                Path(target_path).parent.mkdir(parents=True, exist_ok=True)
                if Path(target_path).is_dir():
                    raise InvalidArgument(
                        f"target_path {target_path} of a block volume is a directory; it must be a file path"
                    )
                Path(target_path).touch(exist_ok=True)
                self.mounter.bind(device, target_path, readonly)
            else:
                if mount_at(rec.staging_path) is None:
                    self._mount_staging(rec, self._device(rec))
                Path(target_path).mkdir(parents=True, exist_ok=True)
                self.mounter.bind(rec.staging_path, target_path, readonly)
            log.info(
                "published", extra={"volume_id": volume_id, "target_path": target_path, "readonly": readonly}
            )
        return csi_pb2.NodePublishVolumeResponse()

    def NodeUnpublishVolume(self, request, context):
        volume_id = _require(request.volume_id, "volume_id")
        target_path = _require(request.target_path, "target_path")
        with self.locks.hold(volume_id):
            self.mounter.umount(target_path)
            p = Path(target_path)
            if p.is_dir() and not p.is_symlink():
                with contextlib.suppress(FileNotFoundError):
                    p.rmdir()
            else:
                p.unlink(missing_ok=True)
            rec = self.store.get(volume_id)
            if rec is not None and target_path in rec.published:
                del rec.published[target_path]
                self.store.put(rec)
        return csi_pb2.NodeUnpublishVolumeResponse()

    # ---- stats / expand -------------------------------------------------------------------

    def _located(self, volume_id: str, path: str) -> StagedVolume:
        rec = self.store.get(volume_id)
        if rec is None:
            raise NotFound(f"volume {volume_id} is not staged on this node")
        if not os.path.exists(path):
            raise NotFound(f"volume path {path} does not exist")
        known = {os.path.realpath(p) for p in (rec.staging_path, *rec.published)}
        if os.path.realpath(path) not in known:
            raise NotFound(f"volume {volume_id} is not staged or published at {path}")
        return rec

    def NodeGetVolumeStats(self, request, context):
        volume_id = _require(request.volume_id, "volume_id")
        path = _require(request.volume_path, "volume_path")
        rec = self._located(volume_id, path)
        device = self.backend.find_device(rec.attach_target())
        problems = []
        if device is None:
            problems.append("the volume's block device is not attached")
        usage: list[csi_pb2.VolumeUsage] = []
        st = os.stat(path)
        if stat.S_ISBLK(st.st_mode) or rec.access_type == "block":
            if mount_at(path) is None and path != rec.staging_path:
                problems.append(f"{path} is not bind-mounted to the device")
            total = self.mounter.device_size(device) if device else 0
            usage.append(csi_pb2.VolumeUsage(unit=csi_pb2.VolumeUsage.BYTES, total=total))
        else:
            if mount_at(path) is None:
                problems.append(f"{path} is not mounted")
            vfs = os.statvfs(path)
            usage.append(
                csi_pb2.VolumeUsage(
                    unit=csi_pb2.VolumeUsage.BYTES,
                    total=vfs.f_blocks * vfs.f_frsize,
                    available=vfs.f_bavail * vfs.f_frsize,
                    used=(vfs.f_blocks - vfs.f_bfree) * vfs.f_frsize,
                )
            )
            usage.append(
                csi_pb2.VolumeUsage(
                    unit=csi_pb2.VolumeUsage.INODES,
                    total=vfs.f_files,
                    available=vfs.f_favail,
                    used=vfs.f_files - vfs.f_ffree,
                )
            )
        condition = csi_pb2.VolumeCondition(
            abnormal=bool(problems), message="; ".join(problems) if problems else "healthy"
        )
        return csi_pb2.NodeGetVolumeStatsResponse(usage=usage, volume_condition=condition)

    def NodeExpandVolume(self, request, context):
        volume_id = _require(request.volume_id, "volume_id")
        path = _require(request.volume_path, "volume_path")
        rec = self._located(volume_id, path)
        if request.HasField("volume_capability"):
            capability.require_supported(request.volume_capability)
        with self.locks.hold(volume_id):
            target = rec.attach_target()
            self.backend.rescan(target)
            device = self._device(rec)
            size = self.mounter.device_size(device)
            # The request may carry no capability: a block target is recognised by stat.
            is_block = stat.S_ISBLK(os.stat(path).st_mode) or rec.access_type == "block"
            if not is_block:
                mount_point = path if mount_at(path) is not None else rec.staging_path
                self.mounter.grow_fs(device, mount_point, self.mounter.fs_type(device) or rec.fs_type)
            required = request.capacity_range.required_bytes if request.HasField("capacity_range") else 0
            if required and size < required:
                raise FailedPrecondition(
                    f"device of volume {volume_id} is {size} bytes after rescan, "
                    f"less than the requested {required}: expand it on the controller first"
                )
        return csi_pb2.NodeExpandVolumeResponse(capacity_bytes=size)

    # ---- info -----------------------------------------------------------------------------

    def NodeGetCapabilities(self, request, context):
        caps = [
            NodeCap.STAGE_UNSTAGE_VOLUME,
            NodeCap.GET_VOLUME_STATS,
            NodeCap.EXPAND_VOLUME,
            NodeCap.VOLUME_CONDITION,
            NodeCap.SINGLE_NODE_MULTI_WRITER,
        ]
        return csi_pb2.NodeGetCapabilitiesResponse(
            capabilities=[
                csi_pb2.NodeServiceCapability(rpc=csi_pb2.NodeServiceCapability.RPC(type=c)) for c in caps
            ]
        )

    def NodeGetInfo(self, request, context):
        return csi_pb2.NodeGetInfoResponse(
            node_id=self.cfg.node_id, max_volumes_per_node=self.cfg.max_volumes_per_node
        )

    # ---- restart --------------------------------------------------------------------------

    def recover(self) -> list[str]:
        """Re-attach and re-mount every persisted staged volume; return the problems found."""
        problems = []
        for rec in self.store.all():
            try:
                device = self._attach(rec)
                if rec.access_type == "mount":
                    self._mount_staging(rec, device)
                for target_path, readonly in rec.published.items():
                    if mount_at(target_path) is not None:
                        continue
                    if rec.access_type == "block":
                        Path(target_path).parent.mkdir(parents=True, exist_ok=True)
                        Path(target_path).touch(exist_ok=True)
                        self.mounter.bind(device, target_path, readonly)
                    else:
                        Path(target_path).mkdir(parents=True, exist_ok=True)
                        self.mounter.bind(rec.staging_path, target_path, readonly)
                log.info("re-staged after restart", extra={"volume_id": rec.volume_id, "device": device})
            except Exception as exc:
                problems.append(f"{rec.volume_id}: {exc}")
                log.error("could not re-stage", extra={"volume_id": rec.volume_id, "error": str(exc)})
        return problems
