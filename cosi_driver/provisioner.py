"""Domain logic: buckets as S3 bucket views, one platform principal per access.

Protocol-neutral: both gRPC versions call these methods. Every method is idempotent and safe to
repeat after a crash; every platform object is named deterministically (``naming``), so a retry
finds what an earlier attempt made instead of making a second one, and what a failing call made
is removed again before the error is returned (compensation).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
from prometheus_client import Counter

from cosi_driver import naming, s3probe
from cosi_driver.backends import DEFAULT, BackendRegistry
from cosi_driver.errors import (
    AlreadyExists,
    BackendUnavailable,
    BucketNotEmpty,
    InvalidArgument,
    KeyStoreError,
    Misconfigured,
    NotFound,
    RecentlyRemoved,
)
from cosi_driver.inflight import InflightRegistry
from cosi_driver.keystore import KeyStore
from cosi_driver.params import BUCKET_KEYS, BucketParams, check_map, parse_bool, parse_bucket_params
from cosi_driver.policy import policy_document

log = logging.getLogger(__name__)

PLATFORM_OBJECTS = Counter(
    "cosi_platform_objects_created_total", "platform objects made by the driver", ["kind"]
)
COMPENSATIONS = Counter(
    "cosi_compensations_total",
    "platform objects removed again because the call that made them failed",
    ["kind"],
)
NOT_EMPTY_MARKERS = ("not empty", "non-empty", "nonempty", "contains objects")


@dataclass(frozen=True)
class Defaults:
    endpoint: str = ""
    region: str = "us-east-1"
    addressing_style: str = "path"
    bucket_owner: str = "cosi-bucket-owner"
    inflight_wait: float = 30.0
    tombstone_seconds: float = 600.0
    s3_verify: bool | str = True
    lookup_ttl: float = 60.0


@dataclass(frozen=True)
class BucketInfo:
    bucket_id: str
    endpoint: str
    region: str
    addressing_style: str


@dataclass(frozen=True)
class AccessInfo:
    account_id: str
    access_key_id: str
    secret_access_key: str = field(repr=False)
    buckets: tuple[BucketInfo, ...]

    def __repr__(self) -> str:
        return f"AccessInfo(account_id={self.account_id!r}, access_key_id={self.access_key_id!r})"


def _janitor_name(backend: str, owner: str, tenant_id: int | None) -> str:
    return f"{backend}.{owner}.{'t' + str(tenant_id) if tenant_id is not None else 'any'}".lower()


def check_id(what: str, value: str) -> None:
    if not value:
        raise InvalidArgument(f"{what} is required")
    if not naming.ID_PATTERN.match(value):
        raise InvalidArgument(
            f"{what} {value[:80]!r} must match ^[a-zA-Z0-9/._-]+$ (at most 2048 characters)"
        )


class _Undo:
    """Compensation stack: what this call made, removed in reverse order if it fails."""

    def __init__(self) -> None:
        self._steps: list[tuple[str, Callable[[], Any]]] = []

    def push(self, kind: str, step: Callable[[], Any], made: bool = True) -> None:
        if made:
            PLATFORM_OBJECTS.labels(kind).inc()
        self._steps.append((kind, step))

    def pending(self) -> bool:
        return bool(self._steps)

    def run(self) -> None:
        for kind, step in reversed(self._steps):
            try:
                step()
                COMPENSATIONS.labels(kind).inc()
            except Exception as exc:  # keep undoing the rest; the reconciler reports leftovers
                log.error("compensation failed", extra={"kind": kind, "error": str(exc)})
        self._steps.clear()


class Provisioner:
    def __init__(self, backends: BackendRegistry, store: KeyStore, defaults: Defaults | None = None) -> None:
        self.backends = backends
        self.store = store
        self.defaults = defaults or Defaults()
        self.inflight = InflightRegistry(self.defaults.inflight_wait)
        self._cache: dict[tuple[Any, ...], tuple[float, Any]] = {}
        self._tombstones: dict[str, float] = {}  # key -> time.time() it expires
        self._cache_mu = threading.Lock()
        self._load_tombstones()

    # ------------------------------------------------------------------ tombstones
    # A name deleted/revoked moments ago is refused for ``tombstone_seconds``, also across driver
    # restarts: each tombstone is a key store record ("tombstone/<kind>.<name>" holding its wall
    # clock expiry), written before the deleted object's own record goes away.
    @staticmethod
    def _tomb_record(key: str) -> str:
        return key.replace(":", ".", 1)

    def _load_tombstones(self) -> None:
        now = time.time()
        try:
            for name in self.store.names("tombstone"):
                record = self.store.get("tombstone", name) or {}
                until = float(record.get("until", 0))
                if until > now:
                    self._tombstones[name.replace(".", ":", 1)] = until
                else:
                    self.store.delete("tombstone", name)
        except KeyStoreError as exc:  # the first call that needs the store will report it
            log.warning("could not load tombstones", extra={"error": str(exc)})

    def _bury(self, key: str) -> None:
        now = time.time()
        until = now + self.defaults.tombstone_seconds
        self.store.put("tombstone", self._tomb_record(key), {"until": until})
        with self._cache_mu:
            expired = [k for k, t in self._tombstones.items() if t <= now]
            for k in expired:
                del self._tombstones[k]
            self._tombstones[key] = until
        for k in expired:
            try:
                self.store.delete("tombstone", self._tomb_record(k))
            except KeyStoreError as exc:  # dropped again at the next start
                log.warning("could not drop an expired tombstone", extra={"error": str(exc)})

    def _refuse_if_buried(self, key: str, what: str) -> None:
        with self._cache_mu:
            expiry = self._tombstones.get(key)
        if expiry is not None and expiry > time.time():
            raise RecentlyRemoved(
                f"{what} was removed moments ago; not re-creating it for what looks like a "
                "stale retry of an object being deleted"
            )

    # ------------------------------------------------------------------ lookups
    @staticmethod
    def _create_or_find(collection: Any, fields: dict[str, Any], **lookup: Any) -> tuple[Any, bool]:
        """Create, or on a clash (a retry, a concurrent call) find the existing object by its
        unique ``lookup``: (object, created). The common case costs one call."""
        try:
            return collection.create(fields, idempotent=True), True
        except Exception as exc:
            if type(exc).__name__ != "Conflict":
                raise
            found = collection.find_one(**lookup)
            if found is None:
                raise
            return found, False

    def _cached(self, key: tuple[Any, ...], load: Callable[[], Any]) -> Any:
        now = time.monotonic()
        with self._cache_mu:
            hit = self._cache.get(key)
            if hit and hit[0] > now:
                return hit[1]
        value = load()
        with self._cache_mu:
            self._cache[key] = (now + self.defaults.lookup_ttl, value)
        return value

    def _id_of(self, client: Any, backend: str, kind: str, name: str, **scope: Any) -> int:
        def load() -> int:
            found = getattr(client, kind).find_one(name=name, **scope)
            if found is None:
                raise InvalidArgument(
                    f"{kind[:-1] if kind.endswith('s') else kind} {name!r} does not exist on the platform"
                )
            return int(found.id)

        return int(self._cached((backend, kind, name, tuple(sorted(scope.items()))), load))

    def _qos_id(self, client: Any, backend: str, name: str, scope: dict[str, Any]) -> int:
        """QoS policies may be tenant-scoped or cluster-wide: prefer the tenant's."""
        if scope:
            try:
                return self._id_of(client, backend, "qospolicies", name, **scope)
            except InvalidArgument:
                pass
        return self._id_of(client, backend, "qospolicies", name)

    def _tenant_id(self, client: Any, backend: str, params: BucketParams) -> int | None:
        tenant = params.tenant or self.backends.default_tenant(backend)
        if tenant:
            try:
                return self._id_of(client, backend, "tenants", tenant)
            except Exception as exc:
                # A tenant-scoped principal (X-Tenant-Name) may not list tenants; the VMS then
                # scopes everything it does to that tenant anyway.
                if type(exc).__name__ in ("PermissionDenied", "Unauthorized") and not params.tenant:
                    return None
                raise
        # No tenant configured: VAST puts such objects in the tenant named "default". Resolve it
        # so owner lookups are scoped (a same-named owner in another tenant must not count).
        try:
            return self._id_of(client, backend, "tenants", "default")
        except InvalidArgument:
            return None

    def _ensure_owner(self, client: Any, backend: str, owner: str, tenant_id: int | None) -> None:
        def load() -> bool:
            scope = {"tenant_id": tenant_id} if tenant_id is not None else {}
            if client.users.find_one(name=owner, **scope) is None:
                fields: dict[str, Any] = {"name": owner, "uid": naming.uid_for(owner)}
                if tenant_id is not None:
                    fields["tenant_id"] = tenant_id
                try:
                    client.users.create(fields, idempotent=True)
                    PLATFORM_OBJECTS.labels("owner-user").inc()
                except Exception as exc:
                    if type(exc).__name__ != "Conflict":
                        raise
            return True

        self._cached((backend, "owner", owner, tenant_id), load)

    def _bucket_info(
        self, bucket: str, params: BucketParams | None, record: Mapping[str, Any] | None
    ) -> BucketInfo:
        rec = record or {}
        return BucketInfo(
            bucket_id=bucket,
            endpoint=(params.endpoint if params and params.endpoint else rec.get("endpoint"))
            or self.defaults.endpoint,
            region=(params.region if params and params.region else rec.get("region")) or self.defaults.region,
            addressing_style=(
                params.addressing_style if params and params.addressing_style else rec.get("addressing_style")
            )
            or self.defaults.addressing_style,
        )

    # ------------------------------------------------------------------ buckets
    def create_bucket(self, name: str, raw_params: Mapping[str, str], verbatim: bool = False) -> BucketInfo:
        if not name:
            raise InvalidArgument("name is required")
        if len(name) > 253:
            raise InvalidArgument("name longer than 253 characters")
        params = parse_bucket_params(raw_params)
        bucket = naming.verbatim_or_hashed_bucket(name) if verbatim else naming.bucket_name(name)
        shape = params.platform_shape()
        fp = naming.fingerprint({"op": "create", "shape": shape})
        self._refuse_if_buried(f"bucket:{bucket}", f"bucket {bucket}")
        with self.inflight.claim(f"bucket:{bucket}", fp, f"bucket {bucket}"):
            backend = params.vms_credentials or DEFAULT
            client = self.backends.client(backend)
            record = self.store.get("bucket", bucket)
            if record and record.get("fingerprint") != fp:
                raise AlreadyExists(
                    f"bucket {bucket} for {name!r} exists with different BucketClass parameters"
                )
            tenant_id = self._tenant_id(client, backend, params)
            scope = {"tenant_id": tenant_id} if tenant_id is not None else {}
            policy_id = (
                self._id_of(client, backend, "viewpolicies", params.view_policy, **scope)
                if params.view_policy
                else None
            )
            qos_id = self._qos_id(client, backend, params.qos_policy, scope) if params.qos_policy else None
            owner = params.bucket_owner or self.defaults.bucket_owner
            if not params.bucket_owner:
                self._ensure_owner(client, backend, owner, tenant_id)
            path = f"{params.path_prefix.rstrip('/')}/{bucket}"
            undo = _Undo()
            try:
                # A repeat the store already knows: one lookup proves the bucket is still there.
                view = client.views.find_one(bucket=bucket) if record else None
                created = False
                if view is None:
                    fields: dict[str, Any] = {
                        "path": path,
                        "create_dir": True,
                        "bucket": bucket,
                        "bucket_owner": owner,
                        "protocols": ["S3", *params.extra_protocols],
                    }
                    for key, value in (
                        ("tenant_id", tenant_id),
                        ("policy_id", policy_id),
                        ("qos_policy_id", qos_id),
                    ):
                        if value is not None:
                            fields[key] = value
                    if params.versioning:
                        fields["s3_versioning"] = True
                    if params.object_lock:
                        fields["s3_locks"] = True
                        if params.retention_mode:
                            fields["s3_locks_retention_mode"] = params.retention_mode
                            fields["s3_locks_retention_period"] = f"{params.retention_days}d"
                    # Create first, look up only on a clash: the common case costs one call.
                    # The bucket name is unique, so a retried POST cannot make a second view.
                    view, created = self._create_or_find(client.views, fields, bucket=bucket)
                    if created:
                        view_id = view.id
                        undo.push("view", lambda: client.views.delete(view_id, missing_ok=True))
                quota_id = None
                if created:
                    if params.quota_bytes is not None:
                        quota_id = self._create_quota(
                            client, bucket, path, tenant_id, params.quota_bytes, undo
                        )
                else:
                    self._check_view(view, bucket, path, tenant_id, policy_id, qos_id, params, owner)
                    quota_id = self._ensure_quota(client, bucket, path, tenant_id, params.quota_bytes, undo)
                wanted = {
                    "fingerprint": fp,
                    "backend": backend,
                    "name": name,
                    "path": path,
                    "tenant_id": view.tenant_id,
                    "view_id": view.id,
                    "quota_id": quota_id,
                    "owner": view.bucket_owner or owner,
                    "force_delete": params.force_delete,
                    "endpoint": params.endpoint,
                    "region": params.region,
                    "addressing_style": params.addressing_style,
                }
                if record != wanted:
                    self.store.put("bucket", bucket, wanted)
            except BaseException:
                undo.run()
                raise
            log.info("bucket ready", extra={"bucket": bucket, "cosi_name": name})
            return self._bucket_info(bucket, params, None)

    def _check_view(
        self,
        view: Any,
        bucket: str,
        path: str,
        tenant_id: int | None,
        policy_id: int | None,
        qos_id: int | None,
        params: BucketParams,
        owner: str,
    ) -> None:
        diffs = []
        if view.path and view.path.rstrip("/") != path:
            diffs.append(f"path {view.path} (wanted {path})")
        if tenant_id is not None and view.tenant_id is not None and view.tenant_id != tenant_id:
            diffs.append("tenant")
        if policy_id is not None and view.policy_id != policy_id:
            diffs.append("viewPolicy")
        if qos_id is not None and view.qos_policy_id != qos_id:
            diffs.append("qosPolicy")
        if view.bucket_owner and view.bucket_owner != owner:
            diffs.append("bucketOwner")
        if sorted(p.upper() for p in view.protocols) != sorted(["S3", *params.extra_protocols]):
            diffs.append("protocols")
        for attr, wanted in (("s3_versioning", params.versioning), ("s3_locks", params.object_lock)):
            have = getattr(view, attr, None) if hasattr(view, attr) else view.extra(attr)
            if have is not None and bool(have) != wanted:
                diffs.append(attr)
        if diffs:
            raise AlreadyExists(
                f"bucket {bucket} exists on the platform with different settings: " + ", ".join(diffs)
            )

    @staticmethod
    def _create_quota(
        client: Any, bucket: str, path: str, tenant_id: int | None, limit: int, undo: _Undo
    ) -> int:
        fields: dict[str, Any] = {"name": bucket, "path": path, "hard_limit": limit}
        if tenant_id is not None:
            fields["tenant_id"] = tenant_id
        quota = client.quotas.create(fields)
        quota_id = int(quota.id)
        undo.push("quota", lambda: client.quotas.delete(quota_id, missing_ok=True))
        return quota_id

    def _ensure_quota(
        self, client: Any, bucket: str, path: str, tenant_id: int | None, limit: int | None, undo: _Undo
    ) -> int | None:
        quota = client.quotas.find_one(path=path)
        if limit is None:
            if quota is not None and quota.hard_limit:
                raise AlreadyExists(f"bucket {bucket} exists with a quota but the class sets none")
            return None
        if quota is None:
            return self._create_quota(client, bucket, path, tenant_id, limit, undo)
        if quota.hard_limit != limit:
            raise AlreadyExists(f"bucket {bucket} exists with quota {quota.hard_limit} bytes, not {limit}")
        return int(quota.id)

    def get_existing_bucket(self, bucket_id: str, raw_params: Mapping[str, str]) -> BucketInfo:
        check_id("existing_bucket_id", bucket_id)
        params = parse_bucket_params(raw_params)
        backend = params.vms_credentials or DEFAULT
        client = self.backends.client(backend)
        view = client.views.find_one(bucket=bucket_id)
        if view is None:
            raise NotFound(f"bucket {bucket_id!r} does not exist on the platform")
        return self._bucket_info(bucket_id, params, self._bucket_record(bucket_id))

    def delete_bucket(self, bucket_id: str, context: Mapping[str, str]) -> None:
        check_id("bucket_id", bucket_id)
        check_map("parameters", context)
        # The context carries the class parameters, validated at Create. Unknown keys here are
        # logged, not refused: INVALID_ARGUMENT is terminal, and would strand the bucket forever.
        unknown = sorted(set(context) - BUCKET_KEYS)
        if unknown:
            log.warning("ignoring unknown delete context keys", extra={"bucket": bucket_id, "keys": unknown})
        params = parse_bucket_params({k: v for k, v in context.items() if k in BUCKET_KEYS})
        if not self.owns_bucket(bucket_id):
            # Brownfield buckets belong to whoever made them: the driver never deletes those.
            log.warning("not deleting a bucket this driver did not create", extra={"bucket": bucket_id})
            return
        with self.inflight.claim(f"bucket:{bucket_id}", "delete", f"bucket {bucket_id}"):
            record = self.store.get("bucket", bucket_id) or {}
            backend = record.get("backend") or params.vms_credentials or DEFAULT
            client = self.backends.client(backend)
            force = params.force_delete or bool(record.get("force_delete"))
            if "forceDelete" in context:
                force = bool(parse_bool(context["forceDelete"]))
            # A bucket this driver made carries its ids in the store: no lookups needed.
            view_id, owner_name = record.get("view_id"), record.get("owner")
            path, tenant_id, quota_id = record.get("path"), record.get("tenant_id"), record.get("quota_id")
            if view_id is None:
                view = client.views.find_one(bucket=bucket_id)
                if view is not None:
                    view_id, owner_name, path, tenant_id = (
                        view.id,
                        view.bucket_owner,
                        view.path,
                        view.tenant_id,
                    )
            if view_id is not None:
                if not force:
                    self._refuse_if_not_empty(client, backend, bucket_id, owner_name, tenant_id, record)
                try:
                    client.views.delete(view_id, missing_ok=True)
                except Exception as exc:
                    text = str(exc).lower()
                    if any(marker in text for marker in NOT_EMPTY_MARKERS):
                        raise BucketNotEmpty(self._not_empty_message(bucket_id)) from None
                    raise
            if path:
                if quota_id is not None:
                    client.quotas.delete(quota_id, missing_ok=True)
                elif "quota_id" not in record:  # not made by this version of the driver: look
                    quota = client.quotas.find_one(path=path)
                    if quota is not None:
                        client.quotas.delete(quota.id, missing_ok=True)
                # The directory goes too: with force its objects, without force it was checked
                # empty above (or the platform refused the delete). A retry after a crash here
                # finds no view and finishes from the record.
                if force or self._emptiness_checked(record):
                    try:
                        client.folders.delete_folder(path, tenant_id)
                    except Exception as exc:
                        if type(exc).__name__ != "NotFound":
                            raise
            self._bury(f"bucket:{bucket_id}")
            self.store.delete("bucket", bucket_id)
            log.info("bucket deleted", extra={"bucket": bucket_id, "force": force})

    def _bucket_record(self, bucket_id: str) -> dict[str, Any] | None:
        """The store's record of a bucket (None for ids that cannot be this driver's buckets)."""
        if not naming.S3_BUCKET_NAME.match(bucket_id):
            return None
        return self.store.get("bucket", bucket_id)

    def owns_bucket(self, bucket_id: str) -> bool:
        """Made by this driver: a hashed name, or a record in the store (verbatim v1alpha1 names)."""
        if naming.is_owned_bucket(bucket_id):
            return True
        return self._bucket_record(bucket_id) is not None

    @staticmethod
    def _not_empty_message(bucket_id: str) -> str:
        return (
            f"bucket {bucket_id} is not empty; delete its objects, or set forceDelete=true on the "
            "BucketClass to let the driver empty it (retrying)"
        )

    def _s3_endpoint(self, record: Mapping[str, Any]) -> str:
        return str(record.get("endpoint") or self.defaults.endpoint or "")

    def _emptiness_checked(self, record: Mapping[str, Any]) -> bool:
        return bool(self._s3_endpoint(record))

    def _probe_key(
        self, client: Any, backend: str, owner_name: str, tenant_id: int | None
    ) -> tuple[int, str, str, bool] | None:
        """(owner id, key, secret, keep) for listing a bucket as its owner.

        The driver's own bucket owner keeps one long-lived key in the key store (minting a key
        per delete would double the calls); an owner named by a class is someone else's user, so
        it only ever gets a key for the one probe, deleted right after."""
        mine = owner_name == self.defaults.bucket_owner
        if mine:
            rec = self.store.get("janitor", _janitor_name(backend, owner_name, tenant_id))
            if rec:
                return int(rec["user_id"]), rec["access_key"], rec["secret_key"], True
        owner = client.users.find_one(
            name=owner_name, **({"tenant_id": tenant_id} if tenant_id is not None else {})
        )
        if owner is None:
            return None
        pair = client.users.create_access_key(owner.id)
        secret = pair.secret_key.get_secret_value()
        if mine:
            self.store.put(
                "janitor",
                _janitor_name(backend, owner_name, tenant_id),
                {"user_id": owner.id, "access_key": pair.access_key, "secret_key": secret},
            )
        return int(owner.id), pair.access_key, secret, mine

    def _refuse_if_not_empty(
        self,
        client: Any,
        backend: str,
        bucket_id: str,
        owner_name: str | None,
        tenant_id: int | None,
        record: Mapping[str, Any],
    ) -> None:
        endpoint = self._s3_endpoint(record)
        if not endpoint or not owner_name:
            log.warning(
                "cannot check emptiness (no S3 endpoint or owner); leaving the data directory",
                extra={"bucket": bucket_id},
            )
            return
        region = str(record.get("region") or self.defaults.region)
        for attempt in (1, 2):
            probe = self._probe_key(client, backend, owner_name, tenant_id)
            if probe is None:
                return
            owner_id, key, secret, keep = probe
            try:
                has_objects = s3probe.bucket_has_objects(
                    endpoint, bucket_id, key, secret, region, verify=self.defaults.s3_verify
                )
                break
            except s3probe.ProbeDenied:
                # the kept key was removed behind our back: forget it and mint another, once
                self.store.delete("janitor", _janitor_name(backend, owner_name, tenant_id))
                if attempt == 2 or not keep:
                    raise BackendUnavailable(
                        f"the bucket owner {owner_name} may not list {bucket_id}"
                    ) from None
            except (OSError, RuntimeError, requests.RequestException) as exc:
                raise BackendUnavailable(f"cannot check whether bucket {bucket_id} is empty: {exc}") from None
            finally:
                if not keep:
                    client.users.delete_access_key(owner_id, key, missing_ok=True)
        if has_objects:
            raise BucketNotEmpty(self._not_empty_message(bucket_id))

    # ------------------------------------------------------------------ accesses
    def grant(
        self, account_name: str, grants: list[tuple[str, str]], request_doc: Mapping[str, Any]
    ) -> AccessInfo:
        if not account_name:
            raise InvalidArgument("account name is required")
        if len(account_name) > 253:
            raise InvalidArgument("account name longer than 253 characters")
        if not grants:
            raise InvalidArgument("at least one bucket is required")
        for bucket_id, _mode in grants:
            check_id("bucket_id", bucket_id)
        if len({b for b, _ in grants}) != len(grants):
            raise InvalidArgument("a bucket is listed more than once")
        user = naming.user_name(account_name)
        self._refuse_if_buried(f"access:{user}", f"access {account_name}")
        fp = naming.fingerprint({"grants": sorted(grants), "request": dict(request_doc)})
        with self.inflight.claim(f"access:{user}", fp, f"access {account_name}"):
            records = {b: self._bucket_record(b) for b, _ in grants}
            backends = {(r or {}).get("backend") or DEFAULT for r in records.values()}
            if len(backends) > 1:
                raise InvalidArgument("the buckets of one access live on different platforms")
            backend = backends.pop()
            client = self.backends.client(backend)
            existing = self.store.get("access", user)
            if existing is not None:
                if existing.get("fingerprint") != fp:
                    raise AlreadyExists(
                        f"access {account_name!r} already exists for other buckets or another access mode"
                    )
                found = client.users.find_one(name=user)
                if found is not None and existing["access_key"] in {k.key for k in found.access_keys}:
                    return self._access_info(user, existing, grants, records)
                log.warning("stored key no longer on the platform; minting a new one", extra={"user": user})
                self.store.delete("access", user)
            # Credentials without an endpoint are useless to an application: refuse before making anything.
            for bucket_id, _ in grants:
                if not self._bucket_info(bucket_id, None, records.get(bucket_id)).endpoint:
                    raise Misconfigured(
                        f"no S3 endpoint for bucket {bucket_id}: start the driver with "
                        "--s3-endpoint or set the BucketClass parameter endpoint"
                    )
            tenant_ids = set()
            for bucket_id, _ in grants:
                rec = records.get(bucket_id) or {}
                if "view_id" in rec:  # made by this driver: its tenant is on record
                    tenant_ids.add(rec.get("tenant_id"))
                    continue
                view = client.views.find_one(bucket=bucket_id)
                if view is None:
                    raise NotFound(f"bucket {bucket_id!r} does not exist on the platform")
                tenant_ids.add(view.tenant_id)
            if len(tenant_ids) > 1:
                raise InvalidArgument("the buckets of one access belong to different tenants")
            tenant_id = tenant_ids.pop()
            record = self._provision(client, backend, user, tenant_id, grants, fp)
            log.info("access granted", extra={"user": user, "buckets": [b for b, _ in grants]})
            return self._access_info(user, record, grants, records)

    def _provision(
        self,
        client: Any,
        backend: str,
        user: str,
        tenant_id: int | None,
        grants: list[tuple[str, str]],
        fp: str,
    ) -> dict[str, Any]:
        undo = _Undo()
        try:
            # Policy first, then the user made with it attached: three calls in the common case.
            # Names are unique, so create-then-look-up-on-clash is safe to retry.
            pname = naming.policy_name(user)
            document = policy_document(grants)
            pfields: dict[str, Any] = {"name": pname, "policy": document, "enabled": True}
            if tenant_id is not None:
                pfields["tenant_id"] = tenant_id
            pol, made = self._create_or_find(client.s3policies, pfields, name=pname)
            if not made:
                if pol.policy != document:
                    client.s3policies.update(pol.id, policy=document)
            else:
                pol_id = pol.id
                undo.push("s3policy", lambda: client.s3policies.delete(pol_id, missing_ok=True))
            fields: dict[str, Any] = {
                "name": user,
                "uid": naming.uid_for(user),
                "allow_create_bucket": False,
                "allow_delete_bucket": False,
                "s3_policies_ids": [pol.id],
            }
            if tenant_id is not None:
                fields["tenant_id"] = tenant_id
            found, made = self._create_or_find(client.users, fields, name=user)
            if not made:
                if list(found.s3_policies_ids) != [pol.id]:
                    client.users.update(found.id, s3_policies_ids=[pol.id])
                    if undo.pending():
                        # an attached policy cannot be deleted: undo detaches before it deletes
                        attached_user = found.id
                        undo.push(
                            "policy-attachment",
                            lambda: client.users.update(attached_user, s3_policies_ids=[]),
                            made=False,
                        )
            else:
                # deleting the user also drops its keys and the attachment (undo runs in reverse)
                user_id = found.id
                undo.push("user", lambda: client.users.delete(user_id, missing_ok=True))
            # Keys whose secret we never stored (a crash after minting) are useless: remove them
            # so exactly one key per principal exists.
            for stale in found.access_keys:
                client.users.delete_access_key(found.id, stale.key, missing_ok=True)
            pair = client.users.create_access_key(found.id)
            uid, key = found.id, pair.access_key
            undo.push("access-key", lambda: client.users.delete_access_key(uid, key, missing_ok=True))
            record = {
                "fingerprint": fp,
                "backend": backend,
                "user_id": found.id,
                "policy_id": pol.id,
                "access_key": pair.access_key,
                "secret_key": pair.secret_key.get_secret_value(),
                "buckets": sorted(b for b, _ in grants),
                "created": time.time(),
            }
            self.store.put("access", user, record)
            return record
        except BaseException:
            undo.run()
            raise

    def _access_info(
        self,
        user: str,
        record: Mapping[str, Any],
        grants: list[tuple[str, str]],
        bucket_records: Mapping[str, Mapping[str, Any] | None],
    ) -> AccessInfo:
        return AccessInfo(
            account_id=user,
            access_key_id=record["access_key"],
            secret_access_key=record["secret_key"],
            buckets=tuple(self._bucket_info(b, None, bucket_records.get(b)) for b, _ in grants),
        )

    def revoke(self, account_id: str) -> None:
        check_id("account_id", account_id)
        if not naming.is_owned_user(account_id):
            raise InvalidArgument(f"account_id {account_id[:80]!r} was not issued by this driver")
        with self.inflight.claim(f"access:{account_id}", "revoke", f"access {account_id}"):
            record = self.store.get("access", account_id) or {}
            client = self.backends.client(record.get("backend") or DEFAULT)
            user_gone = policy_gone = False
            if record.get("user_id") is not None:
                # Ids on record: three deletes, no lookups. Key first: access ends at step one.
                client.users.delete_access_key(record["user_id"], record["access_key"], missing_ok=True)
                user_gone = client.users.delete(record["user_id"], missing_ok=True)
                if record.get("policy_id") is not None:
                    policy_gone = client.s3policies.delete(record["policy_id"], missing_ok=True)
            if not user_gone:  # no record, or the record was stale: find by name
                found = client.users.find_one(name=account_id)
                if found is not None:
                    for key in found.access_keys:
                        client.users.delete_access_key(found.id, key.key, missing_ok=True)
                    client.users.delete(found.id, missing_ok=True)
            if not policy_gone:
                pol = client.s3policies.find_one(name=naming.policy_name(account_id))
                if pol is not None:
                    client.s3policies.delete(pol.id, missing_ok=True)
            self._bury(f"access:{account_id}")
            self.store.delete("access", account_id)
            log.info("access revoked", extra={"user": account_id})
