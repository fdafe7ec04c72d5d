#!/usr/bin/env python3
"""Benchmark of provisioning through real Kubernetes (issue 7). Prints figures; it is NOT a test.

On the local control plane (hack/cluster: etcd + kube-apiserver + kube-controller-manager +
kube-scheduler from bin/), in ONE run:

1. kubevast block: vms-mock + csi-block-driver (controller mode) behind the real csi-provisioner;
   N Block PVCs (Immediate binding) created at once -> all Bound;
2. the same N PVCs through kubernetes-csi's host-path driver (bin/hostpathplugin, controller+node in
   one process, temp state dir) behind the same csi-provisioner binary and flags -> ratio
   kubevast/hostpath (target <= 1.5x). Skipped with the reason when bin/hostpathplugin is absent;
3. COSI: vms-mock + cosi-driver behind the real COSI v0.2.2 objectstorage-controller + -sidecar;
   N BucketClaims + N BucketAccesses created at once -> all bucketReady / accessGranted.

Per object: time from just before its create call to the watch event that shows it done (Bound /
bucketReady / accessGranted). Wall: first create to last done.

    .venv/bin/python benchmarks/k8s_provisioning_bench.py                 # N=100, own control plane
    .venv/bin/python benchmarks/k8s_provisioning_bench.py --count 10 --skip-cosi
    .venv/bin/python benchmarks/k8s_provisioning_bench.py --skip-cosi \
        --provisioner-arg=--kube-api-qps=50 --provisioner-arg=--kube-api-burst=100
    source _data/cluster/env && .venv/bin/python benchmarks/k8s_provisioning_bench.py   # reuse one
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import BIN  # noqa: E402
from tests.cosi.driverproc import DriverProcess as CosiDriver  # noqa: E402
from tests.csi_block.driverproc import DriverProcess as BlockDriver  # noqa: E402
from tests.e2e.cluster import HACK, KubeCluster, wait_until  # noqa: E402
from tests.e2e.conftest import _local_control_plane  # noqa: E402
from tests.vmsproc import VmsProcess  # noqa: E402

BLOCK_DRIVER = "block.csi.vastdata.com"
HOSTPATH_DRIVER = "hostpath.csi.k8s.io"
COSI_DRIVER = "cosi.vastdata.com"
COSI_KEY_NS = "kubevast-cosi-bench"
HOSTPATH_WHY_MISSING = (
    "bin/hostpathplugin is not built: the Go module proxy answers 403 'This module version is not "
    "available' for github.com/kubernetes-csi/csi-driver-host-path (the version list and every "
    "v1.x tried), so it cannot be built here"
)
# Provisioner flags shared by both CSI drivers (sidecar.sh adds --csi-address, --kubeconfig,
# --leader-election=false, --v=4); its client defaults (--kube-api-qps=5, --kube-api-burst=10) are kept
# unless --provisioner-arg overrides them.
PROVISIONER_ARGS = ["--timeout=60s"]
CREATE_WORKERS = 8


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def load_average() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


# ---- the cluster ------------------------------------------------------------------------------------

@contextlib.contextmanager
def cluster() -> Iterator[KubeCluster]:
    """$KUBECONFIG of a hack/cluster run dir (after `source DIR/env`), else a fresh local control plane."""
    if os.environ.get("KUBECONFIG"):
        run_dir = os.environ.get("KUBEVAST_CLUSTER_DIR")
        if not run_dir:
            raise SystemExit("the sidecars run as local processes: $KUBECONFIG must come with "
                             "$KUBEVAST_CLUSTER_DIR (source <run dir>/env of hack/cluster/up.sh)")
        yield KubeCluster(
            kubeconfig=Path(os.environ["KUBECONFIG"]), kubectl_path=str(BIN / "kubectl"),
            node_name=os.environ.get("KUBEVAST_NODE_NAME"), run_dir=Path(run_dir),
            env={k: v for k, v in os.environ.items() if k.startswith("KUBEVAST_") or k == "KUBECONFIG"},
        )
        return
    say("starting a local control plane (hack/cluster/up.sh --no-build)")
    with contextlib.ExitStack() as stack:
        # A signal during up.sh would leave a half-started control plane that nothing tears down: it
        # is held until the run dir is known (and down.sh registered), then raised.
        with signals_deferred():
            kube = stack.enter_context(contextlib.contextmanager(_local_control_plane)())
        yield kube


_deferring = False
_pending_signal: int | None = None


def interrupted(signum: int, _frame: object) -> None:
    """SIGTERM (and SIGINT, which a shell's background job ignores) unwind through every finally, so a
    killed run still stops its sidecars, drivers, vms-mock and control plane."""
    global _pending_signal
    if _deferring:
        _pending_signal = signum
        return
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    global _deferring
    _deferring = True
    try:
        yield
    finally:
        _deferring = False
    if _pending_signal is not None:
        raise KeyboardInterrupt(f"signal {_pending_signal}")


def hack(kube: KubeCluster, *args: str, extra_env: dict[str, str] | None = None) -> None:
    env = {**os.environ, **kube.env, **(extra_env or {})}
    proc = subprocess.run([str(HACK / args[0]), *args[1:]], env=env, capture_output=True, text=True,
                          timeout=180)
    if proc.returncode != 0:
        raise RuntimeError(f"hack/cluster/{' '.join(args)}: {proc.stderr or proc.stdout}")


@contextlib.contextmanager
def sidecar(kube: KubeCluster, tool: str, name: str, socket: Path | str | None, args: list[str],
            extra_env: dict[str, str] | None = None) -> Iterator[None]:
    where = ["--socket", str(socket)] if socket is not None else []
    hack(kube, "sidecar.sh", "start", tool, "--name", name, *where, "--", *args, extra_env=extra_env)
    try:
        yield
    finally:
        subprocess.run([str(HACK / "sidecar.sh"), "stop", name], env={**os.environ, **kube.env},
                       capture_output=True, timeout=60)


# ---- timing objects to done through a watch ---------------------------------------------------------

class DoneWatch:
    """Watches a list call in a thread and records when each named object is first seen done."""

    def __init__(self, list_fn: Callable[..., Any], is_done: Callable[[Any], bool],
                 **list_kwargs: Any) -> None:
        self.list_fn, self.is_done, self.list_kwargs = list_fn, is_done, list_kwargs
        self.done: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.error: Exception | None = None

    def start(self) -> DoneWatch:
        self._thread.start()
        return self

    def _run(self) -> None:
        from kubernetes import watch

        while not self._stop.is_set():
            try:
                # The kubernetes client's typed objects differ (PVC model vs dict): is_done gets either.
                for event in watch.Watch().stream(self.list_fn, timeout_seconds=30, **self.list_kwargs):
                    now = time.monotonic()
                    obj = event["object"]
                    name = obj["metadata"]["name"] if isinstance(obj, dict) else obj.metadata.name
                    if name not in self.done and self.is_done(obj):
                        self.done[name] = now
                    if self._stop.is_set():
                        return
            except Exception as exc:  # a dropped watch is restarted; the list replays current state
                self.error = exc
                time.sleep(0.2)

    def stop(self) -> None:
        self._stop.set()


def create_all(what: str, names: list[str], create: Callable[[str], None]) -> dict[str, float]:
    """Create every object from a small pool (like a burst of `kubectl apply`); when each create began."""
    submitted: dict[str, float] = {}

    def one(name: str) -> None:
        submitted[name] = time.monotonic()
        create(name)

    start = time.monotonic()
    with ThreadPoolExecutor(CREATE_WORKERS) as pool:
        list(pool.map(one, names))
    say(f"{what}: {len(names)} created in {time.monotonic() - start:.2f}s; waiting")
    return submitted


def wait_all(what: str, submitted: dict[str, float], watch: DoneWatch,
             timeout: float) -> tuple[float, list[float]]:
    """Wait until ``watch`` saw every object done, with progress; returns the wall time (first create to
    last done) and the per-object latencies in seconds."""
    start = min(submitted.values())
    deadline = time.monotonic() + timeout
    last_report = 0.0
    while True:
        done = sum(1 for n in submitted if n in watch.done)
        now = time.monotonic()
        if done == len(submitted):
            break
        if now > deadline:
            raise TimeoutError(f"{what}: only {done}/{len(submitted)} done after {timeout:.0f}s"
                               + (f" (last watch error: {watch.error})" if watch.error else ""))
        if now - last_report >= 5:
            say(f"{what}: {done}/{len(submitted)} done after {now - start:.1f}s")
            last_report = now
        time.sleep(0.1)
    wall = max(watch.done[n] for n in submitted) - start
    return wall, [watch.done[n] - t for n, t in submitted.items()]


def report(label: str, wall: float, samples: list[float]) -> dict[str, float]:
    out = {"wall": wall, "p50": pct(samples, 0.5), "p99": pct(samples, 0.99)}
    print(f"  {label:<34} wall {wall:7.2f} s   per object p50 {out['p50']:6.2f} s   p99 {out['p99']:6.2f} s"
          f"   ({len(samples) / wall:.1f} /s)", flush=True)
    return out


# ---- block PVCs -------------------------------------------------------------------------------------

def pvc_phase(kube: KubeCluster, label: str, driver: str, socket: Path, count: int,
              timeout: float) -> dict[str, float]:
    """N Block PVCs of a fresh StorageClass of ``driver`` (already serving on ``socket``) -> all Bound."""
    from kubernetes import client

    core = client.CoreV1Api(kube.api_client())
    tag = uuid.uuid4().hex[:6]
    sc = f"bench-{label}-{tag}"
    kube.apply(f"""
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {{name: {sc}}}
provisioner: {driver}
volumeBindingMode: Immediate
reclaimPolicy: Delete
""")
    names = [f"pvc-{i:04d}" for i in range(count)]
    with sidecar(kube, "csi-provisioner", f"bench-prov-{label}-{tag}", socket, PROVISIONER_ARGS), \
            kube.namespace(f"bench-{label}") as ns:
        watch = DoneWatch(core.list_namespaced_persistent_volume_claim,
                          lambda pvc: pvc.status is not None and pvc.status.phase == "Bound",
                          namespace=ns).start()
        try:
            def create(name: str) -> None:
                body: Any = {
                    "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                    "metadata": {"name": name},
                    "spec": {"storageClassName": sc, "volumeMode": "Block", "accessModes": ["ReadWriteOnce"],
                             "resources": {"requests": {"storage": "1Gi"}}},
                }
                core.create_namespaced_persistent_volume_claim(ns, body)

            submitted = create_all(f"{label} PVCs", names, create)
            wall, samples = wait_all(f"{label} PVCs", submitted, watch, timeout)
        finally:
            watch.stop()
        out = report(f"{label}: {count} Block PVCs -> Bound", wall, samples)
        # Delete while the provisioner still runs, so no PV (or backend volume) is left behind.
        t0 = time.monotonic()
        core.delete_collection_namespaced_persistent_volume_claim(ns)

        def pvs_left() -> int:
            return sum(1 for pv in core.list_persistent_volume().items
                       if pv.spec is not None and pv.spec.storage_class_name == sc)

        try:
            wait_until(f"PVs of {sc} deleted", lambda: pvs_left() == 0, timeout=timeout)
            say(f"{label}: {count} PVCs deleted and their PVs gone in {time.monotonic() - t0:.1f}s")
        except TimeoutError as exc:
            say(f"WARNING {label}: {exc} ({pvs_left()} left)")
    kube.kubectl("delete", "storageclass", sc, check=False)
    return out


def kubevast_block(kube: KubeCluster, work: Path, count: int, timeout: float) -> dict[str, float]:
    with VmsProcess(work / "vms-block", s3=False, capacity="1024TiB") as vms:
        # AF_UNIX paths are short: the driver's socket lives in a short /tmp directory
        driver = BlockDriver(Path(tempfile.mkdtemp(prefix="kvb-", dir="/tmp")), vms, mode="controller")
        driver.start()
        try:
            kube.apply(f"""
apiVersion: storage.k8s.io/v1
kind: CSIDriver
metadata: {{name: {BLOCK_DRIVER}}}
spec: {{attachRequired: true, podInfoOnMount: false, volumeLifecycleModes: [Persistent]}}
""")
            return pvc_phase(kube, "kubevast", BLOCK_DRIVER, driver.socket, count, timeout)
        finally:
            driver.stop()


def hostpath_block(kube: KubeCluster, work: Path, count: int, timeout: float) -> dict[str, float] | None:
    plugin = BIN / "hostpathplugin"
    if not plugin.is_file():
        say(f"host-path baseline SKIPPED: {HOSTPATH_WHY_MISSING}")
        return None
    sock_dir = Path(tempfile.mkdtemp(prefix="hp-", dir="/tmp"))
    socket = sock_dir / "csi.sock"
    state = work / "hostpath-state"
    state.mkdir()
    log = open(work / "hostpathplugin.log", "wb")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen([str(plugin), f"--endpoint=unix://{socket}", f"--drivername={HOSTPATH_DRIVER}",
                             f"--nodeid={kube.node_name or 'bench-node'}", f"--statedir={state}",
                             "--maxvolumespernode=100000", "--v=2"], stdout=log, stderr=log)
    log.close()
    try:
        wait_until("hostpathplugin socket", lambda: socket.exists() or proc.poll() is not None, timeout=30)
        if proc.poll() is not None:
            raise RuntimeError(f"hostpathplugin exited with {proc.returncode}: see {work}/hostpathplugin.log")
        return pvc_phase(kube, "hostpath", HOSTPATH_DRIVER, socket, count, timeout)
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


# ---- COSI -------------------------------------------------------------------------------------------

def cosi(kube: KubeCluster, work: Path, count: int, timeout: float) -> dict[str, dict[str, float]]:
    from kubernetes import client

    custom = client.CustomObjectsApi(kube.api_client())
    group = "objectstorage.k8s.io"
    kube.kubectl("apply", "--server-side", "-f", str(ROOT / "charts" / "kubevast-cosi" / "crds"))
    for crd in ("buckets", "bucketclaims", "bucketaccesses", "bucketclasses", "bucketaccessclasses"):
        kube.kubectl("wait", "--for=condition=Established", f"crd/{crd}.{group}", "--timeout=60s")
    kube.kubectl("create", "namespace", COSI_KEY_NS, check=False)
    tag = uuid.uuid4().hex[:6]
    cosi_env = {"POD_NAMESPACE": COSI_KEY_NS}
    with VmsProcess(work / "vms-cosi", nvme=False, capacity="1024TiB") as vms:
        driver = CosiDriver(vms, work / "cosi-driver",
                            extra_args=["--key-store", "kubernetes", "--namespace", COSI_KEY_NS],
                            extra_env={"KUBECONFIG": str(kube.kubeconfig)}).start()
        try:
            # the v1alpha1 sidecar does not reconnect: the driver is up before it starts
            with sidecar(kube, "objectstorage-controller", f"bench-cosi-ctrl-{tag}", None, [], cosi_env), \
                    sidecar(kube, "objectstorage-sidecar", f"bench-cosi-side-{tag}", driver.endpoint, [],
                            cosi_env):
                return cosi_objects(kube, custom, tag, count, timeout)
        finally:
            driver.stop()


def cosi_objects(kube: KubeCluster, custom: Any, tag: str, count: int,
                 timeout: float) -> dict[str, dict[str, float]]:
    group, version = "objectstorage.k8s.io", "v1alpha1"
    bucket_class, access_class = f"bench-{tag}", f"bench-rw-{tag}"
    kube.apply(f"""
apiVersion: {group}/{version}
kind: BucketClass
metadata: {{name: {bucket_class}}}
driverName: {COSI_DRIVER}
deletionPolicy: Delete
parameters: {{quota: 1Gi}}
---
apiVersion: {group}/{version}
kind: BucketAccessClass
metadata: {{name: {access_class}}}
driverName: {COSI_DRIVER}
authenticationType: Key
parameters: {{accessMode: ReadWrite}}
""")
    out: dict[str, dict[str, float]] = {}
    with kube.namespace("bench-cosi") as ns:
        claims = DoneWatch(custom.list_namespaced_custom_object,
                           lambda o: bool(o.get("status", {}).get("bucketReady")),
                           group=group, version=version, namespace=ns, plural="bucketclaims").start()
        accesses = DoneWatch(custom.list_namespaced_custom_object,
                             lambda o: bool(o.get("status", {}).get("accessGranted")),
                             group=group, version=version, namespace=ns, plural="bucketaccesses").start()
        names = [f"b-{i:04d}" for i in range(count)]

        def create(name: str) -> None:
            custom.create_namespaced_custom_object(group, version, ns, "bucketclaims", {
                "apiVersion": f"{group}/{version}", "kind": "BucketClaim", "metadata": {"name": name},
                "spec": {"bucketClassName": bucket_class, "protocols": ["S3"]}})
            custom.create_namespaced_custom_object(group, version, ns, "bucketaccesses", {
                "apiVersion": f"{group}/{version}", "kind": "BucketAccess", "metadata": {"name": name},
                "spec": {"bucketClaimName": name, "bucketAccessClassName": access_class,
                         "credentialsSecretName": f"{name}-creds", "protocol": "S3"}})

        try:
            # Each claim and its access are created together; both are timed from the claim's create
            # (the access cannot be granted before its bucket exists).
            submitted = create_all("BucketClaims + BucketAccesses", names, create)
            wall_claims, claim_samples = wait_all("BucketClaims", submitted, claims, timeout)
            wall_all, access_samples = wait_all("BucketAccesses", submitted, accesses, timeout)
        finally:
            claims.stop()
            accesses.stop()
        out["claims"] = report(f"COSI: {count} BucketClaims -> bucketReady", wall_claims, claim_samples)
        out["accesses"] = report(f"COSI: {count} BucketAccesses -> granted", wall_all, access_samples)
        # Revoke and delete while the sidecar runs, so no user or view is left on the platform.
        t0 = time.monotonic()
        for plural in ("bucketaccesses", "bucketclaims"):
            kube.kubectl("delete", plural, "--all", "-n", ns, "--wait=false", check=False)

        def ours() -> list[str]:
            items = custom.list_cluster_custom_object(group, version, "buckets")["items"]
            return [b["metadata"]["name"] for b in items
                    if b.get("spec", {}).get("bucketClassName") == bucket_class]

        try:
            wait_until("Buckets deleted after their claims", lambda: not ours(), timeout=min(timeout, 90))
            say(f"COSI: {count} accesses + claims deleted, Buckets gone in {time.monotonic() - t0:.1f}s")
        except TimeoutError:
            # Seen with COSI v0.2.2 here: a claim whose finalizer the controller failed to add is deleted at
            # once and its Bucket stays. Deleting the Bucket makes the sidecar delete it on the platform.
            left = ours()
            say(f"WARNING COSI: {len(left)} Buckets outlived their claims after 90s; deleting them directly")
            if left:
                kube.kubectl("delete", "bucket", *left, "--wait=false", check=False)
            try:
                wait_until("leftover Buckets deleted", lambda: not ours(), timeout=min(timeout, 120))
            except TimeoutError:
                say(f"WARNING COSI: {len(ours())} Buckets still present")
    kube.kubectl("delete", "bucketclass", bucket_class, check=False)
    kube.kubectl("delete", "bucketaccessclass", access_class, check=False)
    return out


# ---- main -------------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=100, help="objects per phase (default 100)")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="seconds each phase may take to reach all done (default 600)")
    parser.add_argument("--skip-hostpath", action="store_true", help="no host-path baseline")
    parser.add_argument("--skip-cosi", action="store_true", help="no BucketClaim/BucketAccess phase")
    parser.add_argument("--provisioner-arg", action="append", default=[], metavar="ARG",
                        help="extra csi-provisioner flag for both CSI drivers, repeatable "
                             "(e.g. --provisioner-arg=--kube-api-qps=50)")
    args = parser.parse_args()
    if args.count < 1:
        parser.error("--count must be at least 1")
    for tool in ("kubectl", "csi-provisioner", *(() if args.skip_cosi else
                                                  ("objectstorage-controller", "objectstorage-sidecar"))):
        if not (BIN / tool).is_file():
            parser.error(f"bin/{tool} is missing: run hack/tools/build.sh {tool}")

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    PROVISIONER_ARGS.extend(args.provisioner_arg)
    say(f"N={args.count}, csi-provisioner flags {PROVISIONER_ARGS}, load average {load_average()}")
    work = Path(tempfile.mkdtemp(prefix="k8s-bench-"))
    results: dict[str, Any] = {}
    with cluster() as kube:
        results["kubevast"] = kubevast_block(kube, work, args.count, args.timeout)
        say(f"load average {load_average()}")
        if not args.skip_hostpath:
            results["hostpath"] = hostpath_block(kube, work, args.count, args.timeout)
            say(f"load average {load_average()}")
        if not args.skip_cosi:
            results["cosi"] = cosi(kube, work, args.count, args.timeout)
            say(f"load average {load_average()}")

    print(f"\nSummary (N={args.count}, load average at end {load_average()}, logs in {work}):")
    kv = results["kubevast"]
    print(f"  kubevast block PVCs -> Bound    wall {kv['wall']:.2f} s, p50 {kv['p50']:.2f} s, "
          f"p99 {kv['p99']:.2f} s")
    hp = results.get("hostpath")
    if hp:
        ratio = kv["wall"] / hp["wall"]
        print(f"  host-path PVCs -> Bound         wall {hp['wall']:.2f} s, p50 {hp['p50']:.2f} s, "
              f"p99 {hp['p99']:.2f} s")
        verdict = "met" if ratio <= 1.5 else "MISSED"
        print(f"  ratio kubevast/host-path (wall) {ratio:.2f}x (target <= 1.5x: {verdict})")
    elif not args.skip_hostpath:
        print(f"  host-path baseline: not run ({HOSTPATH_WHY_MISSING})")
    if "cosi" in results:
        c = results["cosi"]
        print(f"  COSI claims -> bucketReady      wall {c['claims']['wall']:.2f} s, "
              f"p50 {c['claims']['p50']:.2f} s, "
              f"p99 {c['claims']['p99']:.2f} s")
        print(f"  COSI accesses -> granted        wall {c['accesses']['wall']:.2f} s, "
              f"p50 {c['accesses']['p50']:.2f} s, p99 {c['accesses']['p99']:.2f} s")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt as exc:  # every finally has run by now: the cleanup is done
        print(f"interrupted ({exc or 'SIGINT'}); what the run started is stopped", file=sys.stderr)
        sys.exit(130)
