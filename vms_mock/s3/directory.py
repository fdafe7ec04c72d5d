"""What the S3 endpoint needs from the rest of the emulator, as a small Protocol.

The endpoint reads identities (access keys, users, policies) and bucket views from the VMS state
on EVERY request (no cache: a revoked key or a changed policy takes effect at once). It writes
only object data and its own metadata, under the view's directory.

Two implementations exist: :class:`StaticS3Directory` (an in-process directory that tests and
benchmarks fill directly) and ``vms_mock.s3.core_directory.CoreApiDirectory`` (the VMS state, via
``vms_mock.core_api``).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class AccessKeyRecord:
    """An S3 access key as the VMS issued it, with the user that owns it."""

    access_key: str
    secret_key: str = field(repr=False)
    user_id: int
    user_name: str
    tenant_id: int
    enabled: bool = True
    allow_create_bucket: bool = False
    allow_delete_bucket: bool = False
    s3_superuser: bool = False  # the user's VMS flag: every bucket of its tenant, all actions


@dataclass(frozen=True)
class BucketView:
    """A view that exposes a path as an S3 bucket."""

    view_id: int
    bucket: str
    path: str
    tenant_id: int
    bucket_owner: str | None = None
    s3_versioning: bool = False
    s3_locks: bool = False
    # Default retention applied to new objects when object lock is on.
    lock_default_mode: str | None = None  # "GOVERNANCE" | "COMPLIANCE"
    lock_default_days: int | None = None
    quota_hard_limit: int | None = None
    created: float = 0.0


class CapacityExhausted(Exception):
    """The cluster has no room for the bytes being reported."""


class BucketCreationRefused(Exception):
    """The directory cannot (or will not) create/delete a bucket view for this principal."""


class S3Directory(Protocol):
    def lookup_access_key(self, access_key: str) -> AccessKeyRecord | None:
        """The key's record, or None when it does not exist (revoked keys are gone)."""

    def get_bucket_view(self, bucket: str) -> BucketView | None: ...

    def list_bucket_views(self) -> list[BucketView]: ...

    def user_policies(self, user_id: int) -> list[str]:
        """IAM-style JSON policy texts attached to the user (enabled ones only)."""

    def fs_path(self, view_path: str) -> Path:
        """Directory holding the data of the view at ``view_path``."""

    def report_s3_usage(self, delta_bytes: int) -> None:
        """Account ``delta_bytes`` (may be negative) of object data against cluster capacity.

        Raises CapacityExhausted (nothing counted) when a positive delta does not fit."""

    def has_capacity(self, nbytes: int) -> bool:
        """Whether the cluster can take ``nbytes`` more of data."""

    def set_s3_usage(self, total_bytes: int) -> None:
        """Replace the S3 byte count with a recount of every bucket's index (at start)."""

    def create_bucket_view(self, principal: AccessKeyRecord, bucket: str) -> BucketView:
        """Create a bucket view owned by ``principal``; raise BucketCreationRefused if not allowed."""

    def delete_bucket_view(self, principal: AccessKeyRecord, view: BucketView) -> None:
        """Delete the (empty) bucket view; raise BucketCreationRefused if not allowed."""


class StaticS3Directory:
    """A real, self-contained S3Directory kept in memory (tests, benchmarks, standalone use).

    Object data lives under ``root/<view path>``; capacity is a plain byte budget.
    """

    def __init__(self, root: Path, capacity: int = 1 << 40) -> None:
        self.root = Path(root)
        self.capacity = capacity
        self.used = 0
        self._lock = threading.Lock()
        self._keys: dict[str, AccessKeyRecord] = {}
        self._views: dict[str, BucketView] = {}
        self._policies: dict[int, list[str]] = {}
        self._next_view_id = 1

    # -- filling the directory -------------------------------------------------------------
    def add_key(self, record: AccessKeyRecord) -> AccessKeyRecord:
        with self._lock:
            self._keys[record.access_key] = record
        return record

    def revoke_key(self, access_key: str) -> None:
        with self._lock:
            self._keys.pop(access_key, None)

    def add_view(self, bucket: str, tenant_id: int = 1, **fields: object) -> BucketView:
        with self._lock:
            view = BucketView(view_id=self._next_view_id, bucket=bucket,
                              path=str(fields.pop("path", f"/s3/{bucket}")), tenant_id=tenant_id,
                              created=time.time())
            view = replace(view, **fields)  # type: ignore[arg-type]
            self._next_view_id += 1
            self._views[bucket] = view
        return view

    def remove_view(self, bucket: str) -> None:
        with self._lock:
            self._views.pop(bucket, None)

    def set_policies(self, user_id: int, policies: list[str]) -> None:
        with self._lock:
            self._policies[user_id] = list(policies)

    # -- S3Directory -----------------------------------------------------------------------
    def lookup_access_key(self, access_key: str) -> AccessKeyRecord | None:
        return self._keys.get(access_key)

    def get_bucket_view(self, bucket: str) -> BucketView | None:
        return self._views.get(bucket)

    def list_bucket_views(self) -> list[BucketView]:
        return list(self._views.values())

    def user_policies(self, user_id: int) -> list[str]:
        return list(self._policies.get(user_id, ()))

    def fs_path(self, view_path: str) -> Path:
        return self.root / view_path.strip("/")

    def report_s3_usage(self, delta_bytes: int) -> None:
        with self._lock:
            if delta_bytes > 0 and self.used + delta_bytes > self.capacity:
                raise CapacityExhausted(f"{delta_bytes} bytes do not fit")
            self.used = max(0, self.used + delta_bytes)

    def has_capacity(self, nbytes: int) -> bool:
        return self.used + nbytes <= self.capacity

    def set_s3_usage(self, total_bytes: int) -> None:
        with self._lock:
            self.used = total_bytes

    def create_bucket_view(self, principal: AccessKeyRecord, bucket: str) -> BucketView:
        if not principal.allow_create_bucket:
            raise BucketCreationRefused(f"user {principal.user_name!r} may not create buckets")
        return self.add_view(bucket, tenant_id=principal.tenant_id, bucket_owner=principal.user_name)

    def delete_bucket_view(self, principal: AccessKeyRecord, view: BucketView) -> None:
        if not principal.allow_delete_bucket:
            raise BucketCreationRefused(f"user {principal.user_name!r} may not delete buckets")
        self.remove_view(view.bucket)
