#!/usr/bin/env python3
"""Benchmark of the block CSI driver (issue 3). Prints figures; it is NOT a test.

Starts a real ``vms-mock`` and a real ``csi-block-driver`` (mode all, loop backend; needs root),
then in one run:

1. CreateVolume / DeleteVolume through the driver (gRPC over its unix socket): sequential latency
   p50/p99 and throughput, and throughput with concurrent callers;
2. the SAME VMS calls made directly through ``vms_client`` (create: find by name + POST volume;
   delete: GET + DELETE ?force=true) - the driver's overhead is the ratio (target <= 1.3x);
3. NodeStageVolume + NodePublishVolume latency with the loop backend (block, and ext4 mount
   including mkfs), p50/p99;
4. driver RSS idle and under load (VmRSS sampled during the concurrent phase, and VmHWM).

    sudo .venv/bin/python benchmarks/csi_bench.py            # ~1-2 minutes
    sudo .venv/bin/python benchmarks/csi_bench.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pydantic import SecretStr  # noqa: E402

from csi_block_driver import naming  # noqa: E402
from csi_block_driver.proto import csi_pb2  # noqa: E402
from tests.csi_block.driverproc import SUBSYSTEM, DriverProcess  # noqa: E402
from tests.csi_block.nodekit import block_cap, detach_loops_under, mount_cap, unmount_under  # noqa: E402
from tests.vmsproc import VmsProcess  # noqa: E402
from vms_client import VmsClient, VmsConfig  # noqa: E402

MiB = 1 << 20


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))] * 1000


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def row(label: str, lat: list[float], wall: float) -> str:
    return (
        f"  {label:<34} {len(lat) / wall:8.1f} ops/s   p50 {pct(lat, 50):7.2f} ms   "
        f"p99 {pct(lat, 99):7.2f} ms   (n={len(lat)})"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=200, help="volumes per sequential phase (default 200)")
    ap.add_argument("--concurrency", type=int, default=8, help="callers in the concurrent phase (default 8)")
    ap.add_argument(
        "--stage-count", type=int, default=20, help="volumes staged+published per kind (default 20)"
    )
    ap.add_argument("--quick", action="store_true", help="small counts for a smoke run")
    ns = ap.parse_args()
    if ns.quick:
        ns.count, ns.stage_count = 30, 5
    tmp = Path(tempfile.mkdtemp(prefix="csi-bench-"))
    print(f"csi_bench: vms-mock + csi-block-driver under {tmp}", flush=True)
    vms = VmsProcess(tmp / "vms", s3=False, nvme=False, capacity="4TiB")
    vms.start()
    drv = DriverProcess(tmp / "drv", vms, extra_args=["--log-level", "warning"])
    try:
        drv.start()
        assert drv.proc is not None
        pid = drv.proc.pid
        c, n = drv.controller, drv.node
        c.ControllerGetCapabilities(csi_pb2.ControllerGetCapabilitiesRequest())
        time.sleep(1.0)
        idle_rss = rss_mb(pid)
        size = 16 * MiB

        def create(name: str) -> str:
            return str(
                c.CreateVolume(
                    csi_pb2.CreateVolumeRequest(
                        name=name,
                        capacity_range=csi_pb2.CapacityRange(required_bytes=size),
                        volume_capabilities=[block_cap()],
                    )
                ).volume.volume_id
            )

        def delete(vid: str) -> None:
            c.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=vid))

        for i in range(5):  # warm-up: caches, connections
            delete(create(f"warm-{i}"))

        # 1. through the driver, sequential
        print(
            f"\n[1] through the driver (gRPC -> controller -> vms_client -> vms-mock), {ns.count} volumes",
            flush=True,
        )
        lat_c: list[float] = []
        ids: list[str] = []
        t0 = time.perf_counter()
        for i in range(ns.count):
            t = time.perf_counter()
            ids.append(create(f"bench-{i}"))
            lat_c.append(time.perf_counter() - t)
        wall_c = time.perf_counter() - t0
        t0 = time.perf_counter()
        lat_d = [timed(lambda v=v: delete(v)) for v in ids]  # type: ignore[misc]
        wall_d = time.perf_counter() - t0
        print(row("CreateVolume (sequential)", lat_c, wall_c))
        print(row("DeleteVolume (sequential)", lat_d, wall_d))

        # 2. the same VMS calls directly
        print(
            "\n[2] the same VMS calls directly through vms_client (one client, same process kind)", flush=True
        )
        client = VmsClient(
            VmsConfig(endpoint=vms.api_url, username=vms.username, password=SecretStr(vms.password))
        )
        view = client.views.find_one(name=SUBSYSTEM)
        assert view is not None
        lat_vc: list[float] = []
        vids: list[int] = []
        t0 = time.perf_counter()
        for i in range(ns.count):
            name = naming.volume_path("csi", naming.backend_name("csi", f"direct-{i}"))
            t = time.perf_counter()
            client.volumes.find_one(name=name, view_id=view.id)
            vids.append(client.volumes.create(name=name, view_id=view.id, size=size).id)
            lat_vc.append(time.perf_counter() - t)
        wall_vc = time.perf_counter() - t0
        lat_vd: list[float] = []
        t0 = time.perf_counter()
        for vid_int in vids:
            t = time.perf_counter()
            client.volumes.get(vid_int)
            client.volumes.delete(vid_int, missing_ok=True, force=True)
            lat_vd.append(time.perf_counter() - t)
        wall_vd = time.perf_counter() - t0
        print(row("find + POST volumes/ (direct)", lat_vc, wall_vc))
        print(row("GET + DELETE volumes/ (direct)", lat_vd, wall_vd))
        print(
            f"  driver / direct, p50:  create {pct(lat_c, 50) / pct(lat_vc, 50):.2f}x   "
            f"delete {pct(lat_d, 50) / pct(lat_vd, 50):.2f}x   (target <= 1.3x)"
        )
        print(
            f"  driver / direct, mean: create {statistics.mean(lat_c) / statistics.mean(lat_vc):.2f}x   "
            f"delete {statistics.mean(lat_d) / statistics.mean(lat_vd):.2f}x"
        )

        # 3. concurrent load + RSS under load
        print(
            f"\n[3] concurrent CreateVolume+DeleteVolume through the driver, {ns.concurrency} callers",
            flush=True,
        )
        peak = [0.0]
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], rss_mb(pid))
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        lat_cc: list[float] = []

        def one(i: int) -> None:
            t = time.perf_counter()
            delete(create(f"conc-{i}"))
            lat_cc.append(time.perf_counter() - t)

        t0 = time.perf_counter()
        with ThreadPoolExecutor(ns.concurrency) as pool:
            list(pool.map(one, range(ns.count)))
        wall_cc = time.perf_counter() - t0
        stop.set()
        sampler.join()
        print(row("create+delete pair (concurrent)", lat_cc, wall_cc))

        # 4. node stage + publish with loop
        print(
            f"\n[4] NodeStageVolume + NodePublishVolume, loop backend, {ns.stage_count} volumes per kind",
            flush=True,
        )
        node_id = n.NodeGetInfo(csi_pb2.NodeGetInfoRequest()).node_id
        for kind, cap in (("block", block_cap()), ("mount ext4", mount_cap("ext4"))):
            stage_lat, pub_lat, both = [], [], []
            for i in range(ns.stage_count):
                vid = create(f"node-{kind.split()[0]}-{i}")
                ctx = c.ControllerPublishVolume(
                    csi_pb2.ControllerPublishVolumeRequest(
                        volume_id=vid, node_id=node_id, volume_capability=cap
                    )
                ).publish_context
                staging = str(tmp / "stage" / f"{kind.split()[0]}-{i}")
                target = str(tmp / "pods" / f"{kind.split()[0]}-{i}")
                stage_req = csi_pb2.NodeStageVolumeRequest(
                    volume_id=vid, staging_target_path=staging, volume_capability=cap, publish_context=ctx
                )
                pub_req = csi_pb2.NodePublishVolumeRequest(
                    volume_id=vid,
                    staging_target_path=staging,
                    target_path=target,
                    volume_capability=cap,
                    publish_context=ctx,
                )
                t = time.perf_counter()
                n.NodeStageVolume(stage_req)
                ts = time.perf_counter() - t
                t = time.perf_counter()
                n.NodePublishVolume(pub_req)
                tp = time.perf_counter() - t
                stage_lat.append(ts)
                pub_lat.append(tp)
                both.append(ts + tp)
                n.NodeUnpublishVolume(csi_pb2.NodeUnpublishVolumeRequest(volume_id=vid, target_path=target))
                n.NodeUnstageVolume(
                    csi_pb2.NodeUnstageVolumeRequest(volume_id=vid, staging_target_path=staging)
                )
                c.ControllerUnpublishVolume(
                    csi_pb2.ControllerUnpublishVolumeRequest(volume_id=vid, node_id=node_id)
                )
                delete(vid)
            print(
                f"  {kind:<11} stage p50 {pct(stage_lat, 50):7.2f} ms p99 {pct(stage_lat, 99):7.2f} ms | "
                f"publish p50 {pct(pub_lat, 50):6.2f} ms p99 {pct(pub_lat, 99):6.2f} ms | "
                f"stage+publish p50 {pct(both, 50):7.2f} ms p99 {pct(both, 99):7.2f} ms"
            )

        print("\n[5] driver memory")
        print(
            f"  RSS idle {idle_rss:.1f} MiB   RSS under concurrent load (peak sample) {peak[0]:.1f} MiB   "
            f"VmHWM {rss_mb(pid, 'VmHWM'):.1f} MiB"
        )
    finally:
        drv.stop()
        vms.stop()
        unmount_under(tmp)
        detach_loops_under(tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
