"""The three Helm charts, rendered by the real helm: lint, objects, schema, RBAC, security."""

from __future__ import annotations

import re
import subprocess
from typing import Any

import pytest

from tests.conftest import ROOT, missing
from tests.packaging._helm import (
    CHARTS_DIR,
    NAMESPACE,
    by_kind,
    containers,
    one,
    render,
    run_helm,
    template_args,
    values_cases,
    workloads,
)

CASES = values_cases()
CASE_IDS = [f"{c}:{(v or 'defaults').rsplit('/', 1)[-1]}" for c, v in CASES]

def _tested_versions() -> dict[str, str]:
    """Versions of the upstream components the local control plane builds and CI runs against."""
    out = {}
    for line in (ROOT / "hack" / "tools" / "versions.txt").read_text().splitlines():
        fields = line.split()
        if fields and not fields[0].startswith("#"):
            out[fields[0]] = fields[-1]
    return out


_TESTED = _tested_versions()
# Sidecar images pinned at the versions CI tests against (hack/tools/versions.txt); the registrar
# and livenessprobe cannot be built here (the Go proxy refuses them): their pins come from
# shared/reference/local-control-plane.md.
PINNED_SIDECARS = {
    name: f"registry.k8s.io/sig-storage/{name}:{_TESTED[name]}"
    for name in ("csi-provisioner", "csi-attacher", "csi-resizer", "csi-snapshotter",
                 "objectstorage-sidecar", "objectstorage-controller")
} | {
    "node-driver-registrar": "registry.k8s.io/sig-storage/csi-node-driver-registrar:v2.17.0",
    "liveness-probe": "registry.k8s.io/sig-storage/livenessprobe:v2.19.0",
}


def test_snapshot_controller_manifest_is_the_tested_version() -> None:
    text = (ROOT / "manifests" / "upstream" / "snapshot-controller.yaml").read_text()
    assert f"registry.k8s.io/sig-storage/snapshot-controller:{_TESTED['snapshot-controller']}" in text

EXPECTED_KINDS = {
    "kubevast-csi-block": {"Deployment", "DaemonSet", "CSIDriver", "StorageClass", "VolumeSnapshotClass",
                           "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
                           "Secret", "VolumeAttributesClass"},
    "kubevast-cosi": {"Deployment", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role",
                      "RoleBinding", "Secret", "BucketClass", "BucketAccessClass"},
    "vms-mock": {"StatefulSet", "Service", "Secret", "ConfigMap"},
}
# Kinds every install of the chart must render, whatever the values.
REQUIRED_KINDS = {
    "kubevast-csi-block": {"Deployment", "DaemonSet", "ServiceAccount", "StorageClass"},
    "kubevast-cosi": {"Deployment", "ServiceAccount"},
    "vms-mock": {"StatefulSet", "Service"},
}


@pytest.mark.parametrize(("chart", "values"), CASES, ids=CASE_IDS)
def test_helm_lint_strict_is_clean(chart: str, values: str | None) -> None:
    args = ["lint", "--strict", str(CHARTS_DIR / chart)]
    if values:
        args += ["-f", str(ROOT / values)]
    proc = run_helm(*args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout
    assert "[WARNING]" not in proc.stdout and "[ERROR]" not in proc.stdout, proc.stdout


@pytest.mark.parametrize(("chart", "values"), CASES, ids=CASE_IDS)
def test_every_rendered_object_is_well_formed(chart: str, values: str | None) -> None:
    objs = render(chart, values)
    kinds = {o["kind"] for o in objs}
    assert REQUIRED_KINDS[chart] <= kinds, f"missing {REQUIRED_KINDS[chart] - kinds}"
    assert kinds <= EXPECTED_KINDS[chart], f"unexpected kinds {kinds - EXPECTED_KINDS[chart]}"
    seen: set[tuple[str, str, str]] = set()
    for o in objs:
        assert o.get("apiVersion") and o.get("kind"), o
        meta = o["metadata"]
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", meta["name"]), meta["name"]
        assert len(meta["name"]) <= 253
        assert meta["labels"]["app.kubernetes.io/part-of"] == "kubevast"
        key = (o["kind"], meta.get("namespace", ""), meta["name"])
        assert key not in seen, f"duplicate object {key}"
        seen.add(key)
        if o["kind"] in ("Deployment", "DaemonSet", "StatefulSet", "Service", "Secret", "ServiceAccount",
                         "Role", "RoleBinding", "ConfigMap"):
            assert meta["namespace"] == NAMESPACE, key
    for w in workloads(objs):
        selector = w["spec"]["selector"]["matchLabels"]
        labels = w["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), w["metadata"]["name"]
        for c in containers(w).values():
            image = c["image"]
            assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), f"unpinned {image}"
            if c["name"] in PINNED_SIDECARS:
                assert image == PINNED_SIDECARS[c["name"]]


def _cases_of(chart: str) -> list[str | None]:
    return [v for c, v in CASES if c == chart]


@pytest.mark.parametrize("values", _cases_of("kubevast-csi-block"))
def test_csi_block_controller_and_node(values: str | None) -> None:
    objs = render("kubevast-csi-block", values)
    ctrl = containers(one(objs, "Deployment", "-controller"))
    expected = {"csi-block-driver", "csi-provisioner", "csi-attacher", "csi-resizer", "liveness-probe"}
    assert expected <= set(ctrl)
    driver_args = ctrl["csi-block-driver"]["args"]
    assert driver_args[0] == "csi-block-driver" and "--mode=controller" in driver_args
    assert {"name": "CSI_ENDPOINT", "value": "unix:///csi/csi.sock"} in ctrl["csi-block-driver"]["env"]
    leader = "--leader-election=true"
    for name in ("csi-provisioner", "csi-attacher", "csi-resizer", "csi-snapshotter"):
        if name in ctrl:
            assert "--csi-address=/csi/csi.sock" in ctrl[name]["args"]
            if values is None:
                assert leader in ctrl[name]["args"], name
                assert "--leader-election-namespace=$(POD_NAMESPACE)" in ctrl[name]["args"]

    ds = one(objs, "DaemonSet", "-node")
    node = containers(ds)
    assert {"csi-block-driver", "node-driver-registrar", "liveness-probe"} <= set(node)
    plugin = node["csi-block-driver"]
    assert plugin["securityContext"]["privileged"] is True
    assert plugin["securityContext"]["runAsUser"] == 0
    assert "--mode=node" in plugin["args"]
    mounts = {m["name"]: m for m in plugin["volumeMounts"]}
    assert mounts["kubelet-dir"]["mountPropagation"] == "Bidirectional"
    assert mounts["dev"]["mountPath"] == "/dev"
    assert mounts["nvme-config"]["mountPath"] == "/etc/nvme"
    vols = {v["name"]: v for v in ds["spec"]["template"]["spec"]["volumes"]}
    assert vols["nvme-config"]["hostPath"]["path"] == "/etc/nvme"
    assert vols["registration-dir"]["hostPath"]["path"] == "/var/lib/kubelet/plugins_registry"
    reg_args = node["node-driver-registrar"]["args"]
    assert "--kubelet-registration-path=/var/lib/kubelet/plugins/block.csi.vastdata.com/csi.sock" in reg_args
    # No VMS credentials and no API token on the nodes.
    assert "vms" not in vols
    assert ds["spec"]["template"]["spec"]["automountServiceAccountToken"] is False


def test_csi_block_csidriver_and_classes() -> None:
    objs = render("kubevast-csi-block", "charts/kubevast-csi-block/ci/loop-values.yaml")
    drv = one(objs, "CSIDriver")
    assert drv["metadata"]["name"] == "block.csi.vastdata.com"
    assert drv["spec"] == {"attachRequired": True, "podInfoOnMount": False,
                           "volumeLifecycleModes": ["Persistent"], "fsGroupPolicy": "File",
                           "requiresRepublish": False, "storageCapacity": False}
    scs = {s["metadata"]["name"]: s for s in by_kind(objs, "StorageClass")}
    assert "csi.storage.k8s.io/fstype" not in scs["kubevast-block"].get("parameters", {})
    assert scs["kubevast-block"]["metadata"]["annotations"] == {
        "storageclass.kubernetes.io/is-default-class": "true"}
    assert scs["kubevast-block"]["volumeBindingMode"] == "WaitForFirstConsumer"
    assert scs["kubevast-xfs"]["parameters"]["csi.storage.k8s.io/fstype"] == "xfs"
    assert scs["kubevast-xfs"]["reclaimPolicy"] == "Retain"
    assert all(s["provisioner"] == "block.csi.vastdata.com" for s in scs.values())
    vsc = one(objs, "VolumeSnapshotClass")
    assert vsc["driver"] == "block.csi.vastdata.com" and vsc["deletionPolicy"] == "Retain"
    vacs = {v["metadata"]["name"]: v for v in by_kind(objs, "VolumeAttributesClass")}
    assert set(vacs) == {"kubevast-gold", "kubevast-bronze"}
    assert vacs["kubevast-gold"]["apiVersion"] == "storage.k8s.io/v1"
    assert vacs["kubevast-gold"]["driverName"] == "block.csi.vastdata.com"
    # The loop backend gets its backing directory from the host, by configuration.
    plugin = containers(one(objs, "DaemonSet"))["csi-block-driver"]
    assert "--attach-backend=loop" in plugin["args"]
    assert "--loop-backing-dir=/var/lib/kubevast-backing" in plugin["args"]


def test_csi_block_existing_secret_and_token() -> None:
    objs = render("kubevast-csi-block", "charts/kubevast-csi-block/ci/loop-values.yaml")
    assert not by_kind(objs, "Secret"), "existingSecret given: the chart must not make its own"
    vols = {v["name"]: v for v in one(objs, "Deployment")["spec"]["template"]["spec"]["volumes"]}
    assert vols["vms"]["secret"]["secretName"] == "vms-mock-credentials"

    objs = render("kubevast-csi-block", "charts/kubevast-csi-block/ci/token-values.yaml")
    secret = one(objs, "Secret")
    assert set(secret["stringData"]) == {"endpoint", "api_token", "tenant", "ca.crt"}
    assert not by_kind(objs, "CSIDriver")
    assert "csi-snapshotter" not in containers(one(objs, "Deployment"))
    assert not by_kind(objs, "VolumeSnapshotClass")
    # Without snapshots there is no snapshotter role either.
    assert not [r for r in by_kind(objs, "ClusterRole") if r["metadata"]["name"].endswith("-snapshotter")]


def test_cosi_driver_sidecar_operator_and_classes() -> None:
    objs = render("kubevast-cosi")
    dep = one(objs, "Deployment", "kubevast-cosi")
    c = containers(dep)
    assert set(c) == {"cosi-driver", "objectstorage-sidecar"}
    assert {"name": "COSI_ENDPOINT", "value": "unix:///var/lib/cosi/cosi.sock"} in c["cosi-driver"]["env"]
    assert "--driver-addr=unix:///var/lib/cosi/cosi.sock" in c["objectstorage-sidecar"]["args"]
    # The v0.2.2 sidecar must not start before the driver's socket answers: native sidecar + probe.
    (driver,) = dep["spec"]["template"]["spec"]["initContainers"]
    assert driver["name"] == "cosi-driver" and driver["restartPolicy"] == "Always"
    assert "/var/lib/cosi/cosi.sock" in " ".join(driver["startupProbe"]["exec"]["command"])
    op = one(objs, "Deployment", "-operator")
    assert op["spec"]["replicas"] == 1
    assert op["spec"]["template"]["spec"]["serviceAccountName"] != dep["spec"]["template"]["spec"][
        "serviceAccountName"]
    bc = one(objs, "BucketClass")
    assert bc["driverName"] == "cosi.vastdata.com" and bc["deletionPolicy"] == "Delete"
    assert "spec" not in bc  # v1alpha1 classes keep their fields at the top level
    bac = one(objs, "BucketAccessClass")
    assert bac["authenticationType"] == "Key"
    assert not [o for o in objs if o["metadata"]["name"].endswith("-cosi-controller")]

    full = render("kubevast-cosi", "charts/kubevast-cosi/ci/full-values.yaml", include_crds=True)
    ctrl = one(full, "Deployment", "-cosi-controller")
    image = containers(ctrl)["objectstorage-controller"]["image"]
    assert image == PINNED_SIDECARS["objectstorage-controller"]
    crds = {o["metadata"]["name"] for o in by_kind(full, "CustomResourceDefinition")}
    assert crds == {f"{p}.objectstorage.k8s.io" for p in
                    ("bucketclasses", "bucketclaims", "buckets", "bucketaccessclasses", "bucketaccesses")}

    minimal = render("kubevast-cosi", "charts/kubevast-cosi/ci/minimal-values.yaml")
    assert not [d for d in by_kind(minimal, "Deployment") if d["metadata"]["name"].endswith("-operator")]
    assert not by_kind(minimal, "BucketClass")


def test_vms_mock_statefulset_and_services() -> None:
    objs = render("vms-mock")
    sts = one(objs, "StatefulSet")
    claim = sts["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["resources"]["requests"]["storage"] == "20Gi"
    args = containers(sts)["vms-mock"]["args"]
    assert args[0] == "vms-mock" and "--data-dir=/var/lib/vms-mock" in args and "--host=0.0.0.0" in args
    ports = {p["name"]: p["port"] for s in by_kind(objs, "Service") for p in s["spec"]["ports"]}
    assert ports == {"api": 8080, "s3": 9000, "nvme": 4420, "discovery": 8009}
    secret = one(objs, "Secret")
    assert secret["stringData"]["endpoint"] == "http://vms-mock.kubevast-system.svc:8080"
    # The drivers' default VMS endpoint is this Service.
    for chart in ("kubevast-csi-block", "kubevast-cosi"):
        assert one(render(chart), "Secret")["stringData"]["endpoint"] == secret["stringData"]["endpoint"]

    eph = render("vms-mock", "charts/vms-mock/ci/ephemeral-values.yaml")
    sts = one(eph, "StatefulSet")
    assert "volumeClaimTemplates" not in sts["spec"]
    args = containers(sts)["vms-mock"]["args"]
    assert "--tls" in args and "--seed=/etc/vms-mock/seed.yaml" in args and "--enable-admin" in args
    assert one(eph, "ConfigMap")["data"]["seed.yaml"].startswith("tenants:")


# (chart, --set values, fragment of helm's message that names the bad key)
BAD_VALUES = [
    ("kubevast-csi-block", ["node.attachBackend=iscsi"], r"/node/attachBackend.*one of"),
    ("kubevast-csi-block", ["controller.replicas=-1"], r"/controller/replicas.*minimum"),
    ("kubevast-csi-block", ["controller.timeout=soon"], r"/controller/timeout.*pattern"),
    ("kubevast-csi-block", ["storageClasses[0].fsType=btrfs"], r"/storageClasses/0/fsType.*one of"),
    ("kubevast-csi-block", ["storageClasses[0].fsType=ext4"], r"/storageClasses/0.*missing propert.*name"),
    ("kubevast-csi-block", ["csiDriver.fsGroupPolicy=Always"], r"/csiDriver/fsGroupPolicy.*one of"),
    ("kubevast-csi-block", ["node.kubeletDir=var/lib/kubelet"], r"/node/kubeletDir.*pattern"),
    ("kubevast-csi-block", ["vms.endpoint=ftp://vms"], r"/vms/endpoint.*pattern"),
    ("kubevast-csi-block", ["controller.metricsPort=70000"], r"/controller/metricsPort.*maximum"),
    ("kubevast-csi-block", ["contoller.replicas=2"], r"additional propert.*contoller"),
    ("kubevast-csi-block", ["volumeAttributesClasses[0].name=gold"],
     r"/volumeAttributesClasses/0.*parameters"),
    ("kubevast-cosi", ["bucketClasses[0].name=x", "bucketClasses[0].deletionPolicy=delete"],
     r"/bucketClasses/0/deletionPolicy.*one of"),
    ("kubevast-cosi", ["bucketAccessClasses[0].name=x", "bucketAccessClasses[0].authenticationType=Token"],
     r"/bucketAccessClasses/0/authenticationType.*one of"),
    ("kubevast-cosi", ["operator.orphanPolicy=purge"], r"/operator/orphanPolicy.*one of"),
    ("kubevast-cosi", ["replicas=0"], r"/replicas.*minimum"),
    ("kubevast-cosi", ["driverName=COSI_Driver"], r"/driverName.*pattern"),
    ("kubevast-cosi", ["s3.addressingStyle=host"], r"/s3/addressingStyle.*one of"),
    ("vms-mock", ["persistence.size=-5Gi"], r"/persistence/size.*pattern"),
    ("vms-mock", ["capacity=lots"], r"/capacity.*pattern"),
    ("vms-mock", ["ports.nvme=0"], r"/ports/nvme.*minimum"),
    ("vms-mock", ["service.type=ExternalName"], r"/service/type.*one of"),
    ("vms-mock", ["image.repository="], r"/image/repository.*(minLength|length)"),
]


@pytest.mark.parametrize(("chart", "sets", "message"), BAD_VALUES,
                         ids=[f"{c}:{s[-1]}" for c, s, _ in BAD_VALUES])
def test_schema_refuses_bad_values_naming_the_key(chart: str, sets: list[str], message: str) -> None:
    proc = run_helm(*template_args(chart, sets=sets))
    assert proc.returncode != 0, f"helm accepted {sets}"
    assert "values don't meet the specifications of the schema" in proc.stderr, proc.stderr
    assert re.search(message, proc.stderr), proc.stderr


# Cross-field rules the chart enforces with `fail` (JSON Schema cannot phrase them clearly).
BAD_COMBINATIONS = [
    ("kubevast-csi-block", ["node.attachBackend=loop"], "node.loopBackingDir is required"),
    ("kubevast-csi-block", ["vms.endpoint="], "vms.endpoint is required unless vms.existingSecret"),
    ("kubevast-csi-block", ["vms.password="], "set vms.username and vms.password, or vms.apiToken"),
    ("kubevast-csi-block", ["storageClasses[0].name=a", "storageClasses[0].default=true",
                            "storageClasses[1].name=b", "storageClasses[1].default=true"],
     "at most one StorageClass may set default: true"),
    ("kubevast-cosi", ["vms.username=", "vms.apiToken="],
     "set vms.username and vms.password, or vms.apiToken"),
]


@pytest.mark.parametrize(("chart", "sets", "message"), BAD_COMBINATIONS,
                         ids=[f"{c}:{s[-1]}" for c, s, _ in BAD_COMBINATIONS])
def test_chart_refuses_inconsistent_values(chart: str, sets: list[str], message: str) -> None:
    proc = run_helm(*template_args(chart, sets=sets))
    assert proc.returncode != 0, f"helm accepted {sets}"
    assert message in proc.stderr, proc.stderr


FORBIDDEN_VERBS = {"*", "escalate", "bind", "impersonate"}


def _rules(objs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    return {f"{o['kind']}/{o['metadata']['name']}": o.get("rules", [])
            for o in objs if o["kind"] in ("ClusterRole", "Role")}


@pytest.mark.parametrize(("chart", "values"), CASES, ids=CASE_IDS)
def test_rbac_is_least_privilege(chart: str, values: str | None) -> None:
    objs = render(chart, values)
    roles = _rules(objs)
    for role, rules in roles.items():
        for rule in rules:
            assert "*" not in rule.get("apiGroups", []), role
            assert "*" not in rule["resources"], role
            assert not FORBIDDEN_VERBS & set(rule["verbs"]), f"{role}: {rule['verbs']}"
            assert "nonResourceURLs" not in rule, role
            # Nothing may touch RBAC itself or pods/exec.
            assert not {"roles", "clusterroles", "rolebindings", "clusterrolebindings", "pods/exec",
                        "serviceaccounts/token"} & set(rule["resources"]), role
    # Every binding points at a role of this release and a service account of this release.
    sa_names = {o["metadata"]["name"] for o in by_kind(objs, "ServiceAccount")}
    for b in by_kind(objs, "ClusterRoleBinding") + by_kind(objs, "RoleBinding"):
        kind = "ClusterRole" if b["roleRef"]["kind"] == "ClusterRole" else "Role"
        assert f"{kind}/{b['roleRef']['name']}" in roles, b["metadata"]["name"]
        for s in b["subjects"]:
            assert s["kind"] == "ServiceAccount" and s["name"] in sa_names and s["namespace"] == NAMESPACE

    secret_roles = {r for r, rules in roles.items() for rule in rules if "secrets" in rule["resources"]}
    if chart == "kubevast-csi-block":
        # The block driver needs no Secret access at all (its VMS credentials are a mounted volume).
        assert not secret_roles
        node_sa = one(objs, "DaemonSet")["spec"]["template"]["spec"]["serviceAccountName"]
        bound = {s["name"] for b in by_kind(objs, "ClusterRoleBinding") + by_kind(objs, "RoleBinding")
                 for s in b["subjects"]}
        assert node_sa not in bound, "the node plugin must hold no Kubernetes permissions"
        for role, rules in roles.items():
            for rule in rules:
                if "persistentvolumeclaims" in rule["resources"]:
                    assert "delete" not in rule["verbs"], role
    if chart == "kubevast-cosi":
        # Cluster-wide Secret access: the sidecar (writes the credentials Secret) and the operator
        # (projects flat keys); the driver's key store only in its own namespace.
        for role in secret_roles:
            assert role.endswith(("-sidecar", "-operator", "-key-store")), role
            if role.endswith("-key-store"):
                assert role.startswith("Role/")
        sidecar = roles[next(r for r in roles if r.endswith("-sidecar"))]
        secret_verbs = {v for rule in sidecar if "secrets" in rule["resources"] for v in rule["verbs"]}
        assert "list" not in secret_verbs and "watch" not in secret_verbs
    if chart == "vms-mock":
        assert not roles


@pytest.mark.parametrize(("chart", "values"), CASES, ids=CASE_IDS)
def test_only_the_node_plugin_runs_as_root(chart: str, values: str | None) -> None:
    for w in workloads(render(chart, values)):
        pod = w["spec"]["template"]["spec"]
        node_plugin = w["kind"] == "DaemonSet"
        for name, c in containers(w).items():
            sc = c.get("securityContext", {})
            if node_plugin and name == "csi-block-driver":
                continue
            if sc.get("runAsUser") == 0:
                # Only vms-mock's init container that hands a fresh hostPath to the emulator user.
                assert (chart, name) == ("vms-mock", "chown-data"), f"{w['metadata']['name']}/{name}"
                assert sc["capabilities"]["add"] == ["CHOWN"]
            else:
                assert "add" not in sc.get("capabilities", {}), f"{w['metadata']['name']}/{name}"
            assert not sc.get("privileged"), f"{w['metadata']['name']}/{name}"
            assert sc.get("allowPrivilegeEscalation") is False, f"{w['metadata']['name']}/{name}"
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], f"{w['metadata']['name']}/{name}"
            if not node_plugin:
                assert pod["securityContext"]["runAsNonRoot"] is True
                assert pod["securityContext"]["runAsUser"] != 0


_HELP: dict[tuple[str, ...], str] = {}


def _help_of(command: tuple[str, ...]) -> str:
    """`<command> --help` of the real entry point installed in the project's virtualenv."""
    if command not in _HELP:
        exe = ROOT / ".venv" / "bin" / command[0]
        if not exe.exists():
            missing(f"entry point {command[0]}", "install the project (`make setup`)")
        proc = subprocess.run([str(exe), *command[1:], "--help"], capture_output=True, text=True,
                              timeout=60, check=False)
        if proc.returncode != 0:
            pytest.fail(f"{' '.join(command)} --help failed:\n{proc.stderr[-2000:]}")
        _HELP[command] = proc.stdout
    return _HELP[command]


@pytest.mark.parametrize(("chart", "values"), CASES, ids=CASE_IDS)
def test_charts_pass_only_flags_the_commands_accept(chart: str, values: str | None) -> None:
    """Every --flag a chart gives a kubevast container appears in that command's real --help."""
    checked = 0
    for w in workloads(render(chart, values)):
        for name, c in containers(w).items():
            args = c.get("args", [])
            if not args or args[0] not in {"vms-mock", "cosi-driver", "csi-block-driver"}:
                continue
            command = tuple(args[:2]) if len(args) > 1 and not args[1].startswith("-") else (args[0],)
            help_text = _help_of(command)
            for arg in args[len(command):]:
                flag = arg.split("=", 1)[0]
                assert flag.startswith("--"), f"{name}: positional argument {arg!r}"
                assert re.search(rf"(^|[\s\[,]){re.escape(flag)}([\s=\],]|$)", help_text, re.M), (
                    f"{w['metadata']['name']}/{name}: {' '.join(command)} has no {flag}")
            checked += 1
    assert checked, "no kubevast container found"
