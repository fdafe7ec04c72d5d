"""The S3Directory backed by the VMS state (``vms_mock.core_api.StorageCore``).

Every call reads the state afresh, so a revoked access key, a disabled policy or a deleted view
takes effect on the very next request. The façade is read-only: S3 CreateBucket/DeleteBucket
are refused with AccessDenied (bucket views are made through the VMS API, as COSI does).
"""

from __future__ import annotations

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

    def lookup_access_key(self, access_key: str) -> AccessKeyRecord | None:
        rec = self.core.lookup_access_key(access_key)
        if rec is None:
            return None
        return AccessKeyRecord(access_key=rec.access_key, secret_key=rec.secret_key,
                               user_id=rec.user_id, user_name=rec.user_name,
                               tenant_id=rec.tenant_id, enabled=rec.enabled)

    @staticmethod
    def _view(v: Any) -> BucketView:
        return BucketView(view_id=v.view_id, bucket=v.bucket, path=v.path, tenant_id=v.tenant_id,
                          bucket_owner=v.bucket_owner, s3_versioning=v.s3_versioning,
                          s3_locks=v.s3_locks, lock_default_mode=v.default_retention_mode,
                          lock_default_days=v.default_retention_days,
                          quota_hard_limit=v.quota_hard_limit)

    def get_bucket_view(self, bucket: str) -> BucketView | None:
        v = self.core.get_bucket_view(bucket)
        return None if v is None else self._view(v)

    def list_bucket_views(self) -> list[BucketView]:
        return [self._view(v) for v in self.core.list_bucket_views()]

    def user_policies(self, user_id: int) -> list[str]:
        return list(self.core.user_policies(user_id))

    def fs_path(self, view_path: str) -> Path:
        return Path(self.core.fs_path(view_path))

    def report_s3_usage(self, delta_bytes: int) -> None:
        from vms_mock.core_api import CapacityExceeded

        try:
            self.core.report_s3_usage(delta_bytes)
        except CapacityExceeded as exc:
            raise CapacityExhausted(str(exc)) from None

    def has_capacity(self, nbytes: int) -> bool:
        return bool(self.core.check_s3_capacity(nbytes))

    def create_bucket_view(self, principal: AccessKeyRecord, bucket: str) -> BucketView:
        raise BucketCreationRefused(_NO_WRITE_PATH)

    def delete_bucket_view(self, principal: AccessKeyRecord, view: BucketView) -> None:
        raise BucketCreationRefused(_NO_WRITE_PATH)
