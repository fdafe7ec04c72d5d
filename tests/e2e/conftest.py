"""Session fixture for the e2e suite: a Kubernetes API to run against.

With ``$KUBECONFIG`` set, that cluster is used as it is (kind, or a control plane you started with
``hack/cluster/up.sh``). Otherwise the session brings up its own local control plane (etcd,
kube-apiserver, kube-controller-manager, kube-scheduler from bin/) in a temporary run dir with
``hack/cluster/up.sh`` and tears it down with ``hack/cluster/down.sh --purge`` at the end.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import BIN, missing, require_tool
from tests.e2e.cluster import HACK, KubeCluster, read_env_file

HOW = "run `make tools` (hack/tools/build.sh builds the control plane into bin/)"


def _local_control_plane() -> Iterator[KubeCluster]:
    for tool in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"):
        require_tool(tool, HOW)
    if shutil.which("etcd") is None:
        missing("etcd", "install Debian etcd-server (hack/setup.sh does it)")
    run_dir = Path(tempfile.mkdtemp(prefix="kubevast-cluster-"))
    env = {**os.environ, "KUBEVAST_CLUSTER_DIR": str(run_dir)}
    up = subprocess.run([str(HACK / "up.sh"), "--no-build"], env=env, capture_output=True, text=True,
                        timeout=240)
    try:
        if up.returncode != 0:
            pytest.fail(f"hack/cluster/up.sh failed:\n{up.stdout}\n{up.stderr}", pytrace=False)
        cluster_env = read_env_file(run_dir / "env")
        yield KubeCluster(
            kubeconfig=Path(cluster_env["KUBECONFIG"]),
            kubectl_path=str(BIN / "kubectl"),
            node_name=cluster_env["KUBEVAST_NODE_NAME"],
            run_dir=run_dir,
            env=cluster_env,
        )
    finally:
        subprocess.run([str(HACK / "down.sh"), "--purge"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def kube_cluster() -> Iterator[KubeCluster]:
    kubeconfig = os.environ.get("KUBECONFIG")
    if kubeconfig:
        yield KubeCluster(
            kubeconfig=Path(kubeconfig),
            kubectl_path=require_tool("kubectl", HOW),
            node_name=os.environ.get("KUBEVAST_NODE_NAME"),
            # A control plane of hack/cluster/up.sh (after `source <dir>/env`) keeps its kubelet-less helpers.
            run_dir=Path(run_dir) if (run_dir := os.environ.get("KUBEVAST_CLUSTER_DIR")) else None,
            env={k: v for k, v in os.environ.items() if k.startswith("KUBEVAST_") or k == "KUBECONFIG"},
        )
        return
    yield from _local_control_plane()
