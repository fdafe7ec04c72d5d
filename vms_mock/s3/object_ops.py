"""Object S3 operations: Put/Get/Head/Delete, DeleteObjects, CopyObject, retention."""

from __future__ import annotations

import asyncio
import logging
import os
import time

from vms_mock.s3 import objects, xmlio
from vms_mock.s3.directory import BucketView
from vms_mock.s3.errors import S3Error
from vms_mock.s3.http import Response
from vms_mock.s3.ops_base import (
    BYTES_IN,
    BYTES_OUT,
    RESPONSE_OVERRIDES,
    Ctx,
    OpsBase,
    parse_iso,
    parse_range,
    quote_etag,
)
from vms_mock.s3.store import NULL_VERSION, BucketStore, ObjectRecord, new_id
from vms_mock.s3.tags import tags_from_header
from vms_mock.s3.xmlio import el, http_date, iso8601

log = logging.getLogger(__name__)


class ObjectOps(OpsBase):
    async def put_object(self, ctx: Ctx, view: BucketView) -> Response:
        assert ctx.key is not None and ctx.auth is not None
        content_type, meta, lock_mode, retain_until = self._new_object(ctx, view)
        store = self._store(view)
        self._preflight_space(view, store, objects.declared_length(ctx.req), ctx.key)
        writer, echo = await objects.receive(ctx.req, ctx.auth, store, self.pool, inline=True)
        BYTES_IN.inc(writer.size)
        version_id = new_id() if self._versioned(view) else NULL_VERSION
        etag = writer.md5.hexdigest()
        rec = ObjectRecord(key=ctx.key, version_id=version_id, size=writer.size, etag=etag,
                           content_type=content_type, meta=meta, last_modified=time.time(),
                           data_id=writer.data_id or None, lock_mode=lock_mode,
                           retain_until=retain_until, inline=writer.inline_data)
        try:
            if writer.inline_data is None:
                writer.publish()
            self._commit(store, view, rec)
        except BaseException:
            writer.discard()
            raise
        if writer.inline_data is None:
            objects.prepare_next(store, self.pool)
        headers = {"etag": quote_etag(etag), **echo}
        if self._versioned(view):
            headers["x-amz-version-id"] = version_id
        return Response(200, headers)

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
        if rec.meta.get("tags"):
            headers["x-amz-tagging-count"] = str(len(rec.meta["tags"]))
        if rec.meta.get("legal_hold"):
            headers["x-amz-object-lock-legal-hold"] = rec.meta["legal_hold"]
        return headers

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
        for param, header in RESPONSE_OVERRIDES.items():
            if param in q:
                headers[header] = q[param]
        offset, count, status = 0, rec.size, 200
        rng = ctx.req.headers.get("range")
        if "partNumber" in q:
            if rng:
                raise S3Error("InvalidRequest", "Cannot specify both Range header and partNumber "
                              "query parameter")
            offset, count, status = self._part_range(q["partNumber"], rec)
            if status == 206:
                headers["content-range"] = f"bytes {offset}-{offset + count - 1}/{rec.size}"
        elif rng:
            parsed = parse_range(rng, rec.size)
            if parsed is not None:
                offset, count = parsed
                status = 206
                headers["content-range"] = f"bytes {offset}-{offset + count - 1}/{rec.size}"
        if head:
            headers["content-length"] = str(count)
            return Response(status, headers, head_only=True)
        BYTES_OUT.inc(count)
        if rec.inline is not None:
            return Response(status, headers, rec.inline[offset:offset + count])
        assert rec.data_id is not None
        try:
            fd = os.open(store.data_path(rec.data_id), os.O_RDONLY)
        except FileNotFoundError:
            raise S3Error("NoSuchKey", Key=ctx.key) from None
        return Response(status, headers, file=(fd, offset, count), cache_key=rec.data_id)

    @staticmethod
    def _part_range(text: str, rec: ObjectRecord) -> tuple[int, int, int]:
        """(offset, count, status) of GET ?partNumber=N: the part of a multipart object (206);
        part 1 of any other object is all of it (200)."""
        if not text.isdigit() or not 1 <= int(text) <= 10000:
            raise S3Error("InvalidArgument", "Part number must be an integer between 1 and 10000, "
                          "inclusive", ArgumentName="partNumber", ArgumentValue=text)
        number = int(text)
        sizes = rec.meta.get("parts")
        if not sizes:
            if number != 1:
                raise S3Error("InvalidPartNumber")
            return 0, rec.size, 200
        if number > len(sizes):
            raise S3Error("InvalidPartNumber")
        return sum(sizes[:number - 1]), sizes[number - 1], 206

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
        self._check_deletable(ctx, view, rec)
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
        tagging = ctx.req.headers.get("x-amz-tagging-directive", "COPY").upper()
        if tagging not in ("COPY", "REPLACE"):
            raise S3Error("InvalidArgument", "Unknown tagging directive.",
                          ArgumentName="x-amz-tagging-directive")
        tags = src.meta.get("tags", {}) if tagging == "COPY" else tags_from_header(
            ctx.req.headers.get("x-amz-tagging"))
        meta = {k: v for k, v in meta.items() if k not in ("tags", "parts")}  # the copy is one part
        if tags:
            self._authorize(ctx, view, "s3:PutObjectTagging", ctx.key)
            meta["tags"] = tags
        lock_mode, retain_until = self._retention_for_new(ctx, view)
        store = self._store(view)
        self._preflight_space(view, store, src.size, ctx.key)
        await self._read_small(ctx)
        writer = objects.ObjectWriter(store, False, None)
        loop = asyncio.get_running_loop()
        try:
            if src.inline is None:
                assert src.data_id is not None
                await loop.run_in_executor(self.pool, objects.copy_into, writer,
                                           [(str(src_store.data_path(src.data_id)), 0, src.size)])
            version_id = new_id() if self._versioned(view) else NULL_VERSION
            now = time.time()
            rec = ObjectRecord(key=ctx.key, version_id=version_id, size=src.size, etag=src.etag,
                               content_type=content_type, meta=meta, last_modified=now,
                               data_id=None if src.inline is not None else writer.data_id,
                               lock_mode=lock_mode, retain_until=retain_until, inline=src.inline)
            if src.inline is None:
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

    def _lock_op(self, ctx: Ctx, view: BucketView, action: str) -> None:
        """Authorize an object lock operation on a bucket that has object lock."""
        assert ctx.key is not None
        self._authorize(ctx, view, action, ctx.key)
        if not view.s3_locks:
            raise S3Error("InvalidRequest", "Bucket is missing Object Lock Configuration")

    def get_retention(self, ctx: Ctx, view: BucketView) -> Response:
        assert ctx.key is not None
        self._lock_op(ctx, view, "s3:GetObjectRetention")
        rec = self._lookup(ctx, view, self._store(view), ctx.key, ctx.req.query.get("versionId"))
        if not rec.lock_mode or not rec.retain_until:
            raise S3Error("NoSuchObjectLockConfiguration")
        return self._xml(xmlio.doc("Retention", el("Mode", rec.lock_mode) +
                                   el("RetainUntilDate", iso8601(rec.retain_until))))

    def get_legal_hold(self, ctx: Ctx, view: BucketView) -> Response:
        assert ctx.key is not None
        self._lock_op(ctx, view, "s3:GetObjectLegalHold")
        rec = self._lookup(ctx, view, self._store(view), ctx.key, ctx.req.query.get("versionId"))
        status = rec.meta.get("legal_hold")
        if status is None:
            raise S3Error("NoSuchObjectLockConfiguration")
        return self._xml(xmlio.doc("LegalHold", el("Status", status)))

    async def put_legal_hold(self, ctx: Ctx, view: BucketView) -> Response:
        assert ctx.key is not None
        self._lock_op(ctx, view, "s3:PutObjectLegalHold")
        root = xmlio.parse(await self._read_small(ctx))
        status = xmlio.text(root, "Status")
        if root.tag != "LegalHold" or status not in ("ON", "OFF"):
            raise S3Error("MalformedXML")
        store = self._store(view)
        rec = self._lookup(ctx, view, store, ctx.key, ctx.req.query.get("versionId"))
        store.set_meta(rec.key, rec.version_id, {**rec.meta, "legal_hold": status})
        return Response(200)

    async def put_retention(self, ctx: Ctx, view: BucketView) -> Response:
        assert ctx.key is not None
        self._lock_op(ctx, view, "s3:PutObjectRetention")
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
