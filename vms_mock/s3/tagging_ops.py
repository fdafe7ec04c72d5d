"""Object tagging: Put/Get/DeleteObjectTagging and the ``x-amz-tagging`` header of uploads.

Tags are kept in the object version's metadata (``meta["tags"]``), so they follow the version
(copied by CopyObject with the COPY directive, replaced with REPLACE as on AWS). Limits as AWS:
at most 10 tags, keys 1-128 and values 0-256 characters, keys unique; anything else is
``InvalidTag`` and nothing changes.
"""

from __future__ import annotations

from vms_mock.s3 import xmlio
from vms_mock.s3.directory import BucketView
from vms_mock.s3.errors import S3Error
from vms_mock.s3.http import Response
from vms_mock.s3.ops_base import Ctx, OpsBase
from vms_mock.s3.tags import check_tags
from vms_mock.s3.xmlio import el


class TaggingOps(OpsBase):
    async def put_tagging(self, ctx: Ctx, view: BucketView) -> Response:
        assert ctx.key is not None
        version_id = ctx.req.query.get("versionId")
        self._authorize(ctx, view, "s3:PutObjectVersionTagging" if version_id else "s3:PutObjectTagging",
                        ctx.key)
        root = xmlio.parse(await self._read_small(ctx))
        tag_set = root.find("TagSet")
        if root.tag != "Tagging" or tag_set is None:
            raise S3Error("MalformedXML")
        pairs = []
        for node in tag_set.findall("Tag"):
            key, value = xmlio.text(node, "Key"), xmlio.text(node, "Value")
            if key is None or value is None:
                raise S3Error("MalformedXML")
            pairs.append((key, value))
        tags = check_tags(pairs)
        store = self._store(view)
        rec = self._lookup(ctx, view, store, ctx.key, version_id)
        store.set_meta(rec.key, rec.version_id, {**rec.meta, "tags": tags})
        return self._version_header(view, rec.version_id)

    def get_tagging(self, ctx: Ctx, view: BucketView) -> Response:
        assert ctx.key is not None
        version_id = ctx.req.query.get("versionId")
        self._authorize(ctx, view, "s3:GetObjectVersionTagging" if version_id else "s3:GetObjectTagging",
                        ctx.key)
        rec = self._lookup(ctx, view, self._store(view), ctx.key, version_id)
        tags = rec.meta.get("tags", {})
        inner = "".join(f"<Tag>{el('Key', k)}{el('Value', v)}</Tag>" for k, v in tags.items())
        resp = self._xml(xmlio.doc("Tagging", f"<TagSet>{inner}</TagSet>"))
        resp.headers.update(self._version_header(view, rec.version_id).headers)
        return resp

    def delete_tagging(self, ctx: Ctx, view: BucketView) -> Response:
        assert ctx.key is not None
        version_id = ctx.req.query.get("versionId")
        self._authorize(ctx, view, "s3:DeleteObjectVersionTagging" if version_id
                        else "s3:DeleteObjectTagging", ctx.key)
        store = self._store(view)
        rec = self._lookup(ctx, view, store, ctx.key, version_id)
        meta = {k: v for k, v in rec.meta.items() if k != "tags"}
        store.set_meta(rec.key, rec.version_id, meta)
        resp = self._version_header(view, rec.version_id)
        resp.status = 204
        return resp

    def _version_header(self, view: BucketView, version_id: str) -> Response:
        return Response(200, {"x-amz-version-id": version_id} if self._versioned(view) else {})
