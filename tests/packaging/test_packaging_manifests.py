"""manifests/: pinned upstream CRDs, rendered install manifests, examples."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.conftest import ROOT
from tests.packaging._helm import by_kind, helm, load_yaml_docs, render

MANIFESTS = ROOT / "manifests"
COSI_CRDS = sorted((MANIFESTS / "crds" / "cosi").glob("*.yaml"))
SNAPSHOT_CRDS = sorted((MANIFESTS / "crds" / "snapshot").glob("*.yaml"))
EXAMPLES = sorted((MANIFESTS / "examples").rglob("*.yaml"))
# The flat keys the COSI companion operator projects (issue 4); the example pod may only use these.
FLAT_KEYS = {"accessKeyID", "secretAccessKey", "endpoint", "region", "bucketName", "addressingStyle",
             "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_ENDPOINT_URL",
             "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION", "BUCKET_NAME", "BUCKET_HOST"}
FLAT_SUFFIX = "-s3"  # the operator's projection: Secret <credentialsSecretName>-s3


def test_install_manifests_are_rendered_from_the_current_charts() -> None:
    env = dict(os.environ, HELM=helm())
    proc = subprocess.run([str(ROOT / "hack" / "render-manifests.sh"), "--check"], capture_output=True,
                          text=True, env=env, timeout=120, check=False)
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}\nrun hack/render-manifests.sh"
    files = {p.name for p in (MANIFESTS / "install").glob("*.yaml")}
    assert files == {"00-namespace.yaml", "vms-mock.yaml", "kubevast-csi-block.yaml", "kubevast-cosi.yaml"}


@pytest.mark.parametrize("path", COSI_CRDS + SNAPSHOT_CRDS, ids=lambda p: p.name)
def test_pinned_crds_name_their_source_and_are_crds(path: Path) -> None:
    head = path.read_text().splitlines()[:3]
    assert head[0].startswith("# Pinned upstream manifest")
    assert head[1].startswith("# Source: Go module ") and "@v" in head[1], head[1]
    (crd,) = load_yaml_docs(path)
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    # kube-apiserver refuses *.k8s.io CRDs without this annotation.
    assert crd["metadata"]["annotations"]["api-approved.kubernetes.io"].startswith("https://")
    assert crd["metadata"]["name"] == f"{crd['spec']['names']['plural']}.{crd['spec']['group']}"


def test_cosi_crds_are_v0_2_2_v1alpha1_and_the_chart_ships_the_same_files() -> None:
    kinds = set()
    for path in COSI_CRDS:
        assert "container-object-storage-interface/client@v0.2.2" in path.read_text().splitlines()[1]
        (crd,) = load_yaml_docs(path)
        assert [v["name"] for v in crd["spec"]["versions"]] == ["v1alpha1"]
        kinds.add(crd["spec"]["names"]["kind"])
        chart_copy = ROOT / "charts" / "kubevast-cosi" / "crds" / path.name
        assert chart_copy.read_bytes() == path.read_bytes(), f"{chart_copy} differs: re-run the fetch script"
    assert kinds == {"BucketClass", "BucketClaim", "Bucket", "BucketAccessClass", "BucketAccess"}
    assert len(list((ROOT / "charts" / "kubevast-cosi" / "crds").glob("*.yaml"))) == 5


def test_snapshot_crds_and_controller_are_v8() -> None:
    kinds = {load_yaml_docs(p)[0]["spec"]["names"]["kind"] for p in SNAPSHOT_CRDS}
    assert {"VolumeSnapshot", "VolumeSnapshotClass", "VolumeSnapshotContent"} <= kinds
    ctrl = MANIFESTS / "upstream" / "snapshot-controller.yaml"
    docs = load_yaml_docs(ctrl)
    (dep,) = [d for d in docs if d["kind"] == "Deployment"]
    image = dep["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "registry.k8s.io/sig-storage/snapshot-controller:v8.6.0"


def _crd_schemas() -> dict[str, dict[str, Any]]:
    schemas = {}
    for path in COSI_CRDS + SNAPSHOT_CRDS:
        (crd,) = load_yaml_docs(path)
        for v in crd["spec"]["versions"]:
            key = f"{crd['spec']['group']}/{v['name']}/{crd['spec']['names']['kind']}"
            schemas[key] = v["schema"]["openAPIV3Schema"]
    return schemas


def _validate_custom_objects(objs: list[dict[str, Any]]) -> int:
    schemas = _crd_schemas()
    checked = 0
    for o in objs:
        key = f"{o['apiVersion']}/{o['kind']}"
        if key in schemas:
            jsonschema.validate(o, schemas[key])
            checked += 1
    return checked


def test_examples_parse_and_custom_objects_match_the_pinned_crds() -> None:
    objs = [d for p in EXAMPLES for d in load_yaml_docs(p)]
    kinds = {o["kind"] for o in objs}
    assert {"BucketClass", "BucketAccessClass", "BucketClaim", "BucketAccess", "Pod", "StorageClass",
            "PersistentVolumeClaim", "VolumeSnapshot", "VolumeAttributesClass"} <= kinds
    # BucketClass, BucketAccessClass, BucketClaim, BucketAccess and the VolumeSnapshot.
    assert _validate_custom_objects(objs) == 5
    bad = {"apiVersion": "objectstorage.k8s.io/v1alpha1", "kind": "BucketClass",
           "metadata": {"name": "x"}, "deletionPolicy": "Delete", "parameters": {"a": 1}}
    with pytest.raises(jsonschema.ValidationError):
        _validate_custom_objects([bad])


def test_chart_classes_match_the_pinned_crds() -> None:
    objs = render("kubevast-cosi", "charts/kubevast-cosi/ci/full-values.yaml")
    assert _validate_custom_objects(objs) == len(by_kind(objs, "BucketClass")) + len(
        by_kind(objs, "BucketAccessClass"))
    assert _validate_custom_objects(render("kubevast-csi-block")) == 1  # the VolumeSnapshotClass


def _examples(sub: str) -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for p in sorted((MANIFESTS / "examples" / sub).glob("*.yaml")):
        if p.name == "pvc-expand.yaml":  # the same claim again, checked on its own
            continue
        for d in load_yaml_docs(p):
            out[(d["kind"], d["metadata"]["name"])] = d
    return out


def test_block_examples_fit_the_chart_defaults() -> None:
    ex = _examples("block")
    chart = render("kubevast-csi-block")
    classes = {s["metadata"]["name"]: s for s in by_kind(chart, "StorageClass")}
    snap_classes = {s["metadata"]["name"] for s in by_kind(chart, "VolumeSnapshotClass")}
    pvcs = {name: o for (kind, name), o in ex.items() if kind == "PersistentVolumeClaim"}
    for name, pvc in pvcs.items():
        assert pvc["spec"]["storageClassName"] in classes, name
    block = pvcs["kubevast-block-pvc"]
    assert block["spec"]["volumeMode"] == "Block"
    assert "csi.storage.k8s.io/fstype" not in classes[block["spec"]["storageClassName"]].get("parameters", {})
    pod = ex[("Pod", "kubevast-block-user")]
    (c,) = pod["spec"]["containers"]
    assert c["volumeDevices"][0]["devicePath"] == "/dev/xvda" and "volumeMounts" not in c
    assert pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == "kubevast-block-pvc"
    assert pvcs["kubevast-fs-pvc"]["spec"]["volumeMode"] == "Filesystem"
    snap = ex[("VolumeSnapshot", "kubevast-block-snap")]
    assert snap["spec"]["volumeSnapshotClassName"] in snap_classes
    assert snap["spec"]["source"]["persistentVolumeClaimName"] == "kubevast-block-pvc"
    assert pvcs["kubevast-block-restore"]["spec"]["dataSource"] == {
        "apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": "kubevast-block-snap"}
    assert pvcs["kubevast-block-clone"]["spec"]["dataSource"] == {
        "kind": "PersistentVolumeClaim", "name": "kubevast-block-pvc"}
    # The expansion example is the same claim with a larger request.
    expand = yaml.safe_load((MANIFESTS / "examples" / "block" / "pvc-expand.yaml").read_text())
    assert expand["metadata"]["name"] == "kubevast-block-pvc"
    assert expand["spec"]["resources"]["requests"]["storage"] == "2Gi"
    assert block["spec"]["resources"]["requests"]["storage"] == "1Gi"


def test_cosi_examples_fit_the_chart_defaults_and_use_flat_keys() -> None:
    ex = _examples("cosi")
    chart = render("kubevast-cosi")
    bc = {o["metadata"]["name"] for o in by_kind(chart, "BucketClass")}
    bac = {o["metadata"]["name"] for o in by_kind(chart, "BucketAccessClass")}
    claim = ex[("BucketClaim", "kubevast-bucket")]
    assert claim["spec"]["bucketClassName"] in bc and claim["spec"]["protocols"] == ["S3"]
    access = ex[("BucketAccess", "kubevast-bucket-access")]
    assert access["spec"]["bucketAccessClassName"] in bac
    assert access["spec"]["bucketClaimName"] == "kubevast-bucket"
    pod = ex[("Pod", "kubevast-bucket-user")]
    refs = [e["valueFrom"]["secretKeyRef"] for c in pod["spec"]["containers"] for e in c["env"]
            if "valueFrom" in e]
    assert {r["key"] for r in refs} >= {"accessKeyID", "secretAccessKey", "endpoint", "bucketName"}
    assert {r["key"] for r in refs} <= FLAT_KEYS
    assert {r["name"] for r in refs} == {access["spec"]["credentialsSecretName"] + FLAT_SUFFIX}


def _all_rendered(chart: str) -> list[dict[str, Any]]:
    from tests.packaging._helm import values_cases
    return [o for c, v in values_cases() if c == chart for o in render(c, v)]


def test_storage_and_qos_parameters_are_accepted_by_the_block_driver() -> None:
    """The parameters the chart's classes and the examples carry pass the driver's own validation
    (a bad key would otherwise surface only as an Event on every PVC)."""
    from csi_block_driver import params

    objs = _all_rendered("kubevast-csi-block") + [d for p in EXAMPLES for d in load_yaml_docs(p)]
    checked = 0
    for o in objs:
        if o["kind"] == "StorageClass" and o["provisioner"] == "block.csi.vastdata.com":
            params.volume_params(o.get("parameters", {}), {}, default_subsystem="s", default_group="csi")
            checked += 1
        elif o["kind"] == "VolumeAttributesClass":
            params.volume_params({}, o["parameters"], default_subsystem="s", default_group="csi")
            checked += 1
    assert checked >= 8
    from csi_block_driver.errors import InvalidArgument
    with pytest.raises(InvalidArgument, match="qos_policy"):
        params.volume_params({}, {"qos_policy": "gold"}, default_subsystem="s", default_group="csi")


def test_bucket_class_parameters_are_accepted_by_the_cosi_driver() -> None:
    from cosi_driver import params

    objs = _all_rendered("kubevast-cosi") + [d for p in EXAMPLES for d in load_yaml_docs(p)]
    checked = 0
    for o in objs:
        if o["kind"] == "BucketClass":
            params.parse_bucket_params(o.get("parameters", {}))
            checked += 1
        elif o["kind"] == "BucketAccessClass":
            params.parse_access_mode(o.get("parameters", {}))
            checked += 1
    assert checked >= 6
