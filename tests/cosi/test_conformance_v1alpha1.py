"""cosi.v1alpha1 over a real unix socket against a real vms-mock, as the v0.2.2 sidecar calls it."""

from __future__ import annotations

import uuid
from typing import Any

import grpc
import pytest
from botocore.exceptions import ClientError

from cosi_driver import naming
from cosi_driver.proto import cosi_v1alpha1_pb2 as pb
from tests.cosi.conftest import Platform, s3_client
from tests.cosi.driverproc import DriverProcess


def uid() -> str:
    return str(uuid.uuid4())


def create(driver: DriverProcess, name: str | None = None, **params: str) -> pb.DriverCreateBucketResponse:
    return driver.v1().DriverCreateBucket(
        pb.DriverCreateBucketRequest(name=name or f"bucket-{uid()}", parameters=params), timeout=30
    )


def grant(
    driver: DriverProcess,
    bucket_id: str,
    name: str | None = None,
    auth: int = pb.AuthenticationType.Key,
    **params: str,
) -> pb.DriverGrantBucketAccessResponse:
    return driver.v1().DriverGrantBucketAccess(
        pb.DriverGrantBucketAccessRequest(
            bucket_id=bucket_id, name=name or f"ba-{uid()}", authentication_type=auth, parameters=params
        ),
        timeout=30,
    )


def code_of(call: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value.code(), err.value.details()


def creds(resp: pb.DriverGrantBucketAccessResponse) -> dict[str, str]:
    return dict(resp.credentials["s3"].secrets)


def test_get_info(driver: DriverProcess) -> None:
    assert driver.v1_identity().DriverGetInfo(pb.DriverGetInfoRequest()).name == "cosi.vastdata.com"


def test_create_is_idempotent_and_maps_parameters(driver: DriverProcess, platform: Platform) -> None:
    name = f"bucket-{uid()}"
    first = create(driver, name, quota="1Gi", versioning="true")
    assert naming.ID_PATTERN.match(first.bucket_id) and naming.S3_BUCKET_NAME.match(first.bucket_id)
    assert first.bucket_info.s3.region == "us-east-1"
    assert first.bucket_info.s3.signature_version == pb.S3SignatureVersion.S3V4
    again = create(driver, name, quota="1Gi", versioning="true")
    assert again == first
    [view] = platform.views(first.bucket_id)
    assert view["protocols"] == ["S3"] and view["s3_versioning"] is True and view["bucket_owner"]
    [quota] = platform.quotas(view["path"])
    assert quota["hard_limit"] == 1024**3
    code, msg = code_of(lambda: create(driver, name, quota="2Gi", versioning="true"))
    assert code == grpc.StatusCode.ALREADY_EXISTS, msg
    assert len(platform.views(first.bucket_id)) == 1


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"colour": "blue"}, "colour"),
        ({"quota": "plenty"}, "quota"),
        ({"objectLockRetentionDays": "7"}, "objectLockRetentionMode"),
        ({"viewPolicy": "no-such-policy"}, "no-such-policy"),
        ({"tenant": "no-such-tenant"}, "no-such-tenant"),
    ],
)
def test_bad_bucket_class_parameters(driver: DriverProcess, params: dict[str, str], named: str) -> None:
    code, msg = code_of(lambda: create(driver, **params))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and named in msg


def test_required_fields(driver: DriverProcess) -> None:
    code, _ = code_of(lambda: driver.v1().DriverCreateBucket(pb.DriverCreateBucketRequest(name="")))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, _ = code_of(lambda: grant(driver, ""))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, _ = code_of(lambda: grant(driver, "bad id with spaces"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, _ = code_of(lambda: driver.v1().DriverRevokeBucketAccess(pb.DriverRevokeBucketAccessRequest()))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, msg = code_of(lambda: create(driver, **{f"k{i}": "v" for i in range(100)}))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "entries" in msg


def test_grant_shape_repeat_and_modes(driver: DriverProcess, platform: Platform) -> None:
    bucket = create(driver).bucket_id
    name = f"ba-{uid()}"
    rw = grant(driver, bucket, name)
    assert set(rw.credentials) == {"s3"}
    assert set(creds(rw)) == {"endpoint", "region", "accessKeyID", "accessSecretKey"}
    assert creds(rw)["endpoint"] == driver.vms.s3_url and creds(rw)["region"] == "us-east-1"
    assert naming.ID_PATTERN.match(rw.account_id)
    # a repeat (the sidecar retries until it has written its Secret) -> same account, SAME keys
    assert grant(driver, bucket, name) == rw
    # auth type 0 is what the sidecar sends unless the class says exactly Key/IAM
    assert grant(driver, bucket, name, auth=pb.AuthenticationType.UnknownAuthenticationType) == rw
    user = platform.user(rw.account_id)
    assert user is not None and [k["key"] for k in user["access_keys"]] == [creds(rw)["accessKeyID"]]
    # one principal per access: a second access to the same bucket is another user with other keys
    other = grant(driver, bucket)
    assert other.account_id != rw.account_id and creds(other)["accessKeyID"] != creds(rw)["accessKeyID"]
    code, msg = code_of(lambda: grant(driver, bucket, name, accessMode="ReadOnly"))
    assert code == grpc.StatusCode.ALREADY_EXISTS, msg
    code, msg = code_of(lambda: grant(driver, bucket, auth=pb.AuthenticationType.IAM))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "IAM" in msg
    code, msg = code_of(lambda: grant(driver, bucket, accessMode="admin"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "accessMode" in msg
    code, msg = code_of(lambda: grant(driver, bucket, colour="x"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "colour" in msg
    code, _ = code_of(lambda: grant(driver, naming.bucket_name(f"bucket-{uid()}")))
    assert code == grpc.StatusCode.NOT_FOUND


def test_access_modes_are_enforced_by_s3(driver: DriverProcess) -> None:
    bucket = create(driver).bucket_id
    rw, ro, wo = (creds(grant(driver, bucket, accessMode=m)) for m in ("ReadWrite", "ReadOnly", "WriteOnly"))
    s3 = {
        n: s3_client(c["endpoint"], c["accessKeyID"], c["accessSecretKey"])
        for n, c in (("rw", rw), ("ro", ro), ("wo", wo))
    }
    s3["rw"].put_object(Bucket=bucket, Key="a", Body=b"1")
    assert s3["ro"].get_object(Bucket=bucket, Key="a")["Body"].read() == b"1"
    with pytest.raises(ClientError):
        s3["ro"].put_object(Bucket=bucket, Key="b", Body=b"2")
    s3["wo"].put_object(Bucket=bucket, Key="c", Body=b"3")
    with pytest.raises(ClientError):
        s3["wo"].get_object(Bucket=bucket, Key="c")
    other_bucket = create(driver).bucket_id
    with pytest.raises(ClientError):  # scoped to its own bucket only
        s3["rw"].put_object(Bucket=other_bucket, Key="x", Body=b"4")


def test_revoke_removes_exactly_that_principal(driver: DriverProcess, platform: Platform) -> None:
    bucket = create(driver).bucket_id
    gone, kept = grant(driver, bucket), grant(driver, bucket)
    s3_gone = s3_client(creds(gone)["endpoint"], creds(gone)["accessKeyID"], creds(gone)["accessSecretKey"])
    s3_kept = s3_client(creds(kept)["endpoint"], creds(kept)["accessKeyID"], creds(kept)["accessSecretKey"])
    s3_gone.put_object(Bucket=bucket, Key="before", Body=b"x")
    # the v0.2.2 sidecar sets only bucket_id and account_id
    req = pb.DriverRevokeBucketAccessRequest(bucket_id=bucket, account_id=gone.account_id)
    driver.v1().DriverRevokeBucketAccess(req)
    assert platform.user(gone.account_id) is None
    assert naming.policy_name(gone.account_id) not in platform.policies()
    with pytest.raises(ClientError) as err:
        s3_gone.get_object(Bucket=bucket, Key="before")
    assert err.value.response["Error"]["Code"] in ("InvalidAccessKeyId", "AccessDenied", "403")
    assert s3_kept.get_object(Bucket=bucket, Key="before")["Body"].read() == b"x"
    driver.v1().DriverRevokeBucketAccess(req)  # idempotent
    assert platform.user(kept.account_id) is not None


def test_delete_refuses_non_empty_then_succeeds_and_repeats(
    driver: DriverProcess, platform: Platform
) -> None:
    created = create(driver, quota="1Gi")
    bucket = created.bucket_id
    access = creds(grant(driver, bucket))
    s3 = s3_client(access["endpoint"], access["accessKeyID"], access["accessSecretKey"])
    s3.put_object(Bucket=bucket, Key="obj", Body=b"data")
    code, msg = code_of(
        lambda: driver.v1().DriverDeleteBucket(pb.DriverDeleteBucketRequest(bucket_id=bucket))
    )
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "not empty" in msg and "forceDelete" in msg
    [view] = platform.views(bucket)  # nothing was changed by the refused delete
    assert s3.get_object(Bucket=bucket, Key="obj")["Body"].read() == b"data"
    s3.delete_object(Bucket=bucket, Key="obj")
    driver.v1().DriverDeleteBucket(pb.DriverDeleteBucketRequest(bucket_id=bucket))
    assert platform.views(bucket) == [] and platform.quotas(view["path"]) == []
    driver.v1().DriverDeleteBucket(pb.DriverDeleteBucketRequest(bucket_id=bucket))  # NotFound is success


def test_force_delete_class_empties_the_bucket(driver: DriverProcess, platform: Platform) -> None:
    bucket = create(driver, forceDelete="true").bucket_id
    access = creds(grant(driver, bucket))
    s3_client(access["endpoint"], access["accessKeyID"], access["accessSecretKey"]).put_object(
        Bucket=bucket, Key="obj", Body=b"data"
    )
    driver.v1().DriverDeleteBucket(pb.DriverDeleteBucketRequest(bucket_id=bucket))
    assert platform.views(bucket) == []


def test_brownfield_bucket_by_existing_id(driver: DriverProcess, cosi_vms: Any, platform: Platform) -> None:
    owner = f"legacy-owner-{uid()[:8]}"
    bucket = f"legacy-{uid()[:8]}"
    cosi_vms.api("POST", "users/", json={"name": owner}).raise_for_status()
    cosi_vms.api(
        "POST",
        "views/",
        json={
            "path": f"/legacy/{bucket}",
            "create_dir": True,
            "bucket": bucket,
            "bucket_owner": owner,
            "protocols": ["S3"],
        },
    ).raise_for_status()
    access = creds(grant(driver, bucket, accessMode="ReadOnly"))
    s3 = s3_client(access["endpoint"], access["accessKeyID"], access["accessSecretKey"])
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    # the driver never deletes a bucket it did not create
    driver.v1().DriverDeleteBucket(pb.DriverDeleteBucketRequest(bucket_id=bucket))
    assert len(platform.views(bucket)) == 1


def test_delete_tolerates_unknown_context_keys(driver: DriverProcess, platform: Platform) -> None:
    # INVALID_ARGUMENT is terminal for the sidecar: a Delete must never strand a bucket over context
    bucket = create(driver).bucket_id
    driver.v1().DriverDeleteBucket(
        pb.DriverDeleteBucketRequest(bucket_id=bucket, delete_context={"addedBySomeone": "x"})
    )
    assert platform.views(bucket) == []


def test_stale_retries_after_delete_or_revoke_do_not_resurrect(
    driver: DriverProcess, platform: Platform
) -> None:
    """A sidecar's queued retry can arrive after the object was deleted (seen with the real v0.2.2
    sidecar): Create/Grant for a name removed moments ago is refused, nothing comes back."""
    name, access = f"bucket-{uid()}", f"ba-{uid()}"
    bucket = create(driver, name).bucket_id
    account = grant(driver, bucket, access).account_id
    driver.v1().DriverRevokeBucketAccess(
        pb.DriverRevokeBucketAccessRequest(bucket_id=bucket, account_id=account)
    )
    code, msg = code_of(lambda: grant(driver, bucket, access))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "removed" in msg
    assert platform.user(account) is None
    driver.v1().DriverDeleteBucket(pb.DriverDeleteBucketRequest(bucket_id=bucket))
    code, _ = code_of(lambda: create(driver, name))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert platform.views(bucket) == []
