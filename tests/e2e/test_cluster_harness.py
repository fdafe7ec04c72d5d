"""The hack/cluster helpers other e2e suites build on: upstream CRDs from the pinned module sources and
controllers started as local processes against the local API server."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.conftest import require_tool
from tests.e2e.cluster import HACK, KubeCluster, wait_until

pytestmark = [pytest.mark.e2e]


def _local_only(kube_cluster: KubeCluster) -> None:
    if not kube_cluster.local:
        pytest.skip("hack/cluster helpers manage the local control plane only")


def _hack(kube_cluster: KubeCluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(HACK / args[0]), *args[1:]], env={**os.environ, **kube_cluster.env},
                          capture_output=True, text=True, timeout=180)


def test_crds_install_snapshot_and_cosi(kube_cluster: KubeCluster) -> None:
    _local_only(kube_cluster)
    proc = _hack(kube_cluster, "crds.sh", "all")
    assert proc.returncode == 0, proc.stderr
    # Installing twice is fine (server-side apply).
    assert _hack(kube_cluster, "crds.sh", "cosi").returncode == 0
    for crd in ("volumesnapshots.snapshot.storage.k8s.io", "volumesnapshotclasses.snapshot.storage.k8s.io",
                "bucketclaims.objectstorage.k8s.io", "bucketaccesses.objectstorage.k8s.io"):
        obj = kube_cluster.get_json("crd", crd)
        established = [c for c in obj["status"]["conditions"] if c["type"] == "Established"]
        assert established and established[0]["status"] == "True", crd
    # The objects are usable through kubectl apply: the COSI group carries the approval annotation.
    kube_cluster.apply("""
apiVersion: objectstorage.k8s.io/v1alpha1
kind: BucketClass
metadata: {name: harness-smoke}
driverName: harness.kubevast.io
deletionPolicy: Delete
""")
    kube_cluster.apply("""
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshotClass
metadata: {name: harness-smoke}
driver: harness.kubevast.io
deletionPolicy: Delete
""")
    assert kube_cluster.get_json("bucketclass", "harness-smoke")["driverName"] == "harness.kubevast.io"
    kube_cluster.kubectl("delete", "bucketclass,volumesnapshotclass", "harness-smoke")


def test_sidecar_script_runs_a_controller_against_the_api(kube_cluster: KubeCluster) -> None:
    """snapshot-controller needs no driver socket: started by sidecar.sh it lists VolumeSnapshots."""
    _local_only(kube_cluster)
    require_tool("snapshot-controller", "run `make tools` (hack/tools/build.sh snapshot-controller)")
    assert _hack(kube_cluster, "crds.sh", "snapshot").returncode == 0
    name = "harness-snapshot-controller"
    started = _hack(kube_cluster, "sidecar.sh", "start", "snapshot-controller", "--name", name)
    assert started.returncode == 0, started.stderr
    try:
        listed = _hack(kube_cluster, "sidecar.sh", "list").stdout
        assert any(line.split()[:2] == [name, "running"] for line in listed.splitlines()), listed
        refused = _hack(kube_cluster, "sidecar.sh", "start", "snapshot-controller", "--name", name)
        assert refused.returncode != 0 and "already running" in refused.stderr
        assert kube_cluster.run_dir is not None
        log = kube_cluster.run_dir / "logs" / f"{name}.log"
        # Its VolumeSnapshot informer filled from the API server: it talks to the local control plane.
        wait_until("snapshot-controller to list VolumeSnapshots",
                   lambda: 'Caches populated" type="*v1.VolumeSnapshot"' in log.read_text(), timeout=90)
    finally:
        stopped = _hack(kube_cluster, "sidecar.sh", "stop", name)
    assert stopped.returncode == 0
    assert name not in _hack(kube_cluster, "sidecar.sh", "list").stdout
