"""Pydantic models of the VMS objects (read back) and of the payloads the client sends.

Read models allow extra fields: a real cluster returns many more than the drivers use, and a
newer release must not break parsing. Only ``id`` is required; everything else a cluster may
leave out. Secret-bearing fields are ``SecretStr``, and reprs hide any extra field whose name
says it holds a secret.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from kubevast_common.logs import REDACTED, is_secret_key


class _SafeRepr(BaseModel):
    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            if name and is_secret_key(name) and value is not None and not isinstance(value, SecretStr):
                yield name, REDACTED
            else:
                yield name, value


class ReadModel(_SafeRepr):
    """An object as the VMS returns it."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    def extra(self, name: str, default: Any = None) -> Any:
        """A field the model does not declare (real clusters return many)."""
        return (self.model_extra or {}).get(name, default)


class Payload(_SafeRepr):
    """A body the client sends. Extra fields pass through to the server, which validates them."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    def to_json(self) -> dict[str, Any]:
        """The JSON body, with secrets revealed (they are being sent on purpose) and unset
        optional fields left out."""
        return _reveal(self.model_dump(mode="python", exclude_none=True))


def _reveal(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, dict):
        return {k: _reveal(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_reveal(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return value


# ---------------------------------------------------------------- read models

class Version(ReadModel):
    id: int | None = None
    sys_version: str | None = None
    status: str | None = None
    name: str | None = None


class Tenant(ReadModel):
    id: int
    name: str | None = None


class ViewPolicy(ReadModel):
    id: int
    name: str | None = None
    tenant_id: int | None = None
    tenant_name: str | None = None


class QosPolicy(ReadModel):
    id: int
    name: str | None = None
    tenant_id: int | None = None


class VipPool(ReadModel):
    id: int
    name: str | None = None
    ip_ranges: list[list[str]] = Field(default_factory=list)
    tenant_id: int | None = None
    domain_name: str | None = None


class View(ReadModel):
    id: int
    path: str | None = None
    name: str | None = None
    alias: str | None = None
    bucket: str | None = None
    bucket_owner: str | None = None
    protocols: list[str] = Field(default_factory=list)
    policy_id: int | None = None
    qos_policy_id: int | None = None
    tenant_id: int | None = None
    nqn: str | None = None


class Quota(ReadModel):
    id: int
    name: str | None = None
    path: str | None = None
    hard_limit: int | None = None
    tenant_id: int | None = None


class AccessKeyInfo(ReadModel):
    """An access key as listed on its user: never the secret."""

    key: str
    status: str | None = None
    creation_time: str | None = None


class User(ReadModel):
    id: int
    name: str | None = None
    uid: int | None = None
    tenant_id: int | None = None
    allow_create_bucket: bool | None = None
    allow_delete_bucket: bool | None = None
    s3_policies_ids: list[int] = Field(default_factory=list)
    access_keys: list[AccessKeyInfo] = Field(default_factory=list)


class AccessKeyPair(ReadModel):
    access_key: str
    secret_key: SecretStr


class S3Policy(ReadModel):
    id: int
    name: str | None = None
    policy: str | None = None
    tenant_id: int | None = None
    enabled: bool | None = None


class Snapshot(ReadModel):
    id: int
    name: str | None = None
    path: str | None = None
    created: datetime | None = None
    tenant_id: int | None = None
    expiration_time: datetime | None = None


class Volume(ReadModel):
    id: int
    name: str | None = None
    size: int | None = None
    view_id: int | None = None
    nguid: str | None = None
    uuid: str | None = None
    tenant_id: int | None = None
    tenant_name: str | None = None
    subsystem_name: str | None = None
    qos_policy_id: int | None = None


class BlockHost(ReadModel):
    id: int
    name: str | None = None
    nqn: str | None = None
    tenant_id: int | None = None
    os_type: str | None = None
    connectivity_type: str | None = None
    mapped_volumes_preview: Any = None


class Ref(ReadModel):
    id: int


class BlockHostVolume(ReadModel):
    id: int | None = None
    volume: Ref
    block_host: Ref


class Cluster(ReadModel):
    id: int
    name: str | None = None
    sys_version: str | None = None
    usable_capacity_bytes: int | None = None
    free_usable_capacity_bytes: int | None = None
    logical_space: int | None = None
    logical_space_in_use: int | None = None


class Capacity(BaseModel):
    """What ``clusters.capacity()`` reports, in bytes."""

    usable_bytes: int
    free_bytes: int
    logical_space: int | None = None
    logical_space_in_use: int | None = None


TaskState = Literal["RUNNING", "COMPLETED", "FAILED"]


class VTask(ReadModel):
    id: int
    state: str | None = None
    name: str | None = None
    messages: list[str] = Field(default_factory=list)

    @field_validator("messages", mode="before")
    @classmethod
    def _messages_as_text(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [v if isinstance(v, str) else str(v) for v in value]
        return value

    @property
    def done(self) -> bool:
        return (self.state or "").upper() in ("COMPLETED", "FAILED")


class Manager(ReadModel):
    id: int
    username: str | None = None
    name: str | None = None
    tenant_id: int | None = None
    password: SecretStr | None = None


class ApiToken(ReadModel):
    id: int | str
    name: str | None = None
    owner: str | None = None
    token: SecretStr | None = Field(default=None, description="only in the answer to create")
    expiry_date: str | None = None
    revoked: bool | None = None


# ---------------------------------------------------------------- payloads

class TenantCreate(Payload):
    name: str


class ViewPolicyCreate(Payload):
    name: str
    tenant_id: int | None = None


class QosPolicyCreate(Payload):
    name: str
    tenant_id: int | None = None


class VipPoolCreate(Payload):
    name: str
    ip_ranges: list[list[str]] | None = None
    tenant_id: int | None = None


class ViewCreate(Payload):
    path: str
    protocols: list[str]
    name: str | None = None
    create_dir: bool | None = None
    policy_id: int | None = None
    qos_policy_id: int | None = None
    tenant_id: int | None = None
    bucket: str | None = None
    bucket_owner: str | None = None
    s3_versioning: bool | None = None
    s3_locks: bool | None = None
    alias: str | None = None

    @classmethod
    def nfs(cls, path: str, policy_id: int, **more: Any) -> ViewCreate:
        return cls(path=path, protocols=["NFS"], create_dir=True, policy_id=policy_id, **more)

    @classmethod
    def s3_bucket(cls, path: str, bucket: str, bucket_owner: str, policy_id: int,
                  **more: Any) -> ViewCreate:
        return cls(path=path, bucket=bucket, bucket_owner=bucket_owner, protocols=["S3"],
                   create_dir=True, policy_id=policy_id, **more)

    @classmethod
    def block_subsystem(cls, name: str, path: str, **more: Any) -> ViewCreate:
        return cls(name=name, path=path, protocols=["BLOCK"], create_dir=True, **more)


class QuotaCreate(Payload):
    name: str
    path: str
    hard_limit: int | None = Field(default=None, ge=0)
    tenant_id: int | None = None


class QuotaUpdate(Payload):
    hard_limit: int | None = Field(default=None, ge=0)


class UserCreate(Payload):
    name: str
    uid: int | None = None
    tenant_id: int | None = None
    allow_create_bucket: bool | None = None
    allow_delete_bucket: bool | None = None
    s3_policies_ids: list[int] | None = None


class S3PolicyCreate(Payload):
    name: str
    policy: str
    tenant_id: int | None = None
    enabled: bool | None = None


class SnapshotCreate(Payload):
    name: str
    path: str
    tenant_id: int | None = None
    expiration_time: datetime | None = None

    @field_validator("path")
    @classmethod
    def _path_ends_with_slash(cls, value: str) -> str:
        if not value.endswith("/"):
            raise ValueError("snapshot path must end with '/'")
        return value


class VolumeCreate(Payload):
    name: str
    view_id: int
    size: int = Field(gt=0)
    qos_policy_id: int | None = None


class VolumeUpdate(Payload):
    size: int | None = Field(default=None, gt=0)
    qos_policy_id: int | None = None


class BlockHostCreate(Payload):
    name: str
    nqn: str
    tenant_id: int | None = None
    os_type: str = "LINUX"
    connectivity_type: str = "TCP"


class ManagerCreate(Payload):
    username: str
    password: SecretStr
    tenant_id: int | None = None


class ApiTokenCreate(Payload):
    name: str
    expiry_date: datetime | None = None
