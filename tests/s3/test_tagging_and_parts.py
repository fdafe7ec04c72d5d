"""Object tagging (Put/Get/DeleteObjectTagging, x-amz-tagging on uploads and copies) and
GET/HEAD by part number."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

MiB = 1 << 20


def code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def tagset(c, key: str, **kw) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in c.get_object_tagging(Bucket="bucket-a", Key=key, **kw)["TagSet"]}


def test_tags_on_upload_replace_delete_and_count(s3):
    c = s3.client()
    c.put_object(Bucket="bucket-a", Key="t", Body=b"x", Tagging="team=storage&env=dev%20one")
    assert tagset(c, "t") == {"team": "storage", "env": "dev one"}
    assert c.get_object(Bucket="bucket-a", Key="t")["TagCount"] == 2
    c.put_object_tagging(Bucket="bucket-a", Key="t", Tagging={"TagSet": [{"Key": "only", "Value": ""}]})
    assert tagset(c, "t") == {"only": ""}
    c.delete_object_tagging(Bucket="bucket-a", Key="t")
    assert tagset(c, "t") == {}
    assert "TagCount" not in c.get_object(Bucket="bucket-a", Key="t")
    with pytest.raises(ClientError) as e:
        c.get_object_tagging(Bucket="bucket-a", Key="missing")
    assert code(e) == "NoSuchKey"


@pytest.mark.parametrize("tags", [
    [{"Key": f"k{i}", "Value": "v"} for i in range(11)],
    [{"Key": "same", "Value": "1"}, {"Key": "same", "Value": "2"}],
    [{"Key": "k" * 129, "Value": "v"}],
    [{"Key": "k", "Value": "v" * 257}],
], ids=["eleven", "duplicate", "long-key", "long-value"])
def test_invalid_tags_are_refused_and_change_nothing(s3, tags):
    c = s3.client()
    c.put_object(Bucket="bucket-a", Key="t", Body=b"x", Tagging="keep=me")
    with pytest.raises(ClientError) as e:
        c.put_object_tagging(Bucket="bucket-a", Key="t", Tagging={"TagSet": tags})
    assert code(e) == "InvalidTag"
    assert tagset(c, "t") == {"keep": "me"}
    with pytest.raises(ClientError) as e:
        c.put_object(Bucket="bucket-a", Key="new", Body=b"x",
                     Tagging="&".join(f"{t['Key']}={t['Value']}" for t in tags))
    assert code(e) == "InvalidTag"
    with pytest.raises(ClientError):
        c.head_object(Bucket="bucket-a", Key="new")


def test_tags_follow_versions_and_copies(s3):
    s3.directory.add_view("bucket-v", bucket_owner="alice", s3_versioning=True)
    c = s3.client()
    v1 = c.put_object(Bucket="bucket-v", Key="k", Body=b"1", Tagging="v=1")["VersionId"]
    c.put_object(Bucket="bucket-v", Key="k", Body=b"2", Tagging="v=2")
    c.put_object_tagging(Bucket="bucket-v", Key="k", VersionId=v1,
                         Tagging={"TagSet": [{"Key": "v", "Value": "one"}]})
    got = c.get_object_tagging(Bucket="bucket-v", Key="k", VersionId=v1)
    assert got["VersionId"] == v1 and got["TagSet"] == [{"Key": "v", "Value": "one"}]
    assert c.get_object_tagging(Bucket="bucket-v", Key="k")["TagSet"] == [{"Key": "v", "Value": "2"}]
    c.put_object(Bucket="bucket-a", Key="src", Body=b"s", Tagging="a=1")
    c.copy_object(Bucket="bucket-a", Key="copied", CopySource="bucket-a/src")
    assert tagset(c, "copied") == {"a": "1"}
    c.copy_object(Bucket="bucket-a", Key="replaced", CopySource="bucket-a/src",
                  TaggingDirective="REPLACE", Tagging="b=2")
    assert tagset(c, "replaced") == {"b": "2"}


def test_tagging_needs_its_own_permission(s3):
    s3.directory.set_policies(s3.other.user_id, [json.dumps({"Statement": [
        {"Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject"],
         "Resource": "arn:aws:s3:::bucket-a/*"}]})])
    bob = s3.client(s3.other)
    bob.put_object(Bucket="bucket-a", Key="plain", Body=b"x")
    with pytest.raises(ClientError) as e:
        bob.put_object(Bucket="bucket-a", Key="tagged", Body=b"x", Tagging="a=1")
    assert code(e) == "AccessDenied"
    with pytest.raises(ClientError) as e:
        bob.get_object_tagging(Bucket="bucket-a", Key="plain")
    assert code(e) == "AccessDenied"


def test_get_and_head_by_part_number(s3, make_bytes):
    c = s3.client()
    first, second = make_bytes(5 * MiB, 1), make_bytes(MiB + 7, 2)
    uid = c.create_multipart_upload(Bucket="bucket-a", Key="mp", Tagging="from=upload")["UploadId"]
    parts = [{"PartNumber": n, "ETag": c.upload_part(Bucket="bucket-a", Key="mp", UploadId=uid,
                                                     PartNumber=n, Body=body)["ETag"]}
             for n, body in ((1, first), (2, second))]
    c.complete_multipart_upload(Bucket="bucket-a", Key="mp", UploadId=uid, MultipartUpload={"Parts": parts})
    assert tagset(c, "mp") == {"from": "upload"}
    r = c.get_object(Bucket="bucket-a", Key="mp", PartNumber=2)
    assert r["Body"].read() == second and r["PartsCount"] == 2
    assert r["ContentRange"] == f"bytes {5 * MiB}-{6 * MiB + 6}/{6 * MiB + 7}"
    assert c.get_object(Bucket="bucket-a", Key="mp", PartNumber=1)["Body"].read() == first
    assert c.head_object(Bucket="bucket-a", Key="mp", PartNumber=2)["ContentLength"] == MiB + 7
    with pytest.raises(ClientError) as e:
        c.get_object(Bucket="bucket-a", Key="mp", PartNumber=3)
    assert code(e) == "InvalidPartNumber"
    with pytest.raises(ClientError) as e:
        c.get_object(Bucket="bucket-a", Key="mp", PartNumber=1, Range="bytes=0-1")
    assert code(e) == "InvalidRequest"
    c.put_object(Bucket="bucket-a", Key="single", Body=b"whole")
    assert c.get_object(Bucket="bucket-a", Key="single", PartNumber=1)["Body"].read() == b"whole"
    with pytest.raises(ClientError) as e:
        c.get_object(Bucket="bucket-a", Key="single", PartNumber=2)
    assert code(e) == "InvalidPartNumber"
