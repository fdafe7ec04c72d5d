"""Handle on the Kubernetes API the e2e suite runs against.

Either the local control plane of ``hack/cluster/up.sh`` (started and stopped by the session fixture in
``conftest.py``) or any cluster named by ``$KUBECONFIG``. Everything goes through the kubeconfig, so the
same tests run on kind (``hack/e2e-kind.sh``).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
HACK = ROOT / "hack" / "cluster"


class KubectlError(RuntimeError):
    """kubectl exited non-zero; the message carries its stderr."""


@dataclass
class KubeCluster:
    kubeconfig: Path
    kubectl_path: str
    node_name: str | None = None
    # Set when this session runs the local control plane (hack/cluster); None for $KUBECONFIG.
    run_dir: Path | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def local(self) -> bool:
        return self.run_dir is not None

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [self.kubectl_path, "--kubeconfig", str(self.kubeconfig), *args],
            input=input, capture_output=True, text=True, timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise KubectlError(f"kubectl {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc

    def get_json(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def apply(self, manifest: str, *extra: str) -> str:
        return self.kubectl("apply", "-f", "-", *extra, input=manifest).stdout

    def api_client(self) -> Any:
        """A ``kubernetes`` Python ApiClient for this cluster."""
        from kubernetes import config  # imported lazily: slow import, only some tests need it

        return config.new_client_from_config(config_file=str(self.kubeconfig))

    @contextmanager
    def namespace(self, prefix: str = "e2e") -> Iterator[str]:
        """A fresh namespace, deleted (without waiting) afterwards."""
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.kubectl("create", "namespace", name)
        try:
            yield name
        finally:
            self.kubectl("delete", "namespace", name, "--wait=false", check=False)

    def register_csinode(self, driver: str, node_id: str, topology_keys: list[str] | None = None,
                         node: str | None = None) -> None:
        """What node-driver-registrar + kubelet would do: put ``driver`` on the node's CSINode."""
        if not self.local:
            raise RuntimeError("register_csinode is for the kubelet-less local control plane only")
        node = node or self.node_name
        assert node, "no node name"
        self._hack("node.sh", "csinode", node, driver, node_id, *(topology_keys or []))

    def _hack(self, script: str, *args: str) -> str:
        env = {**os.environ, **self.env}
        proc = subprocess.run([str(HACK / script), *args], capture_output=True, text=True, env=env,
                              timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"hack/cluster/{script} {' '.join(args)} failed: {proc.stderr or proc.stdout}")
        return proc.stdout


def wait_until(what: str, probe: Callable[[], Any], timeout: float = 60, interval: float = 0.5) -> Any:
    """Poll ``probe`` until it returns something truthy; raise with ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = probe()
            if value:
                return value
        except Exception as exc:  # a transient API error is retried like a falsy answer
            last_error = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}"
                       + (f" (last error: {last_error})" if last_error else ""))


def read_env_file(path: Path) -> dict[str, str]:
    """Parse the ``export K=V`` lines that hack/cluster/up.sh writes."""
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("export ") and "=" in line:
            key, _, value = line[len("export "):].partition("=")
            env[key] = value
    return env
