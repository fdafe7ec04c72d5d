"""Object operations through boto3 against the real endpoint."""

from __future__ import annotations

import hashlib
import os
import socket
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError


def code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def test_put_get_head_delete_roundtrip(s3, make_bytes):
    c = s3.client()
    data = make_bytes(100_000)
    put = c.put_object(Bucket="bucket-a", Key="dir/obj.bin", Body=data, ContentType="application/x-test",
                       Metadata={"color": "blue", "Owner": "Alice"}, CacheControl="no-cache",
                       ContentDisposition="attachment")
    assert put["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    got = c.get_object(Bucket="bucket-a", Key="dir/obj.bin")
    assert got["Body"].read() == data
    assert got["ContentType"] == "application/x-test"
    assert got["Metadata"] == {"color": "blue", "owner": "Alice"}
    assert got["CacheControl"] == "no-cache"
    assert got["ContentDisposition"] == "attachment"
    assert got["ContentLength"] == len(data)
    head = c.head_object(Bucket="bucket-a", Key="dir/obj.bin")
    assert head["ContentLength"] == len(data)
    assert head["ETag"] == put["ETag"]
    c.delete_object(Bucket="bucket-a", Key="dir/obj.bin")
    with pytest.raises(ClientError) as e:
        c.get_object(Bucket="bucket-a", Key="dir/obj.bin")
    assert code(e) == "NoSuchKey"
    with pytest.raises(ClientError) as e:
        c.head_object(Bucket="bucket-a", Key="dir/obj.bin")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    # Deleting a missing key succeeds, as on S3.
    c.delete_object(Bucket="bucket-a", Key="dir/obj.bin")


def test_default_content_type_and_empty_object(s3):
    c = s3.client()
    c.put_object(Bucket="bucket-a", Key="empty", Body=b"")
    got = c.get_object(Bucket="bucket-a", Key="empty")
    assert got["Body"].read() == b""
    assert got["ETag"] == '"d41d8cd98f00b204e9800998ecf8427e"'
    assert got["ContentType"] == "binary/octet-stream"


def test_overwrite_replaces_data_and_frees_space(s3, make_bytes):
    """Objects above INLINE_MAX are files, smaller ones live in their index row: an overwrite
    frees the old bytes either way."""
    c = s3.client()

    def data_files() -> int:
        return len([p for p in (s3.root / "s3" / "bucket-a" / ".s3" / "data").rglob("*") if p.is_file()])

    c.put_object(Bucket="bucket-a", Key="k", Body=make_bytes(100_000, 1))
    assert data_files() == 1
    second = make_bytes(150_000, 2)
    c.put_object(Bucket="bucket-a", Key="k", Body=second)
    assert c.get_object(Bucket="bucket-a", Key="k")["Body"].read() == second
    assert (s3.directory.used, data_files()) == (150_000, 1)
    c.put_object(Bucket="bucket-a", Key="k", Body=b"third")
    assert c.get_object(Bucket="bucket-a", Key="k")["Body"].read() == b"third"
    assert (s3.directory.used, data_files()) == (len(b"third"), 0)
    c.put_object(Bucket="bucket-a", Key="k", Body=b"fourth")
    assert (s3.directory.used, data_files()) == (len(b"fourth"), 0)


def test_range_gets(s3, make_bytes):
    c = s3.client()
    data = make_bytes(10_000, 2)
    c.put_object(Bucket="bucket-a", Key="r", Body=data)
    r = c.get_object(Bucket="bucket-a", Key="r", Range="bytes=100-199")
    assert r["Body"].read() == data[100:200]
    assert r["ContentRange"] == "bytes 100-199/10000"
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert c.get_object(Bucket="bucket-a", Key="r", Range="bytes=9990-")["Body"].read() == data[9990:]
    assert c.get_object(Bucket="bucket-a", Key="r", Range="bytes=-10")["Body"].read() == data[-10:]
    # An end past the object is clamped.
    assert c.get_object(Bucket="bucket-a", Key="r", Range="bytes=9995-20000")["Body"].read() == data[9995:]
    with pytest.raises(ClientError) as e:
        c.get_object(Bucket="bucket-a", Key="r", Range="bytes=10000-10001")
    assert code(e) == "InvalidRange"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 416


def test_conditional_get(s3):
    c = s3.client()
    etag = c.put_object(Bucket="bucket-a", Key="c", Body=b"x")["ETag"]
    assert c.get_object(Bucket="bucket-a", Key="c", IfMatch=etag)["Body"].read() == b"x"
    with pytest.raises(ClientError) as e:
        c.get_object(Bucket="bucket-a", Key="c", IfMatch='"0000"')
    assert code(e) == "PreconditionFailed"
    with pytest.raises(ClientError) as e:
        c.get_object(Bucket="bucket-a", Key="c", IfNoneMatch=etag)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    future = datetime.now(UTC) + timedelta(days=1)
    with pytest.raises(ClientError) as e:
        c.get_object(Bucket="bucket-a", Key="c", IfModifiedSince=future)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304


def test_copy_object_same_and_cross_bucket(s3, make_bytes):
    s3.directory.add_view("bucket-b", bucket_owner="alice")
    c = s3.client()
    data = make_bytes(70_000, 3)
    c.put_object(Bucket="bucket-a", Key="src", Body=data, Metadata={"a": "1"}, ContentType="text/x")
    r = c.copy_object(Bucket="bucket-a", Key="dst", CopySource={"Bucket": "bucket-a", "Key": "src"})
    assert r["CopyObjectResult"]["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    got = c.get_object(Bucket="bucket-a", Key="dst")
    assert got["Body"].read() == data
    assert got["Metadata"] == {"a": "1"} and got["ContentType"] == "text/x"
    c.copy_object(Bucket="bucket-b", Key="x", CopySource="bucket-a/src", MetadataDirective="REPLACE",
                  Metadata={"b": "2"}, ContentType="text/y")
    got = c.get_object(Bucket="bucket-b", Key="x")
    assert got["Body"].read() == data
    assert got["Metadata"] == {"b": "2"} and got["ContentType"] == "text/y"
    with pytest.raises(ClientError) as e:
        c.copy_object(Bucket="bucket-a", Key="src", CopySource="bucket-a/src")
    assert code(e) == "InvalidRequest"
    with pytest.raises(ClientError) as e:
        c.copy_object(Bucket="bucket-a", Key="y", CopySource="bucket-a/missing")
    assert code(e) == "NoSuchKey"


def test_delete_objects(s3):
    c = s3.client()
    for i in range(5):
        c.put_object(Bucket="bucket-a", Key=f"d/{i}", Body=b"x")
    r = c.delete_objects(Bucket="bucket-a", Delete={"Objects": [{"Key": f"d/{i}"} for i in range(3)]
                                                     + [{"Key": "d/missing"}]})
    assert sorted(d["Key"] for d in r["Deleted"]) == ["d/0", "d/1", "d/2", "d/missing"]
    left = c.list_objects_v2(Bucket="bucket-a", Prefix="d/")
    assert [o["Key"] for o in left["Contents"]] == ["d/3", "d/4"]
    quiet = c.delete_objects(Bucket="bucket-a", Delete={"Objects": [{"Key": "d/3"}], "Quiet": True})
    assert "Deleted" not in quiet


def test_list_objects_v2_prefix_delimiter_pagination(s3):
    c = s3.client()
    keys = ["a/1", "a/2", "a/b/3", "b/1", "c", "d", "e/f/g"]
    for k in keys:
        c.put_object(Bucket="bucket-a", Key=k, Body=b"1")
    r = c.list_objects_v2(Bucket="bucket-a", Delimiter="/")
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["a/", "b/", "e/"]
    assert [o["Key"] for o in r["Contents"]] == ["c", "d"]
    assert r["KeyCount"] == 5
    r = c.list_objects_v2(Bucket="bucket-a", Prefix="a/", Delimiter="/")
    assert [o["Key"] for o in r["Contents"]] == ["a/1", "a/2"]
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["a/b/"]
    # Pages of two, with and without a delimiter: every entry exactly once, in order.
    for delimiter, expected in (("", keys), ("/", ["a/", "b/", "c", "d", "e/"])):
        seen, token, pages = [], None, 0
        while True:
            kw = {"Bucket": "bucket-a", "MaxKeys": 2, "Delimiter": delimiter}
            if token:
                kw["ContinuationToken"] = token
            r = c.list_objects_v2(**kw)
            pages += 1
            entries = [o["Key"] for o in r.get("Contents", [])] + \
                      [p["Prefix"] for p in r.get("CommonPrefixes", [])]
            seen += sorted(entries)
            if not r["IsTruncated"]:
                break
            token = r["NextContinuationToken"]
        assert seen == expected
        assert pages == (len(expected) + 1) // 2
    r = c.list_objects_v2(Bucket="bucket-a", StartAfter="b/1")
    assert [o["Key"] for o in r["Contents"]] == ["c", "d", "e/f/g"]
    # The paginator (what applications use) agrees.
    pages = c.get_paginator("list_objects_v2").paginate(Bucket="bucket-a", PaginationConfig={"PageSize": 3})
    assert [o["Key"] for p in pages for o in p.get("Contents", [])] == keys


def test_list_objects_v1(s3):
    c = s3.client()
    for k in ("x/1", "x/2", "y", "z/1"):
        c.put_object(Bucket="bucket-a", Key=k, Body=b"1")
    r = c.list_objects(Bucket="bucket-a", Delimiter="/", MaxKeys=2)
    assert r["IsTruncated"] is True
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["x/"]
    assert [o["Key"] for o in r["Contents"]] == ["y"]
    r2 = c.list_objects(Bucket="bucket-a", Delimiter="/", Marker=r["NextMarker"])
    assert [p["Prefix"] for p in r2["CommonPrefixes"]] == ["z/"]
    assert "Contents" not in r2
    pages = c.get_paginator("list_objects").paginate(Bucket="bucket-a", PaginationConfig={"PageSize": 1})
    assert [o["Key"] for p in pages for o in p.get("Contents", [])] == ["x/1", "x/2", "y", "z/1"]


def test_unusual_keys_are_stored_by_id_never_as_paths(s3):
    c = s3.client()
    keys = ["../../escape", "a/../../b", "./x", "sp ace+plus%pct", "ünïcode/ключ", "//double//slash"]
    for i, k in enumerate(keys):
        c.put_object(Bucket="bucket-a", Key=k, Body=str(i).encode())
    for i, k in enumerate(keys):
        assert c.get_object(Bucket="bucket-a", Key=k)["Body"].read() == str(i).encode()
    listed = [o["Key"] for o in c.list_objects_v2(Bucket="bucket-a")["Contents"]]
    assert sorted(listed) == sorted(keys)
    # Nothing outside the bucket directory, and no file named after a key inside it.
    outside = [p for p in s3.root.rglob("*") if ".s3" not in p.parts and p.is_file()]
    assert outside == []
    assert not (s3.root.parent / "escape").exists()


def test_bad_keys(s3):
    c = s3.client()
    with pytest.raises(ClientError) as e:
        c.put_object(Bucket="bucket-a", Key="k" * 1025, Body=b"x")
    assert code(e) == "KeyTooLongError"
    with pytest.raises(ClientError) as e:
        c.put_object(Bucket="bucket-a", Key="nul\x00key", Body=b"x")
    assert code(e) == "InvalidArgument"
    assert c.list_objects_v2(Bucket="bucket-a")["KeyCount"] == 0
    c.put_object(Bucket="bucket-a", Key="k" * 1024, Body=b"x")


def test_no_such_bucket(s3):
    c = s3.client()
    with pytest.raises(ClientError) as e:
        c.put_object(Bucket="nope", Key="k", Body=b"x")
    assert code(e) == "NoSuchBucket"
    with pytest.raises(ClientError) as e:
        c.head_bucket(Bucket="nope")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_virtual_host_addressing(s3, monkeypatch):
    real = socket.getaddrinfo

    def resolve(host, *args, **kwargs):  # *.localhost is loopback (RFC 6761); glibc may not know it
        if isinstance(host, str) and host.endswith(".localhost"):
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    import boto3
    from botocore.config import Config

    c = boto3.client("s3", endpoint_url=f"http://localhost:{s3.service.port}", region_name="us-east-1",
                     aws_access_key_id=s3.owner.access_key, aws_secret_access_key=s3.owner.secret_key,
                     config=Config(s3={"addressing_style": "virtual"}, retries={"max_attempts": 1}))
    seen_hosts = []
    c.meta.events.register("before-send.s3", lambda request, **kw: seen_hosts.append(
        request.headers.get("Host") or request.url))
    c.put_object(Bucket="bucket-a", Key="vh/key", Body=b"virtual")
    assert c.get_object(Bucket="bucket-a", Key="vh/key")["Body"].read() == b"virtual"
    assert [o["Key"] for o in c.list_objects_v2(Bucket="bucket-a")["Contents"]] == ["vh/key"]
    assert any("bucket-a.localhost" in str(h) for h in seen_hosts)


def test_object_data_is_durable_across_restart(s3, loop_thread):
    c = s3.client()
    c.put_object(Bucket="bucket-a", Key="keep", Body=b"persist")
    loop_thread.run(s3.service.close())
    from vms_mock.s3.service import start_s3

    s3.service = loop_thread.run(start_s3(s3.directory, "127.0.0.1", 0))
    s3.endpoint = f"http://127.0.0.1:{s3.service.port}"
    assert s3.client().get_object(Bucket="bucket-a", Key="keep")["Body"].read() == b"persist"


def test_crash_leftovers_are_swept_at_open(s3):
    c = s3.client()
    c.put_object(Bucket="bucket-a", Key="keep", Body=b"k")
    base = s3.root / "s3" / "bucket-a" / ".s3"
    (base / "tmp" / "halfwritten").write_bytes(b"partial")
    orphan_dir = base / "data" / "ff"
    orphan_dir.mkdir(exist_ok=True)
    (orphan_dir / "ff00orphan").write_bytes(b"renamed but never committed")
    from vms_mock.s3.store import BucketStore

    BucketStore(base.parent).close()
    assert not (base / "tmp" / "halfwritten").exists()
    assert not (orphan_dir / "ff00orphan").exists()
    assert c.get_object(Bucket="bucket-a", Key="keep")["Body"].read() == b"k"
    assert os.listdir(base / "tmp") == []
