#!/usr/bin/env python3
"""S3 PUT/GET throughput of the vms-mock S3 endpoint, moto's server mode, and the raw disk.

Prints a table; it is NOT a test. One run, same client (boto3, default config, keep-alive), same
object sizes, same disk; one client thread, plus a concurrent 4 KiB case:

* ``vms-mock``  - a real ``vms-mock`` process (temporary data dir); a user, an access key and a
  bucket view are created through the REST API, then boto3 talks to the S3 port. Objects up to
  64 KiB live in the bucket index; larger ones are files written and read with O_DIRECT, and a
  GET of a recently uploaded one is served from its cached receive blocks.
* ``vms nocache`` (16 MiB only) - the same with ``--s3-block-cache 0``: every GET reads the file
  (O_DIRECT), so its GET figure is the host disk's read speed, which varies run to run here.
* ``moto``      - ``moto.server.ThreadedMotoServer`` (the common Python stand-in), in-process.
* ``null srv``  - benchmarks/s3_null_server.py: drops PUT bytes, returns zeros, checks nothing:
  the most any server can reach with this client on this machine (boto3 signs, hashes, parses).
* ``raw disk``  - plain file writes of the same sizes to the same directory (temp file, fsync at
  the end, rename - what the endpoint does per object) and reads back: the limit.

Targets (issue 5): >= 2x moto at 4 KiB and 16 MiB, for PUT and GET; >= 50 % of the raw disk
figure at 16 MiB.

    .venv/bin/python benchmarks/s3_bench.py              # full run (about a minute)
    .venv/bin/python benchmarks/s3_bench.py --quick      # smaller counts
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import requests
from botocore.config import Config

KIB, MIB = 1 << 10, 1 << 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def vms_mock_endpoint(work: Path, *extra: str) -> Iterator[tuple[str, str, str, str]]:
    """(endpoint, access key, secret, bucket) of a fresh vms-mock process."""
    work.mkdir(parents=True, exist_ok=True)
    data_dir = work / "vms"
    ready = work / "ready.json"
    exe = Path(sys.executable).with_name("vms-mock")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "vms_mock.cli"]
    cmd += ["--data-dir", str(data_dir), "--host", "127.0.0.1", "--api-port", "0", "--s3-port", "0",
            "--no-nvme", "--ready-file", str(ready), "--log-level", "warning", *extra]
    log = (work / "vms-mock.log").open("wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"vms-mock did not start; see {work / 'vms-mock.log'}")
            time.sleep(0.05)
        info = json.loads(ready.read_text())
        api = info["api_url"] + "/api/v1/"
        token = requests.post(api + "token/", json={"username": "admin", "password": "admin"},
                              timeout=30).json()["access"]
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {token}"
        user = s.post(api + "users/", json={"name": "bench"}, timeout=30).json()
        keys = s.post(api + f"users/{user['id']}/access_keys/", json={}, timeout=30).json()
        r = s.post(api + "views/", json={"path": "/s3/bench", "create_dir": True, "bucket": "bench",
                                         "bucket_owner": "bench", "protocols": ["S3"]}, timeout=30)
        r.raise_for_status()
        yield info["s3_url"], keys["access_key"], keys["secret_key"], "bench"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


@contextlib.contextmanager
def moto_endpoint() -> Iterator[tuple[str, str, str, str]]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        url = f"http://127.0.0.1:{port}"
        client(url, "testing", "testing").create_bucket(Bucket="bench")
        yield url, "testing", "testing", "bench"
    finally:
        server.stop()


@contextlib.contextmanager
def null_endpoint() -> Iterator[tuple[str, str, str, str]]:
    """The boto3 ceiling: benchmarks/s3_null_server.py drops bytes and checks nothing."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("s3_null_server.py")), str(port)],
                            stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        proc.stdout.readline()
        yield f"http://127.0.0.1:{port}", "null", "null", "bench"
    finally:
        proc.terminate()
        proc.wait(10)


def client(url: str, key: str, secret: str, pool: int = 10) -> Any:
    return boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id=key,
                        aws_secret_access_key=secret,
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                                      max_pool_connections=pool))


def timed(fn: Callable[[int], None], count: int, threads: int) -> float:
    start = time.perf_counter()
    if threads == 1:
        for i in range(count):
            fn(i)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(fn, range(count)))
    return time.perf_counter() - start


def bench_s3(ep: tuple[str, str, str, str], size: int, count: int, threads: int,
             tag: str) -> tuple[float, float]:
    url, key, secret, bucket = ep
    c = client(url, key, secret, pool=max(10, threads))
    body = os.urandom(size)
    c.put_object(Bucket=bucket, Key="warmup", Body=body)  # connection set up, code paths warm
    c.get_object(Bucket=bucket, Key="warmup")["Body"].read()
    put_s = timed(lambda i: c.put_object(Bucket=bucket, Key=f"{tag}/{i}", Body=body), count, threads)

    def get(i: int) -> None:
        data = c.get_object(Bucket=bucket, Key=f"{tag}/{i}")["Body"].read()
        assert len(data) == size

    return put_s, timed(get, count, threads)


def bench_raw(directory: Path, size: int, count: int, threads: int) -> tuple[float, float]:
    directory.mkdir(parents=True, exist_ok=True)
    body = os.urandom(size)

    def put(i: int) -> None:
        tmp = directory / f"{i}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(body)
            while view:
                view = view[os.write(fd, view[: 1 * MIB]):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, directory / str(i))

    def get(i: int) -> None:
        with open(directory / str(i), "rb") as f:
            while f.read(1 * MIB):
                pass

    return timed(put, count, threads), timed(get, count, threads)


def fmt_size(n: int) -> str:
    return f"{n // MIB} MiB" if n >= MIB else f"{n // KIB} KiB"


Case = tuple[int, int, int]  # (size, count, client threads)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller counts, one round (a smoke run)")
    ap.add_argument("--small-count", type=int, default=None, help="objects per 4 KiB run (default 400)")
    ap.add_argument("--large-count", type=int, default=None, help="objects per 16 MiB run (default 12)")
    ap.add_argument("--threads", type=int, default=8,
                    help="client threads of the concurrent 4 KiB case (default 8; 0 skips it)")
    ap.add_argument("--rounds", type=int, default=None,
                    help="rounds, targets interleaved; the best round of each case is reported "
                         "(default 3): a shared machine's noise only ever slows a run down")
    ap.add_argument("--dir", type=Path, default=None,
                    help="work directory on the disk to measure (default: a temp dir under the repo)")
    args = ap.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access lines
    small = args.small_count or (100 if args.quick else 400)
    large = args.large_count or (4 if args.quick else 12)
    rounds = args.rounds or (1 if args.quick else 3)
    cases: list[Case] = [(4 * KIB, small, 1), (16 * MIB, large, 1)]
    if args.threads > 1:
        cases.append((4 * KIB, small, args.threads))
    root = Path(__file__).resolve().parent.parent
    work = Path(tempfile.mkdtemp(prefix="s3bench-", dir=args.dir or root))
    best: dict[tuple[str, Case], tuple[float, float]] = {}

    def keep(target: str, case: Case, put_s: float, get_s: float) -> None:
        old = best.get((target, case))
        best[(target, case)] = (min(put_s, old[0]), min(get_s, old[1])) if old else (put_s, get_s)

    try:
        print(f"work dir {work}; boto3 default config; {rounds} round(s)", file=sys.stderr)
        with vms_mock_endpoint(work) as vms_ep, moto_endpoint() as moto_ep, null_endpoint() as null_ep, \
                vms_mock_endpoint(work / "nocache", "--s3-block-cache", "0") as nocache_ep:
            for r in range(rounds):
                for case in cases:
                    size, count, threads = case
                    label = f"round {r + 1}: {fmt_size(size)} x {count}, {threads} thread(s)"
                    print(label, file=sys.stderr)
                    tag = f"r{r}/{size}/{threads}"
                    keep("vms-mock", case, *bench_s3(vms_ep, size, count, threads, tag))
                    if size >= MIB:
                        keep("vms nocache", case, *bench_s3(nocache_ep, size, count, threads, tag))
                    keep("moto", case, *bench_s3(moto_ep, size, count, threads, tag))
                    keep("raw disk", case, *bench_raw(work / "raw" / tag, size, count, threads))
                    keep("null srv", case, *bench_s3(null_ep, size, count, threads, tag))
                    shutil.rmtree(work / "raw" / tag, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"\n{'target':<11} {'size':>7} {'thr':>4} {'count':>6} {'PUT MiB/s':>10} {'PUT ops/s':>10} "
          f"{'GET MiB/s':>10} {'GET ops/s':>10}")
    for case in cases:
        size, count, threads = case
        for target in ("vms-mock", "vms nocache", "moto", "raw disk", "null srv"):
            if (target, case) not in best:
                continue
            put_s, get_s = best[(target, case)]
            mib = size * count / MIB
            print(f"{target:<11} {fmt_size(size):>7} {threads:>4} {count:>6} {mib / put_s:>10.1f} "
                  f"{count / put_s:>10.1f} {mib / get_s:>10.1f} {count / get_s:>10.1f}")
    print()
    for case in cases:
        size, _count, threads = case
        v_put, v_get = best[("vms-mock", case)]
        m_put, m_get = best[("moto", case)]
        r_put, r_get = best[("raw disk", case)]
        line = (f"{fmt_size(size)}, {threads} thread(s): vms-mock vs moto  PUT x{m_put / v_put:.2f}  "
                f"GET x{m_get / v_get:.2f} (target >= 2x)")
        if size >= MIB:
            line += f";  vs raw disk  PUT {100 * r_put / v_put:.0f} %  GET {100 * r_get / v_get:.0f} % " \
                    "(target >= 50 %)"
            n_put, n_get = best[("vms nocache", case)]
            line += f"\n    block cache off: vs moto  PUT x{m_put / n_put:.2f}  GET x{m_get / n_get:.2f}"
        print(line)
    load = os.getloadavg()
    print(f"\nload average during the run: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} "
          f"on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
