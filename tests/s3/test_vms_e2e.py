"""End to end through the real ``vms-mock`` process: identities and bucket views made with the
VMS REST API, then boto3 against the S3 port the ready file names."""

from __future__ import annotations

import json
import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError


def code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def _ok(r):
    assert r.status_code in (200, 201, 204), f"{r.status_code} {r.text}"
    return r.json() if r.content else None


def _client(vms, keys: dict) -> object:
    return boto3.client("s3", endpoint_url=vms.s3_url, region_name="us-east-1",
                        aws_access_key_id=keys["access_key"], aws_secret_access_key=keys["secret_key"],
                        verify=vms.verify,
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))


def _user(vms, name: str, **fields) -> tuple[int, dict]:
    user = _ok(vms.api("POST", "users/", json={"name": name, **fields}))
    keys = _ok(vms.api("POST", f"users/{user['id']}/access_keys/", json={}))
    return user["id"], keys


def _bucket_view(vms, bucket: str, owner: str, **fields) -> dict:
    return _ok(vms.api("POST", "views/", json={
        "path": f"/s3/{bucket}", "create_dir": True, "bucket": bucket, "bucket_owner": owner,
        "protocols": ["S3"], **fields}))


def test_cosi_style_flow_through_vms_mock(vms_server):
    vms = vms_server
    assert vms.s3_url, "vms-mock did not start its S3 endpoint"
    _alice_id, alice_keys = _user(vms, "e2e-alice")
    _bucket_view(vms, "e2e-bucket", "e2e-alice")
    alice = _client(vms, alice_keys)
    alice.put_object(Bucket="e2e-bucket", Key="hello.txt", Body=b"hello vms")
    assert alice.get_object(Bucket="e2e-bucket", Key="hello.txt")["Body"].read() == b"hello vms"
    assert [b["Name"] for b in alice.list_buckets()["Buckets"]] == ["e2e-bucket"]
    # Object data lives under the view's path in the data dir, named by id, never by key.
    bucket_dir = vms.data_dir / "fs" / "s3" / "e2e-bucket"
    assert (bucket_dir / ".s3" / "meta.sqlite3").exists()
    assert not (bucket_dir / "hello.txt").exists()

    # A second user reaches the bucket only through an identity policy (read-only here).
    read_only = json.dumps({"Statement": [{"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"],
                                           "Resource": ["arn:aws:s3:::e2e-bucket",
                                                        "arn:aws:s3:::e2e-bucket/*"]}]})
    pol = _ok(vms.api("POST", "s3policies/", json={"name": "e2e-read-only", "policy": read_only}))
    bob_id, bob_keys = _user(vms, "e2e-bob")
    bob = _client(vms, bob_keys)
    with pytest.raises(ClientError) as e:
        bob.get_object(Bucket="e2e-bucket", Key="hello.txt")
    assert code(e) == "AccessDenied"
    _ok(vms.api("PATCH", f"users/{bob_id}/", json={"s3_policies_ids": [pol["id"]]}))
    assert bob.get_object(Bucket="e2e-bucket", Key="hello.txt")["Body"].read() == b"hello vms"
    with pytest.raises(ClientError) as e:
        bob.put_object(Bucket="e2e-bucket", Key="bobs.txt", Body=b"nope")
    assert code(e) == "AccessDenied"

    # Revoking the key through the API takes effect on the very next S3 request.
    _ok(vms.api("DELETE", f"users/{bob_id}/access_keys/", json={"access_key": bob_keys["access_key"]}))
    with pytest.raises(ClientError) as e:
        bob.get_object(Bucket="e2e-bucket", Key="hello.txt")
    assert code(e) == "InvalidAccessKeyId"

    # CreateBucket over S3 is refused: buckets are views made through the VMS API.
    with pytest.raises(ClientError) as e:
        alice.create_bucket(Bucket="e2e-made-by-s3")
    assert code(e) == "AccessDenied"


def test_quota_versioning_and_restart_through_vms_mock(vms_server):
    vms = vms_server
    _uid, keys = _user(vms, "e2e-carol")
    _bucket_view(vms, "e2e-versioned", "e2e-carol", s3_versioning=True)
    _ok(vms.api("POST", "quotas/", json={"name": "e2e-q", "path": "/s3/e2e-versioned", "hard_limit": 4096}))
    c = _client(vms, keys)
    v1 = c.put_object(Bucket="e2e-versioned", Key="k", Body=b"a" * 1000)["VersionId"]
    c.put_object(Bucket="e2e-versioned", Key="k", Body=b"b" * 1000)
    assert c.get_object(Bucket="e2e-versioned", Key="k", VersionId=v1)["Body"].read() == b"a" * 1000
    with pytest.raises(ClientError) as e:
        c.put_object(Bucket="e2e-versioned", Key="big", Body=b"c" * 3000)
    assert code(e) == "QuotaExceeded"
    vms.restart()
    c = _client(vms, keys)
    assert c.get_object(Bucket="e2e-versioned", Key="k")["Body"].read() == b"b" * 1000
    assert len(c.list_object_versions(Bucket="e2e-versioned")["Versions"]) == 2


def test_capacity_is_counted_and_released_by_folder_delete(vms_server):
    vms = vms_server

    def in_use() -> int:
        return int(_ok(vms.api("GET", "clusters/"))[0]["logical_space_in_use"])

    baseline = in_use()
    _uid, keys = _user(vms, "e2e-dave")
    view = _bucket_view(vms, "e2e-trash", "e2e-dave")
    c = _client(vms, keys)
    c.put_object(Bucket="e2e-trash", Key="a", Body=b"x" * 10_000)
    c.put_object(Bucket="e2e-trash", Key="b", Body=b"y" * 5_000)
    assert in_use() == baseline + 15_000
    c.delete_object(Bucket="e2e-trash", Key="b")
    assert in_use() == baseline + 10_000
    _ok(vms.api("DELETE", f"views/{view['id']}/"))
    _ok(vms.api("DELETE", "folders/delete_folder/", json={"path": "/s3/e2e-trash"}))
    deadline = time.monotonic() + 10  # the release is delivered to the S3 loop asynchronously
    while in_use() != baseline and time.monotonic() < deadline:
        time.sleep(0.05)
    assert in_use() == baseline


def test_capacity_count_is_recounted_after_kill9(vms_server):
    """S3 byte counts reach the database lazily; after kill -9 the endpoint recounts its
    buckets' indexes at start, so no stored byte goes uncounted (and none is counted twice)."""
    vms = vms_server

    def in_use() -> int:
        return int(_ok(vms.api("GET", "clusters/"))[0]["logical_space_in_use"])

    baseline = in_use()
    _uid, keys = _user(vms, "e2e-erin")
    _bucket_view(vms, "e2e-kill", "e2e-erin")
    c = _client(vms, keys)
    for i in range(5):
        c.put_object(Bucket="e2e-kill", Key=f"k{i}", Body=b"z" * 7_000)
    c.delete_object(Bucket="e2e-kill", Key="k0")
    assert in_use() == baseline + 28_000
    big = bytes(range(256)) * 1024  # 256 KiB: a file, not an index row
    c.put_object(Bucket="e2e-kill", Key="big", Body=big)
    c.delete_object(Bucket="e2e-kill", Key="big")
    c.put_object(Bucket="e2e-kill", Key="big2", Body=big)
    c.delete_object(Bucket="e2e-kill", Key="big2")
    vms.kill9()  # within the flush interval: part of the count never reached the database
    vms.start()
    assert in_use() == baseline + 28_000
    c = _client(vms, keys)
    assert c.get_object(Bucket="e2e-kill", Key="k4")["Body"].read() == b"z" * 7_000  # inline row
    c.put_object(Bucket="e2e-kill", Key="k9", Body=b"z" * 1_000)
    c.put_object(Bucket="e2e-kill", Key="big3", Body=big)
    vms.kill9()
    vms.start()
    c = _client(vms, keys)
    assert c.get_object(Bucket="e2e-kill", Key="big3")["Body"].read() == big  # a file, after kill -9
    c.delete_object(Bucket="e2e-kill", Key="big3")
    assert in_use() == baseline + 29_000
    vms.stop()  # a clean stop writes the count out
    vms.start()
    assert in_use() == baseline + 29_000


def test_s3_superuser_reaches_every_bucket_of_its_tenant_until_the_flag_is_cleared(vms_server):
    vms = vms_server
    _owner_id, owner_keys = _user(vms, "e2e-frank")
    _bucket_view(vms, "e2e-franks", "e2e-frank")
    _client(vms, owner_keys).put_object(Bucket="e2e-franks", Key="f", Body=b"frank's")
    super_id, super_keys = _user(vms, "e2e-root", s3_superuser=True)
    su = _client(vms, super_keys)
    assert su.get_object(Bucket="e2e-franks", Key="f")["Body"].read() == b"frank's"
    su.put_object(Bucket="e2e-franks", Key="by-root", Body=b"r")
    assert {o["Key"] for o in su.list_objects_v2(Bucket="e2e-franks")["Contents"]} == {"f", "by-root"}
    assert "e2e-franks" in {b["Name"] for b in su.list_buckets()["Buckets"]}
    _ok(vms.api("PATCH", f"users/{super_id}/", json={"s3_superuser": False}))
    with pytest.raises(ClientError) as e:
        su.get_object(Bucket="e2e-franks", Key="f")
    assert code(e) == "AccessDenied"
    assert "e2e-franks" not in {b["Name"] for b in su.list_buckets()["Buckets"]}
