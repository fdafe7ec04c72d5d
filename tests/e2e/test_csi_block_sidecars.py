"""The block CSI driver behind the real kubernetes-csi sidecars on the local control plane.

csi-block-driver (controller mode) runs against a real vms-mock; csi-provisioner, csi-attacher,
csi-resizer, csi-snapshotter and snapshot-controller run from bin/ through hack/cluster/sidecar.sh.
StorageClass + Block PVC -> Bound; a pod scheduled onto the registered node -> VolumeAttachment
attached by the real attacher, detached after the pod goes; VolumeSnapshot -> ready; restore and clone
-> Bound; expansion -> the new size on the PV.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.conftest import require_tool
from tests.csi_block.driverproc import DriverProcess
from tests.e2e.cluster import HACK, KubeCluster, wait_until
from tests.vmsproc import VmsProcess

pytestmark = [pytest.mark.e2e]
DRIVER = "block.csi.vastdata.com"
SIDECARS = ("csi-provisioner", "csi-attacher", "csi-resizer", "csi-snapshotter")
GI = 1024**3


@dataclass
class CsiStack:
    cluster: KubeCluster
    vms: VmsProcess
    driver: DriverProcess
    namespace: str
    storage_class: str
    snapshot_class: str


def _hack(cluster: KubeCluster, *args: str) -> None:
    proc = subprocess.run([str(HACK / args[0]), *args[1:]], env={**os.environ, **cluster.env},
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"hack/cluster/{' '.join(args)}: {proc.stderr or proc.stdout}"


@pytest.fixture(scope="module")
def csi(kube_cluster: KubeCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CsiStack]:
    if not kube_cluster.local:
        pytest.skip("runs the sidecars as local processes: local control plane only")
    for tool in (*SIDECARS, "snapshot-controller"):
        require_tool(tool, f"run `make tools` (hack/tools/build.sh {tool})")
    root = tmp_path_factory.mktemp("csi-e2e")
    suffix = uuid.uuid4().hex[:6]
    instances = [f"e2e-{name}-{suffix}" for name in (*SIDECARS, "snapshot-controller")]
    with VmsProcess(root / "vms", s3=False) as vms:
        driver = DriverProcess(root / "driver", vms, mode="controller").start()
        try:
            _hack(kube_cluster, "crds.sh", "snapshot")
            kube_cluster.apply(f"""
apiVersion: storage.k8s.io/v1
kind: CSIDriver
metadata: {{name: {DRIVER}}}
spec: {{attachRequired: true, podInfoOnMount: false, volumeLifecycleModes: [Persistent]}}
""")
            node_id = f"nqn.2014-08.org.nvmexpress:uuid:{uuid.uuid4()}"
            kube_cluster.register_csinode(DRIVER, node_id)
            for tool, name in zip((*SIDECARS, "snapshot-controller"), instances, strict=True):
                args = ["sidecar.sh", "start", tool, "--name", name]
                if tool != "snapshot-controller":
                    args += ["--socket", str(driver.socket), "--", "--timeout=60s"]
                _hack(kube_cluster, *args)
            sc, vsc = f"e2e-block-{suffix}", f"e2e-snap-{suffix}"
            kube_cluster.apply(f"""
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {{name: {sc}}}
provisioner: {DRIVER}
allowVolumeExpansion: true
volumeBindingMode: Immediate
reclaimPolicy: Delete
---
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshotClass
metadata: {{name: {vsc}}}
driver: {DRIVER}
deletionPolicy: Delete
""")
            with kube_cluster.namespace("csi") as ns:
                yield CsiStack(kube_cluster, vms, driver, ns, sc, vsc)
            kube_cluster.kubectl("delete", "storageclass", sc, check=False)
            kube_cluster.kubectl("delete", "volumesnapshotclass", vsc, check=False)
        finally:
            for name in instances:
                subprocess.run([str(HACK / "sidecar.sh"), "stop", name],
                               env={**os.environ, **kube_cluster.env}, capture_output=True, timeout=60)
            driver.stop()


def _pvc(stack: CsiStack, name: str, size: str, data_source: str = "") -> None:
    stack.cluster.apply(f"""
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: {name}, namespace: {stack.namespace}}}
spec:
  storageClassName: {stack.storage_class}
  volumeMode: Block
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: {size}}}}}
{data_source}""")


def _bound_pv(stack: CsiStack, pvc: str) -> str:
    def probe() -> str | None:
        obj = stack.cluster.get_json("-n", stack.namespace, "pvc", pvc)
        return obj["spec"].get("volumeName") if obj["status"].get("phase") == "Bound" else None

    pv: str = wait_until(f"PVC {pvc} Bound", probe, timeout=120)
    return pv


def test_block_pvc_is_provisioned_bound_and_attached(csi: CsiStack) -> None:
    _pvc(csi, "data", "1Gi")
    pv = _bound_pv(csi, "data")
    pv_obj = csi.cluster.get_json("pv", pv)
    assert pv_obj["spec"]["csi"]["driver"] == DRIVER
    assert pv_obj["spec"]["volumeMode"] == "Block"
    handle = pv_obj["spec"]["csi"]["volumeHandle"]
    assert handle

    csi.cluster.apply(f"""
apiVersion: v1
kind: Pod
metadata: {{name: user, namespace: {csi.namespace}}}
spec:
  containers:
  - name: c
    image: registry.invalid/none:0
    volumeDevices: [{{name: data, devicePath: /dev/xvda}}]
  volumes: [{{name: data, persistentVolumeClaim: {{claimName: data}}}}]
""")
    node = wait_until("pod scheduled", lambda: csi.cluster.get_json(
        "-n", csi.namespace, "pod", "user")["spec"].get("nodeName"), timeout=90)
    assert node == csi.cluster.node_name

    def attached() -> bool:
        for va in csi.cluster.get_json("volumeattachment")["items"]:
            if va["spec"]["source"].get("persistentVolumeName") == pv and va["spec"]["nodeName"] == node:
                return bool(va.get("status", {}).get("attached"))
        return False

    wait_until(f"VolumeAttachment of {pv} attached by csi-attacher", attached, timeout=120)
    # The pod goes away: the attach/detach controller detaches, the attacher unpublishes.
    csi.cluster.kubectl("-n", csi.namespace, "delete", "pod", "user", "--grace-period=0", "--force")
    wait_until("VolumeAttachment removed", lambda: not [
        va for va in csi.cluster.get_json("volumeattachment")["items"]
        if va["spec"]["source"].get("persistentVolumeName") == pv], timeout=180)


def test_snapshot_ready_then_restore_and_clone_bound(csi: CsiStack) -> None:
    _pvc(csi, "origin", "1Gi")
    _bound_pv(csi, "origin")
    csi.cluster.apply(f"""
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshot
metadata: {{name: snap, namespace: {csi.namespace}}}
spec:
  volumeSnapshotClassName: {csi.snapshot_class}
  source: {{persistentVolumeClaimName: origin}}
""")
    wait_until("VolumeSnapshot readyToUse", lambda: csi.cluster.get_json(
        "-n", csi.namespace, "volumesnapshot", "snap").get("status", {}).get("readyToUse"), timeout=120)
    from_snapshot = "  dataSource: {apiGroup: snapshot.storage.k8s.io, kind: VolumeSnapshot, name: snap}\n"
    _pvc(csi, "restored", "1Gi", from_snapshot)
    _pvc(csi, "cloned", "1Gi", """  dataSource: {kind: PersistentVolumeClaim, name: origin}
""")
    assert _bound_pv(csi, "restored") and _bound_pv(csi, "cloned")


def test_expansion_reaches_the_pv(csi: CsiStack) -> None:
    _pvc(csi, "growing", "1Gi")
    pv = _bound_pv(csi, "growing")
    csi.cluster.kubectl("-n", csi.namespace, "patch", "pvc", "growing", "--type=merge",
                        "-p", '{"spec": {"resources": {"requests": {"storage": "2Gi"}}}}')
    wait_until("PV capacity 2Gi after csi-resizer", lambda: csi.cluster.get_json(
        "pv", pv)["spec"]["capacity"]["storage"] == "2Gi", timeout=120)
    # ...and on the platform: the VMS volume behind the handle (`<vms id>:<uuid>`) has grown.
    vms_id = csi.cluster.get_json("pv", pv)["spec"]["csi"]["volumeHandle"].split(":", 1)[0]
    assert csi.vms.api("GET", f"volumes/{vms_id}/").json()["size"] == 2 * GI


def test_invalid_storageclass_parameter_surfaces_as_event_on_the_pvc(csi: CsiStack) -> None:
    """A typo in a StorageClass must reach the user: the driver's INVALID_ARGUMENT message, naming
    the bad key, appears as a Warning Event on the PVC (through the real provisioner), and nothing is
    provisioned on the platform."""
    bad_sc = f"{csi.storage_class}-typo"
    csi.cluster.apply(f"""
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {{name: {bad_sc}}}
provisioner: {DRIVER}
volumeBindingMode: Immediate
reclaimPolicy: Delete
parameters: {{qosPolicyy: gold}}
""")
    try:
        volumes_before = len(csi.vms.api("GET", "volumes/").json())
        csi.cluster.apply(f"""
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: typo, namespace: {csi.namespace}}}
spec:
  storageClassName: {bad_sc}
  volumeMode: Block
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: 1Gi}}}}
""")

        def failure_event() -> str | None:
            events = csi.cluster.get_json(
                "-n", csi.namespace, "events",
                "--field-selector", "involvedObject.kind=PersistentVolumeClaim,involvedObject.name=typo")
            for ev in events.get("items", []):
                if ev.get("type") == "Warning" and ev.get("reason") == "ProvisioningFailed":
                    msg: str = ev.get("message", "")
                    return msg
            return None

        message = wait_until("ProvisioningFailed event on PVC typo", failure_event, timeout=120)
        assert "InvalidArgument" in message or "INVALID_ARGUMENT" in message, message
        assert "qosPolicyy" in message, message
        pvc = csi.cluster.get_json("-n", csi.namespace, "pvc", "typo")
        assert pvc["status"].get("phase") == "Pending"
        assert len(csi.vms.api("GET", "volumes/").json()) == volumes_before
    finally:
        csi.cluster.kubectl("-n", csi.namespace, "delete", "pvc", "typo", "--wait=false", check=False)
        csi.cluster.kubectl("delete", "storageclass", bad_sc, check=False)
