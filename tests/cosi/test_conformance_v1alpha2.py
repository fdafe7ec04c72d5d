"""sigs.k8s.io.cosi.v1alpha2 over a real unix socket against a real vms-mock (same socket as v1alpha1)."""

from __future__ import annotations

import uuid
from typing import Any

import grpc
import pytest
from botocore.exceptions import ClientError

from cosi_driver import naming
from cosi_driver.proto import cosi_v1alpha1_pb2 as v1
from cosi_driver.proto import cosi_v1alpha2_pb2 as pb
from tests.cosi.conftest import Platform, s3_client
from tests.cosi.driverproc import DriverProcess

S3 = pb.ObjectProtocol(type=pb.ObjectProtocol.Type.S3)
KEY = pb.AuthenticationType(type=pb.AuthenticationType.Type.KEY)
RW, RO, WO = (
    pb.AccessMode(mode=m)
    for m in (pb.AccessMode.Mode.READ_WRITE, pb.AccessMode.Mode.READ_ONLY, pb.AccessMode.Mode.WRITE_ONLY)
)


def uid() -> str:
    return str(uuid.uuid4())


def create(
    driver: DriverProcess, name: str | None = None, protocols: list[Any] | None = None, **params: str
) -> pb.DriverCreateBucketResponse:
    return driver.v2().DriverCreateBucket(
        pb.DriverCreateBucketRequest(
            name=name or f"bc-{uid()}",
            protocols=protocols if protocols is not None else [S3],
            parameters=params,
        ),
        timeout=30,
    )


def grant(
    driver: DriverProcess,
    buckets: list[tuple[str, Any]],
    name: str | None = None,
    auth: Any = KEY,
    **params: str,
) -> pb.DriverGrantBucketAccessResponse:
    return driver.v2().DriverGrantBucketAccess(
        pb.DriverGrantBucketAccessRequest(
            account_name=name or f"ba-{uid()}",
            protocol=S3,
            authentication_type=auth,
            parameters=params,
            buckets=[
                pb.DriverGrantBucketAccessRequest.AccessedBucket(bucket_id=b, access_mode=m)
                for b, m in buckets
            ],
        ),
        timeout=30,
    )


def code_of(call: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value.code(), err.value.details()


def test_both_versions_on_one_socket(driver: DriverProcess) -> None:
    info = driver.v2_identity().DriverGetInfo(pb.DriverGetInfoRequest())
    assert info.name == "cosi.vastdata.com"
    assert [p.type for p in info.supported_protocols] == [pb.ObjectProtocol.Type.S3]
    assert driver.v1_identity().DriverGetInfo(v1.DriverGetInfoRequest()).name == info.name


def test_create_and_get_existing(driver: DriverProcess) -> None:
    name = f"bc-{uid()}"
    resp = create(driver, name, addressingStyle="path", region="eu-west-1")
    assert naming.ID_PATTERN.match(resp.bucket_id)
    s3 = resp.protocols.s3
    assert (s3.bucket_id, s3.region, s3.endpoint) == (resp.bucket_id, "eu-west-1", driver.vms.s3_url)
    assert s3.addressing_style.style == pb.S3AddressingStyle.Style.PATH
    assert not resp.protocols.HasField("azure") and not resp.protocols.HasField("gcs")
    # the v1alpha2 sidecar re-runs Create on every reconcile: same answer
    assert create(driver, name, addressingStyle="path", region="eu-west-1") == resp
    assert create(driver, f"bc-{uid()}", protocols=[]).bucket_id  # no protocols -> S3 by default
    existing = driver.v2().DriverGetExistingBucket(
        pb.DriverGetExistingBucketRequest(existing_bucket_id=resp.bucket_id, protocols=[S3])
    )
    assert existing.bucket_id == resp.bucket_id and existing.protocols.s3.region == "eu-west-1"
    code, _ = code_of(
        lambda: driver.v2().DriverGetExistingBucket(
            pb.DriverGetExistingBucketRequest(existing_bucket_id="no-such-bucket", protocols=[S3])
        )
    )
    assert code == grpc.StatusCode.NOT_FOUND
    code, msg = code_of(
        lambda: create(driver, protocols=[pb.ObjectProtocol(type=pb.ObjectProtocol.Type.AZURE)])
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "AZURE" in msg
    code, msg = code_of(lambda: create(driver, shade="x"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "shade" in msg


def test_multi_bucket_grant_repeat_and_revoke(driver: DriverProcess, platform: Platform) -> None:
    b1, b2 = create(driver).bucket_id, create(driver).bucket_id
    name = f"ba-{uid()}"
    resp = grant(driver, [(b1, RW), (b2, RO)], name)
    assert {b.bucket_id for b in resp.buckets} == {b1, b2}
    for info in resp.buckets:
        assert info.bucket_info.s3.bucket_id == info.bucket_id
        assert info.bucket_info.s3.addressing_style.style == pb.S3AddressingStyle.Style.PATH
    cred = resp.credentials.s3
    assert cred.access_key_id and cred.access_secret_key
    assert grant(driver, [(b1, RW), (b2, RO)], name) == resp  # re-grant on every reconcile: same keys
    code, _ = code_of(lambda: grant(driver, [(b1, RW), (b2, RW)], name))
    assert code == grpc.StatusCode.ALREADY_EXISTS
    s3 = s3_client(driver.vms.s3_url, cred.access_key_id, cred.access_secret_key)
    s3.put_object(Bucket=b1, Key="k", Body=b"v")
    with pytest.raises(ClientError):
        s3.put_object(Bucket=b2, Key="k", Body=b"v")
    s3.list_objects_v2(Bucket=b2)
    driver.v2().DriverRevokeBucketAccess(
        pb.DriverRevokeBucketAccessRequest(
            account_id=resp.account_id,
            protocol=S3,
            authentication_type=KEY,
            buckets=[pb.DriverRevokeBucketAccessRequest.AccessedBucket(bucket_id=b) for b in (b1, b2)],
        )
    )
    assert platform.user(resp.account_id) is None
    with pytest.raises(ClientError):
        s3.list_objects_v2(Bucket=b2)
    driver.v2().DriverRevokeBucketAccess(pb.DriverRevokeBucketAccessRequest(account_id=resp.account_id))


def test_grant_validation(driver: DriverProcess) -> None:
    bucket = create(driver).bucket_id
    sa = pb.AuthenticationType(type=pb.AuthenticationType.Type.SERVICE_ACCOUNT)
    code, msg = code_of(lambda: grant(driver, [(bucket, RW)], auth=sa))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "SERVICE_ACCOUNT" in msg
    code, msg = code_of(lambda: grant(driver, [(bucket, pb.AccessMode())]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "access_mode" in msg
    code, msg = code_of(lambda: grant(driver, []))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, msg = code_of(lambda: grant(driver, [(bucket, RW)], accessMode="ReadOnly"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "accessMode" in msg
    code, msg = code_of(lambda: grant(driver, [(bucket, RW), (bucket, RO)]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, msg = code_of(
        lambda: driver.v2().DriverGrantBucketAccess(
            pb.DriverGrantBucketAccessRequest(
                account_name=f"ba-{uid()}",
                authentication_type=KEY,
                buckets=[pb.DriverGrantBucketAccessRequest.AccessedBucket(bucket_id=bucket, access_mode=RW)],
            )
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "protocol" in msg
    code, msg = code_of(
        lambda: driver.v2().DriverRevokeBucketAccess(
            pb.DriverRevokeBucketAccessRequest(account_id="someone-else")
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT


def test_write_only_and_force_delete_via_parameters(driver: DriverProcess, platform: Platform) -> None:
    bucket = create(driver).bucket_id
    resp = grant(driver, [(bucket, WO)])
    s3 = s3_client(
        driver.vms.s3_url, resp.credentials.s3.access_key_id, resp.credentials.s3.access_secret_key
    )
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    with pytest.raises(ClientError):
        s3.get_object(Bucket=bucket, Key="k")
    code, _ = code_of(lambda: driver.v2().DriverDeleteBucket(pb.DriverDeleteBucketRequest(bucket_id=bucket)))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    driver.v2().DriverDeleteBucket(
        pb.DriverDeleteBucketRequest(bucket_id=bucket, parameters={"forceDelete": "true"})
    )
    assert platform.views(bucket) == []
    driver.v2().DriverDeleteBucket(pb.DriverDeleteBucketRequest(bucket_id=bucket))
