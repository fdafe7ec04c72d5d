"""https with a generated CA (and botocore's aws-chunked trailer checksums), and a bounded
concurrent upload soak."""

from __future__ import annotations

import hashlib
import ssl
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from botocore.config import Config

from vms_mock.s3.service import start_s3
from vms_mock.tls import ensure_tls


@pytest.fixture
def tls_endpoint(s3, loop_thread, tmp_path):
    files = ensure_tls(tmp_path / "tls", "127.0.0.1")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(files.cert_file, files.key_file)
    service = loop_thread.run(start_s3(s3.directory, "127.0.0.1", 0, ctx))
    yield f"https://127.0.0.1:{service.port}", str(files.ca_file)
    loop_thread.run(service.close())


def test_https_put_get_with_trailer_checksums(s3, tls_endpoint, make_bytes):
    url, ca = tls_endpoint
    c = boto3.client("s3", endpoint_url=url, region_name="us-east-1", verify=ca,
                     aws_access_key_id=s3.owner.access_key, aws_secret_access_key=s3.owner.secret_key,
                     config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
    sent = []
    c.meta.events.register("before-send.s3.PutObject", lambda request, **kw: sent.append(
        dict(request.headers.items())))
    data = make_bytes(3 << 20, 11)
    r = c.put_object(Bucket="bucket-a", Key="tls.bin", Body=data, ChecksumAlgorithm="SHA256")
    assert r["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    # Over https botocore streams aws-chunked with the checksum in a trailer: that path is exercised.
    assert sent[0]["X-Amz-Content-SHA256"] in (b"STREAMING-UNSIGNED-PAYLOAD-TRAILER",
                                              "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
    assert "x-amz-checksum-sha256" in r["ResponseMetadata"]["HTTPHeaders"]
    assert c.get_object(Bucket="bucket-a", Key="tls.bin")["Body"].read() == data
    assert c.get_object(Bucket="bucket-a", Key="tls.bin", Range="bytes=5-9")["Body"].read() == data[5:10]


def test_https_large_body_straight_into_blocks_and_read_back_from_disk(s3, tls_endpoint, make_bytes):
    """A plain Content-Length body over TLS lands in the receive blocks directly (the SSL
    transport feeds the buffered protocol); with the block cache off the GET reads the file."""
    import requests

    from vms_mock.s3 import blocks

    url, ca = tls_endpoint
    c = boto3.client("s3", endpoint_url=url, region_name="us-east-1", verify=ca,
                     aws_access_key_id=s3.owner.access_key, aws_secret_access_key=s3.owner.secret_key,
                     config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                                   signature_version="s3v4"))
    data = make_bytes((5 << 20) + 123, 12)
    put_url = c.generate_presigned_url("put_object", Params={"Bucket": "bucket-a", "Key": "tls-big"})
    r = requests.put(put_url, data=data, verify=ca, timeout=30)
    assert r.status_code == 200 and r.headers["ETag"] == f'"{hashlib.md5(data).hexdigest()}"', r.text
    limit = blocks.BLOCKS.limit * blocks.BLOCKS.size
    blocks.BLOCKS.configure(0)
    try:
        assert c.get_object(Bucket="bucket-a", Key="tls-big")["Body"].read() == data
        part = c.get_object(Bucket="bucket-a", Key="tls-big", Range="bytes=1000-3000999")["Body"].read()
        assert part == data[1000:3001000]
    finally:
        blocks.BLOCKS.configure(limit)


def test_https_rejects_a_wrong_trailer_checksum(s3, tls_endpoint):
    url, ca = tls_endpoint
    c = boto3.client("s3", endpoint_url=url, region_name="us-east-1", verify=ca,
                     aws_access_key_id=s3.owner.access_key, aws_secret_access_key=s3.owner.secret_key,
                     config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))

    def corrupt(request, **kw):
        body = request.body
        original = body._make_chunk

        def tampered():
            chunk = original()
            return chunk.replace(b"x-amz-checksum-crc32:", b"x-amz-checksum-crc32:AAAA") \
                if chunk.startswith(b"0\r\n") else chunk

        body._make_chunk = tampered

    c.meta.events.register("before-send.s3.PutObject", corrupt)
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as e:
        c.put_object(Bucket="bucket-a", Key="bad-trailer", Body=b"some data")
    assert e.value.response["Error"]["Code"] == "BadDigest"


def test_concurrent_upload_soak(s3, make_bytes):
    """8 writers x 25 objects (1 KiB - 300 KiB), each read back and checked; bounded to 120 s."""
    deadline = time.monotonic() + 120
    c = s3.client(max_pool_connections=16)
    sizes = [1024, 4096, 65_536, 300_000]

    def worker(w: int) -> int:
        done = 0
        for i in range(25):
            if time.monotonic() > deadline:
                break
            data = make_bytes(sizes[(w + i) % len(sizes)], w * 1000 + i)
            key = f"soak/{w}/{i}"
            etag = c.put_object(Bucket="bucket-a", Key=key, Body=data)["ETag"]
            assert etag == f'"{hashlib.md5(data).hexdigest()}"'
            assert c.get_object(Bucket="bucket-a", Key=key)["Body"].read() == data
            done += 1
        return done

    with ThreadPoolExecutor(8) as pool:
        counts = list(pool.map(worker, range(8)))
    assert sum(counts) == 200
    keys = [o["Key"] for p in c.get_paginator("list_objects_v2").paginate(Bucket="bucket-a", Prefix="soak/")
            for o in p.get("Contents", [])]
    assert len(keys) == 200
    assert list((s3.root / "s3" / "bucket-a" / ".s3" / "tmp").iterdir()) == []
