"""Shared state, limits and helpers of the S3 operations (authorization, lookups, accounting)."""

from __future__ import annotations

import base64
import email.utils
import hashlib
import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from prometheus_client import Counter, Histogram

from vms_mock.s3 import objects, policy, xmlio
from vms_mock.s3.directory import (
    AccessKeyRecord,
    BucketView,
    CapacityExhausted,
    S3Directory,
)
from vms_mock.s3.errors import S3Error
from vms_mock.s3.http import Request, Response
from vms_mock.s3.sigv4 import AuthResult
from vms_mock.s3.store import NULL_VERSION, BucketStore, ObjectRecord, StoreRegistry
from vms_mock.s3.tags import tags_from_header
from vms_mock.s3.xmlio import el

log = logging.getLogger(__name__)


REQUESTS = Counter("vms_s3_requests_total", "S3 requests served", ["operation", "status"])
LATENCY = Histogram("vms_s3_request_seconds", "S3 request latency", ["operation"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10))
BYTES_IN = Counter("vms_s3_received_bytes_total", "Object bytes received")
BYTES_OUT = Counter("vms_s3_sent_bytes_total", "Object bytes sent")

MIN_PART = 5 << 20
MAX_PARTS = 10000
MAX_KEY_BYTES = 1024
MAX_META_BYTES = 2048
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IP_RE = re.compile(r"^\d+\.\d+\.\d+\.\d+$")
# XML 1.0 cannot carry these; S3 clients could never list such a key back.
_BAD_KEY_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_CONTENT_HEADERS = ("cache-control", "content-disposition", "content-encoding", "content-language",
                    "expires")
RESPONSE_OVERRIDES = {"response-content-type": "content-type", "response-cache-control": "cache-control",
                       "response-content-disposition": "content-disposition",
                       "response-content-encoding": "content-encoding",
                       "response-content-language": "content-language", "response-expires": "expires"}
BUCKET_SUBRESOURCES = ("acl", "cors", "encryption", "lifecycle", "logging", "notification",
                        "ownershipControls", "policy", "policyStatus", "publicAccessBlock",
                        "replication", "requestPayment", "tagging", "website", "accelerate",
                        "analytics", "intelligent-tiering", "inventory", "metrics")


def valid_bucket_name(name: str) -> bool:
    return bool(_BUCKET_RE.match(name)) and ".." not in name and not _IP_RE.match(name) \
        and ".-" not in name and "-." not in name


def quote_etag(etag: str) -> str:
    return f'"{etag}"'


def parse_http_date(value: str) -> float | None:
    try:
        parsed = email.utils.parsedate_tz(value)
    except (TypeError, ValueError):
        return None
    return float(email.utils.mktime_tz(parsed)) if parsed else None


def parse_iso(value: str) -> float:
    v = value.strip().replace("Z", "+00:00")
    try:
        from datetime import datetime

        return datetime.fromisoformat(v).timestamp()
    except ValueError:
        raise S3Error("InvalidArgument", "The retain until date is not a valid ISO-8601 date",
                      ArgumentName="x-amz-object-lock-retain-until-date") from None


@dataclass
class Ctx:
    """One request being served."""

    req: Request
    bucket: str | None
    key: str | None
    op: str = "Unknown"
    auth: AuthResult | None = None
    _policies: list[str] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def principal(self) -> AccessKeyRecord:
        assert self.auth is not None
        return self.auth.principal

    @property
    def resource(self) -> str:
        if self.bucket is None:
            return "/"
        return f"/{self.bucket}" + (f"/{self.key}" if self.key else "")


def parse_range(value: str, size: int, strict: bool = False) -> tuple[int, int] | None:
    """(offset, count) of a single ``bytes=`` range; None means "serve the whole object"."""
    if not value.startswith("bytes=") or "," in value:
        if strict:
            raise S3Error("InvalidArgument", "The x-amz-copy-source-range value must be of the form "
                          "bytes=first-last")
        return None
    first, sep, last = value[6:].strip().partition("-")
    if not sep or (not first and not last):
        return None
    try:
        if not first:
            n = int(last)
            if n <= 0 and not strict:
                raise S3Error("InvalidRange", ActualObjectSize=str(size))
            start = max(0, size - n)
            end = size - 1
        else:
            start = int(first)
            end = int(last) if last else size - 1
            if end < start:
                return None
            end = min(end, size - 1)
    except ValueError:
        return None
    if start >= size:
        err = S3Error("InvalidRange", ActualObjectSize=str(size), RangeRequested=value)
        err.headers = {"content-range": f"bytes */{size}"}
        raise err
    return start, end - start + 1


class OpsBase:
    """State and helpers shared by the operation mixins of :class:`vms_mock.s3.app.S3App`."""

    directory: S3Directory
    pool: ThreadPoolExecutor
    region: str
    stores: StoreRegistry
    roots: dict[str, Path]  # view path -> its directory (fs_path is pure: cache it)

    def _policies(self, ctx: Ctx) -> list[str]:
        if ctx._policies is None:
            ctx._policies = self.directory.user_policies(ctx.principal.user_id)
        return ctx._policies

    def _allowed(self, ctx: Ctx, view: BucketView | None, action: str, key: str | None = None) -> bool:
        resource = policy.resource_arn(view.bucket if view else None, key)
        return policy.is_allowed(ctx.principal, self._policies(ctx), view, action, resource)

    def _authorize(self, ctx: Ctx, view: BucketView, action: str, key: str | None = None) -> None:
        if not self._allowed(ctx, view, action, key):
            raise S3Error("AccessDenied")

    def _view(self, ctx: Ctx) -> BucketView:
        assert ctx.bucket is not None
        view = self.directory.get_bucket_view(ctx.bucket)
        if view is None:
            raise S3Error("NoSuchBucket", BucketName=ctx.bucket)
        return view

    def _store(self, view: BucketView) -> BucketStore:
        root = self.roots.get(view.path)
        if root is None:
            root = self.roots[view.path] = self.directory.fs_path(view.path)
        return self.stores.get(root)

    @staticmethod
    def _check_key(key: str) -> None:
        if len(key.encode("utf-8", "surrogateescape")) > MAX_KEY_BYTES:
            raise S3Error("KeyTooLongError", Size=str(len(key.encode("utf-8", "surrogateescape"))),
                          MaxSizeAllowed=str(MAX_KEY_BYTES))
        if _BAD_KEY_CHARS.search(key):
            raise S3Error("InvalidArgument", "Object key contains a character that XML 1.0 cannot "
                          "represent (such as NUL)", ArgumentName="key")

    @staticmethod
    def _xml(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        h = {"content-type": "application/xml"}
        if headers:
            h.update(headers)
        return Response(status, h, body)

    @staticmethod
    def _versioned(view: BucketView) -> bool:
        # Object lock needs versions to protect, as on AWS where enabling it enables versioning.
        return view.s3_versioning or view.s3_locks

    def _acl(self, ctx: Ctx) -> Response:
        owner = el("ID", ctx.principal.user_id) + el("DisplayName", ctx.principal.user_name)
        grant = ('<Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
                 f'xsi:type="CanonicalUser">{owner}</Grantee><Permission>FULL_CONTROL</Permission></Grant>')
        return self._xml(xmlio.doc("AccessControlPolicy",
                                   f"<Owner>{owner}</Owner><AccessControlList>{grant}</AccessControlList>"))

    @staticmethod
    def _max_keys(q: dict[str, str], name: str = "max-keys") -> int:
        raw = q.get(name, "1000")
        try:
            value = int(raw)
        except ValueError:
            raise S3Error("InvalidArgument", "Provided max-keys not an integer or within integer range",
                          ArgumentName=name, ArgumentValue=raw) from None
        if value < 0:
            raise S3Error("InvalidArgument", "max-keys cannot be negative", ArgumentName=name)
        return min(value, 1000)

    def _content_meta(self, ctx: Ctx) -> tuple[str, dict[str, Any]]:
        h = ctx.req.headers
        user = {k[11:]: v for k, v in h.items() if k.startswith("x-amz-meta-")}
        if sum(len(k) + len(v) for k, v in user.items()) > MAX_META_BYTES:
            raise S3Error("MetadataTooLarge", MaxSizeAllowed=str(MAX_META_BYTES))
        stored = {k: v for k in _CONTENT_HEADERS if (v := h.get(k))}
        if "content-encoding" in stored:
            encodings = [e for e in stored["content-encoding"].split(",") if e.strip() != "aws-chunked"]
            if encodings:
                stored["content-encoding"] = ",".join(encodings)
            else:
                del stored["content-encoding"]
        meta: dict[str, Any] = {"user": user, "headers": stored}
        tags = tags_from_header(h.get("x-amz-tagging"))
        if tags:
            meta["tags"] = tags
        return h.get("content-type") or "binary/octet-stream", meta

    def _new_object(self, ctx: Ctx, view: BucketView
                    ) -> tuple[str, dict[str, Any], str | None, float | None]:
        """PutObject / CreateMultipartUpload: authorize, and read what the headers say about the
        new object - (content type, metadata with tags and legal hold, lock mode, retain until)."""
        self._authorize(ctx, view, "s3:PutObject", ctx.key)
        content_type, meta = self._content_meta(ctx)
        if "tags" in meta:
            self._authorize(ctx, view, "s3:PutObjectTagging", ctx.key)
        lock_mode, retain_until = self._retention_for_new(ctx, view)
        if hold := self._legal_hold_for_new(ctx, view):
            meta["legal_hold"] = hold
        return content_type, meta, lock_mode, retain_until

    def _retention_for_new(self, ctx: Ctx, view: BucketView) -> tuple[str | None, float | None]:
        h = ctx.req.headers
        mode = h.get("x-amz-object-lock-mode")
        until = h.get("x-amz-object-lock-retain-until-date")
        if mode or until:
            if not view.s3_locks:
                raise S3Error("InvalidRequest", "Bucket is missing Object Lock Configuration")
            if not (mode and until):
                raise S3Error("InvalidArgument", "x-amz-object-lock-retain-until-date and "
                              "x-amz-object-lock-mode must both be supplied")
            if mode not in ("GOVERNANCE", "COMPLIANCE"):
                raise S3Error("InvalidArgument", "Unknown wormMode directive.",
                              ArgumentName="x-amz-object-lock-mode", ArgumentValue=mode)
            until_t = parse_iso(until)
            if until_t <= time.time():
                raise S3Error("InvalidArgument", "The retain until date must be in the future!")
            self._authorize(ctx, view, "s3:PutObjectRetention", ctx.key)
            return mode, until_t
        if view.s3_locks and view.lock_default_mode and view.lock_default_days:
            return view.lock_default_mode, time.time() + view.lock_default_days * 86400
        return None, None

    def _preflight_space(self, view: BucketView, store: BucketStore, length: int | None,
                         key: str | None = None) -> None:
        """Refuse from the headers what cannot fit (the exact check is at commit)."""
        if length is None:
            return
        if view.quota_hard_limit is not None:
            replaced = 0
            if key is not None and not self._versioned(view):
                old = store.get(key, NULL_VERSION)
                replaced = old.size if old else 0
            if store.usage() - replaced + length > view.quota_hard_limit:
                raise S3Error("QuotaExceeded")
        if not self.directory.has_capacity(length):
            raise S3Error("InsufficientCapacity")

    def _reserve(self, nbytes: int) -> None:
        """Count ``nbytes`` against cluster capacity before they become visible."""
        if nbytes:
            try:
                self.directory.report_s3_usage(nbytes)
            except CapacityExhausted:
                raise S3Error("InsufficientCapacity") from None

    def _commit(self, store: BucketStore, view: BucketView, rec: ObjectRecord) -> None:
        # Reserve the full size first, then return what an overwritten version freed.
        self._reserve(rec.size)
        try:
            freed, delta = store.put(rec, self._versioned(view), view.quota_hard_limit)
        except BaseException:
            self.directory.report_s3_usage(-rec.size)
            raise
        store.unlink_data(freed)
        if delta != rec.size:
            self.directory.report_s3_usage(delta - rec.size)

    def _lookup(self, ctx: Ctx, view: BucketView, store: BucketStore, key: str,
                version_id: str | None) -> ObjectRecord:
        rec = store.get(key, version_id)
        if rec is None:
            if version_id is not None:
                if version_id != NULL_VERSION and not self._versioned(view):
                    raise S3Error("InvalidArgument", "Invalid version id specified",
                                  ArgumentName="versionId", ArgumentValue=version_id)
                raise S3Error("NoSuchVersion", Key=key, VersionId=version_id)
            raise S3Error("NoSuchKey", Key=key)
        if rec.is_delete_marker:
            if version_id is not None:
                err = S3Error("MethodNotAllowed", "The specified method is not allowed against this "
                              "resource.", Method=ctx.req.method, ResourceType="DeleteMarker")
                err.headers = {"x-amz-delete-marker": "true", "x-amz-version-id": rec.version_id}
                raise err
            err = S3Error("NoSuchKey", Key=key)
            err.headers = {"x-amz-delete-marker": "true", "x-amz-version-id": rec.version_id}
            raise err
        return rec

    def _check_deletable(self, ctx: Ctx, view: BucketView, rec: ObjectRecord) -> None:
        """A version under a legal hold, or under retention not bypassed, cannot be deleted."""
        if rec.meta.get("legal_hold") == "ON":
            raise S3Error("AccessDenied", "Access Denied because object protected by object lock.")
        self._check_retention(ctx, view, rec)

    def _legal_hold_for_new(self, ctx: Ctx, view: BucketView) -> str | None:
        """The ``x-amz-object-lock-legal-hold`` header of an upload: "ON", "OFF" or None."""
        status = ctx.req.headers.get("x-amz-object-lock-legal-hold")
        if status is None:
            return None
        if status not in ("ON", "OFF"):
            raise S3Error("InvalidArgument", "Legal Hold must be either of 'ON' or 'OFF'",
                          ArgumentName="x-amz-object-lock-legal-hold", ArgumentValue=status)
        if not view.s3_locks:
            raise S3Error("InvalidRequest", "Bucket is missing Object Lock Configuration")
        self._authorize(ctx, view, "s3:PutObjectLegalHold", ctx.key)
        return status

    def _check_retention(self, ctx: Ctx, view: BucketView, rec: ObjectRecord) -> None:
        if not rec.lock_mode or not rec.retain_until or rec.retain_until <= time.time():
            return
        if rec.lock_mode == "GOVERNANCE" and \
                ctx.req.headers.get("x-amz-bypass-governance-retention", "").lower() == "true" and \
                self._allowed(ctx, view, "s3:BypassGovernanceRetention", rec.key):
            return
        raise S3Error("AccessDenied", "Access Denied because object protected by object lock.")

    async def _read_small(self, ctx: Ctx, limit: int = xmlio.MAX_XML_BODY) -> bytes:
        body = objects.payload_body(ctx.req, ctx.auth) if ctx.auth else ctx.req.body
        chunks = []
        size = 0
        while chunk := await body.read(1 << 16):
            size += len(chunk)
            if size > limit:
                raise S3Error("MalformedXML", "The XML you provided was larger than the maximum allowed")
            chunks.append(chunk)
        data = b"".join(chunks)
        signed = ctx.auth.payload_sha256 if ctx.auth else None
        if signed and hashlib.sha256(data).hexdigest() != signed:
            raise S3Error("XAmzContentSHA256Mismatch")
        md5 = ctx.req.headers.get("content-md5")
        if md5 is not None and base64.b64encode(hashlib.md5(data).digest()).decode() != md5:
            raise S3Error("BadDigest")
        return data

    def _copy_source(self, ctx: Ctx) -> tuple[BucketView, BucketStore, ObjectRecord]:
        raw = ctx.req.headers["x-amz-copy-source"]
        path, _, qs = raw.partition("?")
        path = unquote(path).lstrip("/")
        src_bucket, _, src_key = path.partition("/")
        if not src_bucket or not src_key:
            raise S3Error("InvalidArgument", "Invalid copy source object key",
                          ArgumentName="x-amz-copy-source")
        version_id = None
        if qs.startswith("versionId="):
            version_id = unquote(qs[len("versionId="):])
        src_view = self.directory.get_bucket_view(src_bucket)
        if src_view is None:
            raise S3Error("NoSuchBucket", BucketName=src_bucket)
        self._authorize(ctx, src_view, "s3:GetObjectVersion" if version_id else "s3:GetObject", src_key)
        src_store = self._store(src_view)
        rec = self._lookup(ctx, src_view, src_store, src_key, version_id)
        if rec.is_delete_marker:
            raise S3Error("NoSuchKey", Key=src_key)
        self._check_conditions(ctx.req.headers, rec, prefix="x-amz-copy-source-")
        return src_view, src_store, rec

    @staticmethod
    def _part_number(q: dict[str, str]) -> int:
        raw = q.get("partNumber", "")
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_PARTS:
            raise S3Error("InvalidArgument", "Part number must be an integer between 1 and 10000, "
                          "inclusive", ArgumentName="partNumber", ArgumentValue=raw)
        return int(raw)

    @staticmethod
    def _no_subresource(ctx: Ctx, names: tuple[str, ...]) -> None:
        for name in names:
            if name in ctx.req.query:
                raise S3Error("NotImplemented", f"The ?{name} subresource is not implemented")

    @staticmethod
    def _check_conditions(h: dict[str, str], rec: ObjectRecord, prefix: str = "") -> None:
        etag = quote_etag(rec.etag)
        lm = int(rec.last_modified)

        def tags(value: str) -> set[str]:
            return {t.strip() if t.strip().startswith('"') or t.strip() == "*" else f'"{t.strip()}"'
                    for t in value.split(",")}

        if (v := h.get(prefix + "if-match")) is not None and "*" not in tags(v) and etag not in tags(v):
            raise S3Error("PreconditionFailed", Condition=f"{prefix}If-Match")
        if (v := h.get(prefix + "if-unmodified-since")) is not None and "if-match" not in h:
            t = parse_http_date(v)
            if t is not None and lm > t:
                raise S3Error("PreconditionFailed", Condition=f"{prefix}If-Unmodified-Since")
        if (v := h.get(prefix + "if-none-match")) is not None and ("*" in tags(v) or etag in tags(v)):
            if prefix:
                raise S3Error("PreconditionFailed", Condition=f"{prefix}If-None-Match")
            err = S3Error("NotModified")
            err.headers = {"etag": etag}
            raise err
        if (v := h.get(prefix + "if-modified-since")) is not None and "if-none-match" not in h:
            t = parse_http_date(v)
            if t is not None and lm <= t:
                if prefix:
                    raise S3Error("PreconditionFailed", Condition=f"{prefix}If-Modified-Since")
                err = S3Error("NotModified")
                err.headers = {"etag": etag}
                raise err
