"""Deterministic, hashed platform names.

Every platform object the driver makes is named `<prefix>-<readable>-<sha256(identity)[:16]>`:
the hash covers the WHOLE COSI name, so two different names never map to one object however
long they are, and the same name always maps to the same object (idempotency across retries,
restarts and replicas). Only the human-readable middle part is shortened to fit the S3 bucket
name limit of 63 characters; the identity part is never cut.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

BUCKET_PREFIX = "cosi"
USER_PREFIX = "cosi-ba"
POLICY_PREFIX = "cosi-bap"
HASH_LEN = 16
S3_BUCKET_MAX = 63
USER_NAME_MAX = 64
# v1alpha2 ids: ^[a-zA-Z0-9/._-]+$ and at most 2048 characters.
ID_PATTERN = re.compile(r"^[a-zA-Z0-9/._-]{1,2048}$")
# What S3 accepts as a bucket name (lower-case DNS label form, 3..63).
S3_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
OWNED_USER = re.compile(rf"^{USER_PREFIX}-[a-z0-9-]*-[0-9a-f]{{{HASH_LEN}}}$")
OWNED_BUCKET = re.compile(rf"^{BUCKET_PREFIX}-[a-z0-9-]*-[0-9a-f]{{{HASH_LEN}}}$")


def digest(identity: str) -> str:
    return hashlib.sha256(identity.encode()).hexdigest()


def _readable(name: str, room: int) -> str:
    text = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return text[:room].strip("-") or "x"


def hashed_name(prefix: str, identity: str, limit: int) -> str:
    room = limit - len(prefix) - HASH_LEN - 2
    return f"{prefix}-{_readable(identity, room)}-{digest(identity)[:HASH_LEN]}"


def bucket_name(cosi_name: str) -> str:
    """S3 bucket (and bucket_id) for a COSI Create name, e.g. `bucket-<claim uid>`."""
    # The v1alpha1 controller names every Bucket `bucket-<uid>`; dropping that constant prefix
    # leaves more of the unique part readable.
    readable = cosi_name.removeprefix("bucket-")
    room = S3_BUCKET_MAX - len(BUCKET_PREFIX) - HASH_LEN - 2
    return f"{BUCKET_PREFIX}-{_readable(readable, room)}-{digest(cosi_name)[:HASH_LEN]}"


def verbatim_or_hashed_bucket(cosi_name: str) -> str:
    """v1alpha1: the S3 bucket is named exactly like the COSI Bucket object when that is a valid S3
    bucket name (the v0.2.2 controller's `bucket-<claim uid>` always is), else the hashed name.

    Why: the v0.2.2 sidecar writes the Kubernetes Bucket's NAME, not the driver's bucket_id, into
    the BucketInfo Secret's `spec.bucketName`, which is what applications read. Any other S3 name
    would hand applications a bucket that does not exist. The name already holds a UID, so it is
    as unique and as deterministic as the hash."""
    if S3_BUCKET_NAME.match(cosi_name) and ".." not in cosi_name and not re.fullmatch(r"[\d.]+", cosi_name):
        return cosi_name
    return bucket_name(cosi_name)


def user_name(account_name: str) -> str:
    """Platform user (and account_id) for a COSI access name, e.g. `ba-<access uid>`."""
    readable = account_name.removeprefix("ba-")
    room = USER_NAME_MAX - len(USER_PREFIX) - HASH_LEN - 2
    return f"{USER_PREFIX}-{_readable(readable, room)}-{digest(account_name)[:HASH_LEN]}"


def policy_name(user: str) -> str:
    """The identity policy attached to exactly one user."""
    return POLICY_PREFIX + user.removeprefix(USER_PREFIX)


def uid_for(user: str) -> int:
    """Deterministic POSIX uid for a data user: stable across retries, spread over a wide range
    (the real driver's random 50000-60000 collides)."""
    return 1_000_000 + int(digest(user)[:12], 16) % 1_000_000_000


def fingerprint(doc: Any) -> str:
    """Stable hash of a request's meaningful content (to tell a repeat from an incompatible one)."""
    return digest(json.dumps(doc, sort_keys=True, separators=(",", ":")))[:32]


def is_owned_user(name: str) -> bool:
    return bool(OWNED_USER.match(name))


def is_owned_bucket(name: str) -> bool:
    return bool(OWNED_BUCKET.match(name))
