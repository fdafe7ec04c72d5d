"""The S3Directory backed by the VMS state (``vms_mock.core_api.StorageCore``).

Lookups are memoised only until the state changes: every committed mutation bumps
``core.change_seq()``, which empties the memo, so a revoked access key, a disabled policy or a
deleted view takes effect on the very next request (the sequence is read before the state, and
the store commits and bumps it under one lock, so a stale answer can never outlive a change).

The façade is read-only: S3 CreateBucket/DeleteBucket are refused with AccessDenied (bucket
views are made through the VMS API, as COSI does).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from vms_mock.s3.directory import (
    AccessKeyRecord,
    BucketCreationRefused,
    BucketView,
    CapacityExhausted,
)

_NO_WRITE_PATH = ("buckets are created and deleted through the VMS API (views with a bucket); "
                  "this S3 endpoint has no write path to the VMS state")


class CoreApiDirectory:
    def __init__(self, core: Any) -> None:
        self.core = core
        self._seq = -1
        self._memo: dict[tuple[str, Any], Any] = {}

    def _memoised(self, name: str, arg: Any, compute: Callable[[], Any]) -> Any:
        seq = self.core.change_seq()
        if seq != self._seq:
            self._memo.clear()
            self._seq = seq
        key = (name, arg)
        if key not in self._memo:
            if len(self._memo) > 4096:
                self._memo.clear()
            self._memo[key] = compute()
        return self._memo[key]

    def lookup_access_key(self, access_key: str) -> AccessKeyRecord | None:
        result: AccessKeyRecord | None = self._memoised(
            "key", access_key, lambda: self._lookup_access_key(access_key))
        return result

    def _lookup_access_key(self, access_key: str) -> AccessKeyRecord | None:
        rec = self.core.lookup_access_key(access_key)
        if rec is None:
            return None
        return AccessKeyRecord(access_key=rec.access_key, secret_key=rec.secret_key,
                               user_id=rec.user_id, user_name=rec.user_name,
                               tenant_id=rec.tenant_id, enabled=rec.enabled,
                               s3_superuser=rec.s3_superuser, allow_create_bucket=rec.allow_create_bucket,
                               allow_delete_bucket=rec.allow_delete_bucket)

    @staticmethod
    def _view(v: Any) -> BucketView:
        return BucketView(view_id=v.view_id, bucket=v.bucket, path=v.path, tenant_id=v.tenant_id,
                          bucket_owner=v.bucket_owner, s3_versioning=v.s3_versioning,
                          s3_locks=v.s3_locks, lock_default_mode=v.default_retention_mode,
                          lock_default_days=v.default_retention_days,
                          quota_hard_limit=v.quota_hard_limit)

    def get_bucket_view(self, bucket: str) -> BucketView | None:
        def compute() -> BucketView | None:
            v = self.core.get_bucket_view(bucket)
            return None if v is None else self._view(v)

        result: BucketView | None = self._memoised("view", bucket, compute)
        return result

    def list_bucket_views(self) -> list[BucketView]:
        return [self._view(v) for v in self.core.list_bucket_views()]

    def user_policies(self, user_id: int) -> list[str]:
        result: tuple[str, ...] = self._memoised(
            "policies", user_id, lambda: tuple(self.core.user_policies(user_id)))
        return list(result)

    def fs_path(self, view_path: str) -> Path:
        return Path(self.core.fs_path(view_path))

    def report_s3_usage(self, delta_bytes: int) -> None:
        from vms_mock.core_api import CapacityExceeded

        try:
            self.core.report_s3_usage(delta_bytes)
        except CapacityExceeded as exc:
            raise CapacityExhausted(str(exc)) from None

    def set_s3_usage(self, total_bytes: int) -> None:
        self.core.set_s3_usage(total_bytes)

    def has_capacity(self, nbytes: int) -> bool:
        return bool(self.core.check_s3_capacity(nbytes))

    def create_bucket_view(self, principal: AccessKeyRecord, bucket: str) -> BucketView:
        raise BucketCreationRefused(_NO_WRITE_PATH)

    def delete_bucket_view(self, principal: AccessKeyRecord, view: BucketView) -> None:
        raise BucketCreationRefused(_NO_WRITE_PATH)
