#!/usr/bin/env python3
"""Benchmark of vms-mock through vms_client (issue 2). Prints a table; it is NOT a test.

Starts its own ``vms-mock`` process (temporary data dir, SQLite, loopback, ephemeral ports), then:

1. create / get / list / delete rates for views and volumes from ONE client in ONE thread;
   1b. create rates from ONE client shared by N threads (``--shared-threads``, default 4 and 8):
   the other reading of "creates/s from one client";
2. list latency p50/p99 with 10,000 volumes and 10,000 views: every page request of a full
   paginated listing (page_size=1000), the whole listing, and single filtered lookups (name=);
3. peak RSS (VmHWM from /proc/<pid>/status) of the server holding 100,000 objects.

Targets (issue 2): >= 500 creates/s from one client; list p99 < 50 ms at 10k objects with
pagination; RSS < 300 MB at 100k objects.

    .venv/bin/python benchmarks/vms_bench.py                  # full run (a few minutes)
    .venv/bin/python benchmarks/vms_bench.py --quick          # smaller counts, for a smoke run
    .venv/bin/python benchmarks/vms_bench.py --rates-only     # phases 1 and 1b only (about a minute)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from vms_client import VmsClient, VmsConfig
from vms_client.models import ViewCreate, VolumeCreate

GIB = 1 << 30
TARGET_CREATES_PER_S = 500.0
TARGET_LIST_P99_MS = 50.0
TARGET_RSS_MB = 300.0


# ---------------------------------------------------------------- server process

def vms_mock_command(override: str | None = None) -> list[str]:
    if override:
        return override.split()
    script = Path(sys.executable).with_name("vms-mock")
    if script.exists():
        return [str(script)]
    found = shutil.which("vms-mock")
    if found:
        return [found]
    return [sys.executable, "-m", "vms_mock"]


@contextlib.contextmanager
def vms_mock_process(data_dir: Path, extra: list[str],
                     command: list[str]) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, Any]]]:
    ready = data_dir.parent / "ready.json"
    log_path = data_dir.parent / "vms-mock.log"
    cmd = [*command, "--data-dir", str(data_dir), "--host", "127.0.0.1",
           "--api-port", "0", "--s3-port", "0", "--nvme-port", "0", "--discovery-port", "0",
           "--ready-file", str(ready), "--log-format", "text", *extra]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while not ready.exists() or ready.stat().st_size == 0:
                if proc.poll() is not None:
                    raise SystemExit(f"vms-mock exited with {proc.returncode}; see {log_path}:\n"
                                     + log_path.read_text()[-3000:])
                if time.monotonic() > deadline:
                    raise SystemExit(f"vms-mock not ready after 60 s; see {log_path}")
                time.sleep(0.05)
            info = json.loads(ready.read_text())
            yield proc, info
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (/proc/<pid>/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """Server and client CPU time spent between start() and per_op(n): a figure that, unlike
    wall-clock rates, does not depend on how busy the shared machine is."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.server0 = self.client0 = 0.0

    def start(self) -> None:
        self.server0, self.client0 = cpu_seconds(self.pid), time.process_time()

    def per_op(self, n: int) -> tuple[float, float]:
        return ((cpu_seconds(self.pid) - self.server0) / n, (time.process_time() - self.client0) / n)


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM of a process, in kB."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


# ---------------------------------------------------------------- measurement helpers

class LatencyRecorder:
    """A vms_client RequestObserver keeping every HTTP attempt's latency per (method, resource)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.samples: dict[tuple[str, str], list[float]] = {}
        self.retries = 0

    def request_done(self, method: str, resource: str, status: str, seconds: float) -> None:
        with self._lock:
            self.samples.setdefault((method, resource), []).append(seconds)

    def retried(self, method: str, resource: str, reason: str) -> None:
        self.retries += 1

    def token_renewed(self) -> None:
        pass

    def take(self, method: str, resource: str) -> list[float]:
        with self._lock:
            return self.samples.pop((method, resource), [])


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


rows: list[tuple[str, str, str, str]] = []


def row(what: str, value: str, target: str = "", verdict: str = "") -> None:
    rows.append((what, value, target, verdict))
    print(f"  {what:<58} {value:>16}  {target:<12} {verdict}", flush=True)


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


# ---------------------------------------------------------------- phases

def crud_rates(client: VmsClient, rec: LatencyRecorder, kind: str, n: int, subsystem_id: int,
               cpu: CpuMeter) -> None:
    res = client.views if kind == "views" else client.volumes

    def make(i: int) -> Any:
        if kind == "views":
            return ViewCreate(path=f"/bench-rate/v{i}", protocols=["NFS"], create_dir=True)
        return VolumeCreate(name=f"/bench-rate/vol{i}", view_id=subsystem_id, size=GIB)

    def cpu_row(what: str) -> None:
        server, own = cpu.per_op(n)
        bound = 1 / (server + own) if server + own > 0 else float("inf")
        row(f"{kind}: {what} CPU per op: server / client", f"{ms(server)} / {ms(own)} ms",
            f"~{bound:.0f}/s", "(CPU-bound ceiling)")

    cpu.start()
    seconds, created = timed(lambda: [res.create(make(i)) for i in range(n)])
    rate = n / seconds
    row(f"{kind}: create x{n} (1 client, 1 thread)", f"{rate:.0f} /s", f">= {TARGET_CREATES_PER_S:.0f}/s",
        verdict(rate >= TARGET_CREATES_PER_S))
    cpu_row("create")
    lat = rec.take("POST", kind)
    row(f"{kind}: create latency p50 / p99", f"{ms(pct(lat, 50))} / {ms(pct(lat, 99))} ms")
    ids = [o.id for o in created]
    cpu.start()
    seconds, _ = timed(lambda: [res.get(i) for i in ids])
    row(f"{kind}: get x{n}", f"{n / seconds:.0f} /s")
    cpu_row("get")
    rec.take("GET", kind)
    seconds, listed = timed(lambda: res.list())
    row(f"{kind}: list all ({len(listed)} objects, paginated)", f"{ms(seconds)} ms")
    rec.take("GET", kind)
    cpu.start()
    seconds, _ = timed(lambda: [res.delete(i) for i in ids])
    row(f"{kind}: delete x{n}", f"{n / seconds:.0f} /s")
    cpu_row("delete")
    rec.take("DELETE", kind)


def shared_create_rate(client: VmsClient, rec: LatencyRecorder, kind: str, n: int, threads: int,
                       subsystem_id: int, cpu: CpuMeter) -> None:
    """Creates/s from ONE VmsClient shared by ``threads`` threads (its requests.Session pool keeps a
    connection per thread): the other reading of "creates/s from one client". The objects are
    deleted again afterwards (not measured) so every run starts from the same object counts."""
    res = client.views if kind == "views" else client.volumes
    prefix = f"bench-shared{threads}"
    rec.take("POST", kind)
    cpu.start()
    seconds = fill(client, kind, 0, n, threads, subsystem_id, prefix)
    rate = n / seconds
    row(f"{kind}: create x{n} (1 client shared by {threads} threads)", f"{rate:.0f} /s",
        f">= {TARGET_CREATES_PER_S:.0f}/s", verdict(rate >= TARGET_CREATES_PER_S))
    server, own = cpu.per_op(n)
    row(f"{kind}: create CPU per op, {threads} threads: server / client", f"{ms(server)} / {ms(own)} ms")
    lat = rec.take("POST", kind)
    row(f"{kind}: create latency p50 / p99, {threads} threads", f"{ms(pct(lat, 50))} / {ms(pct(lat, 99))} ms")
    field = "path" if kind == "views" else "name"
    mine = [o.id for o in res.list() if str(getattr(o, field, "")).startswith(f"/{prefix}/")]
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(res.delete, mine))
    rec.take("DELETE", kind)
    rec.take("GET", kind)


def fill(client: VmsClient, kind: str, start: int, stop: int, threads: int, subsystem_id: int,
         prefix: str) -> float:
    """Create objects [start, stop) with ``threads`` threads sharing the client; returns seconds."""
    res = client.views if kind == "views" else client.volumes

    def one(i: int) -> None:
        if kind == "views":
            res.create(ViewCreate(path=f"/{prefix}/v{i}", protocols=["NFS"], create_dir=True))
        else:
            res.create(VolumeCreate(name=f"/{prefix}/vol{i}", view_id=subsystem_id, size=GIB))

    t0 = time.perf_counter()
    done = 0
    with ThreadPoolExecutor(threads) as pool:
        for _ in pool.map(one, range(start, stop), chunksize=64):
            done += 1
            if done % 10_000 == 0:
                print(f"    ... {kind}: {done}/{stop - start} created", flush=True)
    return time.perf_counter() - t0


def list_latency(client: VmsClient, rec: LatencyRecorder, kind: str, rounds: int, lookups: int,
                 sample_name: Callable[[int], str], total: int, cpu: CpuMeter) -> None:
    res = client.views if kind == "views" else client.volumes
    rec.take("GET", kind)
    full: list[float] = []
    count = 0
    cpu.start()
    for _ in range(rounds):
        seconds, listed = timed(lambda: res.list())
        full.append(seconds)
        count = len(listed)
    pages = rec.take("GET", kind)
    server_cpu, _client_cpu = cpu.per_op(len(pages))
    p99 = pct(pages, 99)
    row(f"{kind}: page GET (page_size=1000) p50 / p99, {count} objects",
        f"{ms(pct(pages, 50))} / {ms(p99)} ms", f"p99 < {TARGET_LIST_P99_MS:.0f} ms",
        verdict(p99 * 1000 < TARGET_LIST_P99_MS))
    row(f"{kind}: server CPU per page of 1000", f"{ms(server_cpu)} ms")
    row(f"{kind}: full paginated list of {count} p50 / p99", f"{ms(pct(full, 50))} / {ms(pct(full, 99))} ms")
    field = "path" if kind == "views" else "name"
    step = max(1, total // lookups)
    cpu.start()
    for i in range(lookups):
        found = res.find_one(**{field: sample_name(i * step % total)})
        assert found is not None
    lat = rec.take("GET", kind)
    row(f"{kind}: filtered lookup ({field}=) p50 / p99", f"{ms(pct(lat, 50))} / {ms(pct(lat, 99))} ms")
    row(f"{kind}: server CPU per filtered lookup", f"{ms(cpu.per_op(lookups)[0])} ms")


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ops", type=int, default=2000, help="objects per create/get/delete rate run")
    ap.add_argument("--list-objects", type=int, default=10_000, help="volumes and views for list latency")
    ap.add_argument("--rss-objects", type=int, default=100_000, help="objects held for the RSS figure")
    ap.add_argument("--fill-threads", type=int, default=4, help="client threads used only to FILL")
    ap.add_argument("--list-rounds", type=int, default=10, help="full listings per kind")
    ap.add_argument("--shared-threads", default="4,8",
                    help="comma-separated thread counts for the shared-client create rates")
    ap.add_argument("--rates-only", action="store_true",
                    help="only phase 1 (create/get/delete rates), no list or RSS phases")
    ap.add_argument("--lookups", type=int, default=300, help="filtered lookups per kind")
    ap.add_argument("--username", default=os.environ.get("VMS_USERNAME", "admin"))
    ap.add_argument("--password", default=os.environ.get("VMS_PASSWORD", "admin"))
    ap.add_argument("--keep", action="store_true", help="keep the data dir")
    ap.add_argument("--quick", action="store_true", help="small counts (smoke run; figures not comparable)")
    ap.add_argument("--server-arg", action="append", default=[], help="extra vms-mock argument")
    ap.add_argument("--vms-mock-cmd", help="command that starts vms-mock (default: the venv's vms-mock)")
    args = ap.parse_args()
    if args.quick:
        args.ops, args.list_objects, args.rss_objects, args.list_rounds, args.lookups = 200, 1500, 4000, 3, 50

    # SIGTERM unwinds like Ctrl-C, so the server is stopped and the data dir removed.
    signal.signal(signal.SIGTERM, _interrupt)
    tmp = Path(tempfile.mkdtemp(prefix="vms-bench-"))
    data_dir = tmp / "data"
    data_dir.mkdir()
    rec = LatencyRecorder()
    print(f"vms-mock data dir: {data_dir}  (python {sys.version.split()[0]}, {os.cpu_count()} cpus, "
          f"load average {os.getloadavg()[0]:.1f})")
    try:
        with vms_mock_process(data_dir, ["--capacity", "1024TiB", *args.server_arg],
                              vms_mock_command(args.vms_mock_cmd)) as (proc, info):
            pid = int(info.get("pid") or proc.pid)
            client = VmsClient(VmsConfig(endpoint=info["api_url"], username=args.username,
                                         password=args.password, ca_bundle=info.get("ca_file") or None,
                                         metrics=False), observer=rec)
            print(f"server pid {pid} at {info['api_url']}; sys_version {client.versions.current()}")
            subsystem = client.views.create(ViewCreate.block_subsystem("bench-subsystem", "/bench-subsystem"))

            print("\n1. rates through vms_client (ONE client, ONE thread, sequential calls)")
            cpu = CpuMeter(pid)
            crud_rates(client, rec, "views", args.ops, subsystem.id, cpu)
            crud_rates(client, rec, "volumes", args.ops, subsystem.id, cpu)
            shared = [int(t) for t in args.shared_threads.split(",") if t.strip()]
            if shared:
                print("\n1b. create rates through ONE VmsClient shared by several threads")
            for threads in shared:
                for kind in ("views", "volumes"):
                    shared_create_rate(client, rec, kind, args.ops, threads, subsystem.id, cpu)

            if not args.rates_only:
                n = args.list_objects
                print(f"\n2. list latency with {n} volumes and {n} views "
                      f"(filled with {args.fill_threads} client threads)")
                for kind in ("volumes", "views"):
                    seconds = fill(client, kind, 0, n, args.fill_threads, subsystem.id, "bench-list")
                    row(f"{kind}: fill {n} ({args.fill_threads} threads, 1 client)", f"{n / seconds:.0f} /s")
                for kind in ("volumes", "views"):
                    rec.take("POST", kind)
                list_latency(client, rec, "volumes", args.list_rounds, args.lookups,
                             lambda i: f"/bench-list/vol{i}", n, cpu)
                list_latency(client, rec, "views", args.list_rounds, args.lookups,
                             lambda i: f"/bench-list/v{i}", n, cpu)

                held = 2 * n + 1
                more = max(0, args.rss_objects - held)
                print(f"\n3. server memory holding {args.rss_objects} objects "
                      f"({n} volumes + {n + 1 + more} views)")
                before = proc_status(pid)
                row("server VmRSS before the fill", f"{before.get('VmRSS', 0) / 1024:.0f} MB")
                seconds = fill(client, "views", n, n + more, args.fill_threads, subsystem.id, "bench-list")
                row(f"views: fill {more} ({args.fill_threads} threads, 1 client)", f"{more / seconds:.0f} /s")
                rec.take("POST", "views")
                seconds, listed = timed(lambda: client.views.list())
                row(f"views: full paginated list of {len(listed)}", f"{ms(seconds)} ms")
                pages = rec.take("GET", "views")
                row(f"views: page GET p50 / p99 at {len(listed)} views",
                    f"{ms(pct(pages, 50))} / {ms(pct(pages, 99))} ms")
                status = proc_status(pid)
                hwm = status.get("VmHWM", 0) / 1024
                row(f"server peak RSS (VmHWM) holding {held + more} objects", f"{hwm:.0f} MB",
                    f"< {TARGET_RSS_MB:.0f} MB", verdict(hwm < TARGET_RSS_MB))
                row("server VmRSS now", f"{status.get('VmRSS', 0) / 1024:.0f} MB")
                db = data_dir / "vms.sqlite3"
                if db.exists():
                    row("vms.sqlite3 size", f"{db.stat().st_size / 1e6:.0f} MB")
            row("client retries during the run", str(rec.retries))
            client.close()
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    print(f"\nload average at the end: {os.getloadavg()[0]:.1f} (2-core machine shared with other work;"
          " wall-clock rates scale with the CPU share the processes got)")
    print("\nsummary")
    print(f"  {'measure':<58} {'value':>16}  {'target':<12} verdict")
    for what, value, target, ok in rows:
        if target:
            print(f"  {what:<58} {value:>16}  {target:<12} {ok}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
