"""The real COSI v0.2.2 controller + sidecar drive this driver over its socket, against a real
kube-apiserver (hack/cluster) and a real vms-mock; the companion operator runs as a process against
the same API server. BucketClass/BucketClaim/BucketAccess YAML -> bucket, keys that work in boto3,
flat Secret, revoke and delete on the platform."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import missing, require_tool
from tests.cosi.conftest import Platform, s3_client
from tests.cosi.driverproc import ROOT, DriverProcess
from tests.e2e.cluster import KubeCluster

pytestmark = pytest.mark.e2e
HOW = "run `make tools` (hack/tools/build.sh objectstorage-controller objectstorage-sidecar)"
DRIVER = "cosi.vastdata.com"
KEY_NS = "kubevast-cosi-e2e"


def wait_for(what: str, check: Callable[[], Any], timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as exc:  # the object may not exist yet
            last = exc
        else:
            if last:
                return last
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


@pytest.fixture(scope="module")
def cosi_vms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from tests.vmsproc import VmsProcess

    proc = VmsProcess(tmp_path_factory.mktemp("cosi-e2e-vms") / "vms", nvme=False)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def platform(cosi_vms: Any) -> Platform:
    return Platform(cosi_vms)


@pytest.fixture(scope="module")
def cosi_stack(
    kube_cluster: KubeCluster, cosi_vms: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[KubeCluster, DriverProcess, Path]]:
    if not kube_cluster.local:
        missing("the local control plane", "run without KUBECONFIG so the suite starts hack/cluster")
    env = {**os.environ, **kube_cluster.env, "KUBEVAST_CLUSTER_DIR": str(kube_cluster.run_dir)}
    # The chart's copies of the v0.2.2 CRDs, applied server-side: identical to what `helm install` of
    # kubevast-cosi applies later in the same cluster, so the two never conflict over a field.
    kube_cluster.kubectl("apply", "--server-side", "-f", str(ROOT / "charts" / "kubevast-cosi" / "crds"))
    for crd in ("buckets", "bucketclaims", "bucketaccesses", "bucketclasses", "bucketaccessclasses"):
        kube_cluster.kubectl(
            "wait", "--for=condition=Established", f"crd/{crd}.objectstorage.k8s.io", "--timeout=60s"
        )
    tmp = tmp_path_factory.mktemp("cosi-e2e")
    # in-cluster shape: the driver keeps its keys in Secrets of its own namespace
    cluster_env = {"KUBECONFIG": str(kube_cluster.kubeconfig)}
    kube_cluster.kubectl("create", "namespace", KEY_NS, check=False)
    driver = DriverProcess(
        cosi_vms,
        tmp / "driver",
        extra_args=["--key-store", "kubernetes", "--namespace", KEY_NS],
        extra_env=cluster_env,
    ).start()
    controller_bin = require_tool("objectstorage-controller", HOW)
    sidecar_bin = require_tool("objectstorage-sidecar", HOW)
    procs: list[subprocess.Popen[bytes]] = []
    kc = str(kube_cluster.kubeconfig)
    cosi_env = {**env, "COSI_LEADER_ELECTION": "false", "POD_NAMESPACE": KEY_NS}
    operator_log = tmp / "operator.log"

    def spawn(cmd: list[str], log_name: str, extra: dict[str, str]) -> None:
        with open(tmp / log_name, "wb") as log:
            procs.append(subprocess.Popen(cmd, env={**cosi_env, **extra}, stdout=log, stderr=log, cwd=ROOT))

    try:
        # the v1alpha1 sidecar does not reconnect: the driver is up before it starts
        spawn([controller_bin, "--kubeconfig", kc, "--v=4"], "controller.log", {})
        spawn([sidecar_bin, "--kubeconfig", kc, "--driver-addr", driver.endpoint, "--v=4"], "sidecar.log", {})
        spawn(
            [
                sys.executable,
                "-m",
                "cosi_driver.cli",
                "operator",
                "--no-orphans",
                "--driver-name",
                DRIVER,
                "--metrics-address",
                "",
                "--event-grace",
                "5",
                "--check-interval",
                "2",
                "--log-format",
                "json",
            ],
            "operator.log",
            {"KUBECONFIG": kc},
        )
        time.sleep(1)
        for proc in procs:
            assert proc.poll() is None, f"{proc.args[0]} exited: see {tmp}"
        yield kube_cluster, driver, operator_log
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        driver.stop()


def _secret(cluster: KubeCluster, ns: str, name: str) -> dict[str, str]:
    doc = cluster.get_json("secret", name, "-n", ns)
    return {k: base64.b64decode(v).decode() for k, v in (doc.get("data") or {}).items()}


def test_sidecar_drives_the_driver_end_to_end(
    cosi_stack: tuple[KubeCluster, DriverProcess, Path], platform: Platform
) -> None:
    cluster, _driver, operator_log = cosi_stack
    tag = uuid.uuid4().hex[:6]
    with cluster.namespace("cosi") as ns:
        cluster.apply(f"""
apiVersion: objectstorage.k8s.io/v1alpha1
kind: BucketClass
metadata: {{name: kv-{tag}}}
driverName: {DRIVER}
deletionPolicy: Delete
parameters: {{quota: 1Gi, versioning: "false"}}
---
apiVersion: objectstorage.k8s.io/v1alpha1
kind: BucketAccessClass
metadata: {{name: kv-rw-{tag}}}
driverName: {DRIVER}
authenticationType: Key
parameters: {{accessMode: ReadWrite}}
---
apiVersion: objectstorage.k8s.io/v1alpha1
kind: BucketClaim
metadata: {{name: claim, namespace: {ns}}}
spec: {{bucketClassName: kv-{tag}, protocols: [S3]}}
---
apiVersion: objectstorage.k8s.io/v1alpha1
kind: BucketAccess
metadata: {{name: access, namespace: {ns}}}
spec:
  bucketClaimName: claim
  bucketAccessClassName: kv-rw-{tag}
  credentialsSecretName: creds
  protocol: S3
""")
        claim = wait_for(
            "BucketClaim ready",
            lambda: (
                (c := cluster.get_json("bucketclaim", "claim", "-n", ns)).get("status", {}).get("bucketReady")
                and c
            ),
        )
        bucket_name = claim["status"]["bucketName"]
        bucket_id = wait_for(
            "Bucket status.bucketID",
            lambda: cluster.get_json("bucket", bucket_name).get("status", {}).get("bucketID"),
            timeout=30,
        )
        assert len(platform.views(bucket_id)) == 1
        access = wait_for(
            "BucketAccess granted",
            lambda: (
                (a := cluster.get_json("bucketaccess", "access", "-n", ns))
                .get("status", {})
                .get("accessGranted")
                and a
            ),
        )
        account = access["status"]["accountID"]
        assert platform.user(account) is not None
        info = json.loads(_secret(cluster, ns, "creds")["BucketInfo"])
        s3cred = info["spec"]["secretS3"]
        assert info["spec"]["bucketName"] == bucket_id
        s3 = s3_client(s3cred["endpoint"], s3cred["accessKeyID"], s3cred["accessSecretKey"], s3cred["region"])
        s3.put_object(Bucket=bucket_id, Key="hello", Body=b"from the sidecar's keys")
        # the operator's flat projection works with the AWS_* names alone
        flat = wait_for("projected Secret", lambda: _secret(cluster, ns, "creds-s3"))
        s3flat = s3_client(
            flat["AWS_ENDPOINT_URL"],
            flat["AWS_ACCESS_KEY_ID"],
            flat["AWS_SECRET_ACCESS_KEY"],
            flat["AWS_REGION"],
        )
        assert (
            s3flat.get_object(Bucket=flat["bucketName"], Key="hello")["Body"].read()
            == b"from the sidecar's keys"
        )
        s3flat.delete_object(Bucket=bucket_id, Key="hello")
        # revoke through the sidecar: the principal leaves the platform, the projection follows its source
        cluster.kubectl("delete", "bucketaccess", "access", "-n", ns, "--wait=false")
        wait_for("user removed from the platform", lambda: platform.user(account) is None)
        # ...and the revoked key is refused by the S3 endpoint at once.
        with pytest.raises(ClientError) as refused:
            s3.list_objects_v2(Bucket=bucket_id)
        assert refused.value.response["Error"]["Code"] in ("InvalidAccessKeyId", "AccessDenied")
        wait_for(
            "projection removed",
            lambda: cluster.kubectl("get", "secret", "creds-s3", "-n", ns, check=False).returncode != 0,
        )
        # deletionPolicy Delete: the bucket leaves the platform with its claim
        cluster.kubectl("delete", "bucketclaim", "claim", "-n", ns, "--wait=false")
        wait_for("bucket removed from the platform", lambda: platform.views(bucket_id) == [])
        cluster.kubectl("delete", "bucketclass", f"kv-{tag}", "--wait=false", check=False)
        cluster.kubectl("delete", "bucketaccessclass", f"kv-rw-{tag}", "--wait=false", check=False)
    assert "credentials projected" in operator_log.read_text()


def test_operator_events_on_a_bad_class(cosi_stack: tuple[KubeCluster, DriverProcess, Path]) -> None:
    cluster, _driver, _log = cosi_stack
    tag = uuid.uuid4().hex[:6]
    with cluster.namespace("cosi") as ns:
        cluster.apply(f"""
apiVersion: objectstorage.k8s.io/v1alpha1
kind: BucketClass
metadata: {{name: kv-bad-{tag}}}
driverName: {DRIVER}
deletionPolicy: Delete
parameters: {{colour: blue}}
---
apiVersion: objectstorage.k8s.io/v1alpha1
kind: BucketClaim
metadata: {{name: bad, namespace: {ns}}}
spec: {{bucketClassName: kv-bad-{tag}, protocols: [S3]}}
""")
        events = wait_for(
            "Warning Event on the claim",
            lambda: [
                e
                for e in cluster.get_json("events", "-n", ns)["items"]
                if e["involvedObject"].get("name") == "bad" and e["reason"] == "InvalidBucketClassParameters"
            ],
        )
        assert "colour" in events[0]["message"]
        cluster.kubectl("delete", "bucketclaim", "bad", "-n", ns, "--wait=false", check=False)
        cluster.kubectl("delete", "bucketclass", f"kv-bad-{tag}", "--wait=false", check=False)


def test_orphans_reported_then_removed_against_the_api_server(
    cosi_stack: tuple[KubeCluster, DriverProcess, Path], cosi_vms: Any, platform: Platform
) -> None:
    """Platform objects the driver made with no Kubernetes object behind them: found through the real
    API server (KubeApi), reported, then removed with --orphan-policy=delete semantics."""
    from kubernetes import client as k8s

    from cosi_driver.backends import BackendRegistry, VmsSettings
    from cosi_driver.keystore import KubernetesKeyStore
    from cosi_driver.operator.kube import KubeApi
    from cosi_driver.operator.reconcile import OrphanReconciler
    from cosi_driver.proto import cosi_v1alpha1_pb2 as pb
    from cosi_driver.provisioner import Defaults, Provisioner

    cluster, driver, _log = cosi_stack
    bucket = (
        driver.v1().DriverCreateBucket(pb.DriverCreateBucketRequest(name=f"bucket-{uuid.uuid4()}")).bucket_id
    )
    account = (
        driver.v1()
        .DriverGrantBucketAccess(
            pb.DriverGrantBucketAccessRequest(bucket_id=bucket, name=f"ba-{uuid.uuid4()}")
        )
        .account_id
    )
    api = cluster.api_client()
    backends = BackendRegistry(
        VmsSettings(endpoint=cosi_vms.api_url, username=cosi_vms.username, password=cosi_vms.password)
    )
    provisioner = Provisioner(
        backends, KubernetesKeyStore(KEY_NS, k8s.CoreV1Api(api)), Defaults(endpoint=cosi_vms.s3_url or "")
    )
    report = OrphanReconciler(KubeApi(api), backends.client(), provisioner, "report", 0).run_once()
    assert account in report.users and bucket in report.buckets and report.removed_users == []
    assert platform.user(account) is not None
    report = OrphanReconciler(KubeApi(api), backends.client(), provisioner, "delete", 0).run_once()
    assert account in report.removed_users and bucket in report.removed_buckets, report.errors
    assert platform.user(account) is None and platform.views(bucket) == []
