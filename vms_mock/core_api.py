"""Read-only façade of the emulator's state for the storage-core services (S3 and NVMe/TCP).

The S3 endpoint (``vms_mock/s3/``) and the NVMe/TCP target (``vms_mock/nvmet/``) run in the same
process as the REST API and ask this object - never the database - what exists: access keys,
bucket views, policies, subsystems, host mappings and namespaces. Every method is thread-safe
(the store serialises access) and returns frozen dataclasses, so callers cannot change state
behind the API's back. The only write is :meth:`StorageCore.report_s3_usage`, which keeps the
cluster's capacity accounting honest.

Change notification: :meth:`change_seq` is an integer that grows on every committed mutation
of an object (poll it cheaply; the byte counters of :meth:`report_s3_usage` do not move it);
:meth:`subscribe` registers a callback ``cb(event, payload)`` called after commit, in the
thread that committed, for the events listed in ``EVENTS``. Callbacks must be
quick and must not raise (exceptions are logged and swallowed); hand work to your own loop with
``loop.call_soon_threadsafe``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vms_mock.store import Store

# Event names delivered to subscribers, with their payload keys.
VOLUME_CREATED = "volume.created"  # {volume_id, uuid, view_id, size}
VOLUME_RESIZED = "volume.resized"  # {volume_id, uuid, view_id, size}
VOLUME_DELETED = "volume.deleted"  # {volume_id, uuid, view_id}
MAPPING_CHANGED = "mapping.changed"  # {host_id, host_nqn, volume_id, subsystem_nqn, mapped: bool}
VIEW_CHANGED = "view.changed"  # {view_id, deleted: bool}
ACCESS_KEY_CHANGED = "access_key.changed"  # {user_id, access_key, deleted: bool}
FOLDER_DELETED = "folder.deleted"  # {path}
EVENTS = (VOLUME_CREATED, VOLUME_RESIZED, VOLUME_DELETED, MAPPING_CHANGED, VIEW_CHANGED,
          ACCESS_KEY_CHANGED, FOLDER_DELETED)

# meta keys of the capacity accounting (bytes)
META_BLOCK_BYTES = "capacity.block_bytes"  # provisioned volume sizes + snapshot copies
META_S3_BYTES = "capacity.s3_bytes"  # bytes the S3 endpoint reports as stored
S3_USAGE_FLUSH = 0.2  # seconds an S3 byte count may wait before it is written (report_s3_usage)


class CapacityExceeded(Exception):
    """An allocation would exceed the storage core's capacity (the API answers 507)."""


@dataclass(frozen=True)
class AccessKeyRecord:
    access_key: str
    secret_key: str
    user_id: int
    user_name: str
    tenant_id: int
    enabled: bool
    s3_superuser: bool = False
    allow_create_bucket: bool = False
    allow_delete_bucket: bool = False

    def __repr__(self) -> str:  # never show the secret
        return (f"AccessKeyRecord(access_key={self.access_key!r}, user_id={self.user_id}, "
                f"user_name={self.user_name!r}, tenant_id={self.tenant_id}, enabled={self.enabled})")


@dataclass(frozen=True)
class BucketView:
    view_id: int
    bucket: str
    path: str
    tenant_id: int
    bucket_owner: str | None
    s3_versioning: bool
    s3_locks: bool
    default_retention_mode: str | None  # "GOVERNANCE" / "COMPLIANCE" / None
    default_retention_days: int | None
    quota_hard_limit: int | None  # hard_limit of a quota whose path equals the view path


@dataclass(frozen=True)
class Subsystem:
    nqn: str
    view_id: int
    name: str
    tenant_id: int


@dataclass(frozen=True)
class Namespace:
    nsid: int
    volume_id: int
    nguid: str  # 32 lowercase hex digits
    uuid: str  # canonical 8-4-4-4-12 form
    size: int  # bytes
    backing_path: Path


def parse_retention_days(period: str | None) -> int | None:
    """VAST retention periods are ``<N>d`` or ``<N>y`` (also ``<N>m`` = 30 days)."""
    if not period:
        return None
    n, unit = int(period[:-1]), period[-1]
    return n * {"d": 1, "m": 30, "y": 365}[unit]


class StorageCore:
    """Typed, thread-safe, read-mostly view of the emulator's state (see module docstring)."""

    def __init__(self, store: Store, data_dir: Path, capacity: int) -> None:
        self.store = store
        self.data_dir = data_dir
        self.capacity = capacity
        self.block_dir = data_dir / "block"
        self.snapshot_dir = data_dir / "snapshots"
        self.fs_dir = data_dir / "fs"
        for d in (self.block_dir, self.snapshot_dir, self.fs_dir):
            d.mkdir(parents=True, exist_ok=True)
        self._used_cache: tuple[int, int] | None = None  # (store.write_seq, used bytes)
        self._s3_pending = 0  # S3 bytes counted but not yet written to the database
        self._s3_flush: threading.Timer | None = None
        self._s3_flush_lock = threading.Lock()

    # ---- change notification ------------------------------------------------------------------
    def change_seq(self) -> int:
        return self.store.change_seq

    def subscribe(self, callback: Callable[[str, dict[str, Any]], None]) -> None:
        self.store.subscribe(callback)

    # ---- S3 -----------------------------------------------------------------------------------
    def lookup_access_key(self, access_key: str) -> AccessKeyRecord | None:
        row = self.store.access_key(access_key)
        if row is None:
            return None
        user = self.store.get("users", int(row["user_id"]))
        if user is None:
            return None
        return AccessKeyRecord(
            access_key=row["access_key"], secret_key=row["secret"], user_id=int(user["id"]),
            user_name=user["name"], tenant_id=int(user["tenant_id"]),
            enabled=row["status"] == "enabled", s3_superuser=bool(user.get("s3_superuser")),
            allow_create_bucket=bool(user.get("allow_create_bucket")),
            allow_delete_bucket=bool(user.get("allow_delete_bucket")),
        )

    def get_bucket_view(self, bucket: str) -> BucketView | None:
        views, _ = self.store.find("views", [("bucket", "exact", bucket)], limit=1)
        if not views:
            return None
        v = views[0]
        quotas, _ = self.store.find(
            "quotas", [("path", "exact", v["path"])], tenant_id=v["tenant_id"], limit=1)
        return BucketView(
            view_id=int(v["id"]), bucket=v["bucket"], path=v["path"], tenant_id=int(v["tenant_id"]),
            bucket_owner=v.get("bucket_owner"), s3_versioning=bool(v.get("s3_versioning")),
            s3_locks=bool(v.get("s3_locks")),
            default_retention_mode=v.get("s3_locks_retention_mode"),
            default_retention_days=parse_retention_days(v.get("s3_locks_retention_period")),
            quota_hard_limit=(quotas[0].get("hard_limit") if quotas else None),
        )

    def list_bucket_views(self, tenant_id: int | None = None) -> list[BucketView]:
        views, _ = self.store.find("views", [("protocols", "contains", '"S3"')], tenant_id=tenant_id)
        out = []
        for v in views:
            if v.get("bucket"):
                bv = self.get_bucket_view(v["bucket"])
                if bv:
                    out.append(bv)
        return out

    def user_policies(self, user_id: int) -> list[str]:
        """Policy JSON texts of the enabled s3policies attached to the user."""
        user = self.store.get("users", user_id)
        if user is None:
            return []
        out = []
        for pid in user.get("s3_policies_ids") or []:
            pol = self.store.get("s3policies", int(pid))
            if pol and pol.get("enabled", True):
                out.append(str(pol["policy"]))
        return out

    def fs_path(self, view_path: str) -> Path:
        """Directory holding the data under a view path: ``<data-dir>/fs/<path>``."""
        parts = [p for p in view_path.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise ValueError(f"path escapes the file system root: {view_path!r}")
        return self.fs_dir.joinpath(*parts)

    # ---- capacity -----------------------------------------------------------------------------
    def used_bytes(self) -> int:
        return self._stored_bytes() + self._s3_pending

    def _stored_bytes(self) -> int:
        # Cached per committed state: every S3 PUT asks (capacity preflight, then accounting),
        # and the SUM query behind it was a tenth of a 4 KiB PUT's server time.
        if self.store.in_tx:
            return self.store.sum_meta_ints(META_BLOCK_BYTES, META_S3_BYTES)  # may be uncommitted
        seq = self.store.write_seq
        cached = self._used_cache
        if cached is not None and cached[0] == seq:
            return cached[1]
        used = self.store.sum_meta_ints(META_BLOCK_BYTES, META_S3_BYTES)
        self._used_cache = (seq, used)  # seq read first: a commit in between only forces a re-read
        return used

    def free_bytes(self) -> int:
        return max(0, self.capacity - self.used_bytes())

    def check_s3_capacity(self, nbytes: int) -> bool:
        """True if ``nbytes`` more S3 data would fit."""
        return self.used_bytes() + max(0, nbytes) <= self.capacity

    def report_s3_usage(self, delta_bytes: int) -> None:
        """Account S3 bytes stored (+) or freed (-). Raises CapacityExceeded (nothing counted)
        when a positive delta does not fit.

        The count is exact at once for capacity checks; it reaches the database within
        ``S3_USAGE_FLUSH`` seconds (a write transaction per PUT was a sixth of a small PUT's
        server time). Bytes counted but not yet written when the process dies are not lost:
        the S3 endpoint recounts its buckets' indexes at start (:meth:`set_s3_usage`)."""
        with self.store.read():  # the store lock: block reservations check and add under it too
            if delta_bytes > 0 and self.used_bytes() + delta_bytes > self.capacity:
                raise CapacityExceeded(
                    f"Insufficient capacity: {delta_bytes} bytes requested, {self.free_bytes()} free")
            self._s3_pending += delta_bytes
        with self._s3_flush_lock:
            if self._s3_flush is None:
                self._s3_flush = threading.Timer(S3_USAGE_FLUSH, self.flush_s3_usage)
                self._s3_flush.daemon = True
                self._s3_flush.start()

    def flush_s3_usage(self) -> None:
        """Write the S3 bytes counted since the last flush to the database."""
        with self._s3_flush_lock:
            self._s3_flush = None
        with self.store.read():
            delta, self._s3_pending = self._s3_pending, 0
            if delta:
                try:
                    self.store.add_meta_int(META_S3_BYTES, delta)
                except BaseException:
                    self._s3_pending += delta
                    raise

    def set_s3_usage(self, total_bytes: int) -> None:
        """Set the S3 bytes to a recount (the sum of the bucket indexes, taken at start)."""
        with self.store.read():
            self._s3_pending = 0
            self.store.set_meta(META_S3_BYTES, str(total_bytes))

    def close(self) -> None:
        """Flush the S3 byte count (call before closing the store)."""
        with self._s3_flush_lock:
            timer, self._s3_flush = self._s3_flush, None
        if timer is not None:
            timer.cancel()
        self.flush_s3_usage()

    def reserve_block(self, delta_bytes: int) -> None:
        """Account block bytes (inside the caller's transaction). Raises CapacityExceeded."""
        with self.store.tx():
            if delta_bytes > 0 and self.used_bytes() + delta_bytes > self.capacity:
                raise CapacityExceeded(
                    f"Insufficient capacity: {delta_bytes} bytes requested, {self.free_bytes()} free")
            self.store.add_meta_int(META_BLOCK_BYTES, delta_bytes)

    # ---- NVMe ---------------------------------------------------------------------------------
    def volume_backing_path(self, uuid: str) -> Path:
        return self.block_dir / f"{uuid}.img"

    def _hosts_by_nqn(self, host_nqn: str) -> list[dict[str, Any]]:
        hosts, _ = self.store.find("blockhosts", [("nqn", "exact", host_nqn)])
        return hosts

    def _mapped_volumes(self, host_nqn: str) -> list[dict[str, Any]]:
        vols: dict[int, dict[str, Any]] = {}
        for host in self._hosts_by_nqn(host_nqn):
            maps, _ = self.store.find("blockhostvolumes", [("block_host__id", "exact", host["id"])])
            for m in maps:
                vol = self.store.get("volumes", int(m["volume"]["id"]))
                if vol is not None:
                    vols[int(vol["id"])] = vol
        return [vols[k] for k in sorted(vols)]

    def subsystem(self, subsystem_nqn: str) -> Subsystem | None:
        views, _ = self.store.find("views", [("nqn", "exact", subsystem_nqn)], limit=1)
        if not views:
            return None
        v = views[0]
        return Subsystem(nqn=v["nqn"], view_id=int(v["id"]), name=v.get("name") or "",
                         tenant_id=int(v["tenant_id"]))

    def visible_subsystems(self, host_nqn: str) -> list[Subsystem]:
        """Subsystems in which the host has at least one mapped volume (discovery log)."""
        seen: dict[int, Subsystem] = {}
        for vol in self._mapped_volumes(host_nqn):
            view = self.store.get("views", int(vol["view_id"]))
            if view and view.get("nqn") and int(view["id"]) not in seen:
                seen[int(view["id"])] = Subsystem(nqn=view["nqn"], view_id=int(view["id"]),
                                                  name=view.get("name") or "",
                                                  tenant_id=int(view["tenant_id"]))
        return [seen[k] for k in sorted(seen)]

    def host_allowed(self, host_nqn: str, subsystem_nqn: str) -> bool:
        return any(s.nqn == subsystem_nqn for s in self.visible_subsystems(host_nqn))

    def namespaces(self, subsystem_nqn: str, host_nqn: str) -> list[Namespace]:
        """Namespaces of the subsystem that are mapped to the host, ordered by NSID."""
        sub = self.subsystem(subsystem_nqn)
        if sub is None:
            return []
        out = [
            Namespace(nsid=int(v["nsid"]), volume_id=int(v["id"]), nguid=v["nguid"], uuid=v["uuid"],
                      size=int(v["size"]), backing_path=self.volume_backing_path(v["uuid"]))
            for v in self._mapped_volumes(host_nqn) if int(v["view_id"]) == sub.view_id
        ]
        return sorted(out, key=lambda n: n.nsid)
