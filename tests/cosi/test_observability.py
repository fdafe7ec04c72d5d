"""The running driver: Prometheus metrics per RPC and code, JSON logs without secrets, --help."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import grpc
import pytest
import requests

from cosi_driver.proto import cosi_v1alpha1_pb2 as pb
from tests.cosi.driverproc import ROOT, DriverProcess


def _metrics_url(driver: DriverProcess) -> str:
    for line in driver.log_path.read_text().splitlines():
        doc = json.loads(line) if line.startswith("{") else {}
        if doc.get("msg") == "metrics listening":
            return f"http://{doc['address']}/metrics"
    raise AssertionError("no 'metrics listening' line in the driver log")


def test_metrics_and_logs_without_secrets(driver: DriverProcess) -> None:
    bucket = (
        driver.v1().DriverCreateBucket(pb.DriverCreateBucketRequest(name=f"bucket-{uuid.uuid4()}")).bucket_id
    )
    grant = driver.v1().DriverGrantBucketAccess(
        pb.DriverGrantBucketAccessRequest(bucket_id=bucket, name=f"ba-{uuid.uuid4()}")
    )
    secret = grant.credentials["s3"].secrets["accessSecretKey"]
    with pytest.raises(grpc.RpcError):
        driver.v1().DriverCreateBucket(pb.DriverCreateBucketRequest(name="x", parameters={"bogus": "1"}))
    text = requests.get(_metrics_url(driver), timeout=10).text
    assert 'cosi_rpc_total{code="OK",method="DriverGrantBucketAccess",version="v1alpha1"}' in text
    assert 'cosi_rpc_total{code="INVALID_ARGUMENT",method="DriverCreateBucket",version="v1alpha1"}' in text
    assert "cosi_rpc_duration_seconds_bucket" in text
    assert "vms_" in text or "cosi_platform_objects_created_total" in text
    log = driver.log_path.read_text()
    assert secret not in log
    rpc_lines = [json.loads(line) for line in log.splitlines() if '"msg": "rpc"' in line]
    assert any(line["method"] == "DriverGrantBucketAccess" and line["code"] == "OK" for line in rpc_lines)
    assert any("bogus" in (line.get("error") or "") for line in rpc_lines)


def test_help_lists_the_flags() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "cosi_driver.cli", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    ).stdout
    for flag in ("--endpoint", "--vms-secret-dir", "--key-store", "--s3-endpoint", "--metrics-address"):
        assert flag in out
    out = subprocess.run(
        [sys.executable, "-m", "cosi_driver.cli", "operator", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    ).stdout
    for flag in ("--orphan-policy", "--vms-secret-dir", "--key-store", "--driver-name"):
        assert flag in out


def test_bad_endpoint_fails_fast(tmp_path: object) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "cosi_driver.cli",
            "--endpoint",
            "tcp://0.0.0.0:1",
            "--vms-endpoint",
            "http://127.0.0.1:1",
            "--key-store",
            "file",
            "--key-store-dir",
            str(tmp_path),
            "--metrics-address",
            "",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        env={"VMS_USERNAME": "a", "VMS_PASSWORD": "b", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 1 and "unix://" in done.stderr
