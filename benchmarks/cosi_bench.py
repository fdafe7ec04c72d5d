#!/usr/bin/env python3
"""Benchmark of the COSI driver (issue 4). Prints figures; it is NOT a test.

Starts its own vms-mock (REST + S3, loopback, ephemeral ports) and cosi-driver (real unix socket,
file key store), then in ONE run:

1. Create / Grant / Revoke / Delete one at a time through the driver (gRPC v1alpha1) and the
   same effects made with the minimal raw VMS calls through vms_client (view; user + policy +
   attach + key; keys + user + policy; view + quota), side by side: ops/s, p50, p99, ratio
   (target: driver <= 1.3x raw);
2. end to end: N buckets + N accesses through gRPC with a pool of concurrent callers (what a busy
   sidecar does), then all revoked and deleted, with the wall time of each phase.

    .venv/bin/python benchmarks/cosi_bench.py               # N=200
    .venv/bin/python benchmarks/cosi_bench.py --count 50    # quicker
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cosi_driver import naming, s3probe  # noqa: E402
from cosi_driver.policy import policy_document  # noqa: E402
from cosi_driver.proto import cosi_v1alpha1_pb2 as pb  # noqa: E402
from tests.cosi.driverproc import DriverProcess  # noqa: E402
from tests.vmsproc import VmsProcess  # noqa: E402
from vms_client import VmsClient, VmsConfig  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def row(label: str, samples: list[float]) -> dict[str, float]:
    total = sum(samples)
    out = {
        "ops": len(samples) / total if total else 0.0,
        "p50": pct(samples, 0.5) * 1000,
        "p99": pct(samples, 0.99) * 1000,
        "mean": statistics.mean(samples) * 1000,
    }
    print(f"  {label:<28} {out['ops']:8.1f} ops/s   p50 {out['p50']:7.2f} ms   p99 {out['p99']:7.2f} ms")
    return out


def raw_ops(
    client: VmsClient, owner: str, s3_url: str, owner_key: tuple[str, str]
) -> dict[str, Callable[[str], Any]]:
    """The minimal VMS calls that make the same platform effects as each driver RPC."""
    state: dict[str, Any] = {}
    probe_times: list[float] = []

    def create(name: str) -> None:
        bucket = naming.verbatim_or_hashed_bucket(name)
        view = client.views.create(
            {
                "path": f"/raw/{bucket}",
                "create_dir": True,
                "bucket": bucket,
                "bucket_owner": owner,
                "protocols": ["S3"],
            }
        )
        state[name] = view

    def grant(name: str) -> None:
        bucket = naming.verbatim_or_hashed_bucket(name)
        user = client.users.create({"name": f"raw-{naming.digest(name)[:20]}"})
        pol = client.s3policies.create(
            {"name": f"rawp-{naming.digest(name)[:20]}", "policy": policy_document([(bucket, "ReadWrite")])}
        )
        client.users.update(user.id, s3_policies_ids=[pol.id])
        pair = client.users.create_access_key(user.id)
        state["u" + name] = (user, pol, pair.access_key)

    def revoke(name: str) -> None:
        user, pol, key = state.pop("u" + name)
        client.users.delete_access_key(user.id, key)
        client.users.delete(user.id)
        client.s3policies.delete(pol.id)

    def delete(name: str) -> None:
        view = state.pop(name)
        # the driver refuses to delete a non-empty bucket; the same S3 listing, timed apart
        probe_times.append(
            timed(lambda: s3probe.bucket_has_objects(s3_url, view.bucket, *owner_key, "us-east-1"))
        )
        client.views.delete(view.id)
        client.folders.delete_folder(view.path)

    ops: dict[str, Any] = {"create": create, "grant": grant, "revoke": revoke, "delete": delete}
    ops["probe_times"] = probe_times
    return ops


def driver_ops(driver: DriverProcess) -> dict[str, Callable[[str], Any]]:
    state: dict[str, str] = {}
    stub = driver.v1()

    def create(name: str) -> None:
        state[name] = stub.DriverCreateBucket(pb.DriverCreateBucketRequest(name=name), timeout=60).bucket_id

    def grant(name: str) -> None:
        resp = stub.DriverGrantBucketAccess(
            pb.DriverGrantBucketAccessRequest(
                bucket_id=state[name], name=f"ba-{name}", authentication_type=pb.AuthenticationType.Key
            ),
            timeout=60,
        )
        state["a" + name] = resp.account_id

    def revoke(name: str) -> None:
        stub.DriverRevokeBucketAccess(
            pb.DriverRevokeBucketAccessRequest(bucket_id=state[name], account_id=state.pop("a" + name)),
            timeout=60,
        )

    def delete(name: str) -> None:
        stub.DriverDeleteBucket(pb.DriverDeleteBucketRequest(bucket_id=state.pop(name)), timeout=60)

    return {"create": create, "grant": grant, "revoke": revoke, "delete": delete}


def sequential(ops: dict[str, Callable[[str], Any]], names: list[str]) -> dict[str, list[float]]:
    """Each phase over all names, one call at a time (latency without queueing)."""
    out: dict[str, list[float]] = {}
    for phase in ("create", "grant", "revoke", "delete"):
        call = ops[phase]
        out[phase] = [timed(lambda n=n, call=call: call(n)) for n in names]  # type: ignore[misc]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=200, help="buckets and accesses per phase (default 200)")
    parser.add_argument("--compare-count", type=int, default=100, help="operations per side-by-side phase")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent gRPC callers end to end")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="cosi-bench-"))
    print(f"cosi_bench: state in {tmp}")
    with VmsProcess(tmp / "vms", nvme=False) as vms, DriverProcess(vms, tmp / "driver") as driver:
        client = VmsClient(VmsConfig(endpoint=vms.api_url, username=vms.username, password=vms.password))
        owner = "raw-bench-owner"
        owner_user = client.users.create({"name": owner})
        pair = client.users.create_access_key(owner_user.id)
        owner_key = (pair.access_key, pair.secret_key.get_secret_value())
        s3_url = vms.s3_url or ""
        run = uuid.uuid4().hex[:8]
        n = args.compare_count

        # warm both paths (token, connection pools, driver caches)
        sequential(
            raw_ops(client, owner, s3_url, owner_key), [f"bucket-warm-raw-{run}-{i}" for i in range(3)]
        )
        sequential(driver_ops(driver), [f"bucket-warm-drv-{run}-{i}" for i in range(3)])

        ident = driver.v1_identity()
        rtt = [timed(lambda: ident.DriverGetInfo(pb.DriverGetInfoRequest())) for _ in range(200)]
        load = os.getloadavg()[0]
        print(f"\n0. context: load average {load:.1f} on {os.cpu_count()} CPUs; bare gRPC round trip "
              f"(DriverGetInfo) p50 {pct(rtt, 0.5) * 1000:.2f} ms, p99 {pct(rtt, 0.99) * 1000:.2f} ms")
        print(f"\n1. one call at a time, {n} operations per phase (ops/s, latency)")
        raw_calls = raw_ops(client, owner, s3_url, owner_key)
        raw = sequential(raw_calls, [f"bucket-raw-{run}-{i}" for i in range(n)])
        probes = raw_calls["probe_times"]  # type: ignore[index]
        raw["delete"] = [t - p for t, p in zip(raw["delete"], probes, strict=True)]
        checked = [t + p for t, p in zip(raw["delete"], probes, strict=True)]
        drv = sequential(driver_ops(driver), [f"bucket-drv-{run}-{i}" for i in range(n)])
        ratios = {}
        for phase in ("create", "grant", "revoke", "delete"):
            print(f" {phase}")
            r = row("raw VMS calls (vms_client)", raw[phase])
            d = row("through cosi-driver (gRPC)", drv[phase])
            ratios[phase] = d["mean"] / r["mean"]
            print(f"  {'driver / raw (mean latency)':<28} {ratios[phase]:8.2f}x   (target <= 1.30x)")
            if phase == "delete":
                c = row("raw + S3 emptiness listing", checked)
                ratios["delete-vs-checked"] = d["mean"] / c["mean"]
                print(f"  {'driver / raw+listing':<28} {ratios['delete-vs-checked']:8.2f}x")

        count, workers = args.count, args.concurrency
        print(
            f"\n2. end to end through gRPC: {count} buckets + {count} accesses, {workers} concurrent callers"
        )
        ops = driver_ops(driver)
        names = [f"bucket-e2e-{run}-{i}" for i in range(count)]
        for phase in ("create", "grant", "revoke", "delete"):
            with ThreadPoolExecutor(workers) as pool:
                start = time.perf_counter()
                lat = list(pool.map(lambda nm, ph=phase: timed(lambda: ops[ph](nm)), names))
                wall = time.perf_counter() - start
            p50, p99 = pct(lat, 0.5) * 1000, pct(lat, 0.99) * 1000
            print(
                f"  {phase:<8} {count / wall:8.1f} ops/s   wall {wall:6.2f} s"
                f"   p50 {p50:7.2f} ms   p99 {p99:7.2f} ms"
            )
        leftovers = [u.name for u in client.users.iter() if u.name and naming.is_owned_user(u.name)]
        views = [v.bucket for v in client.views.iter() if v.bucket and naming.is_owned_bucket(v.bucket)]
        print(f"  left on the platform after revoke+delete: {len(leftovers)} users, {len(views)} buckets")
        print(
            "\nsummary: driver/raw mean-latency ratio "
            + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items())
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
