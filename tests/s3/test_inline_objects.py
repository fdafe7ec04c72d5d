"""Small objects (up to INLINE_MAX) are kept in their bucket index row instead of a file."""

from __future__ import annotations

import hashlib
import sqlite3

from vms_mock.s3.store import INLINE_MAX, BucketStore

MiB = 1 << 20


def _data_files(s3) -> list:
    return [p for p in (s3.root / "s3" / "bucket-a" / ".s3" / "data").rglob("*") if p.is_file()]


def test_small_objects_have_no_file_and_read_back_whole_and_in_ranges(s3, make_bytes):
    c = s3.client()
    bodies = {"empty": b"", "tiny": b"hello", "limit": make_bytes(INLINE_MAX, 1),
              "over": make_bytes(INLINE_MAX + 1, 2)}
    for key, body in bodies.items():
        r = c.put_object(Bucket="bucket-a", Key=key, Body=body)
        assert r["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    assert [p.stat().st_size for p in _data_files(s3)] == [INLINE_MAX + 1]  # only "over" is a file
    for key, body in bodies.items():
        assert c.get_object(Bucket="bucket-a", Key=key)["Body"].read() == body
        assert c.head_object(Bucket="bucket-a", Key=key)["ContentLength"] == len(body)
    limit = bodies["limit"]
    r = c.get_object(Bucket="bucket-a", Key="limit", Range="bytes=100-4196")
    assert r["Body"].read() == limit[100:4197] and r["ContentRange"] == f"bytes 100-4196/{INLINE_MAX}"
    assert c.get_object(Bucket="bucket-a", Key="limit", Range="bytes=-7")["Body"].read() == limit[-7:]
    assert s3.directory.used == sum(map(len, bodies.values()))
    listed = c.list_objects_v2(Bucket="bucket-a")["Contents"]
    assert {o["Key"]: o["Size"] for o in listed} == {k: len(v) for k, v in bodies.items()}


def test_copies_from_an_inline_source(s3, make_bytes):
    c = s3.client()
    small = make_bytes(3000, 3)
    c.put_object(Bucket="bucket-a", Key="src", Body=small)
    c.copy_object(Bucket="bucket-a", Key="copy", CopySource="bucket-a/src")
    assert c.get_object(Bucket="bucket-a", Key="copy")["Body"].read() == small
    assert _data_files(s3) == []
    first = make_bytes(5 * MiB, 4)
    uid = c.create_multipart_upload(Bucket="bucket-a", Key="mp")["UploadId"]
    p1 = c.upload_part(Bucket="bucket-a", Key="mp", UploadId=uid, PartNumber=1, Body=first)["ETag"]
    p2 = c.upload_part_copy(Bucket="bucket-a", Key="mp", UploadId=uid, PartNumber=2,
                            CopySource="bucket-a/src", CopySourceRange="bytes=10-2009")
    assert p2["CopyPartResult"]["ETag"] == f'"{hashlib.md5(small[10:2010]).hexdigest()}"'
    c.complete_multipart_upload(Bucket="bucket-a", Key="mp", UploadId=uid, MultipartUpload={"Parts": [
        {"PartNumber": 1, "ETag": p1}, {"PartNumber": 2, "ETag": p2["CopyPartResult"]["ETag"]}]})
    assert c.get_object(Bucket="bucket-a", Key="mp")["Body"].read() == first + small[10:2010]


def test_inline_versions_and_deletes_free_their_bytes(s3, make_bytes):
    s3.directory.add_view("bucket-v", bucket_owner="alice", s3_versioning=True)
    c = s3.client()
    v1 = c.put_object(Bucket="bucket-v", Key="k", Body=b"one")["VersionId"]
    v2 = c.put_object(Bucket="bucket-v", Key="k", Body=b"two!")["VersionId"]
    assert c.get_object(Bucket="bucket-v", Key="k", VersionId=v1)["Body"].read() == b"one"
    assert c.get_object(Bucket="bucket-v", Key="k")["Body"].read() == b"two!"
    assert s3.directory.used == 7
    c.delete_object(Bucket="bucket-v", Key="k", VersionId=v2)
    assert c.get_object(Bucket="bucket-v", Key="k")["Body"].read() == b"one"
    assert s3.directory.used == 3


def test_an_index_from_before_inline_objects_is_upgraded(s3):
    c = s3.client()
    c.put_object(Bucket="bucket-a", Key="big", Body=b"x" * (INLINE_MAX + 10))
    root = s3.root / "s3" / "bucket-a"
    db = sqlite3.connect(root / ".s3" / "meta.sqlite3")
    db.execute("ALTER TABLE objects DROP COLUMN inline")  # the schema of the earlier release
    db.commit()
    db.close()
    store = BucketStore(root)
    try:
        rec = store.get("big")
        assert rec is not None and rec.inline is None and rec.size == INLINE_MAX + 10
        assert "inline" in {r[1] for r in store.db.execute("PRAGMA table_info(objects)")}
    finally:
        store.close()
