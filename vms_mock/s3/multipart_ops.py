"""Multipart upload S3 operations: create, upload part (and copy), complete, abort, list parts."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time

from vms_mock.s3 import objects, xmlio
from vms_mock.s3.directory import BucketView
from vms_mock.s3.errors import S3Error
from vms_mock.s3.http import Response
from vms_mock.s3.ops_base import (
    BYTES_IN,
    MAX_PARTS,
    MIN_PART,
    Ctx,
    OpsBase,
    parse_range,
    quote_etag,
)
from vms_mock.s3.store import NULL_VERSION, BucketStore, ObjectRecord, PartRecord, new_id
from vms_mock.s3.xmlio import el, iso8601

log = logging.getLogger(__name__)


class MultipartOps(OpsBase):
    def create_upload(self, ctx: Ctx, view: BucketView) -> Response:
        assert ctx.key is not None
        content_type, meta, lock_mode, retain_until = self._new_object(ctx, view)
        upload_id = self._store(view).create_upload(ctx.key, content_type, meta, lock_mode, retain_until)
        return self._xml(xmlio.doc("InitiateMultipartUploadResult", el("Bucket", view.bucket) +
                                   el("Key", ctx.key) + el("UploadId", upload_id)))

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
        objects.prepare_next(store, self.pool)
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
            parsed = parse_range(rng, src.size, strict=True)
            assert parsed is not None
            offset, count = parsed
        self._preflight_space(view, store, count)
        await self._read_small(ctx)
        source: str | bytes
        if src.inline is not None:
            source = src.inline
        else:
            assert src.data_id is not None
            source = str(src_store.data_path(src.data_id))
        writer = objects.ObjectWriter(store, False, None)
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self.pool, objects.copy_into, writer, [(source, offset, count)])
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
        sizes = []
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
            sizes.append(part.size)
        etag = f"{hashlib.md5(digests).hexdigest()}-{len(wanted)}"
        writer = objects.ObjectWriter(store, False, None)
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self.pool, objects.copy_into, writer, sources)
            version_id = new_id() if self._versioned(view) else NULL_VERSION
            rec = ObjectRecord(key=ctx.key, version_id=version_id, size=total, etag=etag,
                               content_type=upload.content_type, meta={**upload.meta, "parts": sizes},
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
