"""Request bodies of the VMS API (pydantic). Unknown fields and wrong JSON types are rejected
(400 naming the field), so a typo in a driver never silently does nothing."""

from __future__ import annotations

import ipaddress
import json
import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

BIG = 2**53  # largest integer JSON clients agree on
Id = Annotated[int, Field(ge=1, le=2**31)]
Name = Annotated[str, Field(min_length=1, max_length=128)]
Size = Annotated[int, Field(ge=0, le=BIG)]
LooseDatetime = Annotated[datetime, Field(strict=False)]
PATH_RE = re.compile(r"^/[^\x00]*$")


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def check_path(value: str) -> str:
    if not PATH_RE.match(value):
        raise ValueError("Path must be absolute (start with '/').")
    parts = value.split("/")
    if ".." in parts or "." in parts:
        raise ValueError("Path must not contain '.' or '..' components.")
    if any(len(p.encode()) > 255 for p in parts):
        raise ValueError("Path components must be at most 255 bytes.")
    return value


Path_ = Annotated[str, Field(min_length=1, max_length=1024)]


class TenantCreate(Body):
    name: Name
    client_ip_ranges: Annotated[list[list[str]], Field(max_length=256)] = []


class TenantUpdate(Body):
    name: Name | None = None
    client_ip_ranges: Annotated[list[list[str]], Field(max_length=256)] | None = None


class ManagerCreate(Body):
    username: Name
    password: str = Field(min_length=1, max_length=256)
    role: Literal["super_admin", "tenant_admin"] = "tenant_admin"
    tenant_id: Id | None = None
    first_name: str = Field("", max_length=128)
    last_name: str = Field("", max_length=128)


class ManagerUpdate(Body):
    password: str | None = Field(None, min_length=1, max_length=256)
    first_name: str | None = Field(None, max_length=128)
    last_name: str | None = Field(None, max_length=128)


class ApiTokenCreate(Body):
    name: Name
    expiry_date: LooseDatetime | None = None


class ApiTokenUpdate(Body):
    name: Name | None = None


class ViewPolicyCreate(Body):
    name: Name
    tenant_id: Id | None = None
    flavor: Literal["NFS", "SMB", "MIXED_LAST_WINS", "S3_NATIVE"] = "NFS"
    nfs_read_write: Annotated[list[str], Field(max_length=1024)] = ["*"]
    nfs_read_only: Annotated[list[str], Field(max_length=1024)] = []
    nfs_root_squash: Annotated[list[str], Field(max_length=1024)] = []
    nfs_no_squash: Annotated[list[str], Field(max_length=1024)] = ["*"]
    nfs_all_squash: Annotated[list[str], Field(max_length=1024)] = []
    s3_visibility: Annotated[list[str], Field(max_length=1024)] = []
    vip_pools: Annotated[list[Id], Field(max_length=256)] = []
    access_flavor: Literal["ALL", "NFS", "SMB", "S3"] = "ALL"


class ViewPolicyUpdate(Body):
    name: Name | None = None
    flavor: Literal["NFS", "SMB", "MIXED_LAST_WINS", "S3_NATIVE"] | None = None
    nfs_read_write: Annotated[list[str], Field(max_length=1024)] | None = None
    nfs_read_only: Annotated[list[str], Field(max_length=1024)] | None = None
    nfs_root_squash: Annotated[list[str], Field(max_length=1024)] | None = None
    nfs_no_squash: Annotated[list[str], Field(max_length=1024)] | None = None
    nfs_all_squash: Annotated[list[str], Field(max_length=1024)] | None = None
    s3_visibility: Annotated[list[str], Field(max_length=1024)] | None = None
    vip_pools: Annotated[list[Id], Field(max_length=256)] | None = None
    access_flavor: Literal["ALL", "NFS", "SMB", "S3"] | None = None


class StaticLimits(Body):
    max_reads_bw_mbps: Size | None = None
    max_writes_bw_mbps: Size | None = None
    max_reads_iops: Size | None = None
    max_writes_iops: Size | None = None
    min_reads_bw_mbps: Size | None = None
    min_writes_bw_mbps: Size | None = None
    min_reads_iops: Size | None = None
    min_writes_iops: Size | None = None


class QosPolicyCreate(Body):
    name: Name
    tenant_id: Id | None = None
    policy_type: Literal["VIEW", "VOLUME", "USER"] = "VIEW"
    mode: Literal["STATIC", "USED_CAPACITY", "PROVISIONED_CAPACITY"] = "STATIC"
    limit_by: Literal["BW_IOPS", "BW", "IOPS"] = "BW_IOPS"
    static_limits: StaticLimits = StaticLimits()
    is_default: bool = False


class QosPolicyUpdate(Body):
    name: Name | None = None
    limit_by: Literal["BW_IOPS", "BW", "IOPS"] | None = None
    static_limits: StaticLimits | None = None


def _check_ranges(ranges: list[list[str]]) -> list[list[str]]:
    for r in ranges:
        if len(r) != 2:
            raise ValueError("Each range must be [start, end].")
        try:
            a, b = ipaddress.ip_address(r[0]), ipaddress.ip_address(r[1])
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        if a.version != b.version or int(a) > int(b):
            raise ValueError(f"Invalid range {r[0]}-{r[1]}.")
    return ranges


class VipPoolCreate(Body):
    name: Name
    ip_ranges: list[list[str]] = Field(min_length=1, max_length=64)
    subnet_cidr: int = Field(24, ge=1, le=128)
    gw_ip: str | None = None
    vlan: int | None = Field(None, ge=0, le=4095)
    role: Literal["PROTOCOLS", "REPLICATION"] = "PROTOCOLS"
    tenant_id: Id | None = None
    domain_name: str = Field("", max_length=253)
    enabled: bool = True

    _ranges = field_validator("ip_ranges")(_check_ranges)


class VipPoolUpdate(Body):
    name: Name | None = None
    ip_ranges: list[list[str]] | None = Field(None, min_length=1, max_length=64)
    domain_name: str | None = Field(None, max_length=253)
    enabled: bool | None = None

    @field_validator("ip_ranges")
    @classmethod
    def _r(cls, v: list[list[str]] | None) -> list[list[str]] | None:
        return _check_ranges(v) if v is not None else None


Protocol = Literal["NFS", "NFS4", "SMB", "S3", "BLOCK"]
RetentionPeriod = Annotated[str, Field(pattern=r"^[1-9][0-9]{0,4}[dmy]$")]


class ViewCreate(Body):
    path: Path_
    name: Name | None = None
    protocols: list[Protocol] = Field(["NFS"], min_length=1, max_length=5)
    policy_id: Id | None = None
    qos_policy_id: Id | None = None
    tenant_id: Id | None = None
    create_dir: bool = False
    alias: str | None = Field(None, max_length=1024)
    share: str | None = Field(None, max_length=80)
    bucket: str | None = Field(None, max_length=63)
    bucket_owner: Name | None = None
    s3_versioning: bool = False
    s3_locks: bool = False
    s3_locks_retention_mode: Literal["GOVERNANCE", "COMPLIANCE", "NONE"] | None = None
    s3_locks_retention_period: RetentionPeriod | None = None

    _p = field_validator("path")(check_path)


class ViewUpdate(Body):
    name: Name | None = None
    policy_id: Id | None = None
    qos_policy_id: Id | None = None
    alias: str | None = Field(None, max_length=1024)
    share: str | None = Field(None, max_length=80)
    bucket_owner: Name | None = None
    s3_versioning: bool | None = None
    s3_locks: bool | None = None
    s3_locks_retention_mode: Literal["GOVERNANCE", "COMPLIANCE", "NONE"] | None = None
    s3_locks_retention_period: RetentionPeriod | None = None


class QuotaCreate(Body):
    name: Name
    path: Path_
    tenant_id: Id | None = None
    hard_limit: Size | None = None
    soft_limit: Size | None = None
    hard_limit_inodes: Size | None = None

    _p = field_validator("path")(check_path)


class QuotaUpdate(Body):
    name: Name | None = None
    hard_limit: Size | None = None
    soft_limit: Size | None = None
    hard_limit_inodes: Size | None = None


class UserCreate(Body):
    name: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\s/:@]+$")]
    uid: int | None = Field(None, ge=0, le=2**32 - 2)
    gid: int | None = Field(None, ge=0, le=2**32 - 2)
    tenant_id: Id | None = None
    allow_create_bucket: bool = False
    allow_delete_bucket: bool = False
    s3_superuser: bool = False
    s3_policies_ids: list[Id] = Field([], max_length=100)


class UserUpdate(Body):
    uid: int | None = Field(None, ge=0, le=2**32 - 2)
    gid: int | None = Field(None, ge=0, le=2**32 - 2)
    allow_create_bucket: bool | None = None
    allow_delete_bucket: bool | None = None
    s3_superuser: bool | None = None
    s3_policies_ids: list[Id] | None = Field(None, max_length=100)


class AccessKeyCreate(Body):
    pass


class AccessKeyDelete(Body):
    access_key: Annotated[str, Field(min_length=1, max_length=128)]


def _check_policy(value: str) -> str:
    try:
        doc = json.loads(value)
    except ValueError:
        raise ValueError("Policy must be a JSON document.") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("Statement"), (list, dict)):
        raise ValueError("Policy must be a JSON object with a Statement.")
    return value


class S3PolicyCreate(Body):
    name: Name
    policy: Annotated[str, Field(min_length=2, max_length=20480)]
    tenant_id: Id | None = None
    enabled: bool = True

    _p = field_validator("policy")(_check_policy)


class S3PolicyUpdate(Body):
    name: Name | None = None
    policy: Annotated[str, Field(min_length=2, max_length=20480)] | None = None
    enabled: bool | None = None

    @field_validator("policy")
    @classmethod
    def _pp(cls, v: str | None) -> str | None:
        return _check_policy(v) if v is not None else None


class SnapshotCreate(Body):
    name: Name
    path: Path_
    tenant_id: Id | None = None
    expiration_time: LooseDatetime | None = None
    indestructible: bool = False

    @field_validator("path")
    @classmethod
    def _sp(cls, v: str) -> str:
        check_path(v)
        if not v.endswith("/"):
            raise ValueError('Snapshot path must end with "/".')
        return v


class SnapshotUpdate(Body):
    name: Name | None = None
    expiration_time: LooseDatetime | None = None


class CloneVolume(Body):
    target_subsystem_id: Id
    target_volume_path: Annotated[str, Field(min_length=1, max_length=512)]


VolumeName = Annotated[str, Field(min_length=1, max_length=512, pattern=r"^[^\x00]+$")]


class VolumeCreate(Body):
    name: VolumeName
    view_id: Id
    size: Annotated[int, Field(ge=512, le=2**50)]
    qos_policy_id: Id | None = None
    tenant_id: Id | None = None

    @field_validator("size")
    @classmethod
    def _s(cls, v: int) -> int:
        if v % 512:
            raise ValueError("Size must be a multiple of 512 bytes.")
        return v


class VolumeUpdate(Body):
    size: Annotated[int, Field(ge=512, le=2**50)] | None = None
    qos_policy_id: Id | None = None

    @field_validator("size")
    @classmethod
    def _s(cls, v: int | None) -> int | None:
        if v is not None and v % 512:
            raise ValueError("Size must be a multiple of 512 bytes.")
        return v


class BlockHostCreate(Body):
    name: Name
    nqn: Annotated[str, Field(min_length=5, max_length=223, pattern=r"^nqn\.[\x21-\x7e]+$")]
    tenant_id: Id | None = None
    os_type: Literal["LINUX", "WINDOWS", "ESXI"] = "LINUX"
    ana: Literal["OPTIMIZED", "NON_OPTIMIZED"] = "OPTIMIZED"
    connectivity_type: Literal["TCP"] = "TCP"


class BlockHostUpdate(Body):
    name: Name | None = None
    os_type: Literal["LINUX", "WINDOWS", "ESXI"] | None = None
    ana: Literal["OPTIMIZED", "NON_OPTIMIZED"] | None = None


class HostVolumePair(Body):
    host_id: Id
    volume_id: Id


class BulkMapping(Body):
    pairs_to_add: list[HostVolumePair] = Field([], max_length=1000)
    pairs_to_remove: list[HostVolumePair] = Field([], max_length=1000)


class DeleteFolder(Body):
    path: Path_
    tenant_id: Id | None = None

    _p = field_validator("path")(check_path)


class TokenRequest(Body):
    username: Annotated[str, Field(min_length=1, max_length=128)]
    password: Annotated[str, Field(min_length=1, max_length=256)]


class RefreshRequest(Body):
    refresh: Annotated[str, Field(min_length=1, max_length=4096)]
