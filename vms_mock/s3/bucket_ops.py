"""Bucket-level S3 operations: ListBuckets, Create/DeleteBucket, listings (v1, v2, versions, uploads)."""

from __future__ import annotations

import base64
import logging

from vms_mock.s3 import policy, xmlio
from vms_mock.s3.directory import BucketView
from vms_mock.s3.errors import S3Error
from vms_mock.s3.http import Response
from vms_mock.s3.ops_base import (
    Ctx,
    OpsBase,
    quote_etag,
    valid_bucket_name,
)
from vms_mock.s3.store import BucketStore, ObjectRecord
from vms_mock.s3.xmlio import el, encode_key, iso8601

log = logging.getLogger(__name__)


class BucketOps(OpsBase):
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
