"""Versioning and object lock, both switched on by the bucket view."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError


def code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def test_unversioned_bucket_reports_no_versioning(s3):
    assert "Status" not in s3.client().get_bucket_versioning(Bucket="bucket-a")


def test_versioned_bucket(s3):
    s3.directory.add_view("vers", bucket_owner="alice", s3_versioning=True)
    c = s3.client()
    assert c.get_bucket_versioning(Bucket="vers")["Status"] == "Enabled"
    v1 = c.put_object(Bucket="vers", Key="k", Body=b"one")["VersionId"]
    v2 = c.put_object(Bucket="vers", Key="k", Body=b"two")["VersionId"]
    assert v1 != v2
    assert c.get_object(Bucket="vers", Key="k")["Body"].read() == b"two"
    assert c.get_object(Bucket="vers", Key="k", VersionId=v1)["Body"].read() == b"one"
    d = c.delete_object(Bucket="vers", Key="k")
    assert d["DeleteMarker"] is True
    with pytest.raises(ClientError) as e:
        c.get_object(Bucket="vers", Key="k")
    assert code(e) == "NoSuchKey"
    assert c.get_object(Bucket="vers", Key="k", VersionId=v2)["Body"].read() == b"two"
    versions = c.list_object_versions(Bucket="vers")
    assert [v["VersionId"] for v in versions["Versions"]] == [v2, v1]
    assert [m["VersionId"] for m in versions["DeleteMarkers"]] == [d["VersionId"]]
    assert versions["DeleteMarkers"][0]["IsLatest"] is True
    assert "Contents" not in c.list_objects_v2(Bucket="vers")
    # Removing the delete marker brings the object back.
    c.delete_object(Bucket="vers", Key="k", VersionId=d["VersionId"])
    assert c.get_object(Bucket="vers", Key="k")["Body"].read() == b"two"
    c.delete_object(Bucket="vers", Key="k", VersionId=v2)
    assert c.get_object(Bucket="vers", Key="k")["Body"].read() == b"one"
    assert s3.directory.used == 3
    with pytest.raises(ClientError) as e:
        c.get_object(Bucket="vers", Key="k", VersionId="no-such-version")
    assert code(e) == "NoSuchVersion"


def test_object_lock_default_retention(s3):
    s3.directory.add_view("locked", bucket_owner="alice", s3_locks=True,
                          lock_default_mode="COMPLIANCE", lock_default_days=1)
    c = s3.client()
    cfg = c.get_object_lock_configuration(Bucket="locked")["ObjectLockConfiguration"]
    assert cfg["ObjectLockEnabled"] == "Enabled"
    assert cfg["Rule"]["DefaultRetention"] == {"Mode": "COMPLIANCE", "Days": 1}
    vid = c.put_object(Bucket="locked", Key="worm", Body=b"keep me")["VersionId"]
    ret = c.get_object_retention(Bucket="locked", Key="worm")["Retention"]
    assert ret["Mode"] == "COMPLIANCE"
    assert ret["RetainUntilDate"] > datetime.now(UTC) + timedelta(hours=23)
    with pytest.raises(ClientError) as e:
        c.delete_object(Bucket="locked", Key="worm", VersionId=vid)
    assert code(e) == "AccessDenied"
    with pytest.raises(ClientError) as e:  # COMPLIANCE cannot be bypassed
        c.delete_object(Bucket="locked", Key="worm", VersionId=vid, BypassGovernanceRetention=True)
    assert code(e) == "AccessDenied"
    # A plain delete only adds a delete marker; the locked version stays readable.
    c.delete_object(Bucket="locked", Key="worm")
    assert c.get_object(Bucket="locked", Key="worm", VersionId=vid)["Body"].read() == b"keep me"


def test_governance_retention_can_be_bypassed_by_the_owner(s3):
    s3.directory.add_view("gov", bucket_owner="alice", s3_locks=True)
    c = s3.client()
    until = datetime.now(UTC) + timedelta(days=2)
    vid = c.put_object(Bucket="gov", Key="g", Body=b"x", ObjectLockMode="GOVERNANCE",
                       ObjectLockRetainUntilDate=until)["VersionId"]
    assert c.head_object(Bucket="gov", Key="g")["ObjectLockMode"] == "GOVERNANCE"
    with pytest.raises(ClientError) as e:
        c.delete_object(Bucket="gov", Key="g", VersionId=vid)
    assert code(e) == "AccessDenied"
    c.delete_object(Bucket="gov", Key="g", VersionId=vid, BypassGovernanceRetention=True)
    with pytest.raises(ClientError) as e:
        c.get_object(Bucket="gov", Key="g", VersionId=vid)
    assert code(e) == "NoSuchVersion"


def test_lock_headers_on_a_bucket_without_lock_are_refused(s3):
    with pytest.raises(ClientError) as e:
        s3.client().put_object(Bucket="bucket-a", Key="x", Body=b"x", ObjectLockMode="GOVERNANCE",
                               ObjectLockRetainUntilDate=datetime.now(UTC) + timedelta(days=1))
    assert code(e) == "InvalidRequest"
    with pytest.raises(ClientError) as e:
        s3.client().get_object_lock_configuration(Bucket="bucket-a")
    assert code(e) == "ObjectLockConfigurationNotFoundError"


def test_legal_hold_blocks_deletion_until_released(s3):
    s3.directory.add_view("held", bucket_owner="alice", s3_locks=True)
    c = s3.client()
    vid = c.put_object(Bucket="held", Key="h", Body=b"x", ObjectLockLegalHoldStatus="ON")["VersionId"]
    assert c.head_object(Bucket="held", Key="h")["ObjectLockLegalHoldStatus"] == "ON"
    assert c.get_object_legal_hold(Bucket="held", Key="h")["LegalHold"]["Status"] == "ON"
    for kwargs in ({}, {"BypassGovernanceRetention": True}):  # no bypass for a legal hold
        with pytest.raises(ClientError) as e:
            c.delete_object(Bucket="held", Key="h", VersionId=vid, **kwargs)
        assert code(e) == "AccessDenied"
    c.put_object_legal_hold(Bucket="held", Key="h", VersionId=vid, LegalHold={"Status": "OFF"})
    assert c.get_object_legal_hold(Bucket="held", Key="h", VersionId=vid)["LegalHold"]["Status"] == "OFF"
    c.delete_object(Bucket="held", Key="h", VersionId=vid)
    with pytest.raises(ClientError) as e:
        c.get_object(Bucket="held", Key="h", VersionId=vid)
    assert code(e) == "NoSuchVersion"
    c.put_object(Bucket="held", Key="later", Body=b"y")
    with pytest.raises(ClientError) as e:
        c.get_object_legal_hold(Bucket="held", Key="later")  # never set
    assert code(e) == "NoSuchObjectLockConfiguration"
    with pytest.raises(ClientError) as e:
        c.put_object_legal_hold(Bucket="bucket-a", Key="x", LegalHold={"Status": "ON"})
    assert code(e) == "InvalidRequest"  # a bucket without object lock
