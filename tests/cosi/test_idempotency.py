"""Idempotency across concurrent retries and driver restarts, and compensation of failed calls
(the mock's fault injection fails one step mid-call; nothing may be left behind)."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest

from cosi_driver import naming
from cosi_driver.proto import cosi_v1alpha1_pb2 as pb
from cosi_driver.proto import cosi_v1alpha2_pb2 as pb2
from tests.cosi.conftest import Platform
from tests.cosi.driverproc import DriverProcess

CONCURRENCY = 50


def uid() -> str:
    return str(uuid.uuid4())


def call_until_ok(fn: Any, attempts: int = 20) -> Any:
    """What a sidecar does: retry retryable codes."""
    for _ in range(attempts):
        try:
            return fn()
        except grpc.RpcError as exc:
            if exc.code() not in (grpc.StatusCode.ABORTED, grpc.StatusCode.UNAVAILABLE):
                raise
    raise AssertionError("never succeeded")


def test_50_concurrent_creates_make_one_bucket(driver: DriverProcess, platform: Platform) -> None:
    name = f"bucket-{uid()}"
    req = pb.DriverCreateBucketRequest(name=name, parameters={"quota": "5Gi"})
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        answers = list(
            pool.map(
                lambda _: call_until_ok(lambda: driver.v1().DriverCreateBucket(req, timeout=60)),
                range(CONCURRENCY),
            )
        )
    assert len({a.bucket_id for a in answers}) == 1
    [view] = platform.views(answers[0].bucket_id)
    assert len(platform.quotas(view["path"])) == 1


def test_50_concurrent_grants_make_one_principal_with_one_key(
    driver: DriverProcess, platform: Platform
) -> None:
    bucket = driver.v1().DriverCreateBucket(pb.DriverCreateBucketRequest(name=f"bucket-{uid()}")).bucket_id
    req = pb.DriverGrantBucketAccessRequest(
        bucket_id=bucket, name=f"ba-{uid()}", authentication_type=pb.AuthenticationType.Key
    )
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        answers = list(
            pool.map(
                lambda _: call_until_ok(lambda: driver.v1().DriverGrantBucketAccess(req, timeout=60)),
                range(CONCURRENCY),
            )
        )
    keys = {
        (
            a.account_id,
            a.credentials["s3"].secrets["accessKeyID"],
            a.credentials["s3"].secrets["accessSecretKey"],
        )
        for a in answers
    }
    assert len(keys) == 1
    account = answers[0].account_id
    user = platform.user(account)
    assert user is not None and len(user["access_keys"]) == 1
    assert [u for u in platform.users() if u == account] == [account]


def test_same_keys_after_restart_and_kill9(cosi_vms: Any, tmp_path: Path, platform: Platform) -> None:
    driver = DriverProcess(cosi_vms, tmp_path / "d").start()
    try:
        bucket_name, access_name = f"bucket-{uid()}", f"ba-{uid()}"
        bucket = driver.v1().DriverCreateBucket(pb.DriverCreateBucketRequest(name=bucket_name)).bucket_id
        g = pb.DriverGrantBucketAccessRequest(bucket_id=bucket, name=access_name)
        first = driver.v1().DriverGrantBucketAccess(g)
        v2req = pb2.DriverGrantBucketAccessRequest(
            account_name=f"ba-{uid()}",
            protocol=pb2.ObjectProtocol(type=pb2.ObjectProtocol.Type.S3),
            authentication_type=pb2.AuthenticationType(type=pb2.AuthenticationType.Type.KEY),
            buckets=[
                pb2.DriverGrantBucketAccessRequest.AccessedBucket(
                    bucket_id=bucket, access_mode=pb2.AccessMode(mode=pb2.AccessMode.Mode.READ_ONLY)
                )
            ],
        )
        first_v2 = driver.v2().DriverGrantBucketAccess(v2req)
        driver.stop()  # graceful: SIGTERM, socket removed
        assert not driver.socket.exists()
        driver.start()
        assert driver.v1().DriverGrantBucketAccess(g) == first
        assert driver.v2().DriverGrantBucketAccess(v2req) == first_v2
        driver.kill9()  # a crash leaves the socket file behind; the next start must cope
        assert driver.socket.exists()
        driver.start()
        assert (
            driver.v1().DriverCreateBucket(pb.DriverCreateBucketRequest(name=bucket_name)).bucket_id == bucket
        )
        assert driver.v1().DriverGrantBucketAccess(g) == first
        user = platform.user(first.account_id)
        assert user is not None and len(user["access_keys"]) == 1
    finally:
        driver.stop()


def test_second_driver_on_a_live_socket_refuses(driver: DriverProcess, tmp_path: Path) -> None:
    other = DriverProcess(driver.vms, tmp_path / "other")
    other.endpoint = driver.endpoint
    env = {**os.environ, "VMS_USERNAME": "admin", "VMS_PASSWORD": "admin"}
    done = subprocess.run(other.command(), env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "another process is serving" in done.stderr
    driver.v1_identity().DriverGetInfo(pb.DriverGetInfoRequest())  # the first one is untouched


def _faults(vms: Any, rule: dict[str, Any] | None) -> None:
    resp = vms.session().delete(f"{vms.api_url}/api/admin/faults/")
    assert resp.status_code in (200, 204), resp.text
    if rule is not None:
        resp = vms.session().post(f"{vms.api_url}/api/admin/faults/", json=rule)
        assert resp.status_code in (200, 201), resp.text


def test_failed_grant_leaves_nothing_and_retry_succeeds(driver: DriverProcess, platform: Platform) -> None:
    bucket = driver.v1().DriverCreateBucket(pb.DriverCreateBucketRequest(name=f"bucket-{uid()}")).bucket_id
    name = f"ba-{uid()}"
    account = naming.user_name(name)
    req = pb.DriverGrantBucketAccessRequest(bucket_id=bucket, name=name)
    # the last step (minting the key) fails after the user and its policy were made
    _faults(driver.vms, {"path": "/access_keys/", "method": ["POST"], "error": 500})
    try:
        with pytest.raises(grpc.RpcError) as err:
            driver.v1().DriverGrantBucketAccess(req, timeout=60)
        assert err.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL)
        assert platform.user(account) is None
        assert naming.policy_name(account) not in platform.policies()
    finally:
        _faults(driver.vms, None)
    ok = driver.v1().DriverGrantBucketAccess(req)
    assert ok.account_id == account and len(platform.user(account)["access_keys"]) == 1  # type: ignore[index]


def test_failed_create_leaves_no_view(driver: DriverProcess, platform: Platform) -> None:
    name = f"bucket-{uid()}"
    bucket = naming.verbatim_or_hashed_bucket(name)
    req = pb.DriverCreateBucketRequest(name=name, parameters={"quota": "1Gi"})
    _faults(driver.vms, {"path": "/quotas/", "method": ["POST"], "error": 500})
    try:
        with pytest.raises(grpc.RpcError):
            driver.v1().DriverCreateBucket(req, timeout=60)
        assert platform.views(bucket) == []
    finally:
        _faults(driver.vms, None)
    assert driver.v1().DriverCreateBucket(req).bucket_id == bucket
    assert len(platform.views(bucket)) == 1


def test_backend_outage_is_unavailable(driver: DriverProcess) -> None:
    _faults(driver.vms, {"path": "/views/", "error": 503})
    try:
        with pytest.raises(grpc.RpcError) as err:
            driver.v1().DriverCreateBucket(pb.DriverCreateBucketRequest(name=f"bucket-{uid()}"), timeout=120)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        _faults(driver.vms, None)


def test_leftovers_of_a_crashed_attempt_are_adopted(driver: DriverProcess, platform: Platform) -> None:
    """What a driver killed mid-call leaves (a view without a record; a user with a key whose secret
    was never stored) is taken over by the retry: one view, one user, exactly one (new) key."""
    vms = driver.vms
    name = f"bucket-{uid()}"
    bucket = naming.verbatim_or_hashed_bucket(name)
    owner = vms.api("GET", "users/", params={"name": "cosi-bucket-owner"}).json()
    if not owner:
        vms.api("POST", "users/", json={"name": "cosi-bucket-owner"}).raise_for_status()
    vms.api(
        "POST",
        "views/",
        json={
            "path": f"/cosi/{bucket}",
            "create_dir": True,
            "bucket": bucket,
            "bucket_owner": "cosi-bucket-owner",
            "protocols": ["S3"],
        },
    ).raise_for_status()
    assert driver.v1().DriverCreateBucket(pb.DriverCreateBucketRequest(name=name)).bucket_id == bucket
    assert len(platform.views(bucket)) == 1

    access = f"ba-{uid()}"
    account = naming.user_name(access)
    user = vms.api("POST", "users/", json={"name": account}).json()
    lost = vms.api("POST", f"users/{user['id']}/access_keys/", json={}).json()["access_key"]
    resp = driver.v1().DriverGrantBucketAccess(
        pb.DriverGrantBucketAccessRequest(bucket_id=bucket, name=access)
    )
    keys = [k["key"] for k in platform.user(account)["access_keys"]]  # type: ignore[index]
    assert resp.account_id == account and keys == [resp.credentials["s3"].secrets["accessKeyID"]]
    assert lost not in keys


def test_other_operation_on_a_name_in_flight_is_aborted(driver: DriverProcess) -> None:
    bucket = driver.v1().DriverCreateBucket(pb.DriverCreateBucketRequest(name=f"bucket-{uid()}")).bucket_id
    name = f"ba-{uid()}"
    req = pb.DriverGrantBucketAccessRequest(bucket_id=bucket, name=name)
    _faults(driver.vms, {"path": "/access_keys/", "method": ["POST"], "latency": 3.0})
    try:
        with ThreadPoolExecutor(1) as pool:
            slow = pool.submit(lambda: driver.v1().DriverGrantBucketAccess(req, timeout=60))
            time.sleep(1.0)  # the grant is now waiting on the slowed key call
            with pytest.raises(grpc.RpcError) as err:
                driver.v1().DriverRevokeBucketAccess(pb.DriverRevokeBucketAccessRequest(
                    bucket_id=bucket, account_id=naming.user_name(name)), timeout=30)
            assert err.value.code() == grpc.StatusCode.ABORTED
            granted = slow.result(60)
    finally:
        _faults(driver.vms, None)
    driver.v1().DriverRevokeBucketAccess(pb.DriverRevokeBucketAccessRequest(
        bucket_id=bucket, account_id=granted.account_id))


def test_tombstones_outlive_a_restart_and_then_expire(
    cosi_vms: Any, tmp_path: Path, platform: Platform
) -> None:
    """A stale Create/Grant replayed after the driver restarted is still refused while the
    tombstone lasts; once it expires the name is usable again and its record is gone."""
    driver = DriverProcess(cosi_vms, tmp_path / "d", extra_args=["--tombstone-seconds", "4"]).start()
    try:
        name, access = f"bucket-{uid()}", f"ba-{uid()}"
        bucket = driver.v1().DriverCreateBucket(pb.DriverCreateBucketRequest(name=name)).bucket_id
        g = pb.DriverGrantBucketAccessRequest(bucket_id=bucket, name=access)
        account = driver.v1().DriverGrantBucketAccess(g).account_id
        driver.v1().DriverRevokeBucketAccess(
            pb.DriverRevokeBucketAccessRequest(bucket_id=bucket, account_id=account))
        driver.v1().DriverDeleteBucket(pb.DriverDeleteBucketRequest(bucket_id=bucket))
        deleted_at = time.monotonic()
        driver.kill9()
        driver.start()
        for replay in (lambda: driver.v1().DriverCreateBucket(pb.DriverCreateBucketRequest(name=name)),
                       lambda: driver.v1().DriverGrantBucketAccess(g)):
            with pytest.raises(grpc.RpcError) as e:
                replay()
            assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert platform.views(bucket) == [] and platform.user(account) is None
        time.sleep(max(0.0, deleted_at + 4.5 - time.monotonic()))
        assert driver.v1().DriverCreateBucket(pb.DriverCreateBucketRequest(name=name)).bucket_id == bucket
        driver.v1().DriverDeleteBucket(pb.DriverDeleteBucketRequest(bucket_id=bucket))
        tombstones = tmp_path / "d" / "keys" / "tombstone"
        driver.stop()
        time.sleep(4.5)
        driver.start()  # expired tombstones are dropped at start
        assert sorted(p.name for p in tombstones.iterdir()) == []
    finally:
        driver.stop()
