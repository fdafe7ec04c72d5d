"""CSI Controller service over the VMS block API (through ``vms_client``).

Model:
* a CSI volume is a VMS block volume named ``/<volume group>/<hashed name>`` in a block
  subsystem (a VMS view with protocol BLOCK); its CSI id is ``<vms id>:<uuid>``;
* a CSI snapshot is a VMS snapshot of the path ``<view path>/<volume name>/``; its id is
  ``<vms id>:<name digest>``;
* the node registry is the VMS block hosts: a node id is the node's host NQN. ControllerPublish
  uses the block host with that NQN, creating it (deterministic name) when the id is a valid NQN;
  anything that is not an NQN is NOT_FOUND - a node that is not an NVMe host cannot exist.

Every create is idempotent by deterministic backend name (looked up before creating; a
uniqueness clash from a concurrent creator is answered by looking up again), so a retry after a
failure or a crash finishes the job instead of making a second object.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from google.protobuf import timestamp_pb2, wrappers_pb2

from csi_block_driver import capability, hostnqn, naming, params
from csi_block_driver import publish_context as pc
from csi_block_driver.errors import (
    Aborted,
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    OutOfRange,
    ResourceExhausted,
    Unavailable,
)
from csi_block_driver.locks import KeyedMutex, VolumeLocks
from csi_block_driver.proto import csi_pb2, csi_pb2_grpc
from vms_client import VmsClient
from vms_client import errors as vms
from vms_client.models import BlockHost, Snapshot, View, Volume

log = logging.getLogger(__name__)

Cap = csi_pb2.ControllerServiceCapability.RPC
ALIGN = 4096
MAX_TARGETS = 8
_CLONE_TMP = "clonetmp"


@dataclass
class ControllerConfig:
    subsystem: str = "csi-block"
    volume_group: str = "csi"
    name_prefix: str = "csi"
    vip_pool: str | None = None
    target_addresses: list[str] = field(default_factory=list)
    nvme_port: int = 4420
    default_size: int = 1 << 30
    vtask_timeout: float = 60.0
    max_volumes_per_node: int = 0


def _require(value: str, name: str) -> str:
    if not value:
        raise InvalidArgument(f"{name} is required")
    return value


_BANNED = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _csi_name(value: str) -> str:
    """A CSI name: required, without the control characters the spec bans."""
    _require(value, "name")
    if _BANNED.search(value):
        raise InvalidArgument("name contains a control character the CSI spec does not allow")
    return value


def size_for(cap_range: csi_pb2.CapacityRange | None, default: int) -> int:
    """The size to provision for a capacity range (CSI rules), aligned to 4 KiB."""
    required = cap_range.required_bytes if cap_range else 0
    limit = cap_range.limit_bytes if cap_range else 0
    if required < 0 or limit < 0:
        raise InvalidArgument("capacity_range: required_bytes and limit_bytes must not be negative")
    if limit and required > limit:
        raise InvalidArgument(f"capacity_range: required_bytes {required} exceeds limit_bytes {limit}")
    size = required or (min(default, limit) if limit else default)
    aligned = -(-size // ALIGN) * ALIGN
    if limit and aligned > limit:
        aligned = limit // ALIGN * ALIGN
        if aligned < max(required, 1):
            raise OutOfRange(f"capacity_range: no multiple of {ALIGN} bytes lies in [{required}, {limit}]")
    return aligned


def fits(size: int, cap_range: csi_pb2.CapacityRange | None) -> bool:
    if cap_range is None:
        return True
    if cap_range.required_bytes and size < cap_range.required_bytes:
        return False
    return not (cap_range.limit_bytes and size > cap_range.limit_bytes)


def _timestamp(value: datetime | None) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime((value or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None))
    return ts


def _addresses(ip_ranges: list[list[str]], port: int) -> list[str]:
    out: list[str] = []
    for rng in ip_ranges:
        if not rng:
            continue
        start = int(ipaddress.ip_address(rng[0]))
        end = int(ipaddress.ip_address(rng[-1]))
        version = ipaddress.ip_address(rng[0]).version
        for n in range(start, min(end, start + MAX_TARGETS) + 1):
            if len(out) >= MAX_TARGETS:
                break
            ip = ipaddress.ip_address(n) if version == 4 else ipaddress.IPv6Address(n)
            out.append(f"[{ip}]:{port}" if version == 6 else f"{ip}:{port}")
    return out


class ControllerService(csi_pb2_grpc.ControllerServicer):
    def __init__(
        self, client: VmsClient, config: ControllerConfig, probe_client: VmsClient | None = None
    ) -> None:
        self.vms = client
        # Probe answers fast: its own client does not retry an unreachable VMS for minutes.
        self.probe_vms = probe_client or client
        self.cfg = config
        self.name_locks = KeyedMutex()
        self.volume_locks = VolumeLocks()
        self._cache_lock = threading.Lock()
        self._views: dict[tuple[str, str | None], View] = {}
        self._tenants: dict[str, int] = {}
        self._views_by_id: dict[int, View] = {}

    # ---- readiness ------------------------------------------------------------------------

    def probe(self) -> list[str]:
        try:
            self.probe_vms.versions.current()
        except vms.VmsError as exc:
            return [f"VMS is not reachable: {exc}"]
        return []

    # ---- lookups --------------------------------------------------------------------------

    def _tenant_id(self, tenant: str | None) -> int | None:
        if not tenant:
            return None
        with self._cache_lock:
            if tenant in self._tenants:
                return self._tenants[tenant]
        found = self.vms.tenants.find_one(name=tenant)
        if found is None:
            raise InvalidArgument(f"parameters.tenant: tenant {tenant!r} does not exist on the VMS")
        with self._cache_lock:
            self._tenants[tenant] = found.id
        return found.id

    def _view(self, subsystem: str, tenant: str | None) -> View:
        key = (subsystem, tenant)
        with self._cache_lock:
            if key in self._views:
                return self._views[key]
        filters: dict[str, Any] = {"name": subsystem}
        tenant_id = self._tenant_id(tenant)
        if tenant_id is not None:
            filters["tenant_id"] = tenant_id
        try:
            view = self.vms.views.find_one(**filters)
        except vms.MultipleFound as exc:
            raise InvalidArgument(
                f"parameters.subsystem: {subsystem!r} is ambiguous; name the tenant too"
            ) from exc
        if view is None or not view.nqn:
            raise InvalidArgument(
                f"parameters.subsystem: no block subsystem (BLOCK view) named {subsystem!r}"
                + (f" in tenant {tenant!r}" if tenant else "")
            )
        with self._cache_lock:
            self._views[key] = view
        return view

    def _view_by_id(self, view_id: int | None) -> View:
        if view_id is None:
            raise FailedPrecondition("volume has no subsystem")
        with self._cache_lock:
            if view_id in self._views_by_id:
                return self._views_by_id[view_id]
        view = self.vms.views.get(view_id)
        with self._cache_lock:
            self._views_by_id[view_id] = view
        return view

    def _qos_id(self, name: str | None) -> int | None:
        if not name:
            return None
        policy = self.vms.qospolicies.find_one(name=name)
        if policy is None:
            raise InvalidArgument(f"qosPolicy: QoS policy {name!r} does not exist on the VMS")
        return policy.id

    def _volume(self, volume_id: str) -> Volume:
        """The VMS volume of a CSI volume id; NotFound for malformed ids and stale ids."""
        parsed = naming.parse_volume_id(volume_id)
        if parsed is None:
            raise NotFound(f"volume {volume_id!r} does not exist (not an id of this driver)")
        vms_id, uuid = parsed
        try:
            vol = self.vms.volumes.get(vms_id)
        except vms.NotFound:
            raise NotFound(f"volume {volume_id} does not exist") from None
        if (vol.uuid or "").lower() != uuid:
            raise NotFound(f"volume {volume_id} does not exist (id reused by another volume)")
        return vol

    def _snapshot(self, snapshot_id: str) -> Snapshot:
        parsed = naming.parse_snapshot_id(snapshot_id)
        if parsed is None:
            raise NotFound(f"snapshot {snapshot_id!r} does not exist (not an id of this driver)")
        vms_id, dig = parsed
        try:
            snap = self.vms.snapshots.get(vms_id)
        except vms.NotFound:
            raise NotFound(f"snapshot {snapshot_id} does not exist") from None
        if not (snap.name or "").endswith(dig):
            raise NotFound(f"snapshot {snapshot_id} does not exist (id reused)")
        return snap

    def _csi_volume(
        self, vol: Volume, content: csi_pb2.VolumeContentSource | None = None, fs_type: str = ""
    ) -> csi_pb2.Volume:
        context = {"subsystem": vol.subsystem_name or "", pc.UUID: vol.uuid or ""}
        if fs_type:
            context[params.FS_TYPE] = fs_type
        out = csi_pb2.Volume(
            capacity_bytes=vol.size or 0,
            volume_id=naming.volume_id(vol.id, vol.uuid or ""),
            volume_context=context,
        )
        if content is not None and content.WhichOneof("type"):
            out.content_source.CopyFrom(content)
        return out

    @staticmethod
    def _snapshot_path(view: View, vol: Volume) -> str:
        return (view.path or "/").rstrip("/") + "/" + (vol.name or "").strip("/") + "/"

    # ---- CreateVolume ---------------------------------------------------------------------

    def CreateVolume(self, request, context):
        name = _csi_name(request.name)
        capability.require_all_supported(request.volume_capabilities)
        p = params.volume_params(
            request.parameters,
            request.mutable_parameters,
            default_subsystem=self.cfg.subsystem,
            default_group=self.cfg.volume_group,
        )
        if p.fs_type:
            for i, cap in enumerate(request.volume_capabilities):
                if (
                    cap.WhichOneof("access_type") == "mount"
                    and cap.mount.fs_type
                    and cap.mount.fs_type != p.fs_type
                ):
                    raise InvalidArgument(
                        f"volume_capabilities[{i}].mount.fs_type {cap.mount.fs_type!r} "
                        f"contradicts parameters.fsType {p.fs_type!r}"
                    )
        cap_range = request.capacity_range if request.HasField("capacity_range") else None
        size = size_for(cap_range, self.cfg.default_size)
        view = self._view(p.subsystem, p.tenant)
        qos_id = self._qos_id(p.qos_policy)
        backend = naming.backend_name(self.cfg.name_prefix, name)
        vol_name = naming.volume_path(p.volume_group, backend)
        source = request.volume_content_source if request.HasField("volume_content_source") else None
        with self.name_locks.hold(f"volume:{view.id}:{vol_name}"):
            existing = self.vms.volumes.find_one(name=vol_name, view_id=view.id)
            if existing is None:
                existing = self._create(view, vol_name, backend, size, cap_range, qos_id, source)
            else:
                existing = self._finish_existing(existing, view, backend, cap_range, source)
            if not fits(existing.size or 0, cap_range):
                raise AlreadyExists(
                    f"volume {name!r} already exists with {existing.size} bytes, which does not "
                    f"fit the requested capacity range"
                )
        log.info("volume ready", extra={"csi_name": name, "volume_id": existing.id, "size": existing.size})
        return csi_pb2.CreateVolumeResponse(volume=self._csi_volume(existing, source, p.fs_type))

    def _create(
        self,
        view: View,
        vol_name: str,
        backend: str,
        size: int,
        cap_range: csi_pb2.CapacityRange | None,
        qos_id: int | None,
        source: csi_pb2.VolumeContentSource | None,
    ) -> Volume:
        try:
            if source is None or source.WhichOneof("type") is None:
                vol = self.vms.volumes.create(name=vol_name, view_id=view.id, size=size, qos_policy_id=qos_id)
            else:
                vol = self._clone(view, vol_name, backend, cap_range, source)
                if qos_id is not None:
                    vol = self.vms.volumes.update(vol.id, qos_policy_id=qos_id)
        except vms.Conflict:
            # A concurrent creator (another replica, or a retry racing a slow first call) won.
            vol_found = self.vms.volumes.find_one(name=vol_name, view_id=view.id)
            if vol_found is None:
                raise
            vol = vol_found
        return vol

    def _clone(
        self,
        view: View,
        vol_name: str,
        backend: str,
        cap_range: csi_pb2.CapacityRange | None,
        source: csi_pb2.VolumeContentSource,
    ) -> Volume:
        """A new volume with the source's data, at least the source's size (CSI: required <= size <=
        limit); without a capacity range it keeps the source's size."""
        limit = cap_range.limit_bytes if cap_range else 0
        if source.WhichOneof("type") == "snapshot":
            snap_id = _require(source.snapshot.snapshot_id, "volume_content_source.snapshot.snapshot_id")
            snap = self._snapshot(snap_id)
            vol = self.vms.snapshots.clone_volume(
                snap.id, target_subsystem_id=view.id, target_volume_path=vol_name
            )
            if limit and (vol.size or 0) > limit:
                # Only now is the snapshot's size known: undo, so nothing is left behind.
                self.vms.volumes.delete(vol.id, missing_ok=True, force=True)
                raise OutOfRange(f"snapshot {snap_id} holds {vol.size} bytes, more than limit_bytes {limit}")
        else:
            src_id = _require(source.volume.volume_id, "volume_content_source.volume.volume_id")
            src = self._volume(src_id)
            if limit and (src.size or 0) > limit:
                raise OutOfRange(
                    f"source volume {src_id} has {src.size} bytes, more than limit_bytes {limit}"
                )
            src_view = self._view_by_id(src.view_id)
            tmp = self._clone_tmp_snapshot(backend, src_view, src)
            try:
                vol = self.vms.snapshots.clone_volume(
                    tmp.id, target_subsystem_id=view.id, target_volume_path=vol_name
                )
            finally:
                self.vms.snapshots.delete(tmp.id, missing_ok=True)
        required = cap_range.required_bytes if cap_range else 0
        if required and (vol.size or 0) < required:
            vol = self.vms.volumes.update(vol.id, size=size_for(cap_range, required))
        return vol

    def _clone_tmp_snapshot(self, backend: str, view: View, src: Volume) -> Snapshot:
        """The transient snapshot a volume clone is made from; deterministic so a retry reuses it."""
        name = f"{self.cfg.name_prefix}-{_CLONE_TMP}-{backend.rsplit('-', 1)[-1]}"
        path = self._snapshot_path(view, src)
        existing = self.vms.snapshots.find_one(name=name)
        if existing is not None and existing.path == path:
            return existing
        if existing is not None:
            self.vms.snapshots.delete(existing.id, missing_ok=True)
        try:
            return self.vms.snapshots.create(name=name, path=path, tenant_id=view.tenant_id)
        except vms.Conflict:
            again = self.vms.snapshots.find_one(name=name)
            if again is None:
                raise
            return again

    def _finish_existing(
        self,
        vol: Volume,
        view: View,
        backend: str,
        cap_range: csi_pb2.CapacityRange | None,
        source: csi_pb2.VolumeContentSource | None,
    ) -> Volume:
        """Complete what an interrupted create of this name left undone (clone resize, temp snapshot)."""
        if source is not None and source.WhichOneof("type"):
            tmp = self.vms.snapshots.find_one(
                name=f"{self.cfg.name_prefix}-{_CLONE_TMP}-{backend.rsplit('-', 1)[-1]}"
            )
            if tmp is not None:
                self.vms.snapshots.delete(tmp.id, missing_ok=True)
            required = cap_range.required_bytes if cap_range else 0
            if required and (vol.size or 0) < required and fits(size_for(cap_range, required), cap_range):
                vol = self.vms.volumes.update(vol.id, size=size_for(cap_range, required))
        return vol

    # ---- DeleteVolume ---------------------------------------------------------------------

    def DeleteVolume(self, request, context):
        volume_id = _require(request.volume_id, "volume_id")
        with self.volume_locks.hold(volume_id):
            try:
                vol = self._volume(volume_id)
            except NotFound:
                return csi_pb2.DeleteVolumeResponse()
            # force=true also removes the volume's host mappings, so nothing is left mapped.
            self.vms.volumes.delete(vol.id, missing_ok=True, force=True)
        log.info("volume deleted", extra={"volume_id": volume_id})
        return csi_pb2.DeleteVolumeResponse()

    # ---- publish --------------------------------------------------------------------------

    def _host(self, node_id: str, tenant_id: int | None, create: bool) -> BlockHost | None:
        host = self.vms.blockhosts.find_one(nqn=node_id)
        if host is not None or not create:
            return host
        if not hostnqn.is_valid_nqn(node_id):
            raise NotFound(f"node {node_id!r} does not exist: node ids of this driver are NVMe host NQNs")
        name = naming.backend_name(f"{self.cfg.name_prefix}-host", node_id)
        try:
            return self.vms.blockhosts.create(name=name, nqn=node_id, tenant_id=tenant_id)
        except vms.Conflict:
            again = self.vms.blockhosts.find_one(nqn=node_id)
            if again is None:
                raise
            return again

    def _targets(self) -> list[str]:
        if self.cfg.target_addresses:
            return list(self.cfg.target_addresses)
        if self.cfg.vip_pool:
            pool = self.vms.vippools.find_one(name=self.cfg.vip_pool)
            if pool is None:
                raise Unavailable(f"VIP pool {self.cfg.vip_pool!r} does not exist on the VMS")
            return _addresses(pool.ip_ranges, self.cfg.nvme_port)
        return []

    def _mapped_hosts(self, vol_id: int) -> list[int]:
        return [m.block_host.id for m in self.vms.blockhostvolumes.list(volume__id=vol_id)]

    def ControllerPublishVolume(self, request, context):
        volume_id = _require(request.volume_id, "volume_id")
        node_id = _require(request.node_id, "node_id")
        if not request.HasField("volume_capability"):
            raise InvalidArgument("volume_capability is required")
        capability.require_supported(request.volume_capability)
        with self.volume_locks.hold(volume_id):
            vol = self._volume(volume_id)
            view = self._view_by_id(vol.view_id)
            host = self._host(node_id, vol.tenant_id, create=True)
            assert host is not None
            mapped = self._mapped_hosts(vol.id)
            if host.id not in mapped and self.cfg.max_volumes_per_node:
                on_host = self.vms.blockhostvolumes.list(block_host__id=host.id)
                if len(on_host) >= self.cfg.max_volumes_per_node:
                    raise ResourceExhausted(
                        f"node {node_id} already has {len(on_host)} volumes attached "
                        f"(limit {self.cfg.max_volumes_per_node})"
                    )
            if host.id not in mapped:
                others = [h for h in mapped if h != host.id]
                if others and request.volume_capability.access_mode.mode in capability.SINGLE_NODE_MODES:
                    raise FailedPrecondition(
                        f"volume {volume_id} has a single-node access mode and is already "
                        f"published to another node (block host {others[0]})"
                    )
                self.vms.blockhostvolumes.bulk_add([(host.id, vol.id)], wait=self.cfg.vtask_timeout)
        ctx = {
            pc.SUBSYSTEM_NQN: view.nqn or "",
            pc.NGUID: vol.nguid or "",
            pc.UUID: vol.uuid or "",
            pc.TARGETS: ",".join(self._targets()),
            pc.HOST_NQN: node_id,
        }
        log.info("volume published", extra={"volume_id": volume_id, "node_id": node_id})
        return csi_pb2.ControllerPublishVolumeResponse(publish_context=ctx)

    def ControllerUnpublishVolume(self, request, context):
        volume_id = _require(request.volume_id, "volume_id")
        with self.volume_locks.hold(volume_id):
            try:
                vol = self._volume(volume_id)
            except NotFound:
                return csi_pb2.ControllerUnpublishVolumeResponse()
            if request.node_id:
                host = self._host(request.node_id, vol.tenant_id, create=False)
                hosts = [host.id] if host is not None else []
            else:  # no node: unpublish from every node
                hosts = self._mapped_hosts(vol.id)
            pairs = [(h, vol.id) for h in hosts if h in self._mapped_hosts(vol.id)]
            if pairs:
                self.vms.blockhostvolumes.bulk_remove(pairs, wait=self.cfg.vtask_timeout)
        return csi_pb2.ControllerUnpublishVolumeResponse()

    # ---- validate / list / get ------------------------------------------------------------

    def ValidateVolumeCapabilities(self, request, context):
        volume_id = _require(request.volume_id, "volume_id")
        if not request.volume_capabilities:
            raise InvalidArgument("volume_capabilities is required")
        self._volume(volume_id)
        params.check_keys(request.parameters, params.VOLUME_KEYS, "parameters")
        params.check_keys(request.mutable_parameters, params.MUTABLE_KEYS, "mutable_parameters")
        reasons = [r for r in (capability.unsupported_reason(c) for c in request.volume_capabilities) if r]
        if reasons:
            return csi_pb2.ValidateVolumeCapabilitiesResponse(message="; ".join(reasons))
        confirmed = csi_pb2.ValidateVolumeCapabilitiesResponse.Confirmed(
            volume_context=request.volume_context,
            volume_capabilities=request.volume_capabilities,
            parameters=request.parameters,
            mutable_parameters=request.mutable_parameters,
        )
        return csi_pb2.ValidateVolumeCapabilitiesResponse(confirmed=confirmed)

    def _our_volumes(self) -> list[Volume]:
        vols = [
            v
            for v in self.vms.volumes.list()
            if naming.is_backend_name(self.cfg.name_prefix, (v.name or "").rsplit("/", 1)[-1])
        ]
        return sorted(vols, key=lambda v: v.id)

    def _published(self) -> dict[int, list[str]]:
        hosts = {h.id: h.nqn or "" for h in self.vms.blockhosts.list()}
        out: dict[int, list[str]] = {}
        for m in self.vms.blockhostvolumes.list():
            if m.block_host.id in hosts:
                out.setdefault(m.volume.id, []).append(hosts[m.block_host.id])
        return out

    @staticmethod
    def _page(items: list[Any], max_entries: int, token: str) -> tuple[list[Any], str]:
        if max_entries < 0:
            raise InvalidArgument("max_entries must not be negative")
        start = 0
        if token:
            if not token.isdigit() or int(token) > len(items):
                raise Aborted(
                    f"starting_token {token!r} is not valid (the list may have changed); start over"
                )
            start = int(token)
        end = len(items) if max_entries == 0 else min(len(items), start + max_entries)
        return items[start:end], (str(end) if end < len(items) else "")

    def ListVolumes(self, request, context):
        vols = self._our_volumes()
        page, next_token = self._page(vols, request.max_entries, request.starting_token)
        published = self._published()
        entries = [
            csi_pb2.ListVolumesResponse.Entry(
                volume=self._csi_volume(v),
                status=csi_pb2.ListVolumesResponse.VolumeStatus(
                    published_node_ids=sorted(published.get(v.id, [])),
                    volume_condition=csi_pb2.VolumeCondition(abnormal=False, message="healthy"),
                ),
            )
            for v in page
        ]
        return csi_pb2.ListVolumesResponse(entries=entries, next_token=next_token)

    def ControllerGetVolume(self, request, context):
        volume_id = _require(request.volume_id, "volume_id")
        vol = self._volume(volume_id)
        nodes = sorted(self._published().get(vol.id, []))
        condition = csi_pb2.VolumeCondition(abnormal=False, message="healthy")
        if not vol.size:
            condition = csi_pb2.VolumeCondition(
                abnormal=True, message="the VMS reports no size for the volume"
            )
        return csi_pb2.ControllerGetVolumeResponse(
            volume=self._csi_volume(vol),
            status=csi_pb2.ControllerGetVolumeResponse.VolumeStatus(
                published_node_ids=nodes, volume_condition=condition
            ),
        )

    def GetCapacity(self, request, context):
        params.check_keys(request.parameters, params.VOLUME_KEYS, "parameters")
        for cap in request.volume_capabilities:
            if capability.unsupported_reason(cap):
                return csi_pb2.GetCapacityResponse(available_capacity=0)
        cap = self.vms.clusters.capacity()
        free = max(0, cap.free_bytes)
        return csi_pb2.GetCapacityResponse(
            available_capacity=free,
            maximum_volume_size=wrappers_pb2.Int64Value(value=free),
            minimum_volume_size=wrappers_pb2.Int64Value(value=ALIGN),
        )

    def ControllerGetCapabilities(self, request, context):
        caps = [
            Cap.CREATE_DELETE_VOLUME,
            Cap.PUBLISH_UNPUBLISH_VOLUME,
            Cap.LIST_VOLUMES,
            Cap.GET_CAPACITY,
            Cap.CREATE_DELETE_SNAPSHOT,
            Cap.LIST_SNAPSHOTS,
            Cap.CLONE_VOLUME,
            Cap.EXPAND_VOLUME,
            Cap.LIST_VOLUMES_PUBLISHED_NODES,
            Cap.VOLUME_CONDITION,
            Cap.GET_VOLUME,
            Cap.SINGLE_NODE_MULTI_WRITER,
            Cap.MODIFY_VOLUME,
            Cap.GET_SNAPSHOT,
        ]
        return csi_pb2.ControllerGetCapabilitiesResponse(
            capabilities=[
                csi_pb2.ControllerServiceCapability(rpc=csi_pb2.ControllerServiceCapability.RPC(type=c))
                for c in caps
            ]
        )

    # ---- expand / modify ------------------------------------------------------------------

    def ControllerExpandVolume(self, request, context):
        volume_id = _require(request.volume_id, "volume_id")
        if not request.HasField("capacity_range"):
            raise InvalidArgument("capacity_range is required")
        if request.HasField("volume_capability"):
            capability.require_supported(request.volume_capability)
        with self.volume_locks.hold(volume_id):
            vol = self._volume(volume_id)
            current = vol.size or 0
            cap_range = request.capacity_range
            if cap_range.limit_bytes and current > cap_range.limit_bytes:
                raise OutOfRange(
                    f"volume {volume_id} already has {current} bytes, more than limit_bytes "
                    f"{cap_range.limit_bytes}; volumes cannot shrink"
                )
            target = size_for(cap_range, current)
            if target > current:
                vol = self.vms.volumes.update(vol.id, size=target)
        # Always true: a filesystem must be grown and a raw device rescanned (loop: set-capacity,
        # NVMe: namespace rescan) on the node before the new size is visible there.
        return csi_pb2.ControllerExpandVolumeResponse(
            capacity_bytes=vol.size or 0, node_expansion_required=True
        )

    def ControllerModifyVolume(self, request, context):
        volume_id = _require(request.volume_id, "volume_id")
        params.check_keys(request.mutable_parameters, params.MUTABLE_KEYS, "mutable_parameters")
        with self.volume_locks.hold(volume_id):
            vol = self._volume(volume_id)
            if params.QOS_POLICY in request.mutable_parameters:
                qos_id = self._qos_id(request.mutable_parameters[params.QOS_POLICY])
                if qos_id != vol.qos_policy_id:
                    self.vms.volumes.update(vol.id, qos_policy_id=qos_id)
        return csi_pb2.ControllerModifyVolumeResponse()

    # ---- snapshots ------------------------------------------------------------------------

    def _csi_snapshot(self, snap: Snapshot, source: Volume | None) -> csi_pb2.Snapshot:
        return csi_pb2.Snapshot(
            size_bytes=(source.size or 0) if source else 0,
            snapshot_id=naming.snapshot_id(snap.id, snap.name or ""),
            source_volume_id=naming.volume_id(source.id, source.uuid or "") if source else "",
            creation_time=_timestamp(snap.created),
            ready_to_use=True,
        )

    def CreateSnapshot(self, request, context):
        name = _csi_name(request.name)
        source_id = _require(request.source_volume_id, "source_volume_id")
        params.check_keys(request.parameters, params.SNAPSHOT_KEYS, "parameters")
        vol = self._volume(source_id)
        view = self._view_by_id(vol.view_id)
        backend = naming.backend_name(f"{self.cfg.name_prefix}-snap", name)
        path = self._snapshot_path(view, vol)
        with self.name_locks.hold(f"snapshot:{backend}"):
            snap = self.vms.snapshots.find_one(name=backend)
            if snap is None:
                try:
                    snap = self.vms.snapshots.create(name=backend, path=path, tenant_id=view.tenant_id)
                except vms.Conflict:
                    snap = self.vms.snapshots.find_one(name=backend)
                    if snap is None:
                        raise
            if snap.path != path:
                raise AlreadyExists(f"snapshot {name!r} already exists for another source volume")
        return csi_pb2.CreateSnapshotResponse(snapshot=self._csi_snapshot(snap, vol))

    def DeleteSnapshot(self, request, context):
        snapshot_id = _require(request.snapshot_id, "snapshot_id")
        with self.volume_locks.hold(f"snapshot:{snapshot_id}"):
            try:
                snap = self._snapshot(snapshot_id)
            except NotFound:
                return csi_pb2.DeleteSnapshotResponse()
            self.vms.snapshots.delete(snap.id, missing_ok=True)
        return csi_pb2.DeleteSnapshotResponse()

    def _source_index(self) -> dict[str, Volume]:
        views: dict[int, View] = {}
        out = {}
        for vol in self._our_volumes():
            if vol.view_id not in views:
                views[vol.view_id or 0] = self._view_by_id(vol.view_id)
            out[self._snapshot_path(views[vol.view_id or 0], vol)] = vol
        return out

    def _our_snapshots(self) -> Iterable[Snapshot]:
        prefix = f"{self.cfg.name_prefix}-snap"
        return sorted(
            (s for s in self.vms.snapshots.list() if naming.is_backend_name(prefix, s.name or "")),
            key=lambda s: s.id,
        )

    def ListSnapshots(self, request, context):
        if request.max_entries < 0:
            raise InvalidArgument("max_entries must not be negative")
        if request.snapshot_id:
            try:
                snaps = [self._snapshot(request.snapshot_id)]
            except NotFound:
                return csi_pb2.ListSnapshotsResponse()
        else:
            snaps = list(self._our_snapshots())
        sources = self._source_index()
        if request.source_volume_id:
            try:
                src = self._volume(request.source_volume_id)
            except NotFound:
                return csi_pb2.ListSnapshotsResponse()
            snaps = [
                s
                for s in snaps
                if sources.get(s.path or "") is not None and sources[s.path or ""].id == src.id
            ]
        page, next_token = self._page(snaps, request.max_entries, request.starting_token)
        entries = [
            csi_pb2.ListSnapshotsResponse.Entry(snapshot=self._csi_snapshot(s, sources.get(s.path or "")))
            for s in page
        ]
        return csi_pb2.ListSnapshotsResponse(entries=entries, next_token=next_token)

    def GetSnapshot(self, request, context):
        snapshot_id = _require(request.snapshot_id, "snapshot_id")
        snap = self._snapshot(snapshot_id)
        return csi_pb2.GetSnapshotResponse(
            snapshot=self._csi_snapshot(snap, self._source_index().get(snap.path or ""))
        )
