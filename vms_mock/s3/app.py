"""The S3 API: addressing, authentication, authorization and the operations themselves.

Flow of a request: resolve bucket and key (virtual-host or path style) → verify SigV4 against the
VMS access keys (looked up per request) → authorize the action for the principal → run the
operation on the bucket's :class:`BucketStore`. Every failure is an :class:`S3Error`, rendered as
S3's XML error document in :meth:`S3App.render_error` (the one place errors become responses).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import unquote

from vms_mock.s3 import xmlio
from vms_mock.s3.bucket_ops import BucketOps
from vms_mock.s3.directory import (
    BucketCreationRefused,
    S3Directory,
)
from vms_mock.s3.errors import S3Error
from vms_mock.s3.http import Request, Response
from vms_mock.s3.multipart_ops import MultipartOps
from vms_mock.s3.object_ops import ObjectOps
from vms_mock.s3.ops_base import (
    BUCKET_SUBRESOURCES,
    LATENCY,
    REQUESTS,
    Ctx,
)
from vms_mock.s3.sigv4 import verify_request
from vms_mock.s3.store import StoreRegistry
from vms_mock.s3.tagging_ops import TaggingOps
from vms_mock.s3.xmlio import el

log = logging.getLogger(__name__)


class S3App(BucketOps, ObjectOps, MultipartOps, TaggingOps):
    """Routes a request to its operation; the operations live in the *_ops mixins."""

    def __init__(self, directory: S3Directory, pool: ThreadPoolExecutor, region: str = "us-east-1",
                 virtual_host_suffixes: tuple[str, ...] = ("localhost",)) -> None:
        self.directory = directory
        self.pool = pool
        self.region = region
        self.suffixes = tuple(sorted({s.lower().strip(".") for s in virtual_host_suffixes if s},
                                     key=len, reverse=True))
        self.stores = StoreRegistry()
        self.roots = {}

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
        folder is deleted later (see folder_deleted), and set the S3 byte count to their sum
        (the count is written lazily, so a crash may have left it behind the indexes)."""
        total = 0
        for view in self.directory.list_bucket_views():
            try:
                root = self.directory.fs_path(view.path)
                if (root / ".s3" / "meta.sqlite3").exists():
                    total += self.stores.get(root).usage()
            except (OSError, ValueError, sqlite3.Error):
                log.warning("cannot open the S3 index of a bucket", extra={"bucket": view.bucket})
        self.directory.set_s3_usage(total)

    def folder_deleted(self, path: str) -> None:
        """The folder-delete API removed ``path``: release the capacity its objects held."""
        try:
            freed = self.stores.release_under(self.directory.fs_path(path))
        except ValueError:
            return
        if freed:
            self.directory.report_s3_usage(-freed)
            log.info("released S3 capacity of a deleted folder", extra={"path": path, "bytes": freed})

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
            if "tagging" in q:
                ctx.op = "PutObjectTagging"
                return await self.put_tagging(ctx, view)
            if "legal-hold" in q:
                ctx.op = "PutObjectLegalHold"
                return await self.put_legal_hold(ctx, view)
            if "x-amz-copy-source" in ctx.req.headers:
                ctx.op = "CopyObject"
                return await self.copy_object(ctx, view)
            self._no_subresource(ctx, ("acl",))
            ctx.op = "PutObject"
            return await self.put_object(ctx, view)
        if m in ("GET", "HEAD"):
            subresources = (("uploadId", "ListParts", self.list_parts),
                            ("retention", "GetObjectRetention", self.get_retention),
                            ("tagging", "GetObjectTagging", self.get_tagging),
                            ("legal-hold", "GetObjectLegalHold", self.get_legal_hold))
            for param, op, handler in subresources:
                if param in q and m == "GET":
                    ctx.op = op
                    return handler(ctx, view)
            if "acl" in q and m == "GET":
                ctx.op = "GetObjectAcl"
                self._authorize(ctx, view, "s3:GetObjectAcl", ctx.key)
                return self._acl(ctx)
            self._no_subresource(ctx, ("attributes", "torrent"))
            ctx.op = "GetObject" if m == "GET" else "HeadObject"
            return self.get_object(ctx, view, head=m == "HEAD")
        if m == "DELETE":
            if "uploadId" in q:
                ctx.op = "AbortMultipartUpload"
                return self.abort_upload(ctx, view)
            if "tagging" in q:
                ctx.op = "DeleteObjectTagging"
                return self.delete_tagging(ctx, view)
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
            self._no_subresource(ctx, BUCKET_SUBRESOURCES)
            ctx.op = "ListObjectsV2" if q.get("list-type") == "2" else "ListObjects"
            self._authorize(ctx, view, "s3:ListBucket")
            return self.list_objects(ctx, view, v2=q.get("list-type") == "2")
        if m == "PUT" and "versioning" in q:
            ctx.op = "PutBucketVersioning"
            self._authorize(ctx, view, "s3:PutBucketVersioning")
            raise S3Error("NotImplemented", "Versioning is a property of the bucket view: set "
                          "s3_versioning through the VMS API")
        if m == "PUT":
            self._no_subresource(ctx, (*BUCKET_SUBRESOURCES, "object-lock"))
        raise S3Error("MethodNotAllowed")
