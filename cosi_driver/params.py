"""BucketClass / BucketAccessClass parameters: parsed, validated, mapped to platform policy.

Unknown keys and malformed values are rejected with INVALID_ARGUMENT naming every bad key at
once, so a user fixes the class in one go. Nothing is silently ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from cosi_driver.errors import InvalidArgument

MAX_KEYS = 64
MAX_KEY_LEN = 128
MAX_VALUE_LEN = 4096
MAX_TOTAL = 64 * 1024

ACCESS_MODES = ("ReadWrite", "ReadOnly", "WriteOnly")
EXTRA_PROTOCOLS = ("NFS", "NFS4", "SMB")
RETENTION_MODES = ("GOVERNANCE", "COMPLIANCE")
ADDRESSING = ("path", "virtual")

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGTPE]i?|[kKMGTPE]B|B)?\s*$")
_UNITS = {"": 1, "B": 1}
for _i, _p in enumerate("KMGTPE", start=1):
    _UNITS[f"{_p}i"] = 1024**_i
    _UNITS[f"{_p}B"] = 1000**_i
    _UNITS[_p] = 1000**_i
_UNITS["kB"] = 1000
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._:@/-]{0,127}$")
_PATH_PREFIX = re.compile(r"^/[A-Za-z0-9._/-]{0,200}$")
_CRED_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{0,62}$")
_URL = re.compile(r"^https?://[A-Za-z0-9.:\[\]_-]+(/[A-Za-z0-9._~/-]*)?$")
_REGION = re.compile(r"^[a-z0-9-]{1,64}$")


@dataclass(frozen=True)
class BucketParams:
    """What a BucketClass asks for (keys in camelCase as users write them in YAML)."""

    tenant: str | None = None
    view_policy: str | None = None
    qos_policy: str | None = None
    versioning: bool = False
    object_lock: bool = False
    retention_mode: str | None = None
    retention_days: int | None = None
    quota_bytes: int | None = None
    extra_protocols: tuple[str, ...] = ()
    path_prefix: str = "/cosi"
    bucket_owner: str | None = None
    endpoint: str | None = None
    region: str | None = None
    addressing_style: str | None = None
    force_delete: bool = False
    vms_credentials: str | None = None

    def platform_shape(self) -> dict[str, object]:
        """The part that must match for a repeat Create to be compatible."""
        return {
            "tenant": self.tenant,
            "view_policy": self.view_policy,
            "qos_policy": self.qos_policy,
            "versioning": self.versioning,
            "object_lock": self.object_lock,
            "retention_mode": self.retention_mode,
            "retention_days": self.retention_days,
            "quota_bytes": self.quota_bytes,
            "extra_protocols": sorted(self.extra_protocols),
            "path_prefix": self.path_prefix,
            "bucket_owner": self.bucket_owner,
            "vms_credentials": self.vms_credentials,
        }


BUCKET_KEYS = {
    "tenant",
    "viewPolicy",
    "qosPolicy",
    "versioning",
    "objectLock",
    "objectLockRetentionMode",
    "objectLockRetentionDays",
    "quota",
    "maxSize",
    "protocols",
    "pathPrefix",
    "bucketOwner",
    "endpoint",
    "region",
    "addressingStyle",
    "forceDelete",
    "vmsCredentials",
}
ACCESS_KEYS = {"accessMode"}


def check_map(what: str, values: Mapping[str, str]) -> None:
    """Size limits every request map must respect (parameters, contexts)."""
    if len(values) > MAX_KEYS:
        raise InvalidArgument(f"{what}: {len(values)} entries, at most {MAX_KEYS} allowed")
    total = 0
    for key, value in values.items():
        if not key or len(key) > MAX_KEY_LEN:
            raise InvalidArgument(f"{what}: key {key[:40]!r} must be 1..{MAX_KEY_LEN} characters")
        if len(value) > MAX_VALUE_LEN:
            raise InvalidArgument(f"{what}: value of {key!r} longer than {MAX_VALUE_LEN} characters")
        total += len(key) + len(value)
    if total > MAX_TOTAL:
        raise InvalidArgument(f"{what}: {total} bytes in total, at most {MAX_TOTAL} allowed")


def parse_bool(value: str) -> bool | None:
    lowered = value.strip().lower()
    if lowered in ("true", "yes", "1", "on", "enabled"):
        return True
    if lowered in ("false", "no", "0", "off", "disabled"):
        return False
    return None


def parse_size(value: str) -> int | None:
    m = _SIZE.match(value)
    if not m:
        return None
    unit = m.group(2) or ""
    if unit not in _UNITS:
        return None
    size = int(float(m.group(1)) * _UNITS[unit])
    return size if size > 0 else None


def parse_bucket_params(raw: Mapping[str, str]) -> BucketParams:
    check_map("parameters", raw)
    problems: list[str] = []
    unknown = sorted(set(raw) - BUCKET_KEYS)
    if unknown:
        problems.append(
            f"unknown parameter(s) {', '.join(unknown)} (known: {', '.join(sorted(BUCKET_KEYS))})"
        )
    kw: dict[str, object] = {}

    def name_param(key: str, attr: str) -> None:
        if key in raw:
            if _NAME.match(raw[key]):
                kw[attr] = raw[key]
            else:
                problems.append(f"{key}={raw[key][:60]!r} is not a valid platform object name")

    def bool_param(key: str, attr: str) -> None:
        if key in raw:
            parsed = parse_bool(raw[key])
            if parsed is None:
                problems.append(f"{key}={raw[key][:60]!r} must be true or false")
            else:
                kw[attr] = parsed

    name_param("tenant", "tenant")
    name_param("viewPolicy", "view_policy")
    name_param("qosPolicy", "qos_policy")
    name_param("bucketOwner", "bucket_owner")
    bool_param("versioning", "versioning")
    bool_param("objectLock", "object_lock")
    bool_param("forceDelete", "force_delete")
    if "objectLockRetentionMode" in raw:
        mode = raw["objectLockRetentionMode"].strip().upper()
        if mode in RETENTION_MODES:
            kw["retention_mode"] = mode
        else:
            problems.append(
                f"objectLockRetentionMode={raw['objectLockRetentionMode'][:60]!r} must be "
                f"one of {', '.join(RETENTION_MODES)}"
            )
    if "objectLockRetentionDays" in raw:
        text = raw["objectLockRetentionDays"].strip()
        if text.isdigit() and 0 < int(text) <= 36500:
            kw["retention_days"] = int(text)
        else:
            problems.append(f"objectLockRetentionDays={text[:60]!r} must be a whole number of days 1..36500")
    if ("retention_mode" in kw) != ("retention_days" in kw):
        problems.append("objectLockRetentionMode and objectLockRetentionDays must be set together")
    if "retention_mode" in kw and kw.get("object_lock") is not True:
        problems.append("objectLockRetentionMode/objectLockRetentionDays need objectLock=true")
    if kw.get("object_lock") is True and kw.get("versioning") is False:
        problems.append("objectLock=true needs versioning (leave versioning unset or true)")
    if kw.get("object_lock") is True:
        kw["versioning"] = True  # S3 object lock requires versioning
    if "quota" in raw and "maxSize" in raw and raw["quota"] != raw["maxSize"]:
        problems.append("quota and maxSize are the same setting; give one of them")
    for key in ("quota", "maxSize"):
        if key in raw:
            size = parse_size(raw[key])
            if size is None:
                problems.append(f"{key}={raw[key][:60]!r} is not a size (e.g. 10Gi, 500GB, 1073741824)")
            else:
                kw["quota_bytes"] = size
    if "protocols" in raw:
        wanted = [p.strip().upper() for p in raw["protocols"].split(",") if p.strip()]
        bad = [p for p in wanted if p not in (*EXTRA_PROTOCOLS, "S3")]
        if bad:
            problems.append(
                f"protocols: unsupported {', '.join(bad)} (S3 is always on; extra: "
                f"{', '.join(EXTRA_PROTOCOLS)})"
            )
        else:
            kw["extra_protocols"] = tuple(sorted({p for p in wanted if p != "S3"}))
    if "pathPrefix" in raw:
        prefix = raw["pathPrefix"].rstrip("/") or "/"
        if _PATH_PREFIX.match(prefix) and ".." not in prefix.split("/"):
            kw["path_prefix"] = prefix
        else:
            problems.append(f"pathPrefix={raw['pathPrefix'][:60]!r} must be an absolute path")
    if "endpoint" in raw:
        if _URL.match(raw["endpoint"]):
            kw["endpoint"] = raw["endpoint"].rstrip("/")
        else:
            problems.append(f"endpoint={raw['endpoint'][:60]!r} must be an http(s) URL")
    if "region" in raw:
        if _REGION.match(raw["region"]):
            kw["region"] = raw["region"]
        else:
            problems.append(f"region={raw['region'][:60]!r} must be lower-case letters, digits and dashes")
    if "addressingStyle" in raw:
        style = raw["addressingStyle"].strip().lower()
        if style in ADDRESSING:
            kw["addressing_style"] = style
        else:
            problems.append(f"addressingStyle={raw['addressingStyle'][:60]!r} must be path or virtual")
    if "vmsCredentials" in raw:
        if _CRED_NAME.match(raw["vmsCredentials"]):
            kw["vms_credentials"] = raw["vmsCredentials"]
        else:
            problems.append(
                f"vmsCredentials={raw['vmsCredentials'][:60]!r} must name a credentials "
                "directory (lower-case letters, digits, dots, dashes)"
            )
    if problems:
        raise InvalidArgument("invalid BucketClass parameters: " + "; ".join(problems))
    return BucketParams(**kw)  # type: ignore[arg-type]


def parse_access_mode(raw: Mapping[str, str]) -> str:
    """v1alpha1 carries the access mode as a BucketAccessClass parameter (default ReadWrite)."""
    check_map("parameters", raw)
    unknown = sorted(set(raw) - ACCESS_KEYS)
    problems = []
    if unknown:
        problems.append(
            f"unknown parameter(s) {', '.join(unknown)} (known: {', '.join(sorted(ACCESS_KEYS))})"
        )
    mode = raw.get("accessMode", "ReadWrite")
    canonical = {m.lower(): m for m in ACCESS_MODES}.get(
        mode.strip().replace("-", "").replace("_", "").lower()
    )
    if canonical is None:
        problems.append(f"accessMode={mode[:60]!r} must be one of {', '.join(ACCESS_MODES)}")
    if problems:
        raise InvalidArgument("invalid BucketAccessClass parameters: " + "; ".join(problems))
    assert canonical is not None
    return canonical


def check_access_params(raw: Mapping[str, str]) -> None:
    """v1alpha2 has the mode in the request; the class may still not carry unknown keys."""
    check_map("parameters", raw)
    unknown = sorted(set(raw))
    if unknown:
        raise InvalidArgument(
            f"invalid BucketAccessClass parameters: unknown parameter(s) {', '.join(unknown)}"
            " (this driver takes none in v1alpha2: the access mode is in the request)"
        )
