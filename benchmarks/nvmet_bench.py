"""NVMe/TCP target throughput next to the backing file it serves (prints a table; asserts nothing).

Runs, on one backing file in --dir (same disk for every row):
  * "file O_DIRECT": threads doing O_DIRECT pread/pwrite on the file (the disk's limit),
  * "file buffered": threads doing pread/pwrite through the page cache + fsync at the end,
  * "nvmet": the project's initiator over loopback TCP to the target running as its own process
    (`python -m vms_mock.nvmet`), N I/O queues, fixed queue depth; writes end with a Flush.
The target itself does buffered I/O and fsyncs on Flush/FUA, so "file buffered" is its fair
ceiling and "file O_DIRECT" the device's. Page cache of the file is dropped before read runs.
"target MiB/s per CPU-s" divides the bytes the target moved by the CPU time its process used: the
rate it sustains with a whole core to itself (the machine may be shared and busy).
"loop lag p99" is how late a 50 ms timer fired on the target's event loop during the nvmet runs
(from its vms_mock_nvmet_loop_lag_seconds histogram): data I/O must not stall the loop.

    .venv/bin/python benchmarks/nvmet_bench.py [--dir /var/tmp] [--size-mib 512] [--seconds 3] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import mmap
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vms_mock.nvmet.initiator import Initiator  # noqa: E402

SUBNQN = "nqn.2024-01.com.vastdata:bench"
HOSTNQN = "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-00000000be0c"
MiB = 1 << 20
LABELS = ("file O_DIRECT", "file buffered", "nvmet")


def drop_cache(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def offsets(kind: str, bs: int, size: int, count: int, seed: int) -> list[int]:
    if kind == "seq":
        return [(i * bs) % size for i in range(count)]
    rng = random.Random(seed)
    return [rng.randrange(size // bs) * bs for _ in range(count)]


# --- backing file baselines -------------------------------------------------------------------
def file_run(path: str, op: str, kind: str, bs: int, size: int, seconds: float, qd: int,
             direct: bool) -> tuple[int, float]:
    """(bytes moved, elapsed) with `qd` threads each keeping one I/O in flight."""
    flags = os.O_RDWR | (os.O_DIRECT if direct else 0)
    fd = os.open(path, flags)
    total = [0]
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds
    limit = size // bs if kind == "seq" else 1 << 62

    def worker(n: int) -> None:
        buf = mmap.mmap(-1, bs)  # page aligned, as O_DIRECT needs
        buf.write(os.urandom(bs))
        offs = offsets(kind, bs, size, min(limit, 1 << 16), seed=n)
        i = n
        done = 0
        while time.perf_counter() < stop_at:
            if kind == "seq" and i >= limit:
                break
            off = offs[i % len(offs)] if kind != "seq" else i * bs
            if op == "read":
                os.preadv(fd, [buf], off)
            else:
                os.pwritev(fd, [buf], off)
            done += bs
            i += qd
        with lock:
            total[0] += done

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(qd)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if op == "write":
        os.fsync(fd)
    elapsed = time.perf_counter() - t0
    os.close(fd)
    return total[0], elapsed


# --- through the target -----------------------------------------------------------------------
async def nvmet_run(port: int, op: str, kind: str, bs: int, size: int, seconds: float, qd: int,
                    queues: int) -> tuple[int, float]:
    c = await Initiator.connect("127.0.0.1", port, SUBNQN, HOSTNQN, io_queues=queues, queue_size=64,
                                kato_ms=30000)
    try:
        data = os.urandom(bs)
        nlb = bs // 512
        limit = size // bs if kind == "seq" else 1 << 62
        offs = offsets(kind, bs, size, 1 << 16, seed=7)
        total = 0
        counter = iter(range(1 << 62))
        stop_at = time.perf_counter() + seconds

        async def worker(w: int) -> None:
            nonlocal total
            qid = w % queues + 1
            while time.perf_counter() < stop_at:
                i = next(counter)
                if kind == "seq" and i >= limit:
                    return
                off = i * bs if kind == "seq" else offs[i % len(offs)]
                if op == "read":
                    r = await c.read(1, off // 512, nlb, qid=qid)
                else:
                    r = await c.write(1, off // 512, data, qid=qid)
                r.check(op)
                total += bs

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(n) for n in range(qd)))
        if op == "write":
            (await c.flush(1)).check("flush")
        return total, time.perf_counter() - t0
    finally:
        await c.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def lag_histogram(metrics_port: int) -> dict[float, float]:
    """Cumulative bucket counts of the target's event loop lag histogram (le -> count)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
    out = {}
    for m in re.finditer(r'^vms_mock_nvmet_loop_lag_seconds_bucket\{le="([^"]+)"\} (\S+)$', text, re.M):
        out[float(m.group(1))] = float(m.group(2))
    return out


def lag_p99(before: dict[float, float], after: dict[float, float]) -> str:
    """Upper bound of the p99 loop lag between two scrapes (histogram bucket resolution)."""
    delta = {le: after[le] - before.get(le, 0) for le in after}
    total = delta.get(float("inf"), 0)
    if not total:
        return "-"
    for le in sorted(delta):
        if delta[le] >= 0.99 * total:
            return "<=%gms" % (le * 1000) if le != float("inf") else ">1s"
    return "?"


def start_target(tmp: Path, backing: Path, size: int) -> tuple[subprocess.Popen[bytes], int, int]:
    cfg = {"subsystems": [{"nqn": SUBNQN, "namespaces": [{
        "nsid": 1, "nguid": uuid.uuid4().hex, "uuid": str(uuid.uuid4()), "size": size,
        "backing_path": str(backing), "hosts": [HOSTNQN]}]}]}
    (tmp / "cfg.json").write_text(json.dumps(cfg))
    ready = tmp / "ready.json"
    proc = subprocess.Popen([sys.executable, "-m", "vms_mock.nvmet", "--config", str(tmp / "cfg.json"),
                             "--io-port", "0", "--discovery-port", "0", "--ready-file", str(ready),
                             "--metrics-address", "127.0.0.1:0", "--log-level", "warning"], cwd=ROOT)
    deadline = time.monotonic() + 30
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("target did not start")
        time.sleep(0.05)
    info = json.loads(ready.read_text())
    return proc, int(info["io_port"]), int(info["metrics_port"])


KERNEL_SCRIPT = r"""#!/bin/sh
timeout 90 nvme connect -t tcp -a 10.0.2.2 -s 4420 -n @SUBNQN@ -q @HOSTNQN@ -k 30 || exit 1
i=0; dev=
while [ $i -lt 100 ] && [ -z "$dev" ]; do
  for d in /sys/block/nvme*n*; do
    case "$(basename "$d")" in nvme*c*n*) ;; *) [ -e "$d" ] && dev=$(basename "$d");; esac
  done
  sleep 0.2; i=$((i+1))
done
mdev -s
echo "KVBENCH device $dev"
for op in write read; do
  t0=$(cut -d' ' -f1 /proc/uptime)
  if [ $op = write ]; then
    dd if=/dev/zero of=/dev/$dev bs=1M count=@MIB@ oflag=direct 2>&1
  else
    dd if=/dev/$dev of=/dev/null bs=1M count=@MIB@ iflag=direct 2>&1
  fi
  t1=$(cut -d' ' -f1 /proc/uptime)
  echo "KVBENCH seq$op $(awk "BEGIN {print $t1 - $t0}")"
done
nvme disconnect -n @SUBNQN@
"""


def kernel_run(size_mib: int, workdir: Path) -> dict[str, float]:
    """Sequential 1 MiB O_DIRECT dd in Debian's kernel (qemu TCG) through the target: MiB/s by op."""
    from tests.nvmet.kernel_guest import (
        build_guest_image,
        make_initrd,
        netns,
        run_guest,
        start_target,
        write_config,
    )

    image = build_guest_image()
    backing = workdir / "kvol.img"
    with open(backing, "wb") as f:
        f.truncate(size_mib * MiB)
    config = workdir / "ktarget.json"
    write_config(config, SUBNQN, HOSTNQN, backing, size_mib * MiB, uuid.uuid4().hex, str(uuid.uuid4()))
    script = (KERNEL_SCRIPT.replace("@SUBNQN@", SUBNQN).replace("@HOSTNQN@", HOSTNQN)
              .replace("@MIB@", str(size_mib)))
    with netns() as ns:
        target = start_target(ns, config, workdir)
        try:
            lines = run_guest(ns, image, make_initrd(image, script, workdir / "kinitrd.img"), timeout=900)
        finally:
            target.terminate()
            target.wait(10)
    out = {}
    for line in lines:
        m = re.match(r"KVBENCH seq(write|read) ([0-9.]+)$", line)
        if m and float(m.group(2)) > 0:
            out[m.group(1)] = size_mib / float(m.group(2))
    if len(out) != 2:
        print("kernel run failed; console tail:\n" + "\n".join(lines[-40:]))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", default="/var/tmp", help="directory for the backing file (its disk is measured)")
    p.add_argument("--size-mib", type=int, default=512, help="backing file size")
    p.add_argument("--seconds", type=float, default=3, help="time limit of each run")
    p.add_argument("--repeat", type=int, default=3, help="runs per cell; the table shows the median")
    p.add_argument("--qd", type=int, default=32, help="I/Os in flight (threads for the file rows)")
    p.add_argument("--queues", type=int, default=2, help="NVMe I/O queues (TCP connections)")
    p.add_argument("--kernel", action="store_true",
                   help="also run sequential dd from Debian's kernel initiator in qemu (TCG; root, netns)")
    p.add_argument("--kernel-mib", type=int, default=128, help="MiB the guest writes and reads")
    args = p.parse_args()
    size = args.size_mib * MiB
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="nvmet-bench-") as tmpdir:
        tmp = Path(tmpdir)
        backing = tmp / "vol.img"
        with open(backing, "wb") as f:  # fully written, so reads hit the disk, not holes
            chunk = os.urandom(MiB)
            for _ in range(args.size_mib):
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        proc, port, metrics_port = start_target(tmp, backing, size)
        rows = []
        try:
            cases = [("seq", "write", MiB, 8), ("seq", "read", MiB, 8),
                     ("rand", "write", 4096, args.qd), ("rand", "read", 4096, args.qd)]
            for kind, op, bs, qd in cases:
                runs: dict[str, list[float]] = {k: [] for k in LABELS}
                lag_before = lag_histogram(metrics_port)
                target_cpu = 0.0
                target_bytes = 0
                for rep in range(args.repeat):  # interleaved, so load swings hit every row alike
                    for label in LABELS:
                        drop_cache(str(backing))
                        if label == "nvmet":
                            cpu0 = cpu_seconds(proc.pid)
                            moved, el = asyncio.run(nvmet_run(port, op, kind, bs, size, args.seconds, qd,
                                                              args.queues))
                            target_cpu += cpu_seconds(proc.pid) - cpu0
                            target_bytes += moved
                        else:
                            moved, el = file_run(str(backing), op, kind, bs, size, args.seconds, qd,
                                                 direct=label == "file O_DIRECT")
                        runs[label].append(moved / MiB / el)
                        print(f"  run {rep + 1}/{args.repeat} {kind:4} {op:5} {bs // 1024:5d}KiB qd={qd:<3} "
                              f"{label:14} {runs[label][-1]:9.1f} MiB/s", flush=True)
                res = {k: (statistics.median(v), statistics.median(v) * MiB / bs) for k, v in runs.items()}
                # CPU the target process spent per MiB: what it could move with a whole core to itself
                per_core = target_bytes / MiB / target_cpu if target_cpu else 0.0
                lag = lag_p99(lag_before, lag_histogram(metrics_port))
                rows.append((kind, op, bs, qd, res, lag, per_core))
        finally:
            proc.terminate()
            proc.wait(10)
        kernel = kernel_run(args.kernel_mib, tmp) if args.kernel else {}
    print()
    print(f"{'workload':26} {'file O_DIRECT':>22} {'file buffered':>22} {'nvmet (loopback)':>22} "
          f"{'nvmet/direct':>12} {'loop lag p99':>12} {'target MiB/s per CPU-s':>22}")
    for kind, op, bs, qd, res, lag, per_core in rows:
        name = f"{kind} {op} {bs // 1024}KiB qd{qd}"
        cells = " ".join(f"{res[k][0]:8.1f} MiB/s {res[k][1]:7.0f}/s" for k in LABELS)
        ratio = res["nvmet"][0] / res["file O_DIRECT"][0] if res["file O_DIRECT"][0] else 0
        print(f"{name:26} {cells} {ratio:11.0%} {lag:>12} {per_core:22.0f}")
    if kernel:
        print("\nLinux kernel initiator in qemu (TCG, software-emulated CPU), dd bs=1M O_DIRECT, QD1:")
        for op, rate in kernel.items():
            print(f"  seq {op:5} {rate:8.1f} MiB/s")
    print(f"\nmedian of {args.repeat} runs; queues={args.queues} size={args.size_mib}MiB "
          f"seconds={args.seconds} dir={args.dir} "
          f"cpus={os.cpu_count()} load={os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
