"""Pure pieces of the COSI driver: names, parameters, policies, the in-flight registry, the key
stores and the SigV4 probe (checked against botocore's own signer)."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from cosi_driver import naming, params, policy
from cosi_driver.errors import Aborted, InvalidArgument, KeyStoreError
from cosi_driver.inflight import InflightRegistry
from cosi_driver.keystore import FileKeyStore


# ------------------------------------------------------------------ naming
def test_bucket_names_are_deterministic_hashed_and_fit_s3() -> None:
    long_a = "bucket-" + "a" * 200 + "-1"
    long_b = "bucket-" + "a" * 200 + "-2"
    a, b = naming.bucket_name(long_a), naming.bucket_name(long_b)
    assert a == naming.bucket_name(long_a)
    assert a != b  # the readable part is shortened, the identity never
    for name in (
        a,
        b,
        naming.bucket_name("bucket-0f5b2c6e-6a3b-4e8e-9d1c-2b9a3f0e7c11"),
        naming.bucket_name("X"),
    ):
        assert naming.S3_BUCKET_NAME.match(name), name
        assert naming.ID_PATTERN.match(name)
        assert naming.is_owned_bucket(name)
    assert naming.bucket_name("bucket-0f5b2c6e").startswith("cosi-0f5b2c6e-")


def test_user_and_policy_names() -> None:
    user = naming.user_name("ba-" + "f" * 36)
    assert len(user) <= naming.USER_NAME_MAX and naming.is_owned_user(user)
    assert naming.user_name("ba-1") != naming.user_name("ba-2")
    assert naming.policy_name(user).startswith("cosi-bap-")
    assert not naming.is_owned_user("admin") and not naming.is_owned_bucket("my-bucket")
    assert naming.uid_for(user) == naming.uid_for(user) >= 1_000_000


# ------------------------------------------------------------------ parameters
def test_bucket_params_map_every_key() -> None:
    p = params.parse_bucket_params(
        {
            "tenant": "t1",
            "viewPolicy": "s3-default",
            "qosPolicy": "gold",
            "versioning": "true",
            "objectLock": "true",
            "objectLockRetentionMode": "governance",
            "objectLockRetentionDays": "30",
            "quota": "10Gi",
            "protocols": "S3,NFS",
            "pathPrefix": "/k8s/",
            "addressingStyle": "Virtual",
            "region": "eu-1",
            "endpoint": "https://s3.example.com/",
            "forceDelete": "yes",
        }
    )
    assert (p.tenant, p.view_policy, p.qos_policy) == ("t1", "s3-default", "gold")
    assert p.versioning and p.object_lock and p.retention_mode == "GOVERNANCE" and p.retention_days == 30
    assert p.quota_bytes == 10 * 1024**3 and p.extra_protocols == ("NFS",) and p.path_prefix == "/k8s"
    assert p.addressing_style == "virtual" and p.endpoint == "https://s3.example.com" and p.force_delete
    assert params.parse_bucket_params({"maxSize": "500GB"}).quota_bytes == 500 * 1000**3
    assert params.parse_bucket_params({}).platform_shape() == params.BucketParams().platform_shape()


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ({"colour": "blue", "flavour": "x"}, ["colour", "flavour"]),
        ({"versioning": "maybe"}, ["versioning"]),
        ({"quota": "lots"}, ["quota"]),
        ({"objectLockRetentionDays": "30"}, ["objectLockRetentionMode"]),
        ({"objectLockRetentionMode": "GOVERNANCE", "objectLockRetentionDays": "3"}, ["objectLock=true"]),
        ({"objectLock": "true", "versioning": "false"}, ["versioning"]),
        ({"protocols": "S3,FTP"}, ["FTP"]),
        ({"pathPrefix": "relative"}, ["pathPrefix"]),
        ({"pathPrefix": "/a/../b"}, ["pathPrefix"]),
        ({"endpoint": "ftp://x"}, ["endpoint"]),
        ({"addressingStyle": "sideways"}, ["addressingStyle"]),
        ({"tenant": "bad\nname"}, ["tenant"]),
        ({"vmsCredentials": "../etc"}, ["vmsCredentials"]),
    ],
)
def test_bad_bucket_params_name_the_key(raw: dict[str, str], named: list[str]) -> None:
    with pytest.raises(InvalidArgument) as err:
        params.parse_bucket_params(raw)
    for word in named:
        assert word in err.value.message


def test_map_limits() -> None:
    with pytest.raises(InvalidArgument, match="entries"):
        params.check_map("parameters", {f"k{i}": "v" for i in range(params.MAX_KEYS + 1)})
    with pytest.raises(InvalidArgument, match="longer than"):
        params.check_map("parameters", {"k": "v" * (params.MAX_VALUE_LEN + 1)})


def test_access_mode_parameter() -> None:
    assert params.parse_access_mode({}) == "ReadWrite"
    assert params.parse_access_mode({"accessMode": "read-only"}) == "ReadOnly"
    assert params.parse_access_mode({"accessMode": "WriteOnly"}) == "WriteOnly"
    with pytest.raises(InvalidArgument, match="accessMode"):
        params.parse_access_mode({"accessMode": "admin"})
    with pytest.raises(InvalidArgument, match="shadow"):
        params.parse_access_mode({"shadow": "1"})
    with pytest.raises(InvalidArgument, match="shadow"):
        params.check_access_params({"shadow": "1"})


def test_policy_document_scopes_mode_and_bucket() -> None:
    doc = json.loads(policy.policy_document([("b2", "ReadOnly"), ("b1", "WriteOnly")]))
    assert [s["Resource"] for s in doc["Statement"]] == [
        ["arn:aws:s3:::b1", "arn:aws:s3:::b1/*"],
        ["arn:aws:s3:::b2", "arn:aws:s3:::b2/*"],
    ]
    assert "s3:GetObject" not in doc["Statement"][0]["Action"]
    assert "s3:PutObject" not in doc["Statement"][1]["Action"]
    assert all(s["Effect"] == "Allow" for s in doc["Statement"])
    assert policy.policy_document([("b", "ReadWrite")]) == policy.policy_document([("b", "ReadWrite")])


# ------------------------------------------------------------------ in-flight registry
def test_identical_requests_wait_and_different_ones_abort() -> None:
    reg = InflightRegistry(wait_seconds=5)
    entered = threading.Event()
    release = threading.Event()
    order: list[str] = []

    def first() -> None:
        with reg.claim("k", "fp", "thing"):
            entered.set()
            release.wait(5)
            order.append("first")

    t = threading.Thread(target=first)
    t.start()
    entered.wait(5)
    with pytest.raises(Aborted, match="another operation"), reg.claim("k", "other", "thing"):
        pass

    def second() -> None:
        with reg.claim("k", "fp", "thing"):
            order.append("second")

    waiter = threading.Thread(target=second)
    waiter.start()
    time.sleep(0.1)
    assert order == []
    release.set()
    t.join(5)
    waiter.join(5)
    assert order == ["first", "second"]


def test_identical_request_gives_up_after_the_wait() -> None:
    reg = InflightRegistry(wait_seconds=0.1)
    outer = reg.claim("k", "fp", "thing")
    outer.__enter__()
    with pytest.raises(Aborted, match="still in progress"), reg.claim("k", "fp", "thing"):
        pass
    outer.__exit__(None, None, None)
    with reg.claim("k", "fp", "thing"):  # released again
        assert reg.busy() == 1


# ------------------------------------------------------------------ file key store
def test_file_store_round_trip_encrypted_and_restart(tmp_path: Path) -> None:
    store = FileKeyStore(tmp_path / "keys")
    record = {"access_key": "AKIA1", "secret_key": "very-secret-value"}
    store.put("access", "cosi-ba-x-0123456789abcdef", record)
    blob = (tmp_path / "keys" / "access" / "cosi-ba-x-0123456789abcdef.rec").read_bytes()
    assert b"very-secret-value" not in blob and b"AKIA1" not in blob
    assert os.stat(tmp_path / "keys" / "store.key").st_mode & 0o077 == 0
    again = FileKeyStore(tmp_path / "keys")  # a restarted driver
    assert again.get("access", "cosi-ba-x-0123456789abcdef") == record
    assert again.names("access") == ["cosi-ba-x-0123456789abcdef"]
    again.delete("access", "cosi-ba-x-0123456789abcdef")
    again.delete("access", "cosi-ba-x-0123456789abcdef")
    assert again.get("access", "cosi-ba-x-0123456789abcdef") is None


def test_file_store_wrong_key_and_bad_names(tmp_path: Path) -> None:
    FileKeyStore(tmp_path / "k").put("bucket", "b1", {"x": 1})
    other_key = tmp_path / "other.key"
    other = FileKeyStore(tmp_path / "k", key_file=other_key)
    with pytest.raises(KeyStoreError, match="cannot be decrypted"):
        other.get("bucket", "b1")
    with pytest.raises(KeyStoreError):
        other.get("bucket", "../escape")
    with pytest.raises(KeyStoreError):
        other.get("nope", "b1")


# ------------------------------------------------------------------ SigV4 probe
def test_sigv4_matches_botocore() -> None:
    pytest.importorskip("botocore")
    import datetime as dt

    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    from cosi_driver import s3probe

    now = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    url, headers = s3probe.signed_get(
        "http://127.0.0.1:9000",
        "cosi-b-0123",
        {"list-type": "2", "max-keys": "1"},
        "AKID",
        "SECRET",
        "us-east-1",
        now=now,
    )
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    req = AWSRequest(
        method="GET", url=url, headers={"x-amz-content-sha256": s3probe.EMPTY_SHA256, "X-Amz-Date": amz_date}
    )
    req.context["timestamp"] = amz_date
    signer = S3SigV4Auth(Credentials("AKID", "SECRET"), "s3", "us-east-1")
    expected = signer.signature(signer.string_to_sign(req, signer.canonical_request(req)), req)
    assert headers["Authorization"].endswith(f"Signature={expected}")


def test_v1alpha1_buckets_keep_the_cosi_name_when_s3_accepts_it() -> None:
    # the v0.2.2 sidecar hands applications the Bucket object's NAME as the bucket name
    name = "bucket-0f5b2c6e-6a3b-4e8e-9d1c-2b9a3f0e7c11"
    assert naming.verbatim_or_hashed_bucket(name) == name
    for odd in ("Bucket-Upper", "b" * 64, "a..b", "10.0.0.1", "x"):
        hashed = naming.verbatim_or_hashed_bucket(odd)
        assert hashed == naming.bucket_name(odd) and naming.S3_BUCKET_NAME.match(hashed)
