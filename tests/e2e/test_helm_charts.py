"""`helm install` of the three charts into a real API server: every object accepted and present, each
service account holding exactly the rights the chart means it to have (`kubectl auth can-i --as`),
and nothing cluster-scoped left after `helm uninstall`.

Installs are uniquely named (release, driver names, classes), so they coexist with whatever else the
suite installs; the upstream COSI controller is installed only on the kubelet-less local control
plane, where it never runs (on kind it would race the real one).
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import require_tool
from tests.e2e.cluster import ROOT, KubeCluster, wait_until

pytestmark = [pytest.mark.e2e]


@dataclass
class Install:
    namespace: str
    suffix: str
    releases: dict[str, str]  # chart -> release name

    def sa(self, chart: str, component: str = "") -> str:
        name = self.releases[chart] + (f"-{component}" if component else "")
        return f"system:serviceaccount:{self.namespace}:{name}"


def _helm(cluster: KubeCluster, *args: str) -> subprocess.CompletedProcess[str]:
    helm = require_tool("helm", "run `make tools`")
    proc = subprocess.run([helm, "--kubeconfig", str(cluster.kubeconfig), *args], capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0, f"helm {' '.join(args)} failed:\n{proc.stderr}"
    return proc


def _values(chart: str, suffix: str, local: bool) -> dict[str, object]:
    if chart == "kubevast-csi-block":
        return {
            "driverName": f"{suffix}.block.csi.vastdata.com",
            "node": {"hostNetwork": False},
            "storageClasses": [{"name": f"{suffix}-block"}, {"name": f"{suffix}-ext4", "fsType": "ext4"}],
            "volumeSnapshotClasses": [{"name": f"{suffix}-snap"}],
            "volumeAttributesClasses": [{"name": f"{suffix}-gold", "parameters": {"qosPolicy": "gold"}}],
        }
    if chart == "kubevast-cosi":
        return {
            "driverName": f"{suffix}.cosi.vastdata.com",
            "bucketClasses": [{"name": f"{suffix}-s3", "deletionPolicy": "Delete"}],
            "bucketAccessClasses": [{"name": f"{suffix}-s3-key", "authenticationType": "Key"}],
            "cosiController": {"install": local},
        }
    return {}


def _ensure_snapshot_crds(cluster: KubeCluster) -> None:
    if cluster.kubectl("get", "crd", "volumesnapshotclasses.snapshot.storage.k8s.io", check=False).returncode:
        crds = ROOT / "manifests" / "crds" / "snapshot"
        cluster.kubectl("apply", "--server-side", "-f", str(crds))
        cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(crds))


@pytest.fixture(scope="module")
def install(kube_cluster: KubeCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Install]:
    suffix = f"pkg{uuid.uuid4().hex[:6]}"
    ns = f"e2e-{suffix}"
    _ensure_snapshot_crds(kube_cluster)
    kube_cluster.kubectl("create", "namespace", ns)
    inst = Install(ns, suffix, {})
    tmp = tmp_path_factory.mktemp("values")
    try:
        for chart in ("vms-mock", "kubevast-csi-block", "kubevast-cosi"):
            release = f"{chart}-{suffix}"
            values = tmp / f"{chart}.yaml"
            values.write_text(yaml.safe_dump(_values(chart, suffix, kube_cluster.local)))
            # No --wait: on the kubelet-less control plane pods are scheduled but never run.
            _helm(kube_cluster, "install", release, str(ROOT / "charts" / chart), "-n", ns, "-f", str(values))
            inst.releases[chart] = release
        yield inst
    finally:
        cluster_scoped = {}
        for release in inst.releases.values():
            cluster_scoped[release] = [
                f"{o['kind']}/{o['metadata']['name']}" for o in _manifest(kube_cluster, ns, release)
                if "namespace" not in o["metadata"]]
            _helm(kube_cluster, "uninstall", release, "-n", ns, "--wait", "--timeout", "120s")
        kube_cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)
        for release, objs in cluster_scoped.items():
            for obj in objs:
                gone = kube_cluster.kubectl("get", obj, check=False)
                assert gone.returncode != 0 and "NotFound" in gone.stderr, f"{release}: {obj} left behind"


def _manifest(cluster: KubeCluster, ns: str, release: str) -> list[dict[str, Any]]:
    text = _helm(cluster, "get", "manifest", release, "-n", ns).stdout
    return [d for d in yaml.safe_load_all(text) if d]


@pytest.mark.parametrize("chart", ["vms-mock", "kubevast-csi-block", "kubevast-cosi"])
def test_every_object_of_the_release_is_in_the_cluster(kube_cluster: KubeCluster, install: Install,
                                                        chart: str) -> None:
    release = install.releases[chart]
    docs = _manifest(kube_cluster, install.namespace, release)
    assert docs
    text = _helm(kube_cluster, "get", "manifest", release, "-n", install.namespace).stdout
    found = yaml.safe_load(kube_cluster.kubectl("get", "-f", "-", "-o", "yaml", input=text).stdout)
    assert len(found["items"]) == len(docs)
    for live in found["items"]:
        assert live["metadata"]["annotations"]["meta.helm.sh/release-name"] == release
    if chart == "kubevast-csi-block":
        drv = kube_cluster.get_json("csidriver", f"{install.suffix}.block.csi.vastdata.com")
        assert drv["spec"]["attachRequired"] is True and drv["spec"]["fsGroupPolicy"] == "File"
        vac = kube_cluster.get_json("volumeattributesclass", f"{install.suffix}-gold")
        assert vac["parameters"] == {"qosPolicy": "gold"}
    if chart == "kubevast-cosi":
        bc = kube_cluster.get_json("bucketclass", f"{install.suffix}-s3")
        assert bc["driverName"] == f"{install.suffix}.cosi.vastdata.com"
    if chart == "vms-mock" and kube_cluster.local:
        # The StatefulSet controller of the real kube-controller-manager acts on it: the claim exists.
        wait_until("the vms-mock data PVC", lambda: kube_cluster.kubectl(
            "-n", install.namespace, "get", "pvc", f"data-{release}-0", check=False).returncode == 0,
            timeout=60)


def _can(cluster: KubeCluster, who: str, *args: str) -> bool:
    proc = cluster.kubectl("auth", "can-i", "--as", who, *args, check=False)
    answer = proc.stdout.strip()
    assert answer in ("yes", "no"), proc.stdout + proc.stderr
    return answer == "yes"


def _rbac_cases(ns: str) -> list[tuple[str, str, list[str], bool]]:
    """(chart, service-account component, kubectl auth can-i arguments, expected)"""
    other = "default"
    return [
        # block CSI controller: exactly what its sidecars call
        ("kubevast-csi-block", "controller", ["create", "persistentvolumes"], True),
        ("kubevast-csi-block", "controller", ["delete", "persistentvolumes"], True),
        ("kubevast-csi-block", "controller", ["update", "persistentvolumeclaims", "-n", other], True),
        ("kubevast-csi-block", "controller",
         ["patch", "persistentvolumeclaims", "--subresource=status", "-n", other], True),
        ("kubevast-csi-block", "controller",
         ["patch", "volumeattachments.storage.k8s.io", "--subresource=status"], True),
        ("kubevast-csi-block", "controller",
         ["update", "volumesnapshotcontents.snapshot.storage.k8s.io", "--subresource=status"], True),
        ("kubevast-csi-block", "controller", ["update", "volumeattachments.storage.k8s.io"], False),
        ("kubevast-csi-block", "controller", ["watch", "volumeattributesclasses.storage.k8s.io"], True),
        ("kubevast-csi-block", "controller", ["create", "leases.coordination.k8s.io", "-n", ns], True),
        ("kubevast-csi-block", "controller", ["create", "leases.coordination.k8s.io", "-n", other], False),
        ("kubevast-csi-block", "controller", ["get", "secrets", "-n", ns], False),
        ("kubevast-csi-block", "controller", ["delete", "persistentvolumeclaims", "-n", other], False),
        ("kubevast-csi-block", "controller", ["create", "pods", "-n", other], False),
        ("kubevast-csi-block", "controller", ["create", "clusterrolebindings.rbac.authorization.k8s.io"],
         False),
        # block CSI node plugin: nothing at all
        ("kubevast-csi-block", "node", ["get", "nodes"], False),
        ("kubevast-csi-block", "node", ["get", "secrets", "-n", ns], False),
        ("kubevast-csi-block", "node", ["list", "persistentvolumes"], False),
        # COSI driver pod (driver + objectstorage-sidecar)
        ("kubevast-cosi", "", ["update", "buckets.objectstorage.k8s.io"], True),
        ("kubevast-cosi", "",
         ["update", "bucketaccesses.objectstorage.k8s.io", "--subresource=status", "-n", other], True),
        ("kubevast-cosi", "", ["create", "secrets", "-n", other], True),
        ("kubevast-cosi", "", ["list", "secrets", "-n", ns], True),
        ("kubevast-cosi", "", ["list", "secrets", "-n", other], False),
        ("kubevast-cosi", "", ["create", "buckets.objectstorage.k8s.io"], False),
        ("kubevast-cosi", "", ["delete", "bucketclaims.objectstorage.k8s.io", "-n", other], False),
        ("kubevast-cosi", "", ["create", "pods", "-n", ns], False),
        # companion operator
        ("kubevast-cosi", "operator", ["watch", "secrets", "-n", other], True),
        ("kubevast-cosi", "operator", ["create", "secrets", "-n", other], True),
        ("kubevast-cosi", "operator", ["patch", "bucketaccesses.objectstorage.k8s.io", "-n", other], True),
        ("kubevast-cosi", "operator", ["create", "events", "-n", other], True),
        ("kubevast-cosi", "operator", ["update", "buckets.objectstorage.k8s.io"], False),
        ("kubevast-cosi", "operator", ["delete", "bucketaccesses.objectstorage.k8s.io", "-n", other], False),
        ("kubevast-cosi", "operator", ["create", "pods", "-n", other], False),
        # vms-mock runs with the namespace's default service account, which holds nothing
        ("vms-mock", "default", ["get", "secrets", "-n", ns], False),
    ]


def test_service_accounts_hold_exactly_their_rights(kube_cluster: KubeCluster, install: Install) -> None:
    wrong = []
    for chart, component, args, expected in _rbac_cases(install.namespace):
        if component == "default":
            who = f"system:serviceaccount:{install.namespace}:default"
        else:
            who = install.sa(chart, component)
        if _can(kube_cluster, who, *args) != expected:
            wrong.append(f"{who} {' '.join(args)}: expected {'yes' if expected else 'no'}")
    assert not wrong, "\n".join(wrong)


def test_charts_refuse_bad_values_at_install(kube_cluster: KubeCluster, install: Install,
                                             tmp_path: Path) -> None:
    helm = require_tool("helm", "run `make tools`")
    proc = subprocess.run([helm, "--kubeconfig", str(kube_cluster.kubeconfig), "install", "bad",
                           str(ROOT / "charts" / "kubevast-csi-block"), "-n", install.namespace,
                           "--set", "node.attachBackend=iscsi"], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "/node/attachBackend" in proc.stderr
    assert "bad" not in _helm(kube_cluster, "list", "-n", install.namespace, "-q").stdout.split()
