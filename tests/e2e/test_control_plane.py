"""Smoke tests of the Kubernetes API the e2e suite runs on: reachable, storing objects, a Ready Node the
scheduler uses, and `kubectl apply` (which needs the server's OpenAPI) working."""

from __future__ import annotations

import json

import pytest

from tests.e2e.cluster import KubeCluster, wait_until

pytestmark = [pytest.mark.e2e]


def test_api_reachable_and_version(kube_cluster: KubeCluster) -> None:
    version = json.loads(kube_cluster.kubectl("get", "--raw", "/version").stdout)
    assert version["major"] == "1"
    if kube_cluster.local:
        assert version["gitVersion"] == "v1.36.2"
    assert kube_cluster.kubectl("get", "--raw", "/readyz").stdout.strip() == "ok"


def test_namespace_and_configmap_round_trip(kube_cluster: KubeCluster) -> None:
    with kube_cluster.namespace("smoke") as ns:
        kube_cluster.kubectl("-n", ns, "create", "configmap", "round-trip",
                             "--from-literal=greeting=hello", "--from-literal=n=42")
        cm = kube_cluster.get_json("-n", ns, "configmap", "round-trip")
        assert cm["data"] == {"greeting": "hello", "n": "42"}
        kube_cluster.kubectl("-n", ns, "patch", "configmap", "round-trip", "--type=merge",
                             "-p", '{"data": {"greeting": "bye"}}')
        assert kube_cluster.get_json("-n", ns, "configmap", "round-trip")["data"]["greeting"] == "bye"
        kube_cluster.kubectl("-n", ns, "delete", "configmap", "round-trip")
        gone = kube_cluster.kubectl("-n", ns, "get", "configmap", "round-trip", check=False)
        assert gone.returncode != 0 and "NotFound" in gone.stderr


def test_node_registered_ready_and_untainted(kube_cluster: KubeCluster) -> None:
    if not kube_cluster.node_name:
        pytest.skip("KUBEVAST_NODE_NAME not set for this cluster")
    node = kube_cluster.get_json("node", kube_cluster.node_name)
    ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
    assert ready and ready[0]["status"] == "True"
    taints = node["spec"].get("taints") or []
    assert not [t for t in taints if t["key"].startswith("node.kubernetes.io/")], taints
    assert int(node["status"]["allocatable"]["pods"]) > 0


def test_kubectl_apply_uses_openapi(kube_cluster: KubeCluster) -> None:
    """Client-side apply validates against the server's OpenAPI; server-side apply uses field managers."""
    with kube_cluster.namespace("apply") as ns:
        manifest = f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: applied, namespace: {ns}}}
data: {{version: "1"}}
"""
        out = kube_cluster.apply(manifest)
        assert "configmap/applied created" in out
        assert "configmap/applied configured" in kube_cluster.apply(manifest.replace('"1"', '"2"'))
        assert "serverside-applied" in kube_cluster.apply(manifest.replace('"1"', '"3"'), "--server-side",
                                                          "--force-conflicts")
        assert kube_cluster.get_json("-n", ns, "configmap", "applied")["data"]["version"] == "3"
        # A field the schema does not know is refused by strict validation: proof OpenAPI is served.
        unknown_field = f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: misspelt, namespace: {ns}}}
dataa: {{version: "1"}}
"""
        bad = kube_cluster.kubectl("apply", "--validate=strict", "-f", "-", check=False, input=unknown_field)
        assert bad.returncode != 0 and "dataa" in bad.stderr, bad.stderr
        explain = kube_cluster.kubectl("explain", "configmap.data")
        assert "FIELD: data" in explain.stdout


def test_pod_is_scheduled_onto_the_registered_node(kube_cluster: KubeCluster) -> None:
    """kube-controller-manager creates the namespace's service account; kube-scheduler binds the pod."""
    if not kube_cluster.local:
        pytest.skip("only the kubelet-less local control plane guarantees the single registered node")
    with kube_cluster.namespace("sched") as ns:
        wait_until("default service account", lambda: kube_cluster.kubectl(
            "-n", ns, "get", "serviceaccount", "default", check=False).returncode == 0, timeout=60)
        kube_cluster.apply(f"""
apiVersion: v1
kind: Pod
metadata: {{name: sleeper, namespace: {ns}}}
spec:
  containers: [{{name: c, image: registry.invalid/none:0, command: ["sleep", "3600"]}}]
""")
        node = wait_until("pod bound to a node", lambda: kube_cluster.get_json(
            "-n", ns, "pod", "sleeper")["spec"].get("nodeName"), timeout=60)
        assert node == kube_cluster.node_name


def test_csinode_registration(kube_cluster: KubeCluster) -> None:
    if not kube_cluster.local:
        pytest.skip("CSINode objects are written by the kubelet on a real cluster")
    kube_cluster.register_csinode("smoke.kubevast.io", "node-id-1", ["topology.kubevast.io/zone"])
    kube_cluster.register_csinode("other.kubevast.io", "node-id-2")
    kube_cluster.register_csinode("smoke.kubevast.io", "node-id-3")  # re-registration replaces the entry
    csinode = kube_cluster.get_json("csinode", kube_cluster.node_name)
    drivers = {d["name"]: d for d in csinode["spec"]["drivers"]}
    assert drivers["smoke.kubevast.io"]["nodeID"] == "node-id-3"
    assert drivers["other.kubevast.io"]["nodeID"] == "node-id-2"
