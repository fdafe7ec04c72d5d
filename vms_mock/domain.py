"""Domain logic of the VMS emulator: resources, their rules, tenancy and side effects.

Every write runs in one store transaction, so a failed check leaves nothing half-written; host
file operations (block backing files, view directories) are undone when the transaction fails.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import shutil
import string
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vms_mock import block
from vms_mock.auth import Principal, TokenSigner, check_password, hash_api_token, hash_password
from vms_mock.core_api import (
    ACCESS_KEY_CHANGED,
    FOLDER_DELETED,
    MAPPING_CHANGED,
    META_BLOCK_BYTES,
    VIEW_CHANGED,
    VOLUME_CREATED,
    VOLUME_DELETED,
    VOLUME_RESIZED,
    CapacityExceeded,
    StorageCore,
)
from vms_mock.errors import (
    ApiError,
    ConflictError,
    FieldError,
    InsufficientCapacity,
    NotAuthenticated,
    NotFoundError,
    PermissionDenied,
    TokenInvalid,
    UniqueError,
    invalid_pk,
)
from vms_mock.store import Store, UniqueViolation

log = logging.getLogger(__name__)

# Filterable fields per resource: field -> python type. Strings also take __contains,
# __startswith and __endswith.
FILTERS: dict[str, dict[str, type]] = {
    "versions": {"id": int, "status": str, "sys_version": str},
    "clusters": {"id": int, "name": str},
    "tenants": {"id": int, "name": str},
    "managers": {"id": int, "username": str, "role": str, "tenant_id": int},
    "apitokens": {"id": int, "name": str, "owner": str},
    "viewpolicies": {"id": int, "name": str, "tenant_id": int, "tenant_name": str, "flavor": str},
    "qospolicies": {"id": int, "name": str, "tenant_id": int, "tenant_name": str, "policy_type": str},
    "vippools": {"id": int, "name": str, "tenant_id": int, "role": str, "domain_name": str},
    "views": {"id": int, "name": str, "path": str, "bucket": str, "bucket_owner": str, "alias": str,
              "nqn": str, "tenant_id": int, "tenant_name": str, "policy_id": int, "qos_policy_id": int,
              "share": str},
    "quotas": {"id": int, "name": str, "path": str, "tenant_id": int, "tenant_name": str},
    "users": {"id": int, "name": str, "uid": int, "tenant_id": int, "tenant_name": str},
    "s3policies": {"id": int, "name": str, "tenant_id": int, "tenant_name": str, "enabled": bool},
    "snapshots": {"id": int, "name": str, "path": str, "tenant_id": int, "tenant_name": str},
    "volumes": {"id": int, "name": str, "view_id": int, "uuid": str, "nguid": str, "tenant_id": int,
                "tenant_name": str, "subsystem_name": str, "subsystem_nqn": str, "nsid": int,
                "qos_policy_id": int},
    "blockhosts": {"id": int, "name": str, "nqn": str, "tenant_id": int, "tenant_name": str,
                   "os_type": str},
    "blockhostvolumes": {"id": int, "volume__id": int, "volume__name": str, "block_host__id": int,
                         "block_host__name": str, "block_host__nqn": str, "tenant_id": int},
    "vtasks": {"id": int, "state": str, "name": str, "tenant_id": int},
}
TENANT_SCOPED = {"viewpolicies", "qospolicies", "vippools", "views", "quotas", "users", "s3policies",
                 "snapshots", "volumes", "blockhosts", "blockhostvolumes", "vtasks"}
# kinds whose records hold hidden ("_") or computed fields: decoded and rendered on read
RENDERED = {"users", "blockhosts", "managers", "apitokens", "snapshots", "vtasks"}
GLOBAL_OK = {"qospolicies", "vippools"}  # tenant_id null = shared by every tenant
BUCKET_RE = re.compile(r"^(?!xn--)(?!.*-s3alias$)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
NQN_PREFIX = "nqn.2024-08.com.vastdata"


def now_iso() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"


def _iso(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return value


def _nqn_part(text: str) -> str:
    allowed = string.ascii_letters + string.digits + "-._"
    return "".join(c if c in allowed else "-" for c in text)


@dataclass
class Settings:
    sys_version: str = "5.3.0"
    cluster_name: str = "vast-mock"
    vtask_delay: float = 0.05
    snapshot_reaper_interval: float = 5.0  # seconds between sweeps for expired snapshots; 0 = off
    access_ttl: float = 3600.0
    refresh_ttl: float = 86400.0


@dataclass
class Page:
    results: list[dict[str, Any]]
    count: int | None = None
    paged: bool = False
    page: int = 1
    page_size: int = 0
    raw: list[str] | None = None  # results as stored JSON texts (instead of ``results``)


class Vms:
    """All resources of the emulated VMS over one store."""

    def __init__(self, store: Store, core: StorageCore, settings: Settings) -> None:
        self.store = store
        self.core = core
        self.settings = settings
        key = store.get_meta("jwt_key")
        if key is None:
            key = secrets.token_hex(32)
            store.set_meta("jwt_key", key)
        self.signer = TokenSigner(bytes.fromhex(key), settings.access_ttl, settings.refresh_ttl)
        self._timers: list[threading.Timer] = []
        self._closed = False

    # ==== lifecycle ==============================================================================
    def recover(self) -> None:
        """Bring host files in line with committed state after a restart or crash."""
        wanted = set()
        for v in self.store.iter_kind("volumes"):
            path = self.core.volume_backing_path(v["uuid"])
            wanted.add(path.name)
            if not path.exists():  # killed between commit and file creation: recreate (empty)
                block.create_sparse(path, int(v["size"]))
            elif path.stat().st_size < int(v["size"]):  # killed between commit and grow
                block.grow(path, int(v["size"]))
        for f in self.core.block_dir.glob("*.img"):
            if f.name not in wanted and not f.name.startswith("."):  # orphan of a rolled-back create
                block.remove(f)
        self._drop_pending_snapshots()
        keep = {str(s["id"]) for s in self.store.iter_kind("snapshots")}
        for d in self.core.snapshot_dir.iterdir():
            if d.name not in keep:
                shutil.rmtree(d, ignore_errors=True)
        tasks, _ = self.store.find("vtasks", [("state", "exact", "RUNNING")])
        for t in tasks:
            self._schedule_task(int(t["id"]))

    def close(self) -> None:
        self._closed = True
        for t in self._timers:
            t.cancel()

    def start_reaper(self) -> None:
        """Delete snapshots past their ``expiration_time`` (not indestructible ones), as a cluster's
        snapshot expiry does, every ``snapshot_reaper_interval`` seconds."""
        if self._closed or self.settings.snapshot_reaper_interval <= 0:
            return
        timer = threading.Timer(self.settings.snapshot_reaper_interval, self._reap)
        timer.daemon = True
        self._timers = [t for t in self._timers if t.is_alive()] + [timer]
        timer.start()

    def _reap(self) -> None:
        try:
            self.reap_expired_snapshots()
        except Exception:
            log.exception("snapshot expiry sweep failed")
        self.start_reaper()

    def reap_expired_snapshots(self) -> int:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        system = Principal(manager_id=0, username="expiry", role="super_admin", tenant_id=None,
                           tenant_name=None, via="system")
        done = 0
        for snap in self.store.iter_kind("snapshots"):
            exp = snap.get("expiration_time")
            if exp and exp <= now and not snap.get("indestructible") and not snap.get("_pending"):
                with self.store.tx():
                    if self.store.get("snapshots", int(snap["id"])) is not None:
                        self.delete_snapshots(system, snap, False)
                        done += 1
                log.info("snapshot expired", extra={"snapshot_id": snap["id"], "snapshot": snap["name"]})
        return done

    # ==== authentication =========================================================================
    def login(self, username: str, password: str, tenant_name: str | None) -> dict[str, str]:
        bad = NotAuthenticated("No active account found with the given credentials")
        rows, _ = self.store.find("managers", [("username", "exact", username)], limit=1)
        if not rows or not check_password(password, rows[0]["_password"]):
            raise bad
        mgr = rows[0]
        tenant_id = self._login_tenant(mgr, tenant_name)
        if tenant_id is False:
            raise bad
        tid = tenant_id if isinstance(tenant_id, int) else None
        return {"access": self.signer.issue(mgr["id"], username, tid, "access"),
                "refresh": self.signer.issue(mgr["id"], username, tid, "refresh")}

    def _login_tenant(self, mgr: dict[str, Any], tenant_name: str | None) -> int | bool | None:
        if mgr["role"] == "tenant_admin":
            if tenant_name:
                t = self._tenant_by_name(tenant_name)
                if t is None or t["id"] != mgr["tenant_id"]:
                    return False
            return int(mgr["tenant_id"])
        if tenant_name:
            t = self._tenant_by_name(tenant_name)
            return int(t["id"]) if t else False
        return None

    def refresh(self, token: str) -> dict[str, str]:
        try:
            claims = self.signer.verify(token, "refresh")
        except TokenInvalid:
            raise NotAuthenticated("Token is invalid or expired") from None
        mgr = self.store.get("managers", int(claims["user_id"]))
        if mgr is None:
            raise NotAuthenticated("Token is invalid or expired")
        return {"access": self.signer.issue(mgr["id"], mgr["username"], claims.get("tenant_id"), "access")}

    def authenticate(self, authorization: str | None, tenant_header: str | None) -> Principal:
        if not authorization:
            raise NotAuthenticated()
        scheme, _, cred = authorization.strip().partition(" ")
        cred = cred.strip()
        scheme = scheme.lower()
        if scheme == "bearer" and cred:
            claims = self.signer.verify(cred, "access")
            mgr = self.store.get("managers", int(claims["user_id"]))
            if mgr is None:
                raise TokenInvalid()
            tenant_id = claims.get("tenant_id")
            via = "bearer"
        elif scheme == "api-token" and cred:
            tok_id = self.store.lookup_unique("apitokens", "hash:" + hash_api_token(cred))
            tok = self.store.get("apitokens", tok_id) if tok_id else None
            if tok is None or tok.get("revoked") or (
                    tok.get("_expires") and float(tok["_expires"]) <= time.time()):
                raise NotAuthenticated("Invalid or expired API token.")
            mgr = self.store.get("managers", int(tok["_owner_id"]))
            if mgr is None:
                raise NotAuthenticated("Invalid or expired API token.")
            tenant_id = tok.get("_tenant_id")
            via = "api-token"
        else:
            raise NotAuthenticated("Invalid Authorization header.")
        if mgr["role"] == "tenant_admin":
            tenant_id = int(mgr["tenant_id"])
        if tenant_header:
            t = self._tenant_by_name(tenant_header)
            if t is None or (tenant_id is not None and t["id"] != tenant_id):
                raise PermissionDenied(f"Not allowed to act in tenant {tenant_header!r}.")
            tenant_id = int(t["id"])
        tname = None
        if tenant_id is not None:
            t = self.store.get("tenants", int(tenant_id))
            if t is None:
                raise PermissionDenied("Tenant of this session no longer exists.")
            tname = t["name"]
        return Principal(manager_id=int(mgr["id"]), username=mgr["username"], role=mgr["role"],
                         tenant_id=int(tenant_id) if tenant_id is not None else None,
                         tenant_name=tname, via=via)

    # ==== generic helpers ========================================================================
    def _tenant_by_name(self, name: str) -> dict[str, Any] | None:
        rows, _ = self.store.find("tenants", [("name", "exact", name)], limit=1)
        return rows[0] if rows else None

    def _visible(self, p: Principal, kind: str, obj: dict[str, Any]) -> bool:
        if p.tenant_id is None:
            return not (kind == "apitokens" and p.role != "super_admin"
                        and obj.get("_owner_id") != p.manager_id)
        if kind == "tenants":
            return int(obj["id"]) == p.tenant_id
        if kind == "managers":
            return False
        if kind == "apitokens":
            return obj.get("_owner_id") == p.manager_id
        if kind in TENANT_SCOPED:
            tid = obj.get("tenant_id")
            return tid == p.tenant_id or (tid is None and kind in GLOBAL_OK)
        return True

    def get_obj(self, p: Principal, kind: str, obj_id: int) -> dict[str, Any]:
        obj = self.store.get(kind, obj_id)
        if obj is None or obj.get("_pending") or not self._visible(p, kind, obj):
            raise NotFoundError()
        return obj

    def _ref(self, p: Principal, kind: str, obj_id: int | None, fld: str,
             tenant_id: int | None = None) -> dict[str, Any] | None:
        """Referenced object ``kind``/``obj_id`` visible to ``p`` (and in ``tenant_id`` for
        tenant-scoped kinds), else 400 naming ``fld``."""
        if obj_id is None:
            return None
        obj = self.store.get(kind, obj_id)
        if obj is None or not self._visible(p, kind, obj):
            raise invalid_pk(fld, obj_id)
        if tenant_id is not None and kind in TENANT_SCOPED and obj.get("tenant_id") not in (
                tenant_id, *((None,) if kind in GLOBAL_OK else ())):
            raise invalid_pk(fld, obj_id)
        return obj

    def _tenant_for(self, p: Principal, tenant_id: int | None) -> dict[str, Any]:
        if p.tenant_id is not None:
            if tenant_id is not None and tenant_id != p.tenant_id:
                raise invalid_pk("tenant_id", tenant_id)
            tenant_id = p.tenant_id
        if tenant_id is None:
            t = self._tenant_by_name("default")
            if t is None:
                raise FieldError("tenant_id", "This field is required.")
            return t
        t = self.store.get("tenants", tenant_id)
        if t is None:
            raise invalid_pk("tenant_id", tenant_id)
        return t

    def _require_super(self, p: Principal) -> None:
        if not p.is_super:
            raise PermissionDenied()

    def _insert(self, kind: str, data: dict[str, Any], uniques: dict[str, str]) -> dict[str, Any]:
        data.setdefault("created", now_iso())
        try:
            return self.store.insert(kind, data, uniques)
        except UniqueViolation as exc:
            raise UniqueError(exc.field) from None

    def _update(self, kind: str, data: dict[str, Any], uniques: dict[str, str] | None = None) -> None:
        try:
            self.store.update(kind, data, uniques)
        except UniqueViolation as exc:
            raise UniqueError(exc.field) from None

    @staticmethod
    def _u(tenant_id: Any, **fields: Any) -> dict[str, str]:
        """Unique keys scoped to a tenant for every non-empty field."""
        return {k: f"{k}:{tenant_id}:{v}" for k, v in fields.items() if v not in (None, "")}

    # ==== listing ================================================================================
    def parse_filters(self, kind: str, params: dict[str, str]) -> list[tuple[str, str, Any]]:
        allowed = FILTERS.get(kind, {})
        out: list[tuple[str, str, Any]] = []
        for key, raw in params.items():
            if key in ("page", "page_size", "force", "format", "ordering", "fields"):
                continue
            fld, op = key, "exact"
            for suffix in ("contains", "startswith", "endswith", "in"):
                if key.endswith("__" + suffix) and key[: -len(suffix) - 2] in allowed:
                    fld, op = key[: -len(suffix) - 2], suffix
            typ = allowed.get(fld)
            if typ is None:
                raise FieldError(key, "Unknown filter.")
            if op in ("contains", "startswith", "endswith") and typ is not str:
                raise FieldError(key, "Lookup not supported for this field.")
            values = raw.split(",") if op == "in" else [raw]
            conv: list[Any] = []
            for v in values:
                if typ is int:
                    if not re.fullmatch(r"-?[0-9]{1,18}", v.strip()):
                        raise FieldError(key, "Enter a whole number.")
                    conv.append(int(v))
                elif typ is bool:
                    if v.lower() not in ("true", "false", "1", "0"):
                        raise FieldError(key, "Enter a valid boolean.")
                    conv.append(1 if v.lower() in ("true", "1") else 0)
                else:
                    conv.append(v)
            out.append((fld, op, conv if op == "in" else conv[0]))
        return out

    def list_objs(self, p: Principal, kind: str, params: dict[str, str]) -> Page:
        filters = self.parse_filters(kind, params)
        page_size = self._int_param(params, "page_size", 1, 10000)
        page = self._int_param(params, "page", 1, 10**9) or 1
        tenant = None
        if p.tenant_id is not None:
            if kind == "managers":
                raise PermissionDenied()
            if kind in TENANT_SCOPED:
                tenant = p.tenant_id
            elif kind == "tenants":
                filters.append(("id", "exact", p.tenant_id))
        if kind == "apitokens" and not p.is_super:
            filters.append(("_owner_id", "exact", p.manager_id))
        if kind == "snapshots":  # still copying: not there yet for clients
            filters.append(("_pending", "exact", None))
        if kind == "managers" and not p.is_super:
            raise PermissionDenied()
        offset, limit = ((page - 1) * page_size, page_size) if page_size else (0, None)
        raw, count = self.store.find_raw(kind, filters, tenant, offset=offset, limit=limit,
                                         with_count=bool(page_size), include_global=kind in GLOBAL_OK)
        if page > 1 and not raw:
            raise NotFoundError("Invalid page.")
        if kind in RENDERED:
            out = Page([self.render(kind, json.loads(r)) for r in raw], count, bool(page_size), page,
                       page_size or 0)
        else:  # stored JSON is exactly what the API shows: no decode/encode round trip
            out = Page([], count, bool(page_size), page, page_size or 0, raw=raw)
        return out

    @staticmethod
    def _int_param(params: dict[str, str], key: str, lo: int, hi: int) -> int | None:
        raw = params.get(key)
        if raw is None:
            return None
        if not re.fullmatch(r"[0-9]{1,10}", raw) or not lo <= int(raw) <= hi:
            raise FieldError(key, f"Enter a whole number between {lo} and {hi}.")
        return int(raw)

    def render(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in obj.items() if not k.startswith("_")}
        if kind == "users":
            out["access_keys"] = [
                {"key": r["access_key"], "status": r["status"], "creation_time": r["created"]}
                for r in self.store.user_access_keys(int(obj["id"]))]
        elif kind == "blockhosts":
            maps, count = self.store.find("blockhostvolumes", [("block_host__id", "exact", obj["id"])],
                                          limit=10, with_count=True)
            out["mapped_volumes_preview"] = [m["volume"] for m in maps]
            out["mapped_volumes_count"] = count
        return out

    # ==== create / update / delete dispatch ======================================================
    def create(self, p: Principal, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        fn: Callable[[Principal, dict[str, Any]], dict[str, Any]] = getattr(self, f"create_{kind}")
        if kind == "snapshots":  # manages its own transactions (copies data outside them)
            return self.render(kind, fn(p, body))
        with self.store.tx():
            obj = fn(p, body)
        return self.render(kind, obj)

    def update(self, p: Principal, kind: str, obj_id: int, body: dict[str, Any]) -> dict[str, Any]:
        with self.store.tx():
            obj = self.get_obj(p, kind, obj_id)
            special = getattr(self, f"update_{kind}", None)
            if special is not None:
                obj = special(p, obj, body)
            else:
                obj.update(body)
                self._update(kind, obj, self._uniques_of(kind, obj))
        return self.render(kind, obj)

    def delete(self, p: Principal, kind: str, obj_id: int, force: bool = False) -> None:
        with self.store.tx():
            obj = self.get_obj(p, kind, obj_id)
            special = getattr(self, f"delete_{kind}", None)
            if special is not None:
                special(p, obj, force)
            else:
                self.store.delete(kind, obj_id)

    def _uniques_of(self, kind: str, o: dict[str, Any]) -> dict[str, str] | None:
        t = o.get("tenant_id")
        return {
            "tenants": lambda: self._u(None, name=o["name"]),
            "viewpolicies": lambda: self._u(t, name=o["name"]),
            "qospolicies": lambda: self._u(t, name=o["name"]),
            "vippools": lambda: self._u(None, name=o["name"]),
            "quotas": lambda: self._u(t, name=o["name"], path=o["path"]),
            "users": lambda: self._u(t, name=o["name"], uid=o.get("uid")),
            "s3policies": lambda: self._u(t, name=o["name"]),
            "snapshots": lambda: self._u(t, name=o["name"]),
            "blockhosts": lambda: self._u(t, name=o["name"], nqn=o["nqn"]),
            "managers": lambda: self._u(None, username=o["username"]),
            "apitokens": lambda: {**self._u(o["_owner_id"], name=o["name"]),
                                  "token": "hash:" + o["_token_hash"]},
            "views": lambda: {**self._u(t, path=o["path"], name=o.get("name"), alias=o.get("alias")),
                              **self._u(None, bucket=o.get("bucket"), nqn=o.get("nqn"))},
        }.get(kind, lambda: None)()

    # ==== tenants, managers, api tokens ==========================================================
    def create_tenants(self, p: Principal, b: dict[str, Any]) -> dict[str, Any]:
        self._require_super(p)
        data = {"name": b["name"], "client_ip_ranges": b.get("client_ip_ranges", [])}
        return self._insert("tenants", data, self._uniques_of("tenants", data) or {})

    def update_tenants(self, p: Principal, obj: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        self._require_super(p)
        obj.update(b)
        self._update("tenants", obj, self._uniques_of("tenants", obj))
        return obj

    def delete_tenants(self, p: Principal, obj: dict[str, Any], force: bool) -> None:
        self._require_super(p)
        if self.store.tenant_in_use(int(obj["id"])):
            raise ConflictError("Tenant is in use; delete its objects first.")
        self.store.delete("tenants", int(obj["id"]))

    def create_managers(self, p: Principal, b: dict[str, Any]) -> dict[str, Any]:
        self._require_super(p)
        tenant_id = b.get("tenant_id")
        if b.get("role", "tenant_admin") == "tenant_admin":
            if tenant_id is None:
                raise FieldError("tenant_id", "This field is required for a tenant_admin.")
            self._ref(p, "tenants", tenant_id, "tenant_id")
        elif tenant_id is not None:
            raise FieldError("tenant_id", "A super_admin is not bound to a tenant.")
        data = {"username": b["username"], "role": b.get("role", "tenant_admin"), "tenant_id": tenant_id,
                "first_name": b.get("first_name", ""), "last_name": b.get("last_name", ""),
                "_password": hash_password(b["password"])}
        return self._insert("managers", data, self._uniques_of("managers", data) or {})

    def update_managers(self, p: Principal, obj: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        self._require_super(p)
        if b.get("password"):
            obj["_password"] = hash_password(b.pop("password"))
        b.pop("password", None)
        obj.update(b)
        self._update("managers", obj)
        return obj

    def delete_managers(self, p: Principal, obj: dict[str, Any], force: bool) -> None:
        self._require_super(p)
        if int(obj["id"]) == p.manager_id:
            raise ConflictError("A manager cannot delete itself.")
        self.store.delete("managers", int(obj["id"]))

    def create_apitokens(self, p: Principal, b: dict[str, Any]) -> dict[str, Any]:
        token = "vast_" + secrets.token_urlsafe(32)
        expiry = b.get("expiry_date")
        data: dict[str, Any] = {
            "name": b["name"], "owner": p.username, "expiry_date": _iso(expiry), "revoked": False,
            "_owner_id": p.manager_id, "_tenant_id": p.tenant_id, "_token_hash": hash_api_token(token),
            "_expires": expiry.timestamp() if isinstance(expiry, datetime) else None,
        }
        if data["_expires"] is not None and data["_expires"] <= time.time():
            raise FieldError("expiry_date", "Expiry date must be in the future.")
        obj = self._insert("apitokens", data, self._uniques_of("apitokens", data) or {})
        return {**obj, "token": token}  # shown once, never stored in clear

    def update_apitokens(self, p: Principal, obj: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        obj.update(b)
        self._update("apitokens", obj, self._uniques_of("apitokens", obj))
        return obj

    # ==== policies and pools =====================================================================
    def create_viewpolicies(self, p: Principal, b: dict[str, Any]) -> dict[str, Any]:
        t = self._tenant_for(p, b.pop("tenant_id", None))
        for vid in b.get("vip_pools", []):
            self._ref(p, "vippools", vid, "vip_pools", t["id"])
        data = {**b, "tenant_id": t["id"], "tenant_name": t["name"]}
        return self._insert("viewpolicies", data, self._uniques_of("viewpolicies", data) or {})

    def delete_viewpolicies(self, p: Principal, obj: dict[str, Any], force: bool) -> None:
        if self.store.exists("views", "policy_id", obj["id"]):
            raise ConflictError("View policy is used by views.")
        self.store.delete("viewpolicies", int(obj["id"]))

    def create_qospolicies(self, p: Principal, b: dict[str, Any]) -> dict[str, Any]:
        t = self._tenant_for(p, b.pop("tenant_id", None))
        data = {"policy_type": "VIEW", "mode": "STATIC", "limit_by": "BW_IOPS", "static_limits": {},
                "is_default": False, **b, "tenant_id": t["id"], "tenant_name": t["name"]}
        return self._insert("qospolicies", data, self._uniques_of("qospolicies", data) or {})

    def delete_qospolicies(self, p: Principal, obj: dict[str, Any], force: bool) -> None:
        for kind in ("views", "volumes"):
            if self.store.exists(kind, "qos_policy_id", obj["id"]):
                raise ConflictError(f"QoS policy is used by {kind}.")
        self.store.delete("qospolicies", int(obj["id"]))

    def create_vippools(self, p: Principal, b: dict[str, Any]) -> dict[str, Any]:
        tid = b.pop("tenant_id", None)
        t = self._tenant_for(p, tid) if (tid is not None or p.tenant_id is not None) else None
        data = {**b, "tenant_id": t["id"] if t else None, "tenant_name": t["name"] if t else None}
        return self._insert("vippools", data, self._uniques_of("vippools", data) or {})

    # ==== views ==================================================================================
    def _nqn(self, tenant: dict[str, Any], name: str) -> str:
        nqn = f"{NQN_PREFIX}:{_nqn_part(tenant['name'])}:{_nqn_part(name)}"
        if len(nqn.encode()) > 223:  # NVMe limit: keep it unique with a hash, never truncate blindly
            import hashlib

            digest = hashlib.sha256(nqn.encode()).hexdigest()[:16]
            nqn = f"{nqn[:180]}-{digest}"
        return nqn

    def create_views(self, p: Principal, b: dict[str, Any]) -> dict[str, Any]:
        t = self._tenant_for(p, b.pop("tenant_id", None))
        protocols = list(dict.fromkeys(b.get("protocols", ["NFS"])))
        is_block = "BLOCK" in protocols
        if is_block and len(protocols) > 1:
            raise FieldError("protocols", "BLOCK cannot be combined with other protocols.")
        if is_block and not b.get("name"):
            raise FieldError("name", "This field is required for a BLOCK view.")
        if "S3" in protocols:
            if not b.get("bucket"):
                raise FieldError("bucket", "This field is required for an S3 view.")
            if not BUCKET_RE.match(b["bucket"]) or ".." in b["bucket"] or re.fullmatch(
                    r"\d+\.\d+\.\d+\.\d+", b["bucket"]):
                raise FieldError("bucket", "Invalid bucket name.")
        elif b.get("bucket"):
            raise FieldError("bucket", "A bucket needs the S3 protocol.")
        if b.get("bucket_owner"):
            owners, _ = self.store.find("users", [("name", "exact", b["bucket_owner"])], tenant_id=t["id"],
                                        limit=1)
            if not owners:
                raise FieldError("bucket_owner", f"User {b['bucket_owner']!r} does not exist.")
        self._check_s3_locks(b)
        policy_id = b.get("policy_id")
        if policy_id is None and not is_block:
            pols, _ = self.store.find("viewpolicies", [("name", "exact", "default")], tenant_id=t["id"],
                                      limit=1)
            if not pols:
                raise FieldError("policy_id", "This field is required.")
            policy_id = pols[0]["id"]
        else:  # (the tenant's own default policy, just found, needs no second look-up)
            self._ref(p, "viewpolicies", policy_id, "policy_id", t["id"])
        self._ref(p, "qospolicies", b.get("qos_policy_id"), "qos_policy_id", t["id"])
        create_dir = b.pop("create_dir", False)
        data: dict[str, Any] = {
            "name": b.get("name") or None, "alias": None, "share": None, "bucket": None,
            "bucket_owner": None, "s3_versioning": False, "s3_locks": False,
            "s3_locks_retention_mode": None, "s3_locks_retention_period": None, "qos_policy_id": None,
            **b, "protocols": protocols, "policy_id": policy_id, "tenant_id": t["id"],
            "tenant_name": t["name"], "nqn": self._nqn(t, b["name"]) if is_block else None,
        }
        obj = self._insert("views", data, self._uniques_of("views", data) or {})
        fs = self.core.fs_path(data["path"])
        if not fs.is_dir():
            if not (create_dir or is_block):
                raise FieldError("path", "Directory does not exist; set create_dir to create it.")
            try:
                fs.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise FieldError("path", f"Cannot create directory: {exc.strerror}") from None
        self.store.emit(VIEW_CHANGED, {"view_id": obj["id"], "deleted": False})
        return obj

    @staticmethod
    def _check_s3_locks(b: dict[str, Any]) -> None:
        if b.get("s3_locks") and not b.get("s3_versioning"):
            raise FieldError("s3_locks", "Object locks require s3_versioning.")
        if b.get("s3_locks_retention_period") and not b.get("s3_locks"):
            raise FieldError("s3_locks_retention_period", "A default retention requires s3_locks.")

    def update_views(self, p: Principal, obj: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        if obj.get("s3_locks") and b.get("s3_locks") is False:
            raise FieldError("s3_locks", "Object locks cannot be disabled once enabled.")
        if obj.get("s3_locks") and b.get("s3_versioning") is False:
            raise FieldError("s3_versioning", "Versioning cannot be suspended on a locked bucket.")
        merged = {**obj, **b}
        self._check_s3_locks(merged)
        if "policy_id" in b:
            if b["policy_id"] is None:
                raise FieldError("policy_id", "This field may not be null.")
            self._ref(p, "viewpolicies", b["policy_id"], "policy_id", obj["tenant_id"])
        self._ref(p, "qospolicies", b.get("qos_policy_id"), "qos_policy_id", obj["tenant_id"])
        if b.get("bucket_owner"):
            owners, _ = self.store.find("users", [("name", "exact", b["bucket_owner"])],
                                        tenant_id=obj["tenant_id"], limit=1)
            if not owners:
                raise FieldError("bucket_owner", f"User {b['bucket_owner']!r} does not exist.")
        if "name" in b and obj.get("nqn"):
            raise FieldError("name", "A BLOCK view cannot be renamed (its NQN is derived from it).")
        obj.update(b)
        self._update("views", obj, self._uniques_of("views", obj))
        self.store.emit(VIEW_CHANGED, {"view_id": obj["id"], "deleted": False})
        return obj

    def delete_views(self, p: Principal, obj: dict[str, Any], force: bool) -> None:
        if self.store.exists("volumes", "view_id", obj["id"]):
            raise ConflictError("View holds block volumes; delete them first.")
        self.store.delete("views", int(obj["id"]))
        self.store.emit(VIEW_CHANGED, {"view_id": obj["id"], "deleted": True})

    # ==== quotas, users, access keys, s3 policies ================================================
    def create_quotas(self, p: Principal, b: dict[str, Any]) -> dict[str, Any]:
        t = self._tenant_for(p, b.pop("tenant_id", None))
        data = {"hard_limit": None, "soft_limit": None, "hard_limit_inodes": None, **b,
                "tenant_id": t["id"], "tenant_name": t["name"], "used_capacity": 0}
        return self._insert("quotas", data, self._uniques_of("quotas", data) or {})

    def create_users(self, p: Principal, b: dict[str, Any]) -> dict[str, Any]:
        t = self._tenant_for(p, b.pop("tenant_id", None))
        for pid in b.get("s3_policies_ids", []):
            self._ref(p, "s3policies", pid, "s3_policies_ids", t["id"])
        data = {"allow_create_bucket": False, "allow_delete_bucket": False, "s3_superuser": False,
                "s3_policies_ids": [], "gid": None, **b, "tenant_id": t["id"], "tenant_name": t["name"]}
        if data.get("uid") is None:
            # deterministic: one above the highest uid in this tenant, from 50000 (never random)
            data["uid"] = max(49999, self.store.max_of("users", "uid", "tenant_id", t["id"]) or 0) + 1
        return self._insert("users", data, self._uniques_of("users", data) or {})

    def update_users(self, p: Principal, obj: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        for pid in b.get("s3_policies_ids") or []:
            self._ref(p, "s3policies", pid, "s3_policies_ids", obj["tenant_id"])
        if "uid" in b and b["uid"] is None:
            raise FieldError("uid", "This field may not be null.")
        obj.update(b)
        self._update("users", obj, self._uniques_of("users", obj))
        return obj

    def delete_users(self, p: Principal, obj: dict[str, Any], force: bool) -> None:
        for row in self.store.user_access_keys(int(obj["id"])):
            self.store.delete_access_key(int(obj["id"]), row["access_key"])
            self.store.emit(ACCESS_KEY_CHANGED, {"user_id": obj["id"], "access_key": row["access_key"],
                                                 "deleted": True})
        self.store.delete("users", int(obj["id"]))

    def create_access_key(self, p: Principal, user_id: int) -> dict[str, str]:
        with self.store.tx():
            user = self.get_obj(p, "users", user_id)
            alphabet = string.ascii_uppercase + string.digits
            access_key = "".join(secrets.choice(alphabet) for _ in range(20))
            secret = secrets.token_urlsafe(30)[:40]
            self.store.add_access_key(access_key, int(user["id"]), secret, now_iso())
            self.store.emit(ACCESS_KEY_CHANGED, {"user_id": user["id"], "access_key": access_key,
                                                 "deleted": False})
        return {"access_key": access_key, "secret_key": secret}

    def delete_access_key(self, p: Principal, user_id: int, access_key: str) -> None:
        with self.store.tx():
            user = self.get_obj(p, "users", user_id)
            if not self.store.delete_access_key(int(user["id"]), access_key):
                raise NotFoundError()
            self.store.emit(ACCESS_KEY_CHANGED, {"user_id": user["id"], "access_key": access_key,
                                                 "deleted": True})

    def create_s3policies(self, p: Principal, b: dict[str, Any]) -> dict[str, Any]:
        t = self._tenant_for(p, b.pop("tenant_id", None))
        data = {"enabled": True, **b, "tenant_id": t["id"], "tenant_name": t["name"]}
        return self._insert("s3policies", data, self._uniques_of("s3policies", data) or {})

    def delete_s3policies(self, p: Principal, obj: dict[str, Any], force: bool) -> None:
        users, _ = self.store.find("users", tenant_id=obj["tenant_id"])
        if any(obj["id"] in (u.get("s3_policies_ids") or []) for u in users):
            raise ConflictError("S3 policy is attached to users; detach it first.")
        self.store.delete("s3policies", int(obj["id"]))

    # ==== block: volumes =========================================================================
    def _reserve(self, nbytes: int) -> None:
        try:
            self.core.reserve_block(nbytes)
        except CapacityExceeded as exc:
            raise InsufficientCapacity(str(exc)) from None

    def _block_view(self, p: Principal, view_id: int, fld: str, tenant_id: int | None = None
                    ) -> dict[str, Any]:
        view = self._ref(p, "views", view_id, fld, tenant_id)
        assert view is not None
        if not view.get("nqn"):
            raise FieldError(fld, "The view is not a BLOCK subsystem.")
        return view

    def _next_nsid(self, view_id: int) -> int:
        # max + 1: an NSID is not handed out again while a higher one lives, so hosts that cached
        # a namespace do not meet a different volume under the same NSID
        return (self.store.max_of("volumes", "nsid", "view_id", view_id) or 0) + 1

    def _new_volume(self, view: dict[str, Any], name: str, size: int, qos_policy_id: int | None,
                    fill: Callable[[Path], object] | None = None) -> dict[str, Any]:
        """Insert a volume and create its backing file (inside the caller's transaction)."""
        self._reserve(size)
        vol_uuid = str(uuid.uuid4())
        data = {"name": name, "view_id": view["id"], "size": size, "nguid": uuid.uuid4().hex,
                "uuid": vol_uuid, "nsid": self._next_nsid(int(view["id"])), "qos_policy_id": qos_policy_id,
                "tenant_id": view["tenant_id"], "tenant_name": view["tenant_name"],
                "subsystem_name": view["name"], "subsystem_nqn": view["nqn"]}
        path = self.core.volume_backing_path(vol_uuid)
        if fill is None:
            block.create_sparse(path, size)
        else:
            fill(path)
        try:
            obj = self._insert("volumes", data, {
                "name": f"name:{view['id']}:{name}", "nsid": f"nsid:{view['id']}:{data['nsid']}",
                "uuid": f"uuid:{vol_uuid}", "nguid": f"nguid:{data['nguid']}"})
        except BaseException:
            block.remove(path)
            raise
        self.store.emit(VOLUME_CREATED, {"volume_id": obj["id"], "uuid": vol_uuid, "view_id": view["id"],
                                         "size": size})
        return obj

    def create_volumes(self, p: Principal, b: dict[str, Any]) -> dict[str, Any]:
        tid = b.get("tenant_id")
        if tid is not None:
            self._tenant_for(p, tid)
        view = self._block_view(p, b["view_id"], "view_id", tid)
        self._ref(p, "qospolicies", b.get("qos_policy_id"), "qos_policy_id", view["tenant_id"])
        return self._new_volume(view, b["name"], b["size"], b.get("qos_policy_id"))

    def update_volumes(self, p: Principal, obj: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        if "qos_policy_id" in b:
            self._ref(p, "qospolicies", b["qos_policy_id"], "qos_policy_id", obj["tenant_id"])
            obj["qos_policy_id"] = b["qos_policy_id"]
        new_size = b.get("size")
        grew = False
        if new_size is not None and new_size != obj["size"]:
            if new_size < obj["size"]:
                raise FieldError("size", "Volume size can only grow.")
            self._reserve(new_size - int(obj["size"]))
            obj["size"] = new_size
            grew = True
        self._update("volumes", obj)
        if grew:
            # the file grows after the row so a failed update leaves the file as it was; recover()
            # grows it if we are killed in between
            block.grow(self.core.volume_backing_path(obj["uuid"]), int(obj["size"]))
            self.store.emit(VOLUME_RESIZED, {"volume_id": obj["id"], "uuid": obj["uuid"],
                                             "view_id": obj["view_id"], "size": obj["size"]})
        return obj

    def delete_volumes(self, p: Principal, obj: dict[str, Any], force: bool) -> None:
        maps, _ = self.store.find("blockhostvolumes", [("volume__id", "exact", obj["id"])])
        if maps and not force:
            raise ConflictError("Volume is mapped to hosts; unmap it first or delete with ?force=true.")
        for m in maps:
            self._unmap(m)
        self.store.delete("volumes", int(obj["id"]))
        self.core.reserve_block(-int(obj["size"]))
        self.store.emit(VOLUME_DELETED, {"volume_id": obj["id"], "uuid": obj["uuid"],
                                         "view_id": obj["view_id"]})
        block.remove(self.core.volume_backing_path(obj["uuid"]))

    # ==== block: hosts, mappings, vtasks =========================================================
    def create_blockhosts(self, p: Principal, b: dict[str, Any]) -> dict[str, Any]:
        t = self._tenant_for(p, b.pop("tenant_id", None))
        data = {"os_type": "LINUX", "ana": "OPTIMIZED", "connectivity_type": "TCP", **b,
                "tenant_id": t["id"], "tenant_name": t["name"]}
        return self._insert("blockhosts", data, self._uniques_of("blockhosts", data) or {})

    def update_blockhosts(self, p: Principal, obj: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        obj.update(b)
        self._update("blockhosts", obj, self._uniques_of("blockhosts", obj))
        if "name" in b:
            maps, _ = self.store.find("blockhostvolumes", [("block_host__id", "exact", obj["id"])])
            for m in maps:
                m["block_host"]["name"] = obj["name"]
                self._update("blockhostvolumes", m)
        return obj

    def delete_blockhosts(self, p: Principal, obj: dict[str, Any], force: bool) -> None:
        maps, _ = self.store.find("blockhostvolumes", [("block_host__id", "exact", obj["id"])])
        if maps and not force:
            raise ConflictError("Host has mapped volumes; unmap them first or delete with ?force=true.")
        for m in maps:
            self._unmap(m)
        self.store.delete("blockhosts", int(obj["id"]))

    def _unmap(self, m: dict[str, Any]) -> None:
        self.store.delete("blockhostvolumes", int(m["id"]))
        self.store.emit(MAPPING_CHANGED, {"host_id": m["block_host"]["id"],
                                          "host_nqn": m["block_host"]["nqn"], "volume_id": m["volume"]["id"],
                                          "subsystem_nqn": m.get("subsystem_nqn"), "mapped": False})

    def bulk_map(self, p: Principal, b: dict[str, Any]) -> dict[str, Any]:
        add, remove = b.get("pairs_to_add") or [], b.get("pairs_to_remove") or []
        if bool(add) == bool(remove):
            raise FieldError("non_field_errors", "Give either pairs_to_add or pairs_to_remove.")
        with self.store.tx():
            task = self._insert("vtasks", {
                "name": "BulkBlockHostVolumes", "state": "RUNNING", "messages": [],
                "tenant_id": p.tenant_id, "_add": add, "_remove": remove,
                "_principal": {"manager_id": p.manager_id, "tenant_id": p.tenant_id}}, {})
        self._schedule_task(int(task["id"]))
        return {"async_task": {"id": task["id"], "state": "RUNNING", "name": task["name"]}}

    def _schedule_task(self, task_id: int) -> None:
        if self._closed:
            return
        timer = threading.Timer(self.settings.vtask_delay, self._run_task, (task_id,))
        timer.daemon = True
        self._timers = [t for t in self._timers if t.is_alive()] + [timer]
        timer.start()

    def _run_task(self, task_id: int) -> None:
        if self._closed:
            return
        try:
            with self.store.tx():
                task = self.store.get("vtasks", task_id)
                if task is None or task["state"] != "RUNNING":
                    return
                pr = task["_principal"]
                tenant_id = pr.get("tenant_id")
                try:
                    pairs = [self._resolve_pair(pair, tenant_id) for pair in task["_add"] + task["_remove"]]
                except ApiError as exc:
                    task.update(state="FAILED", messages=[str(exc.body.get("detail", exc.body))],
                                finished=now_iso())
                    self._update("vtasks", task)
                    return
                n_add = len(task["_add"])
                for i, (host, vol) in enumerate(pairs):
                    existing, _ = self.store.find("blockhostvolumes", [
                        ("block_host__id", "exact", host["id"]), ("volume__id", "exact", vol["id"])], limit=1)
                    if i < n_add and not existing:
                        self._insert("blockhostvolumes", {
                            "volume": {"id": vol["id"], "name": vol["name"]},
                            "block_host": {"id": host["id"], "name": host["name"], "nqn": host["nqn"]},
                            "tenant_id": vol["tenant_id"], "subsystem_nqn": vol["subsystem_nqn"]},
                            {"pair": f"pair:{host['id']}:{vol['id']}"})
                        self.store.emit(MAPPING_CHANGED, {
                            "host_id": host["id"], "host_nqn": host["nqn"], "volume_id": vol["id"],
                            "subsystem_nqn": vol["subsystem_nqn"], "mapped": True})
                    elif i >= n_add and existing:
                        self._unmap(existing[0])
                verb = "mapped" if n_add else "unmapped"
                task.update(state="COMPLETED", messages=[f"{len(pairs)} host-volume pairs {verb}"],
                            finished=now_iso())
                self._update("vtasks", task)
        except Exception:
            log.exception("vtask failed unexpectedly", extra={"task_id": task_id})
            with self.store.tx():
                task = self.store.get("vtasks", task_id)
                if task is not None:
                    task.update(state="FAILED", messages=["internal error"], finished=now_iso())
                    self._update("vtasks", task)

    def _resolve_pair(self, pair: dict[str, Any], tenant_id: int | None
                      ) -> tuple[dict[str, Any], dict[str, Any]]:
        host = self.store.get("blockhosts", int(pair["host_id"]))
        vol = self.store.get("volumes", int(pair["volume_id"]))
        if host is None or (tenant_id is not None and host["tenant_id"] != tenant_id):
            raise NotFoundError(f"Block host {pair['host_id']} does not exist.")
        if vol is None or (tenant_id is not None and vol["tenant_id"] != tenant_id):
            raise NotFoundError(f"Volume {pair['volume_id']} does not exist.")
        if host["tenant_id"] != vol["tenant_id"]:
            raise ConflictError(f"Host {host['id']} and volume {vol['id']} are in different tenants.")
        return host, vol

    # ==== snapshots ==============================================================================
    def _captured_volumes(self, tenant_id: int, path: str) -> list[dict[str, Any]]:
        """Block volumes whose ``<view path>/<volume name>/`` lies under the snapshot path."""
        out = []
        block_views, _ = self.store.find("views", [], tenant_id=tenant_id)
        by_id = {v["id"]: v for v in block_views if v.get("nqn")}
        for view in by_id.values():
            vpath = view["path"].rstrip("/") + "/"
            if not (vpath.startswith(path) or path.startswith(vpath)):
                continue
            vols, _ = self.store.find("volumes", [("view_id", "exact", view["id"])])
            for v in vols:
                vol_path = vpath + v["name"].strip("/") + "/"
                if vol_path.startswith(path):
                    out.append(v)
        return out

    def create_snapshots(self, p: Principal, b: dict[str, Any]) -> dict[str, Any]:
        """Three steps so the data copy runs without the state lock (the API, S3 and NVMe keep
        being served meanwhile): claim name and capacity with a hidden ``_pending`` row, copy,
        then reveal the row - or undo it. recover() removes rows a crash left pending."""
        with self.store.tx():
            t = self._tenant_for(p, b.pop("tenant_id", None))
            vols = self._captured_volumes(int(t["id"]), b["path"])
            total = sum(int(v["size"]) for v in vols)
            self._reserve(total)
            data = {"indestructible": False, **b, "expiration_time": _iso(b.get("expiration_time")),
                    "tenant_id": t["id"], "tenant_name": t["name"], "state": "SUCCESS",
                    "_volumes": [{"id": v["id"], "uuid": v["uuid"], "size": v["size"], "name": v["name"],
                                  "view_id": v["view_id"]} for v in vols], "_bytes": total,
                    "volumes_count": len(vols), "_pending": True}
            obj = self._insert("snapshots", data, self._uniques_of("snapshots", data) or {})
        sdir = self.core.snapshot_dir / str(obj["id"])
        try:
            for v in vols:
                block.copy_sparse(self.core.volume_backing_path(v["uuid"]), sdir / f"{v['uuid']}.img")
        except BaseException as exc:
            shutil.rmtree(sdir, ignore_errors=True)
            with self.store.tx():
                self.store.delete("snapshots", int(obj["id"]))
                self.core.reserve_block(-total)
            if isinstance(exc, FileNotFoundError):
                raise ConflictError("A volume was deleted while its snapshot was taken.") from None
            raise
        with self.store.tx():
            obj.pop("_pending")
            self._update("snapshots", obj)
        return obj

    def _drop_pending_snapshots(self) -> None:
        for snap in list(self.store.iter_kind("snapshots")):
            if snap.get("_pending"):
                with self.store.tx():
                    self.store.delete("snapshots", int(snap["id"]))
                    self.core.reserve_block(-int(snap.get("_bytes", 0)))
                shutil.rmtree(self.core.snapshot_dir / str(snap["id"]), ignore_errors=True)

    def delete_snapshots(self, p: Principal, obj: dict[str, Any], force: bool) -> None:
        if obj.get("indestructible"):
            raise ConflictError("Snapshot is indestructible.")
        self.store.delete("snapshots", int(obj["id"]))
        self.core.reserve_block(-int(obj.get("_bytes", 0)))
        shutil.rmtree(self.core.snapshot_dir / str(obj["id"]), ignore_errors=True)

    def clone_volume(self, p: Principal, snap_id: int, b: dict[str, Any]) -> dict[str, Any]:
        with self.store.tx():
            snap = self.get_obj(p, "snapshots", snap_id)
            vols = snap.get("_volumes") or []
            if len(vols) != 1:
                raise FieldError("non_field_errors",
                                 f"clone_volume needs a snapshot of exactly one volume (it has {len(vols)}).")
            src = vols[0]
            view = self._block_view(p, b["target_subsystem_id"], "target_subsystem_id", snap["tenant_id"])
            copy = self.core.snapshot_dir / str(snap["id"]) / f"{src['uuid']}.img"
            if not copy.is_file():
                raise ConflictError("The snapshot's data is missing on the storage core.")
            obj = self._new_volume(view, b["target_volume_path"], int(src["size"]), None,
                                   fill=lambda path: block.copy_sparse(copy, path))
        return self.render("volumes", obj)

    # ==== folders ================================================================================
    def delete_folder(self, p: Principal, b: dict[str, Any]) -> None:
        t = self._tenant_for(p, b.get("tenant_id"))
        path = b["path"]
        if path.strip("/") == "":
            raise FieldError("path", "Refusing to delete the root directory.")
        views, _ = self.store.find("views", [("path", "exact", path)], tenant_id=t["id"], limit=1)
        if views:
            raise ConflictError("A view still exports this path; delete the view first.")
        fs = self.core.fs_path(path)
        if not fs.is_dir():
            raise NotFoundError()
        with self.store.tx():
            shutil.rmtree(fs, ignore_errors=True)
            self.store.emit(FOLDER_DELETED, {"path": path})

    # ==== read-only resources ====================================================================
    def versions(self) -> list[dict[str, Any]]:
        return [{"id": 1, "name": f"release-{self.settings.sys_version}", "sys_version":
                 self.settings.sys_version, "status": "success", "created": "2024-01-01T00:00:00Z"}]

    def clusters(self) -> list[dict[str, Any]]:
        used = self.core.used_bytes()
        cap = self.core.capacity
        return [{
            "id": 1, "name": self.settings.cluster_name, "guid": "00000000-0000-4000-8000-000000000001",
            "sys_version": self.settings.sys_version, "state": "ONLINE",
            "usable_capacity_bytes": cap, "free_usable_capacity_bytes": max(0, cap - used),
            "logical_space": cap, "logical_space_in_use": used,
            "physical_space": cap, "physical_space_in_use": used,
            "block_bytes": self.store.get_meta_int(META_BLOCK_BYTES),
        }]

    def static_list(self, kind: str, params: dict[str, str]) -> Page:
        rows = self.versions() if kind == "versions" else self.clusters()
        for fld, op, value in self.parse_filters(kind, params):
            if op == "exact":
                rows = [r for r in rows if r.get(fld) == value]
            elif op == "contains":
                rows = [r for r in rows if value in str(r.get(fld, ""))]
            elif op == "startswith":
                rows = [r for r in rows if str(r.get(fld, "")).startswith(value)]
            elif op == "endswith":
                rows = [r for r in rows if str(r.get(fld, "")).endswith(value)]
            elif op == "in":
                rows = [r for r in rows if r.get(fld) in value]
        page_size = self._int_param(params, "page_size", 1, 10000)
        if page_size:
            page = self._int_param(params, "page", 1, 10**9) or 1
            chunk = rows[(page - 1) * page_size: page * page_size]
            if page > 1 and not chunk:
                raise NotFoundError("Invalid page.")
            return Page(chunk, len(rows), True, page, page_size)
        return Page(rows)
