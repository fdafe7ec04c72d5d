"""BucketClass parameters land on the platform as the policy they name (real vms-mock), and the
driver's VMS credentials come from a mounted Secret directory, optionally one set per class."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import grpc
import pytest

from cosi_driver.proto import cosi_v1alpha1_pb2 as pb
from tests.cosi.conftest import Platform, s3_client
from tests.cosi.driverproc import DriverProcess


def uid() -> str:
    return uuid.uuid4().hex[:10]


def _post(vms: Any, kind: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = vms.api("POST", f"{kind}/", json=body)
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def test_tenant_policies_lock_and_quota_are_applied(driver: DriverProcess, platform: Platform) -> None:
    vms = driver.vms
    tenant = _post(vms, "tenants", {"name": f"t-{uid()}"})
    vpol = _post(
        vms, "viewpolicies", {"name": f"s3-{uid()}", "tenant_id": tenant["id"], "flavor": "S3_NATIVE"}
    )
    qos = _post(vms, "qospolicies", {"name": f"gold-{uid()}", "tenant_id": tenant["id"]})
    resp = driver.v1().DriverCreateBucket(
        pb.DriverCreateBucketRequest(
            name=f"bucket-{uid()}",
            parameters={
                "tenant": tenant["name"],
                "viewPolicy": vpol["name"],
                "qosPolicy": qos["name"],
                "objectLock": "true",
                "objectLockRetentionMode": "COMPLIANCE",
                "objectLockRetentionDays": "7",
                "maxSize": "2GiB".replace("B", ""),
                "protocols": "NFS",
                "pathPrefix": "/teams/a",
            },
        )
    )
    [view] = platform.views(resp.bucket_id)
    assert view["tenant_id"] == tenant["id"] and view["policy_id"] == vpol["id"]
    assert view["qos_policy_id"] == qos["id"]
    assert view["s3_locks"] is True and view["s3_versioning"] is True
    assert view["s3_locks_retention_mode"] == "COMPLIANCE" and view["s3_locks_retention_period"] == "7d"
    assert sorted(view["protocols"]) == ["NFS", "S3"] and view["path"] == f"/teams/a/{resp.bucket_id}"
    [quota] = platform.quotas(view["path"])
    assert quota["hard_limit"] == 2 * 1024**3
    grant = driver.v1().DriverGrantBucketAccess(
        pb.DriverGrantBucketAccessRequest(bucket_id=resp.bucket_id, name=f"ba-{uid()}")
    )
    user = platform.user(grant.account_id)
    assert user is not None and user["tenant_id"] == tenant["id"]
    creds = dict(grant.credentials["s3"].secrets)
    s3 = s3_client(creds["endpoint"], creds["accessKeyID"], creds["accessSecretKey"])
    s3.put_object(Bucket=resp.bucket_id, Key="k", Body=b"v")


def _secret_dir(path: Path, vms: Any, **extra: str) -> Path:
    path.mkdir(parents=True)
    (path / "endpoint").write_text(vms.api_url + "\n")
    (path / "username").write_text(vms.username)
    (path / "password").write_text(vms.password)
    for name, value in extra.items():
        (path / name).write_text(value)
    return path


def test_credentials_from_secret_dir_and_per_class_sets(
    cosi_vms: Any, tmp_path: Path, platform: Platform
) -> None:
    main = _secret_dir(tmp_path / "vms", cosi_vms)
    root = tmp_path / "sets"
    tenant = _post(cosi_vms, "tenants", {"name": f"alt-{uid()}"})
    _post(cosi_vms, "viewpolicies", {"name": "default", "tenant_id": tenant["id"]})
    _secret_dir(root / "alt", cosi_vms, tenant=tenant["name"])
    driver = DriverProcess(
        cosi_vms, tmp_path / "d", extra_args=["--vms-secret-dir", str(main), "--vms-secrets-root", str(root)]
    )
    with driver:
        plain = driver.v1().DriverCreateBucket(pb.DriverCreateBucketRequest(name=f"bucket-{uid()}")).bucket_id
        alt = (
            driver.v1()
            .DriverCreateBucket(
                pb.DriverCreateBucketRequest(name=f"bucket-{uid()}", parameters={"vmsCredentials": "alt"})
            )
            .bucket_id
        )
        assert platform.views(plain)[0]["tenant_name"] == "default"
        assert platform.views(alt)[0]["tenant_id"] == tenant["id"]  # the set's default tenant
        grant = driver.v1().DriverGrantBucketAccess(
            pb.DriverGrantBucketAccessRequest(bucket_id=alt, name=f"ba-{uid()}")
        )
        assert platform.user(grant.account_id)["tenant_id"] == tenant["id"]  # type: ignore[index]
        with pytest.raises(grpc.RpcError) as err:
            driver.v1().DriverCreateBucket(
                pb.DriverCreateBucketRequest(name=f"bucket-{uid()}", parameters={"vmsCredentials": "nope"})
            )
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "nope" in err.value.details()
        driver.v1().DriverRevokeBucketAccess(
            pb.DriverRevokeBucketAccessRequest(bucket_id=alt, account_id=grant.account_id)
        )
        assert platform.user(grant.account_id) is None
        driver.v1().DriverDeleteBucket(pb.DriverDeleteBucketRequest(bucket_id=alt))
        assert platform.views(alt) == []


def test_grant_without_any_s3_endpoint_is_refused_before_anything_is_made(
    cosi_vms: Any, tmp_path: Path, platform: Platform
) -> None:
    with DriverProcess(cosi_vms, tmp_path / "d", s3_endpoint="") as driver:
        bucket = (
            driver.v1().DriverCreateBucket(pb.DriverCreateBucketRequest(name=f"bucket-{uid()}")).bucket_id
        )
        name = f"ba-{uid()}"
        with pytest.raises(grpc.RpcError) as err:
            driver.v1().DriverGrantBucketAccess(
                pb.DriverGrantBucketAccessRequest(bucket_id=bucket, name=name)
            )
        assert (
            err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "--s3-endpoint" in err.value.details()
        )
        from cosi_driver import naming

        assert platform.user(naming.user_name(name)) is None
        # a class that names its endpoint works without the flag
        other = (
            driver.v1()
            .DriverCreateBucket(
                pb.DriverCreateBucketRequest(name=f"bucket-{uid()}", parameters={"endpoint": cosi_vms.s3_url})
            )
            .bucket_id
        )
        granted = driver.v1().DriverGrantBucketAccess(
            pb.DriverGrantBucketAccessRequest(bucket_id=other, name=name)
        )
        assert granted.credentials["s3"].secrets["endpoint"] == cosi_vms.s3_url
