"""StorageClass / VolumeAttributesClass / VolumeSnapshotClass parameters, validated in one place.

Unknown keys are refused with INVALID_ARGUMENT naming every one of them: a typo in a
StorageClass must fail the PVC loudly, not silently provision something else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from csi_block_driver.capability import SUPPORTED_FS
from csi_block_driver.errors import InvalidArgument

# Keys the external-provisioner/snapshotter add on their own (--extra-create-metadata).
_CO_PREFIX = "csi.storage.k8s.io/"

SUBSYSTEM = "subsystem"
TENANT = "tenant"
QOS_POLICY = "qosPolicy"
VOLUME_GROUP = "volumeGroup"
FS_TYPE = "fsType"

VOLUME_KEYS = (SUBSYSTEM, TENANT, QOS_POLICY, VOLUME_GROUP, FS_TYPE)
MUTABLE_KEYS = (QOS_POLICY,)
SNAPSHOT_KEYS: tuple[str, ...] = ()


def _unknown(params: Mapping[str, str], allowed: tuple[str, ...]) -> list[str]:
    return sorted(k for k in params if k not in allowed and not k.startswith(_CO_PREFIX))


def check_keys(params: Mapping[str, str], allowed: tuple[str, ...], field: str) -> None:
    bad = _unknown(params, allowed)
    if bad:
        known = ", ".join(allowed) or "none"
        raise InvalidArgument(
            f"{field}: unknown key(s) {', '.join(repr(k) for k in bad)} (supported: {known})"
        )


@dataclass(frozen=True)
class VolumeParams:
    subsystem: str
    tenant: str | None
    qos_policy: str | None
    volume_group: str
    fs_type: str


def volume_params(
    params: Mapping[str, str], mutable: Mapping[str, str], *, default_subsystem: str, default_group: str
) -> VolumeParams:
    check_keys(params, VOLUME_KEYS, "parameters")
    check_keys(mutable, MUTABLE_KEYS, "mutable_parameters")
    fs = params.get(FS_TYPE, "")
    if fs and fs not in SUPPORTED_FS:
        raise InvalidArgument(
            f"parameters.{FS_TYPE}: {fs!r} is not supported (supported: {', '.join(SUPPORTED_FS)})"
        )
    group = params.get(VOLUME_GROUP, default_group).strip("/")
    if not group or "/" in group:
        raise InvalidArgument(f"parameters.{VOLUME_GROUP}: {group!r} must be one non-empty path element")
    for key in (SUBSYSTEM, TENANT, QOS_POLICY):
        if key in params and not params[key].strip():
            raise InvalidArgument(f"parameters.{key} must not be empty")
    if QOS_POLICY in mutable and not mutable[QOS_POLICY].strip():
        raise InvalidArgument(f"mutable_parameters.{QOS_POLICY} must not be empty")
    return VolumeParams(
        subsystem=params.get(SUBSYSTEM, default_subsystem),
        tenant=params.get(TENANT),
        qos_policy=mutable.get(QOS_POLICY) or params.get(QOS_POLICY),
        volume_group=group,
        fs_type=fs,
    )
