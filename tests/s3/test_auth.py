"""SigV4 verification and per-principal authorization."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from vms_mock.s3.directory import AccessKeyRecord


def code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def policy(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def test_wrong_secret_is_signature_mismatch(s3):
    bad = AccessKeyRecord(access_key=s3.owner.access_key, secret_key="wrong", user_id=1,
                          user_name="alice", tenant_id=1)
    with pytest.raises(ClientError) as e:
        s3.client(bad).list_objects_v2(Bucket="bucket-a")
    assert code(e) == "SignatureDoesNotMatch"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_unknown_key(s3):
    ghost = AccessKeyRecord(access_key="AKNOBODY", secret_key="x", user_id=9, user_name="x", tenant_id=1)
    with pytest.raises(ClientError) as e:
        s3.client(ghost).put_object(Bucket="bucket-a", Key="k", Body=b"x")
    assert code(e) == "InvalidAccessKeyId"


def test_revoked_key_fails_at_once(s3):
    bob = s3.other
    s3.directory.set_policies(bob.user_id, [policy({"Effect": "Allow", "Action": "s3:*",
                                                    "Resource": "arn:aws:s3:::bucket-a*"})])
    c = s3.client(bob)
    c.put_object(Bucket="bucket-a", Key="k", Body=b"x")  # same client, same pooled connection below
    s3.directory.revoke_key(bob.access_key)
    with pytest.raises(ClientError) as e:
        c.get_object(Bucket="bucket-a", Key="k")
    assert code(e) == "InvalidAccessKeyId"


def test_disabled_key_is_refused(s3):
    s3.directory.add_key(AccessKeyRecord(access_key="AKDISABLED", secret_key="s", user_id=1,
                                         user_name="alice", tenant_id=1, enabled=False))
    c = s3.client(s3.directory.lookup_access_key("AKDISABLED"))
    with pytest.raises(ClientError) as e:
        c.list_objects_v2(Bucket="bucket-a")
    assert code(e) == "InvalidAccessKeyId"


def test_anonymous_request_is_denied(s3):
    r = requests.get(f"{s3.endpoint}/bucket-a?list-type=2", timeout=10)
    assert r.status_code == 403
    assert "<Code>AccessDenied</Code>" in r.text


def test_clock_skew(s3, monkeypatch):
    import datetime as dt

    import botocore.auth

    # Sign as a client whose clock is 20 minutes slow (S3 allows 15).
    monkeypatch.setattr(botocore.auth, "get_current_datetime",
                        lambda: dt.datetime.now(dt.UTC) - dt.timedelta(minutes=20))
    with pytest.raises(ClientError) as e:
        s3.client().list_objects_v2(Bucket="bucket-a")
    assert code(e) == "RequestTimeTooSkewed"
    monkeypatch.undo()
    s3.client().list_objects_v2(Bucket="bucket-a")


def test_presigned_get_and_put(s3):
    c = s3.client()
    c.put_object(Bucket="bucket-a", Key="p/get", Body=b"presigned body")
    url = c.generate_presigned_url("get_object", Params={"Bucket": "bucket-a", "Key": "p/get"},
                                   ExpiresIn=60)
    r = requests.get(url, timeout=10)
    assert r.status_code == 200 and r.content == b"presigned body"
    put_url = c.generate_presigned_url("put_object", Params={"Bucket": "bucket-a", "Key": "p/put"},
                                       ExpiresIn=60)
    r = requests.put(put_url, data=b"uploaded", timeout=10)
    assert r.status_code == 200, r.text
    assert c.get_object(Bucket="bucket-a", Key="p/put")["Body"].read() == b"uploaded"
    # Tampering with the signed query fails.
    r = requests.get(url.replace("p%2Fget", "p%2Fput").replace("p/get", "p/put"), timeout=10)
    assert r.status_code == 403 and "SignatureDoesNotMatch" in r.text


def test_presigned_url_expires(s3):
    c = s3.client()
    c.put_object(Bucket="bucket-a", Key="e", Body=b"x")
    url = c.generate_presigned_url("get_object", Params={"Bucket": "bucket-a", "Key": "e"}, ExpiresIn=1)
    time.sleep(2.1)
    r = requests.get(url, timeout=10)
    assert r.status_code == 403
    assert "<Code>AccessDenied</Code>" in r.text and "expired" in r.text


def test_presigned_url_of_revoked_key_fails(s3):
    key = s3.directory.add_key(AccessKeyRecord(access_key="AKTEMP", secret_key="temp", user_id=1,
                                               user_name="alice", tenant_id=1))
    c = s3.client(key)
    c.put_object(Bucket="bucket-a", Key="t", Body=b"x")
    url = c.generate_presigned_url("get_object", Params={"Bucket": "bucket-a", "Key": "t"}, ExpiresIn=60)
    assert requests.get(url, timeout=10).status_code == 200
    s3.directory.revoke_key("AKTEMP")
    r = requests.get(url, timeout=10)
    assert r.status_code == 403 and "InvalidAccessKeyId" in r.text


def test_non_owner_without_policy_is_denied_everything(s3):
    s3.client().put_object(Bucket="bucket-a", Key="secret", Body=b"x")
    bob = s3.client(s3.other)
    for call in (lambda: bob.get_object(Bucket="bucket-a", Key="secret"),
                 lambda: bob.put_object(Bucket="bucket-a", Key="new", Body=b"x"),
                 lambda: bob.list_objects_v2(Bucket="bucket-a"),
                 lambda: bob.delete_object(Bucket="bucket-a", Key="secret")):
        with pytest.raises(ClientError) as e:
            call()
        assert code(e) == "AccessDenied"
    assert bob.list_buckets()["Buckets"] == []


def test_cross_bucket_denial(s3):
    s3.directory.add_view("bucket-b", bucket_owner="bob")
    alice, bob = s3.client(), s3.client(s3.other)
    bob.put_object(Bucket="bucket-b", Key="mine", Body=b"b")
    with pytest.raises(ClientError) as e:
        bob.get_object(Bucket="bucket-a", Key="x")
    assert code(e) == "AccessDenied"
    with pytest.raises(ClientError) as e:
        alice.get_object(Bucket="bucket-b", Key="mine")
    assert code(e) == "AccessDenied"
    with pytest.raises(ClientError) as e:  # copying out of a bucket needs read access to it
        alice.copy_object(Bucket="bucket-a", Key="stolen", CopySource="bucket-b/mine")
    assert code(e) == "AccessDenied"
    assert [b["Name"] for b in bob.list_buckets()["Buckets"]] == ["bucket-b"]
    assert [b["Name"] for b in alice.list_buckets()["Buckets"]] == ["bucket-a"]


@pytest.mark.parametrize("mode", ["read-only", "write-only", "read-write"])
def test_policy_modes(s3, mode):
    actions = {"read-only": ["s3:GetObject", "s3:ListBucket"],
               "write-only": ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
               "read-write": ["s3:GetObject", "s3:ListBucket", "s3:PutObject", "s3:DeleteObject"]}[mode]
    s3.directory.set_policies(s3.other.user_id, [policy(
        {"Effect": "Allow", "Action": actions,
         "Resource": ["arn:aws:s3:::bucket-a", "arn:aws:s3:::bucket-a/*"]})])
    s3.client().put_object(Bucket="bucket-a", Key="existing", Body=b"data")
    bob = s3.client(s3.other)
    can_read = mode != "write-only"
    can_write = mode != "read-only"

    def allowed(call) -> bool:
        try:
            call()
            return True
        except ClientError as exc:
            # HEAD responses carry no body: botocore reports the status code instead.
            assert exc.response["Error"]["Code"] in ("AccessDenied", "403")
            return False

    assert allowed(lambda: bob.get_object(Bucket="bucket-a", Key="existing")["Body"].read()) == can_read
    assert allowed(lambda: bob.list_objects_v2(Bucket="bucket-a")) == can_read
    assert allowed(lambda: bob.head_bucket(Bucket="bucket-a")) == can_read
    assert allowed(lambda: bob.put_object(Bucket="bucket-a", Key="bobs", Body=b"x")) == can_write
    assert allowed(lambda: bob.delete_object(Bucket="bucket-a", Key="existing")) == can_write
    assert [b["Name"] for b in bob.list_buckets()["Buckets"]] == (["bucket-a"] if can_read else [])


def test_explicit_deny_wins_even_for_the_owner(s3):
    s3.directory.set_policies(s3.owner.user_id, [policy(
        {"Effect": "Deny", "Action": "s3:DeleteObject", "Resource": "arn:aws:s3:::bucket-a/protected/*"})])
    c = s3.client()
    c.put_object(Bucket="bucket-a", Key="protected/x", Body=b"x")
    c.put_object(Bucket="bucket-a", Key="free/x", Body=b"x")
    c.delete_object(Bucket="bucket-a", Key="free/x")
    with pytest.raises(ClientError) as e:
        c.delete_object(Bucket="bucket-a", Key="protected/x")
    assert code(e) == "AccessDenied"


def test_prefix_scoped_policy_and_policy_change_takes_effect_at_once(s3):
    s3.directory.set_policies(s3.other.user_id, [policy(
        {"Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject"],
         "Resource": "arn:aws:s3:::bucket-a/bob/*"})])
    bob = s3.client(s3.other)
    bob.put_object(Bucket="bucket-a", Key="bob/1", Body=b"x")
    with pytest.raises(ClientError):
        bob.put_object(Bucket="bucket-a", Key="alice/1", Body=b"x")
    s3.directory.set_policies(s3.other.user_id, [])
    with pytest.raises(ClientError) as e:
        bob.get_object(Bucket="bucket-a", Key="bob/1")
    assert code(e) == "AccessDenied"


def test_s3_superuser_stays_in_its_tenant_and_under_explicit_denies(s3):
    root = s3.add_user(8, "root", s3_superuser=True)
    outsider = s3.add_user(9, "root2", tenant_id=2, s3_superuser=True)
    s3.client().put_object(Bucket="bucket-a", Key="alice/1", Body=b"a")
    c = s3.client(root)
    assert c.get_object(Bucket="bucket-a", Key="alice/1")["Body"].read() == b"a"
    s3.directory.set_policies(8, [policy(
        {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::bucket-a/alice/*"})])
    with pytest.raises(ClientError) as e:
        c.get_object(Bucket="bucket-a", Key="alice/1")
    assert code(e) == "AccessDenied"
    with pytest.raises(ClientError) as e:
        s3.client(outsider).get_object(Bucket="bucket-a", Key="alice/1")
    assert code(e) in ("AccessDenied", "NoSuchBucket")


def test_other_tenant_never_reaches_a_bucket(s3):
    mallory = s3.add_user(7, "alice", tenant_id=2)  # same user name, other tenant
    s3.directory.set_policies(7, [policy({"Effect": "Allow", "Action": "s3:*", "Resource": "*"})])
    with pytest.raises(ClientError) as e:
        s3.client(mallory).list_objects_v2(Bucket="bucket-a")
    assert code(e) == "AccessDenied"


def _signing_key(secret: str, date: str, region: str) -> bytes:
    k = hmac.new(b"AWS4" + secret.encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return k


def _streaming_request(s3, key: str, payload: bytes, chunk: int, corrupt: bool = False):
    """A STREAMING-AWS4-HMAC-SHA256-PAYLOAD upload: botocore signs the seed, the chunks follow the
    AWS spec (signature chained from the seed)."""
    url = f"{s3.endpoint}/bucket-a/{key}"
    headers = {"x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
               "Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": str(len(payload))}
    req = AWSRequest(method="PUT", url=url, headers=headers)
    SigV4Auth(Credentials(s3.owner.access_key, s3.owner.secret_key), "s3", "us-east-1").add_auth(req)
    amz_date = req.headers["X-Amz-Date"]
    seed = req.headers["Authorization"].rsplit("Signature=", 1)[1]
    scope = f"{amz_date[:8]}/us-east-1/s3/aws4_request"
    key_bytes = _signing_key(s3.owner.secret_key, amz_date[:8], "us-east-1")
    empty = hashlib.sha256(b"").hexdigest()
    body, prev = b"", seed
    pieces = [payload[i:i + chunk] for i in range(0, len(payload), chunk)] + [b""]
    for n, piece in enumerate(pieces):
        sts = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, prev, empty,
                         hashlib.sha256(piece).hexdigest()])
        sig = hmac.new(key_bytes, sts.encode(), hashlib.sha256).hexdigest()
        if corrupt and n == 1:
            piece = piece[:-1] + bytes([piece[-1] ^ 1])
        body += f"{len(piece):x};chunk-signature={sig}\r\n".encode() + piece + b"\r\n"
        prev = sig
    send_headers = dict(req.headers.items())
    send_headers["Content-Length"] = str(len(body))
    return requests.put(url, data=body, headers=send_headers, timeout=30)


def test_streaming_signed_chunked_upload(s3, make_bytes):
    payload = make_bytes(200_000, 5)
    r = _streaming_request(s3, "chunked.bin", payload, 64 * 1024)
    assert r.status_code == 200, r.text
    assert r.headers["ETag"] == f'"{hashlib.md5(payload).hexdigest()}"'
    assert s3.client().get_object(Bucket="bucket-a", Key="chunked.bin")["Body"].read() == payload


def test_streaming_upload_with_a_bad_chunk_is_refused_and_writes_nothing(s3, make_bytes):
    r = _streaming_request(s3, "tampered.bin", make_bytes(200_000, 6), 64 * 1024, corrupt=True)
    assert r.status_code == 403 and "SignatureDoesNotMatch" in r.text
    with pytest.raises(ClientError) as e:
        s3.client().head_object(Bucket="bucket-a", Key="tampered.bin")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert list((s3.root / "s3" / "bucket-a" / ".s3" / "tmp").iterdir()) == []


def test_unsigned_payload_over_http_is_accepted(s3):
    url = f"{s3.endpoint}/bucket-a/unsigned"
    req = AWSRequest(method="PUT", url=url, data=b"free body",
                     headers={"x-amz-content-sha256": "UNSIGNED-PAYLOAD"})
    SigV4Auth(Credentials(s3.owner.access_key, s3.owner.secret_key), "s3", "us-east-1").add_auth(req)
    r = requests.put(url, data=b"free body", headers=dict(req.headers.items()), timeout=10)
    assert r.status_code == 200, r.text


def test_payload_hash_mismatch_is_refused(s3):
    url = f"{s3.endpoint}/bucket-a/mismatch"
    req = AWSRequest(method="PUT", url=url, data=b"signed body",
                     headers={"x-amz-content-sha256": hashlib.sha256(b"signed body").hexdigest()})
    SigV4Auth(Credentials(s3.owner.access_key, s3.owner.secret_key), "s3", "us-east-1").add_auth(req)
    r = requests.put(url, data=b"other body!", headers=dict(req.headers.items()), timeout=10)
    assert r.status_code == 400 and "XAmzContentSHA256Mismatch" in r.text
    with pytest.raises(ClientError):
        s3.client().head_object(Bucket="bucket-a", Key="mismatch")
