"""Multipart uploads with real 5 MiB parts."""

from __future__ import annotations

import hashlib

import pytest
from botocore.exceptions import ClientError

MiB = 1 << 20


def code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def multipart_etag(parts: list[bytes]) -> str:
    return f'"{hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest()}-{len(parts)}"'


def test_multipart_upload_with_5mib_parts(s3, make_bytes):
    c = s3.client()
    parts = [make_bytes(5 * MiB, 1), make_bytes(5 * MiB, 2), make_bytes(1234, 3)]
    up = c.create_multipart_upload(Bucket="bucket-a", Key="big.bin", ContentType="video/x",
                                   Metadata={"m": "v"})
    uid = up["UploadId"]
    etags = []
    for n, data in enumerate(parts, 1):
        r = c.upload_part(Bucket="bucket-a", Key="big.bin", UploadId=uid, PartNumber=n, Body=data)
        assert r["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
        etags.append(r["ETag"])
    listed = c.list_parts(Bucket="bucket-a", Key="big.bin", UploadId=uid)
    assert [(p["PartNumber"], p["Size"], p["ETag"]) for p in listed["Parts"]] == \
        [(n, len(d), e) for n, (d, e) in enumerate(zip(parts, etags, strict=True), 1)]
    uploads = c.list_multipart_uploads(Bucket="bucket-a")
    assert [u["UploadId"] for u in uploads["Uploads"]] == [uid]
    done = c.complete_multipart_upload(
        Bucket="bucket-a", Key="big.bin", UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]})
    assert done["ETag"] == multipart_etag(parts)
    got = c.get_object(Bucket="bucket-a", Key="big.bin")
    body = got["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(b"".join(parts)).digest()
    assert got["ContentType"] == "video/x" and got["Metadata"] == {"m": "v"}
    assert got["ETag"] == multipart_etag(parts)
    # A range across the part boundary.
    r = c.get_object(Bucket="bucket-a", Key="big.bin", Range=f"bytes={5 * MiB - 10}-{5 * MiB + 9}")
    assert r["Body"].read() == parts[0][-10:] + parts[1][:10]
    assert "Uploads" not in c.list_multipart_uploads(Bucket="bucket-a")
    assert s3.directory.used == sum(len(p) for p in parts)
    with pytest.raises(ClientError) as e:
        c.list_parts(Bucket="bucket-a", Key="big.bin", UploadId=uid)
    assert code(e) == "NoSuchUpload"


def test_upload_file_uses_multipart_and_roundtrips(s3, make_bytes, tmp_path):
    from boto3.s3.transfer import TransferConfig

    c = s3.client()
    data = make_bytes(12 * MiB, 9)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    cfg = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, max_concurrency=3)
    c.upload_file(str(src), "bucket-a", "managed.bin", Config=cfg)
    head = c.head_object(Bucket="bucket-a", Key="managed.bin")
    assert head["ETag"].endswith('-3"') and head["ContentLength"] == len(data)
    dst = tmp_path / "dst.bin"
    c.download_file("bucket-a", "managed.bin", str(dst), Config=cfg)
    assert dst.read_bytes() == data


def test_abort_frees_parts(s3, make_bytes):
    c = s3.client()
    uid = c.create_multipart_upload(Bucket="bucket-a", Key="a")["UploadId"]
    c.upload_part(Bucket="bucket-a", Key="a", UploadId=uid, PartNumber=1, Body=make_bytes(1000))
    assert s3.directory.used == 1000
    c.abort_multipart_upload(Bucket="bucket-a", Key="a", UploadId=uid)
    assert s3.directory.used == 0
    with pytest.raises(ClientError) as e:
        c.upload_part(Bucket="bucket-a", Key="a", UploadId=uid, PartNumber=2, Body=b"x")
    assert code(e) == "NoSuchUpload"
    data_dir = s3.root / "s3" / "bucket-a" / ".s3" / "data"
    assert [p for p in data_dir.rglob("*") if p.is_file()] == []


def test_complete_errors(s3, make_bytes):
    c = s3.client()
    uid = c.create_multipart_upload(Bucket="bucket-a", Key="e")["UploadId"]
    e1 = c.upload_part(Bucket="bucket-a", Key="e", UploadId=uid, PartNumber=1, Body=make_bytes(100))["ETag"]
    e2 = c.upload_part(Bucket="bucket-a", Key="e", UploadId=uid, PartNumber=2, Body=make_bytes(100))["ETag"]
    with pytest.raises(ClientError) as e:  # part 1 is below 5 MiB and not the last
        c.complete_multipart_upload(Bucket="bucket-a", Key="e", UploadId=uid, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    assert code(e) == "EntityTooSmall"
    with pytest.raises(ClientError) as e:
        c.complete_multipart_upload(Bucket="bucket-a", Key="e", UploadId=uid, MultipartUpload={
            "Parts": [{"PartNumber": 2, "ETag": e2}, {"PartNumber": 1, "ETag": e1}]})
    assert code(e) == "InvalidPartOrder"
    with pytest.raises(ClientError) as e:
        c.complete_multipart_upload(Bucket="bucket-a", Key="e", UploadId=uid, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": '"00000000000000000000000000000000"'}]})
    assert code(e) == "InvalidPart"
    with pytest.raises(ClientError) as e:
        c.upload_part(Bucket="bucket-a", Key="e", UploadId=uid, PartNumber=10001, Body=b"x")
    assert code(e) == "InvalidArgument"
    # Completing with the last part alone works; unlisted parts are dropped.
    c.complete_multipart_upload(Bucket="bucket-a", Key="e", UploadId=uid, MultipartUpload={
        "Parts": [{"PartNumber": 2, "ETag": e2}]})
    assert c.head_object(Bucket="bucket-a", Key="e")["ContentLength"] == 100
    assert s3.directory.used == 100


def test_upload_part_copy(s3, make_bytes):
    c = s3.client()
    src = make_bytes(6 * MiB, 4)
    c.put_object(Bucket="bucket-a", Key="src", Body=src)
    uid = c.create_multipart_upload(Bucket="bucket-a", Key="dst")["UploadId"]
    p1 = c.upload_part_copy(Bucket="bucket-a", Key="dst", UploadId=uid, PartNumber=1,
                            CopySource="bucket-a/src", CopySourceRange=f"bytes=0-{5 * MiB - 1}")
    p2 = c.upload_part_copy(Bucket="bucket-a", Key="dst", UploadId=uid, PartNumber=2,
                            CopySource="bucket-a/src", CopySourceRange=f"bytes={5 * MiB}-{6 * MiB - 1}")
    assert p1["CopyPartResult"]["ETag"] == f'"{hashlib.md5(src[:5 * MiB]).hexdigest()}"'
    c.complete_multipart_upload(Bucket="bucket-a", Key="dst", UploadId=uid, MultipartUpload={"Parts": [
        {"PartNumber": 1, "ETag": p1["CopyPartResult"]["ETag"]},
        {"PartNumber": 2, "ETag": p2["CopyPartResult"]["ETag"]}]})
    assert c.get_object(Bucket="bucket-a", Key="dst")["Body"].read() == src
