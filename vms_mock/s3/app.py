"""The S3 API: addressing, authentication, authorization and the operations themselves.

Flow of a request: resolve bucket and key (virtual-host or path style) → verify SigV4 against the
VMS access keys (looked up per request) → authorize the action for the principal → run the
operation on the bucket's :class:`BucketStore`. Every failure is an :class:`S3Error`, rendered as
S3's XML error document in :meth:`S3App.render_error` (the one place errors become responses).
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import hashlib
import logging
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from prometheus_client import Counter, Histogram

from vms_mock.s3 import objects, policy, xmlio
from vms_mock.s3.directory import (
    AccessKeyRecord,
    BucketCreationRefused,
    BucketView,
    CapacityExhausted,
    S3Directory,
)
from vms_mock.s3.errors import S3Error
from vms_mock.s3.http import Request, Response
from vms_mock.s3.sigv4 import AuthResult, verify_request
from vms_mock.s3.store import NULL_VERSION, BucketStore, ObjectRecord, PartRecord, StoreRegistry, new_id
from vms_mock.s3.xmlio import el, encode_key, http_date, iso8601

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
_RESPONSE_OVERRIDES = {"response-content-type": "content-type", "response-cache-control": "cache-control",
                       "response-content-disposition": "content-disposition",
                       "response-content-encoding": "content-encoding",
                       "response-content-language": "content-language", "response-expires": "expires"}
_BUCKET_SUBRESOURCES = ("acl", "cors", "encryption", "lifecycle", "logging", "notification",
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


class S3App:
    def __init__(self, directory: S3Directory, pool: ThreadPoolExecutor, region: str = "us-east-1",
                 virtual_host_suffixes: tuple[str, ...] = ("localhost",)) -> None:
        self.directory = directory
        self.pool = pool
        self.region = region
        self.suffixes = tuple(sorted({s.lower().strip(".") for s in virtual_host_suffixes if s},
                                     key=len, reverse=True))
        self.stores = StoreRegistry()

    # -- entry points ----------------------------------------------------------------------
    async def handle(self, req: Request) -> Response:
        ctx = self._address(req)
        try:
            resp = await self._dispatch(ctx)
        except S3Error as exc:
            resp = self._error(ctx, exc)
        except BucketCreationRefused as exc:
            resp = self._error(ctx, S3Error("AccessDenied", str(exc)))
        REQUESTS.labels(ctx.op, str(resp.status)).inc()
        LATENCY.labels(ctx.op).observe(time.monotonic() - req.started)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("s3 request", extra={"op": ctx.op, "status": resp.status, "method": req.method,
                                           "bucket": ctx.bucket, "request_id": req.request_id})
        return resp

    def render_error(self, req: Request | None, code: str, message: str) -> Response:
        if req is None:
            err = S3Error(code, message or None)
            return Response(err.status, {"content-type": "application/xml"}, err.to_xml("/", "0"))
        return self._error(self._address(req), S3Error(code, message or None))

    def _error(self, ctx: Ctx, exc: S3Error) -> Response:
        headers = {"x-amz-request-id": ctx.req.request_id, **exc.headers}
        if exc.status == 304:
            return Response(304, headers)
        if exc.status >= 500 and exc.code != "InsufficientCapacity":
            log.error("S3 server error", extra={"op": ctx.op, "code": exc.code, "detail": exc.message})
        headers["content-type"] = "application/xml"
        body = exc.to_xml(ctx.resource, ctx.req.request_id)
        return Response(exc.status, headers, body, head_only=ctx.req.method == "HEAD")

    def close(self) -> None:
        self.stores.close()

    def open_existing_buckets(self) -> None:
        """Open the index of every bucket view that has one, so its bytes are known if its
        folder is deleted later (see folder_deleted)."""
        for view in self.directory.list_bucket_views():
            try:
                root = self.directory.fs_path(view.path)
                if (root / ".s3" / "meta.sqlite3").exists():
                    self.stores.get(root)
            except (OSError, ValueError):
                log.warning("cannot open the S3 index of a bucket", extra={"bucket": view.bucket})

    def folder_deleted(self, path: str) -> None:
        """The folder-delete API removed ``path``: release the capacity its objects held."""
        try:
            freed = self.stores.release_under(self.directory.fs_path(path))
        except ValueError:
            return
        if freed:
            self.directory.report_s3_usage(-freed)
            log.info("released S3 capacity of a deleted folder", extra={"path": path, "bytes": freed})

    # -- addressing and auth ---------------------------------------------------------------
    def _address(self, req: Request) -> Ctx:
        path = unquote(req.raw_path)
        host = req.headers.get("host", "").lower()
        host = host[: host.find("]") + 1] if host.startswith("[") else host.rsplit(":", 1)[0]
        for suffix in self.suffixes:
            if host.endswith("." + suffix):
                bucket = host[: -len(suffix) - 1]
                key = path[1:] if path.startswith("/") else path
                return Ctx(req, bucket, key or None)
        if path in ("", "/"):
            return Ctx(req, None, None)
        bucket, _, key = path[1:].partition("/")
        return Ctx(req, bucket, key or None)

    def _authenticate(self, ctx: Ctx) -> None:
        auth = verify_request(ctx.req.method, ctx.req.raw_path, ctx.req.raw_query, ctx.req.headers,
                              ctx.req.query, self.directory)
        if auth is None:
            raise S3Error("AccessDenied", "Anonymous access is not allowed")
        ctx.auth = auth

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
        return self.stores.get(self.directory.fs_path(view.path))

    @staticmethod
    def _check_key(key: str) -> None:
        if len(key.encode("utf-8", "surrogateescape")) > MAX_KEY_BYTES:
            raise S3Error("KeyTooLongError", Size=str(len(key.encode("utf-8", "surrogateescape"))),
                          MaxSizeAllowed=str(MAX_KEY_BYTES))
        if _BAD_KEY_CHARS.search(key):
            raise S3Error("InvalidArgument", "Object key contains a character that XML 1.0 cannot "
                          "represent (such as NUL)", ArgumentName="key")

    # -- dispatch --------------------------------------------------------------------------
    async def _dispatch(self, ctx: Ctx) -> Response:
        q = ctx.req.query
        m = ctx.req.method
        if ctx.bucket is None:
            ctx.op = "ListBuckets"
            self._authenticate(ctx)
            if m != "GET":
                raise S3Error("MethodNotAllowed")
            return self.list_buckets(ctx)
        if ctx.key is None:
            return await self._bucket_op(ctx, m, q)
        self._authenticate(ctx)
        self._check_key(ctx.key)
        view = self._view(ctx)
        if m == "PUT":
            if "uploadId" in q and "partNumber" in q:
                if "x-amz-copy-source" in ctx.req.headers:
                    ctx.op = "UploadPartCopy"
                    return await self.upload_part_copy(ctx, view)
                ctx.op = "UploadPart"
                return await self.upload_part(ctx, view)
            if "retention" in q:
                ctx.op = "PutObjectRetention"
                return await self.put_retention(ctx, view)
            if "x-amz-copy-source" in ctx.req.headers:
                ctx.op = "CopyObject"
                return await self.copy_object(ctx, view)
            self._no_subresource(ctx, ("tagging", "acl", "legal-hold"))
            ctx.op = "PutObject"
            return await self.put_object(ctx, view)
        if m in ("GET", "HEAD"):
            if "uploadId" in q and m == "GET":
                ctx.op = "ListParts"
                return self.list_parts(ctx, view)
            if "retention" in q and m == "GET":
                ctx.op = "GetObjectRetention"
                return self.get_retention(ctx, view)
            if "acl" in q and m == "GET":
                ctx.op = "GetObjectAcl"
                self._authorize(ctx, view, "s3:GetObjectAcl", ctx.key)
                return self._acl(ctx)
            self._no_subresource(ctx, ("tagging", "legal-hold", "attributes", "torrent"))
            ctx.op = "GetObject" if m == "GET" else "HeadObject"
            return self.get_object(ctx, view, head=m == "HEAD")
        if m == "DELETE":
            if "uploadId" in q:
                ctx.op = "AbortMultipartUpload"
                return self.abort_upload(ctx, view)
            self._no_subresource(ctx, ("tagging",))
            ctx.op = "DeleteObject"
            return self.delete_object(ctx, view)
        if m == "POST":
            if "uploads" in q:
                ctx.op = "CreateMultipartUpload"
                return self.create_upload(ctx, view)
            if "uploadId" in q:
                ctx.op = "CompleteMultipartUpload"
                return await self.complete_upload(ctx, view)
        raise S3Error("MethodNotAllowed")

    @staticmethod
    def _no_subresource(ctx: Ctx, names: tuple[str, ...]) -> None:
        for name in names:
            if name in ctx.req.query:
                raise S3Error("NotImplemented", f"The ?{name} subresource is not implemented")

    async def _bucket_op(self, ctx: Ctx, m: str, q: dict[str, str]) -> Response:
        if m == "PUT" and not q:
            ctx.op = "CreateBucket"
            self._authenticate(ctx)
            return await self.create_bucket(ctx)
        self._authenticate(ctx)
        view = self._view(ctx)
        if m == "HEAD":
            ctx.op = "HeadBucket"
            self._authorize(ctx, view, "s3:ListBucket")
            return Response(200, {"x-amz-bucket-region": self.region})
        if m == "DELETE" and not q:
            ctx.op = "DeleteBucket"
            return self.delete_bucket(ctx, view)
        if m == "POST" and "delete" in q:
            ctx.op = "DeleteObjects"
            return await self.delete_objects(ctx, view)
        if m == "GET":
            if "location" in q:
                ctx.op = "GetBucketLocation"
                self._authorize(ctx, view, "s3:GetBucketLocation")
                region = "" if self.region == "us-east-1" else self.region
                return self._xml(xmlio.doc("LocationConstraint", xmlio.escape(region)))
            if "versioning" in q:
                ctx.op = "GetBucketVersioning"
                self._authorize(ctx, view, "s3:GetBucketVersioning")
                inner = el("Status", "Enabled") if self._versioned(view) else ""
                return self._xml(xmlio.doc("VersioningConfiguration", inner))
            if "object-lock" in q:
                ctx.op = "GetObjectLockConfiguration"
                self._authorize(ctx, view, "s3:GetBucketObjectLockConfiguration")
                return self._lock_configuration(view)
            if "uploads" in q:
                ctx.op = "ListMultipartUploads"
                self._authorize(ctx, view, "s3:ListBucketMultipartUploads")
                return self.list_uploads(ctx, view)
            if "versions" in q:
                ctx.op = "ListObjectVersions"
                self._authorize(ctx, view, "s3:ListBucketVersions")
                return self.list_versions(ctx, view)
            if "acl" in q:
                ctx.op = "GetBucketAcl"
                self._authorize(ctx, view, "s3:GetBucketAcl")
                return self._acl(ctx)
            self._no_subresource(ctx, _BUCKET_SUBRESOURCES)
            ctx.op = "ListObjectsV2" if q.get("list-type") == "2" else "ListObjects"
            self._authorize(ctx, view, "s3:ListBucket")
            return self.list_objects(ctx, view, v2=q.get("list-type") == "2")
        if m == "PUT" and "versioning" in q:
            ctx.op = "PutBucketVersioning"
            self._authorize(ctx, view, "s3:PutBucketVersioning")
            raise S3Error("NotImplemented", "Versioning is a property of the bucket view: set "
                          "s3_versioning through the VMS API")
        if m == "PUT":
            self._no_subresource(ctx, (*_BUCKET_SUBRESOURCES, "object-lock"))
        raise S3Error("MethodNotAllowed")

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

    # -- buckets ---------------------------------------------------------------------------
    def list_buckets(self, ctx: Ctx) -> Response:
        principal = ctx.principal
        entries = []
        for view in sorted(self.directory.list_bucket_views(), key=lambda v: v.bucket):
            if view.tenant_id != principal.tenant_id:
                continue
            if policy.is_owner(principal, view) or self._allowed(ctx, view, "s3:ListBucket"):
                entries.append(f"<Bucket>{el('Name', view.bucket)}"
                               f"{el('CreationDate', iso8601(view.created or 0))}</Bucket>")
        owner = el("ID", principal.user_id) + el("DisplayName", principal.user_name)
        return self._xml(xmlio.doc("ListAllMyBucketsResult",
                                   f"<Owner>{owner}</Owner><Buckets>{''.join(entries)}</Buckets>"))

    async def create_bucket(self, ctx: Ctx) -> Response:
        assert ctx.bucket is not None
        if not valid_bucket_name(ctx.bucket):
            raise S3Error("InvalidBucketName", BucketName=ctx.bucket)
        body = await self._read_small(ctx)
        if body.strip():
            root = xmlio.parse(body)
            if root.tag != "CreateBucketConfiguration":
                raise S3Error("MalformedXML")
        existing = self.directory.get_bucket_view(ctx.bucket)
        if existing is not None:
            if policy.is_owner(ctx.principal, existing):
                raise S3Error("BucketAlreadyOwnedByYou", BucketName=ctx.bucket)
            raise S3Error("BucketAlreadyExists", BucketName=ctx.bucket)
        if ctx.req.headers.get("x-amz-bucket-object-lock-enabled", "").lower() == "true":
            raise S3Error("InvalidArgument", "Object lock is a property of the bucket view: create "
                          "the view with s3_locks through the VMS API")
        decision = policy.evaluate(self._policies(ctx), "s3:CreateBucket",
                                   policy.resource_arn(ctx.bucket))
        if decision is False:
            raise S3Error("AccessDenied")
        view = self.directory.create_bucket_view(ctx.principal, ctx.bucket)
        log.info("bucket created over S3", extra={"bucket": view.bucket, "view_id": view.view_id,
                                                  "user": ctx.principal.user_name})
        return Response(200, {"location": f"/{view.bucket}"})

    def delete_bucket(self, ctx: Ctx, view: BucketView) -> Response:
        self._authorize(ctx, view, "s3:DeleteBucket")
        store = self._store(view)
        if not store.is_empty():
            raise S3Error("BucketNotEmpty", BucketName=view.bucket)
        self.directory.delete_bucket_view(ctx.principal, view)
        log.info("bucket deleted over S3", extra={"bucket": view.bucket, "view_id": view.view_id})
        return Response(204)

    def _lock_configuration(self, view: BucketView) -> Response:
        if not view.s3_locks:
            raise S3Error("ObjectLockConfigurationNotFoundError", BucketName=view.bucket)
        rule = ""
        if view.lock_default_mode and view.lock_default_days:
            rule = (f"<Rule><DefaultRetention>{el('Mode', view.lock_default_mode)}"
                    f"{el('Days', view.lock_default_days)}</DefaultRetention></Rule>")
        return self._xml(xmlio.doc("ObjectLockConfiguration",
                                   el("ObjectLockEnabled", "Enabled") + rule))

    # -- listing ---------------------------------------------------------------------------
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

    def list_objects(self, ctx: Ctx, view: BucketView, v2: bool) -> Response:
        q = ctx.req.query
        prefix = q.get("prefix", "")
        delimiter = q.get("delimiter", "")
        max_keys = self._max_keys(q)
        url = q.get("encoding-type") == "url"
        if q.get("encoding-type") not in (None, "url"):
            raise S3Error("InvalidArgument", "Invalid Encoding Method specified in Request",
                          ArgumentName="encoding-type")
        if v2:
            token = q.get("continuation-token")
            if token is not None:
                try:
                    after = base64.urlsafe_b64decode(token.encode()).decode()
                except (ValueError, UnicodeDecodeError):
                    raise S3Error("InvalidArgument", "The continuation token provided is incorrect",
                                  ArgumentName="continuation-token") from None
            else:
                after = q.get("start-after", "")
        else:
            after = q.get("marker", "")
        store = self._store(view)
        contents, prefixes, truncated, next_after = _walk(store, prefix, delimiter, after, max_keys)
        owner = ""
        if not v2 or q.get("fetch-owner") == "true":
            name = view.bucket_owner or ""
            owner = f"<Owner>{el('ID', name)}{el('DisplayName', name)}</Owner>"
        parts = [el("Name", view.bucket), el("Prefix", encode_key(prefix, url))]
        if v2:
            if "continuation-token" in q:
                parts.append(el("ContinuationToken", q["continuation-token"]))
            if "start-after" in q:
                parts.append(el("StartAfter", encode_key(q["start-after"], url)))
            parts.append(el("KeyCount", len(contents) + len(prefixes)))
            if truncated:
                parts.append(el("NextContinuationToken",
                                base64.urlsafe_b64encode(next_after.encode()).decode()))
        else:
            parts.append(el("Marker", encode_key(after, url)))
            if truncated and delimiter:
                parts.append(el("NextMarker", encode_key(next_after, url)))
        parts.append(el("MaxKeys", max_keys))
        if delimiter:
            parts.append(el("Delimiter", encode_key(delimiter, url)))
        if url:
            parts.append(el("EncodingType", "url"))
        parts.append(el("IsTruncated", "true" if truncated else "false"))
        for rec in contents:
            parts.append(f"<Contents>{el('Key', encode_key(rec.key, url))}"
                         f"{el('LastModified', iso8601(rec.last_modified))}"
                         f"{el('ETag', quote_etag(rec.etag))}{el('Size', rec.size)}{owner}"
                         f"{el('StorageClass', 'STANDARD')}</Contents>")
        for cp in prefixes:
            parts.append(f"<CommonPrefixes>{el('Prefix', encode_key(cp, url))}</CommonPrefixes>")
        return self._xml(xmlio.doc("ListBucketResult", "".join(parts)))

    def list_versions(self, ctx: Ctx, view: BucketView) -> Response:
        q = ctx.req.query
        prefix = q.get("prefix", "")
        delimiter = q.get("delimiter", "")
        max_keys = self._max_keys(q)
        url = q.get("encoding-type") == "url"
        key_marker = q.get("key-marker", "")
        vid_marker = q.get("version-id-marker", "")
        store = self._store(view)
        rows = store.list_versions(prefix, key_marker, max_keys * 4 + 2000)
        # Skip up to and including the marker position.
        if key_marker:
            skipped = []
            passed = not vid_marker
            for r in rows:
                if r.key < key_marker or (r.key == key_marker and (not vid_marker or not passed)):
                    if r.key == key_marker and r.version_id == vid_marker:
                        passed = True
                    continue
                skipped.append(r)
            rows = skipped
        entries: list[str] = []
        prefixes: list[str] = []
        count = 0
        truncated = False
        next_key = next_vid = ""
        last: ObjectRecord | None = None
        for r in rows:
            if delimiter:
                i = r.key.find(delimiter, len(prefix))
                if i >= 0:
                    cp = r.key[: i + len(delimiter)]
                    if prefixes and prefixes[-1] == cp:
                        continue
                    if count >= max_keys:
                        truncated = True
                        break
                    prefixes.append(cp)
                    count += 1
                    continue
            if count >= max_keys:
                truncated = True
                break
            tag = "DeleteMarker" if r.is_delete_marker else "Version"
            extra = "" if r.is_delete_marker else (f"{el('ETag', quote_etag(r.etag))}{el('Size', r.size)}"
                                                    f"{el('StorageClass', 'STANDARD')}")
            entries.append(f"<{tag}>{el('Key', encode_key(r.key, url))}{el('VersionId', r.version_id)}"
                           f"{el('IsLatest', 'true' if r.is_latest else 'false')}"
                           f"{el('LastModified', iso8601(r.last_modified))}{extra}</{tag}>")
            count += 1
            last = r
        if truncated and last is not None:
            next_key, next_vid = last.key, last.version_id
        parts = [el("Name", view.bucket), el("Prefix", encode_key(prefix, url)),
                 el("KeyMarker", encode_key(key_marker, url)), el("VersionIdMarker", vid_marker),
                 el("MaxKeys", max_keys), el("IsTruncated", "true" if truncated else "false")]
        if truncated:
            parts += [el("NextKeyMarker", encode_key(next_key, url)), el("NextVersionIdMarker", next_vid)]
        if delimiter:
            parts.append(el("Delimiter", encode_key(delimiter, url)))
        if url:
            parts.append(el("EncodingType", "url"))
        parts += entries
        parts += [f"<CommonPrefixes>{el('Prefix', encode_key(cp, url))}</CommonPrefixes>" for cp in prefixes]
        return self._xml(xmlio.doc("ListVersionsResult", "".join(parts)))

    # -- objects ---------------------------------------------------------------------------
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
        return h.get("content-type") or "binary/octet-stream", {"user": user, "headers": stored}

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

    async def put_object(self, ctx: Ctx, view: BucketView) -> Response:
        assert ctx.key is not None and ctx.auth is not None
        self._authorize(ctx, view, "s3:PutObject", ctx.key)
        content_type, meta = self._content_meta(ctx)
        lock_mode, retain_until = self._retention_for_new(ctx, view)
        store = self._store(view)
        self._preflight_space(view, store, objects.declared_length(ctx.req), ctx.key)
        writer, echo = await objects.receive(ctx.req, ctx.auth, store, self.pool)
        BYTES_IN.inc(writer.size)
        version_id = new_id() if self._versioned(view) else NULL_VERSION
        etag = writer.md5.hexdigest()
        rec = ObjectRecord(key=ctx.key, version_id=version_id, size=writer.size, etag=etag,
                           content_type=content_type, meta=meta, last_modified=time.time(),
                           data_id=writer.data_id, lock_mode=lock_mode, retain_until=retain_until)
        try:
            writer.publish()
            self._commit(store, view, rec)
        except BaseException:
            writer.discard()
            raise
        headers = {"etag": quote_etag(etag), **echo}
        if self._versioned(view):
            headers["x-amz-version-id"] = version_id
        return Response(200, headers)

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

    def _object_headers(self, view: BucketView, rec: ObjectRecord) -> dict[str, str]:
        headers = {"etag": quote_etag(rec.etag), "last-modified": http_date(rec.last_modified),
                   "accept-ranges": "bytes", "content-type": rec.content_type or "binary/octet-stream"}
        headers.update(rec.meta.get("headers", {}))
        for k, v in rec.meta.get("user", {}).items():
            headers[f"x-amz-meta-{k}"] = v
        if self._versioned(view):
            headers["x-amz-version-id"] = rec.version_id
        if rec.lock_mode and rec.retain_until:
            headers["x-amz-object-lock-mode"] = rec.lock_mode
            headers["x-amz-object-lock-retain-until-date"] = iso8601(rec.retain_until)
        if "-" in rec.etag:
            headers["x-amz-mp-parts-count"] = rec.etag.rsplit("-", 1)[1]
        return headers

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

    def get_object(self, ctx: Ctx, view: BucketView, head: bool) -> Response:
        assert ctx.key is not None
        q = ctx.req.query
        version_id = q.get("versionId")
        action = "s3:GetObjectVersion" if version_id else "s3:GetObject"
        self._authorize(ctx, view, action, ctx.key)
        store = self._store(view)
        rec = self._lookup(ctx, view, store, ctx.key, version_id)
        self._check_conditions(ctx.req.headers, rec)
        headers = self._object_headers(view, rec)
        for param, header in _RESPONSE_OVERRIDES.items():
            if param in q:
                headers[header] = q[param]
        offset, count, status = 0, rec.size, 200
        rng = ctx.req.headers.get("range")
        if rng:
            parsed = _parse_range(rng, rec.size)
            if parsed is not None:
                offset, count = parsed
                status = 206
                headers["content-range"] = f"bytes {offset}-{offset + count - 1}/{rec.size}"
        if head:
            headers["content-length"] = str(count)
            return Response(status, headers, head_only=True)
        assert rec.data_id is not None
        try:
            fd = os.open(store.data_path(rec.data_id), os.O_RDONLY)
        except FileNotFoundError:
            raise S3Error("NoSuchKey", Key=ctx.key) from None
        BYTES_OUT.inc(count)
        return Response(status, headers, file=(fd, offset, count))

    def _check_retention(self, ctx: Ctx, view: BucketView, rec: ObjectRecord) -> None:
        if not rec.lock_mode or not rec.retain_until or rec.retain_until <= time.time():
            return
        if rec.lock_mode == "GOVERNANCE" and \
                ctx.req.headers.get("x-amz-bypass-governance-retention", "").lower() == "true" and \
                self._allowed(ctx, view, "s3:BypassGovernanceRetention", rec.key):
            return
        raise S3Error("AccessDenied", "Access Denied because object protected by object lock.")

    def _delete_one(self, ctx: Ctx, view: BucketView, store: BucketStore, key: str,
                    version_id: str | None) -> dict[str, str]:
        """Delete a key (or one version); returns response headers. Raises S3Error."""
        self._check_key(key)
        if version_id is None:
            self._authorize(ctx, view, "s3:DeleteObject", key)
            if self._versioned(view):
                marker = ObjectRecord(key=key, version_id=new_id(), is_delete_marker=True,
                                      last_modified=time.time())
                self._commit(store, view, marker)
                return {"x-amz-delete-marker": "true", "x-amz-version-id": marker.version_id}
            rec = store.get(key, NULL_VERSION)
            if rec is not None:
                self._delete_version(store, rec)
            return {}
        self._authorize(ctx, view, "s3:DeleteObjectVersion", key)
        rec = store.get(key, version_id)
        if rec is None:
            if version_id != NULL_VERSION and not self._versioned(view):
                raise S3Error("InvalidArgument", "Invalid version id specified",
                              ArgumentName="versionId", ArgumentValue=version_id)
            return {"x-amz-version-id": version_id}
        self._check_retention(ctx, view, rec)
        self._delete_version(store, rec)
        headers = {"x-amz-version-id": version_id}
        if rec.is_delete_marker:
            headers["x-amz-delete-marker"] = "true"
        return headers

    def _delete_version(self, store: BucketStore, rec: ObjectRecord) -> None:
        removed, delta = store.delete_version(rec.key, rec.version_id)
        if removed is not None and removed.data_id:
            store.unlink_data([removed.data_id])
        if delta:
            self.directory.report_s3_usage(delta)

    def delete_object(self, ctx: Ctx, view: BucketView) -> Response:
        assert ctx.key is not None
        headers = self._delete_one(ctx, view, self._store(view), ctx.key, ctx.req.query.get("versionId"))
        return Response(204, headers)

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

    async def delete_objects(self, ctx: Ctx, view: BucketView) -> Response:
        root = xmlio.parse(await self._read_small(ctx))
        if root.tag != "Delete":
            raise S3Error("MalformedXML")
        quiet = (xmlio.text(root, "Quiet") or "").strip().lower() == "true"
        items = root.findall("Object")
        if not items or len(items) > 1000:
            raise S3Error("MalformedXML")
        store = self._store(view)
        out = []
        for item in items:
            key = xmlio.text(item, "Key")
            if key is None:
                raise S3Error("MalformedXML")
            vid = xmlio.text(item, "VersionId")
            try:
                headers = self._delete_one(ctx, view, store, key, vid or None)
            except S3Error as exc:
                out.append(f"<Error>{el('Key', key)}{el('VersionId', vid) if vid else ''}"
                           f"{el('Code', exc.code)}{el('Message', exc.message)}</Error>")
                continue
            if quiet:
                continue
            inner = el("Key", key)
            if vid:
                inner += el("VersionId", vid)
            if headers.get("x-amz-delete-marker"):
                inner += el("DeleteMarker", "true")
                if not vid:
                    inner += el("DeleteMarkerVersionId", headers["x-amz-version-id"])
            out.append(f"<Deleted>{inner}</Deleted>")
        return self._xml(xmlio.doc("DeleteResult", "".join(out)))

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

    async def copy_object(self, ctx: Ctx, view: BucketView) -> Response:
        assert ctx.key is not None
        self._authorize(ctx, view, "s3:PutObject", ctx.key)
        src_view, src_store, src = self._copy_source(ctx)
        directive = ctx.req.headers.get("x-amz-metadata-directive", "COPY").upper()
        if directive not in ("COPY", "REPLACE"):
            raise S3Error("InvalidArgument", "Unknown metadata directive.",
                          ArgumentName="x-amz-metadata-directive")
        if directive == "COPY":
            content_type, meta = src.content_type, src.meta
            if src_view.view_id == view.view_id and src.key == ctx.key and \
                    not self._versioned(view):
                raise S3Error("InvalidRequest", "This copy request is illegal because it is trying to "
                              "copy an object to itself without changing the object's metadata, "
                              "storage class, website redirect location or encryption attributes.")
        else:
            content_type, meta = self._content_meta(ctx)
        lock_mode, retain_until = self._retention_for_new(ctx, view)
        store = self._store(view)
        self._preflight_space(view, store, src.size, ctx.key)
        await self._read_small(ctx)
        writer = objects.ObjectWriter(store, False, None)
        assert src.data_id is not None
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self.pool, objects.copy_into, writer,
                                       [(str(src_store.data_path(src.data_id)), 0, src.size)])
            version_id = new_id() if self._versioned(view) else NULL_VERSION
            now = time.time()
            rec = ObjectRecord(key=ctx.key, version_id=version_id, size=src.size, etag=src.etag,
                               content_type=content_type, meta=meta, last_modified=now,
                               data_id=writer.data_id, lock_mode=lock_mode, retain_until=retain_until)
            writer.publish()
            self._commit(store, view, rec)
        except FileNotFoundError:
            writer.discard()
            raise S3Error("NoSuchKey", Key=src.key) from None
        except BaseException:
            writer.discard()
            raise
        headers = {}
        if self._versioned(view):
            headers["x-amz-version-id"] = version_id
        if self._versioned(src_view):
            headers["x-amz-copy-source-version-id"] = src.version_id
        return self._xml(xmlio.doc("CopyObjectResult", el("LastModified", iso8601(now)) +
                                   el("ETag", quote_etag(src.etag))), headers=headers)

    # -- retention -------------------------------------------------------------------------
    def get_retention(self, ctx: Ctx, view: BucketView) -> Response:
        assert ctx.key is not None
        self._authorize(ctx, view, "s3:GetObjectRetention", ctx.key)
        if not view.s3_locks:
            raise S3Error("InvalidRequest", "Bucket is missing Object Lock Configuration")
        rec = self._lookup(ctx, view, self._store(view), ctx.key, ctx.req.query.get("versionId"))
        if not rec.lock_mode or not rec.retain_until:
            raise S3Error("NoSuchObjectLockConfiguration")
        return self._xml(xmlio.doc("Retention", el("Mode", rec.lock_mode) +
                                   el("RetainUntilDate", iso8601(rec.retain_until))))

    async def put_retention(self, ctx: Ctx, view: BucketView) -> Response:
        assert ctx.key is not None
        self._authorize(ctx, view, "s3:PutObjectRetention", ctx.key)
        if not view.s3_locks:
            raise S3Error("InvalidRequest", "Bucket is missing Object Lock Configuration")
        root = xmlio.parse(await self._read_small(ctx))
        if root.tag != "Retention":
            raise S3Error("MalformedXML")
        mode = xmlio.text(root, "Mode")
        until_text = xmlio.text(root, "RetainUntilDate")
        if mode not in ("GOVERNANCE", "COMPLIANCE") or not until_text:
            raise S3Error("MalformedXML")
        until = parse_iso(until_text)
        store = self._store(view)
        rec = self._lookup(ctx, view, store, ctx.key, ctx.req.query.get("versionId"))
        if rec.lock_mode and rec.retain_until and rec.retain_until > time.time():
            weakening = until < rec.retain_until or (rec.lock_mode == "COMPLIANCE" and mode != "COMPLIANCE")
            if weakening:
                self._check_retention(ctx, view, rec)
        store.put_retention(rec.key, rec.version_id, mode, until)
        return Response(200)

    # -- multipart -------------------------------------------------------------------------
    def create_upload(self, ctx: Ctx, view: BucketView) -> Response:
        assert ctx.key is not None
        self._authorize(ctx, view, "s3:PutObject", ctx.key)
        content_type, meta = self._content_meta(ctx)
        lock_mode, retain_until = self._retention_for_new(ctx, view)
        upload_id = self._store(view).create_upload(ctx.key, content_type, meta, lock_mode, retain_until)
        return self._xml(xmlio.doc("InitiateMultipartUploadResult", el("Bucket", view.bucket) +
                                   el("Key", ctx.key) + el("UploadId", upload_id)))

    @staticmethod
    def _part_number(q: dict[str, str]) -> int:
        raw = q.get("partNumber", "")
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_PARTS:
            raise S3Error("InvalidArgument", "Part number must be an integer between 1 and 10000, "
                          "inclusive", ArgumentName="partNumber", ArgumentValue=raw)
        return int(raw)

    async def upload_part(self, ctx: Ctx, view: BucketView) -> Response:
        assert ctx.key is not None and ctx.auth is not None
        self._authorize(ctx, view, "s3:PutObject", ctx.key)
        number = self._part_number(ctx.req.query)
        store = self._store(view)
        upload_id = ctx.req.query["uploadId"]
        store.get_upload(upload_id, ctx.key)
        self._preflight_space(view, store, objects.declared_length(ctx.req))
        writer, echo = await objects.receive(ctx.req, ctx.auth, store, self.pool)
        BYTES_IN.inc(writer.size)
        etag = writer.md5.hexdigest()
        await self._commit_part(store, view, upload_id, ctx.key, number, writer, etag)
        return Response(200, {"etag": quote_etag(etag), **echo})

    async def _commit_part(self, store: BucketStore, view: BucketView, upload_id: str, key: str,
                           number: int, writer: objects.ObjectWriter, etag: str) -> None:
        self._reserve(writer.size)
        try:
            writer.publish()
            freed, delta = store.put_part(upload_id, key, PartRecord(number, writer.size, etag,
                                                                     writer.data_id, time.time()),
                                          view.quota_hard_limit)
        except BaseException:
            writer.discard()
            self.directory.report_s3_usage(-writer.size)
            raise
        store.unlink_data(freed)
        if delta != writer.size:
            self.directory.report_s3_usage(delta - writer.size)

    async def upload_part_copy(self, ctx: Ctx, view: BucketView) -> Response:
        assert ctx.key is not None
        self._authorize(ctx, view, "s3:PutObject", ctx.key)
        number = self._part_number(ctx.req.query)
        store = self._store(view)
        upload_id = ctx.req.query["uploadId"]
        store.get_upload(upload_id, ctx.key)
        _src_view, src_store, src = self._copy_source(ctx)
        offset, count = 0, src.size
        rng = ctx.req.headers.get("x-amz-copy-source-range")
        if rng:
            parsed = _parse_range(rng, src.size, strict=True)
            assert parsed is not None
            offset, count = parsed
        self._preflight_space(view, store, count)
        await self._read_small(ctx)
        assert src.data_id is not None
        src_path = str(src_store.data_path(src.data_id))
        writer = objects.ObjectWriter(store, False, None)
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self.pool, objects.copy_into, writer, [(src_path, offset, count)])
            etag = await loop.run_in_executor(self.pool, objects.md5_of_range, str(writer.tmp_path), 0,
                                              count)
        except BaseException:
            writer.discard()
            raise
        await self._commit_part(store, view, upload_id, ctx.key, number, writer, etag)
        return self._xml(xmlio.doc("CopyPartResult", el("LastModified", iso8601(time.time())) +
                                   el("ETag", quote_etag(etag))))

    async def complete_upload(self, ctx: Ctx, view: BucketView) -> Response:
        assert ctx.key is not None
        self._authorize(ctx, view, "s3:PutObject", ctx.key)
        upload_id = ctx.req.query["uploadId"]
        store = self._store(view)
        upload = store.get_upload(upload_id, ctx.key)
        root = xmlio.parse(await self._read_small(ctx))
        if root.tag != "CompleteMultipartUpload":
            raise S3Error("MalformedXML")
        wanted: list[tuple[int, str]] = []
        for node in root.findall("Part"):
            num_text = xmlio.text(node, "PartNumber")
            etag_text = xmlio.text(node, "ETag")
            if num_text is None or not num_text.strip().isdigit() or etag_text is None:
                raise S3Error("MalformedXML")
            wanted.append((int(num_text), etag_text.strip().strip('"')))
        if not wanted:
            raise S3Error("MalformedXML")
        if [n for n, _ in wanted] != sorted({n for n, _ in wanted}):
            raise S3Error("InvalidPartOrder", UploadId=upload_id)
        have = {p.part_number: p for p in store.list_parts(upload_id, 0, MAX_PARTS)}
        sources = []
        digests = b""
        total = 0
        for i, (num, etag) in enumerate(wanted):
            part = have.get(num)
            if part is None or part.etag != etag:
                raise S3Error("InvalidPart", UploadId=upload_id, PartNumber=str(num), ETag=etag)
            if part.size < MIN_PART and i != len(wanted) - 1:
                raise S3Error("EntityTooSmall", UploadId=upload_id, PartNumber=str(num),
                              ProposedSize=str(part.size), MinSizeAllowed=str(MIN_PART))
            sources.append((str(store.data_path(part.data_id)), 0, part.size))
            digests += bytes.fromhex(part.etag)
            total += part.size
        etag = f"{hashlib.md5(digests).hexdigest()}-{len(wanted)}"
        writer = objects.ObjectWriter(store, False, None)
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self.pool, objects.copy_into, writer, sources)
            version_id = new_id() if self._versioned(view) else NULL_VERSION
            rec = ObjectRecord(key=ctx.key, version_id=version_id, size=total, etag=etag,
                               content_type=upload.content_type, meta=upload.meta,
                               last_modified=time.time(), data_id=writer.data_id,
                               lock_mode=upload.lock_mode, retain_until=upload.retain_until)
            writer.publish()
            freed, delta = store.finish_upload(upload_id, rec, self._versioned(view))
        except FileNotFoundError:
            writer.discard()
            raise S3Error("NoSuchUpload", UploadId=upload_id) from None
        except BaseException:
            writer.discard()
            raise
        store.unlink_data(freed)
        if delta:
            self.directory.report_s3_usage(delta)
        scheme = "https" if ctx.req.tls else "http"
        location = f"{scheme}://{ctx.req.headers.get('host', '')}/{view.bucket}/{ctx.key}"
        headers = {"x-amz-version-id": version_id} if self._versioned(view) else {}
        return self._xml(xmlio.doc("CompleteMultipartUploadResult", el("Location", location) +
                                   el("Bucket", view.bucket) + el("Key", ctx.key) +
                                   el("ETag", quote_etag(etag))), headers=headers)

    def abort_upload(self, ctx: Ctx, view: BucketView) -> Response:
        assert ctx.key is not None
        self._authorize(ctx, view, "s3:AbortMultipartUpload", ctx.key)
        store = self._store(view)
        freed, delta = store.abort_upload(ctx.req.query["uploadId"], ctx.key)
        store.unlink_data(freed)
        if delta:
            self.directory.report_s3_usage(delta)
        return Response(204)

    def list_parts(self, ctx: Ctx, view: BucketView) -> Response:
        assert ctx.key is not None
        self._authorize(ctx, view, "s3:ListMultipartUploadParts", ctx.key)
        q = ctx.req.query
        store = self._store(view)
        upload_id = q["uploadId"]
        store.get_upload(upload_id, ctx.key)
        marker_raw = q.get("part-number-marker", "0") or "0"
        if not marker_raw.isdigit():
            raise S3Error("InvalidArgument", ArgumentName="part-number-marker")
        max_parts = self._max_keys(q, "max-parts")
        parts = store.list_parts(upload_id, int(marker_raw), max_parts + 1)
        truncated = len(parts) > max_parts
        parts = parts[:max_parts]
        inner = [el("Bucket", view.bucket), el("Key", ctx.key), el("UploadId", upload_id),
                 el("PartNumberMarker", marker_raw), el("MaxParts", max_parts),
                 el("IsTruncated", "true" if truncated else "false"), el("StorageClass", "STANDARD")]
        if truncated and parts:
            inner.append(el("NextPartNumberMarker", parts[-1].part_number))
        for p in parts:
            inner.append(f"<Part>{el('PartNumber', p.part_number)}"
                         f"{el('LastModified', iso8601(p.last_modified))}"
                         f"{el('ETag', quote_etag(p.etag))}{el('Size', p.size)}</Part>")
        return self._xml(xmlio.doc("ListPartsResult", "".join(inner)))

    def list_uploads(self, ctx: Ctx, view: BucketView) -> Response:
        q = ctx.req.query
        prefix = q.get("prefix", "")
        max_uploads = self._max_keys(q, "max-uploads")
        uploads = self._store(view).list_uploads(prefix, max_uploads + 1)
        truncated = len(uploads) > max_uploads
        inner = [el("Bucket", view.bucket), el("Prefix", prefix), el("MaxUploads", max_uploads),
                 el("IsTruncated", "true" if truncated else "false")]
        for u in uploads[:max_uploads]:
            inner.append(f"<Upload>{el('Key', u.key)}{el('UploadId', u.upload_id)}"
                         f"{el('Initiated', iso8601(u.initiated))}{el('StorageClass', 'STANDARD')}</Upload>")
        return self._xml(xmlio.doc("ListMultipartUploadsResult", "".join(inner)))


def _parse_range(value: str, size: int, strict: bool = False) -> tuple[int, int] | None:
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


def _walk(store: BucketStore, prefix: str, delimiter: str, after: str,
          max_keys: int) -> tuple[list[ObjectRecord], list[str], bool, str]:
    """One listing page: (objects, common prefixes, truncated, last key or prefix returned).

    A resume point that is a common prefix skips every key under it (they rolled up into it).
    """
    contents: list[ObjectRecord] = []
    prefixes: list[str] = []
    cursor = after
    last = after
    if max_keys == 0:
        return contents, prefixes, False, after
    while True:
        rows = store.list_latest(prefix, cursor, max_keys - len(contents) - len(prefixes) + 1)
        if not rows:
            return contents, prefixes, False, last
        for rec in rows:
            cp = None
            if delimiter:
                i = rec.key.find(delimiter, len(prefix))
                if i >= 0:
                    cp = rec.key[: i + len(delimiter)]
            if cp is not None and cp <= after:
                cursor = cp + "\U0010ffff" * 4
                break
            if len(contents) + len(prefixes) >= max_keys:
                return contents, prefixes, True, last
            if cp is not None:
                prefixes.append(cp)
                last = cp
                cursor = cp + "\U0010ffff" * 4
                break
            contents.append(rec)
            cursor = last = rec.key
