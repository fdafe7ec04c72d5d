"""Bucket operations, quotas, capacity and malformed input."""

from __future__ import annotations

import socket

import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError


def code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def signed(s3, method: str, path: str, body: bytes = b"", headers: dict | None = None) -> requests.Response:
    import hashlib

    url = f"{s3.endpoint}{path}"
    h = {"x-amz-content-sha256": hashlib.sha256(body).hexdigest(), **(headers or {})}
    req = AWSRequest(method=method, url=url, data=body, headers=h)
    SigV4Auth(Credentials(s3.owner.access_key, s3.owner.secret_key), "s3", "us-east-1").add_auth(req)
    return requests.request(method, url, data=body, headers=dict(req.headers.items()), timeout=10)


def test_head_bucket_and_location(s3):
    c = s3.client()
    assert c.head_bucket(Bucket="bucket-a")["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert c.get_bucket_location(Bucket="bucket-a")["LocationConstraint"] is None


def test_create_and_delete_bucket_for_a_user_allowed_to(s3):
    c = s3.client()
    c.create_bucket(Bucket="new-bucket")
    assert s3.directory.get_bucket_view("new-bucket").bucket_owner == "alice"
    c.put_object(Bucket="new-bucket", Key="k", Body=b"x")
    with pytest.raises(ClientError) as e:
        c.delete_bucket(Bucket="new-bucket")
    assert code(e) == "BucketNotEmpty"
    with pytest.raises(ClientError) as e:
        c.create_bucket(Bucket="new-bucket")
    assert code(e) == "BucketAlreadyOwnedByYou"
    c.delete_object(Bucket="new-bucket", Key="k")
    c.delete_bucket(Bucket="new-bucket")
    assert s3.directory.get_bucket_view("new-bucket") is None


def test_create_bucket_refused_without_permission(s3):
    bob = s3.client(s3.other)
    with pytest.raises(ClientError) as e:
        bob.create_bucket(Bucket="bobs-bucket")
    assert code(e) == "AccessDenied"
    with pytest.raises(ClientError) as e:
        bob.create_bucket(Bucket="bucket-a")
    assert code(e) == "BucketAlreadyExists"
    assert s3.directory.get_bucket_view("bobs-bucket") is None


@pytest.mark.parametrize("name", ["ab", "UPPER", "-lead", "trail-", "a..b", "192.168.1.1", "x" * 64,
                                  "un_der"])
def test_invalid_bucket_names(s3, name):
    r = signed(s3, "PUT", f"/{name}")
    assert r.status_code == 400 and "<Code>InvalidBucketName</Code>" in r.text
    assert s3.directory.get_bucket_view(name) is None


def test_quota_is_enforced(s3, make_bytes):
    s3.directory.add_view("quota", bucket_owner="alice", quota_hard_limit=10_000)
    c = s3.client()
    c.put_object(Bucket="quota", Key="a", Body=make_bytes(6000))
    with pytest.raises(ClientError) as e:
        c.put_object(Bucket="quota", Key="b", Body=make_bytes(6000))
    assert code(e) == "QuotaExceeded"
    # Overwriting within the limit is fine: the old data is released.
    c.put_object(Bucket="quota", Key="a", Body=make_bytes(9000))
    with pytest.raises(ClientError):
        c.head_object(Bucket="quota", Key="b")
    assert [p for p in (s3.root / "s3" / "quota" / ".s3" / "tmp").iterdir()] == []


def test_cluster_capacity_is_enforced(s3, make_bytes):
    s3.directory.capacity = 5000
    with pytest.raises(ClientError) as e:
        s3.client().put_object(Bucket="bucket-a", Key="big", Body=make_bytes(6000))
    assert code(e) == "InsufficientCapacity"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 507
    assert s3.directory.used == 0


def test_malformed_xml_writes_nothing(s3):
    s3.client().put_object(Bucket="bucket-a", Key="stay", Body=b"x")
    for body in (b"<Delete><Object><Key>stay</Key>", b"not xml at all", b"<Other/>",
                 b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY e "x">]><Delete><Object><Key>&e;</Key>'
                 b"</Object></Delete>"):
        r = signed(s3, "POST", "/bucket-a?delete", body)
        assert r.status_code == 400 and "<Code>MalformedXML</Code>" in r.text, r.text
    assert s3.client().head_object(Bucket="bucket-a", Key="stay")["ContentLength"] == 1


def test_bad_content_md5(s3):
    import base64
    import hashlib

    r = signed(s3, "PUT", "/bucket-a/md5", b"payload",
               {"Content-MD5": base64.b64encode(hashlib.md5(b"other").digest()).decode()})
    assert r.status_code == 400 and "<Code>BadDigest</Code>" in r.text
    with pytest.raises(ClientError):
        s3.client().head_object(Bucket="bucket-a", Key="md5")


def _raw(s3, data: bytes, read_timeout: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", s3.service.port), timeout=read_timeout) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            pass
        return b"".join(chunks)


def test_oversized_header_section(s3):
    resp = _raw(s3, b"GET /bucket-a HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n")
    assert resp.startswith(b"HTTP/1.1 400")
    assert b"RequestHeaderSectionTooLarge" in resp


def test_garbage_request_line(s3):
    resp = _raw(s3, b"NOT-HTTP\r\n\r\n")
    assert resp.startswith(b"HTTP/1.1 400")


def test_entity_too_large_is_refused_before_the_body(s3):
    """A 6 GiB PUT is refused from its headers: no 100-continue, nothing read, nothing written."""
    import hashlib
    from urllib.parse import urlsplit

    url = f"{s3.endpoint}/bucket-a/huge"
    headers = {"x-amz-content-sha256": "UNSIGNED-PAYLOAD", "Content-Length": str(6 << 30),
               "Expect": "100-continue"}
    req = AWSRequest(method="PUT", url=url, headers=headers)
    SigV4Auth(Credentials(s3.owner.access_key, s3.owner.secret_key), "s3", "us-east-1").add_auth(req)
    host = urlsplit(url).netloc
    head = f"PUT /bucket-a/huge HTTP/1.1\r\nHost: {host}\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in req.headers.items() if k.lower() != "host") + "\r\n"
    resp = _raw(s3, head.encode())
    assert resp.startswith(b"HTTP/1.1 400"), resp[:200]
    assert b"EntityTooLarge" in resp and b"100 Continue" not in resp
    assert hashlib.md5(resp).hexdigest()  # response fully received
    assert list((s3.root / "s3" / "bucket-a" / ".s3" / "tmp").iterdir()) == []


def test_unimplemented_subresource(s3):
    r = signed(s3, "GET", "/bucket-a?lifecycle")
    assert r.status_code == 501 and "<Code>NotImplemented</Code>" in r.text


def _signed_head(s3, path: str, length: int | None) -> bytes:
    from urllib.parse import urlsplit

    url = f"{s3.endpoint}{path}"
    headers = {"x-amz-content-sha256": "UNSIGNED-PAYLOAD"}
    if length is not None:
        headers["Content-Length"] = str(length)
    req = AWSRequest(method="PUT", url=url, headers=headers)
    SigV4Auth(Credentials(s3.owner.access_key, s3.owner.secret_key), "s3", "us-east-1").add_auth(req)
    return (f"PUT {path} HTTP/1.1\r\nHost: {urlsplit(url).netloc}\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in req.headers.items() if k.lower() != "host") + "\r\n").encode()


def test_body_cut_short_writes_nothing_and_the_server_keeps_serving(s3):
    """A 3 MiB PUT whose connection closes after 1 MiB (the large-body receive path)."""
    with socket.create_connection(("127.0.0.1", s3.service.port), timeout=10) as sock:
        sock.sendall(_signed_head(s3, "/bucket-a/cut", 3 << 20) + b"x" * (1 << 20))
    import time

    tmp = s3.root / "s3" / "bucket-a" / ".s3" / "tmp"
    deadline = time.monotonic() + 15  # the server notices the request and the close asynchronously
    while (not tmp.is_dir() or list(tmp.iterdir())) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(tmp.iterdir()) == []
    with pytest.raises(ClientError):
        s3.client().head_object(Bucket="bucket-a", Key="cut")
    assert s3.directory.used == 0


def test_large_body_then_next_request_in_the_same_packet(s3):
    """After a large body read straight from the socket, the next request on the connection
    (already sent) is served: nothing is read past the body."""
    body = bytes(range(256)) * (8 << 10)  # 2 MiB
    first = _signed_head(s3, "/bucket-a/big", len(body)) + body
    second = _signed_head(s3, "/bucket-a/small", 5) + b"hello"
    resp = _raw(s3, first + second, read_timeout=3)
    assert resp.count(b"HTTP/1.1 200 OK") == 2, resp[:300]
    c = s3.client()
    assert c.get_object(Bucket="bucket-a", Key="big")["Body"].read() == body
    assert c.get_object(Bucket="bucket-a", Key="small")["Body"].read() == b"hello"


def test_put_without_a_length_is_refused(s3):
    head = _signed_head(s3, "/bucket-a/nolength", None)
    assert b"content-length" not in head.lower()
    resp = _raw(s3, head, read_timeout=3)
    assert resp.startswith(b"HTTP/1.1 411"), resp[:200]
    assert b"MissingContentLength" in resp
    with pytest.raises(ClientError):
        s3.client().head_object(Bucket="bucket-a", Key="nolength")
