"""Run Debian's kernel in qemu against the NVMe/TCP target, inside a private network namespace.

Shared by the kernel interop test and ``benchmarks/nvmet_bench.py --kernel``. The guest image
comes from ``hack/qemu/build-initramfs.sh``; a per-run shell script is appended to its initramfs
as a second cpio archive and becomes ``/test.sh`` (run by ``hack/qemu/init``, output on the
serial console). The target runs as ``python -m vms_mock.nvmet`` on the namespace's 127.0.0.1;
the guest reaches it at 10.0.2.2 (qemu user networking).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def build_guest_image() -> Path:
    """Directory with vmlinux/vmlinuz and initramfs.cpio.gz (cached under bin/)."""
    build = subprocess.run([str(ROOT / "hack/qemu/build-initramfs.sh")], text=True, capture_output=True,
                           timeout=300, check=False)
    if build.returncode != 0:
        raise RuntimeError(f"hack/qemu/build-initramfs.sh failed:\n{build.stderr}")
    return ROOT / build.stdout.strip().splitlines()[-1]


def cpio_newc(files: dict[str, tuple[bytes, int]]) -> bytes:
    """A minimal newc cpio archive: {name: (content, mode)}."""
    out = bytearray()
    ino = 1000

    def entry(name: str, data: bytes, mode: int) -> None:
        nonlocal ino
        ino += 1
        fields = [ino, mode, 0, 0, 1, int(time.time()), len(data), 0, 0, 0, 0, len(name) + 1, 0]
        out.extend(b"070701" + b"".join(f"{v:08X}".encode() for v in fields) + name.encode() + b"\0")
        out.extend(b"\0" * (-len(out) % 4))
        out.extend(data)
        out.extend(b"\0" * (-len(out) % 4))

    for name, (data, mode) in files.items():
        entry(name, data, mode)
    entry("TRAILER!!!", b"", 0)
    return bytes(out)


def make_initrd(image: Path, script: str, dest: Path) -> Path:
    base = (image / "initramfs.cpio.gz").read_bytes()
    # The kernel unpacks concatenated archives in order; an uncompressed one must start on a
    # 4-byte boundary (zero bytes between archives are skipped).
    dest.write_bytes(base + bytes(-len(base) % 4) + cpio_newc({"test.sh": (script.encode(), 0o100755)}))
    return dest


@contextmanager
def netns() -> Iterator[str]:
    name = f"kvnvmet-{uuid.uuid4().hex[:10]}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True, timeout=60)
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True,
                       capture_output=True, timeout=60)
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], timeout=30, check=False)


def start_target(ns: str, config: Path, workdir: Path, timeout: float = 30) -> subprocess.Popen[bytes]:
    """The standalone target on the namespace's 127.0.0.1:4420 (I/O) and :8009 (discovery)."""
    ready = workdir / "ready.json"
    ready.unlink(missing_ok=True)
    with open(workdir / "target.log", "a") as log:  # appended: a test may restart the target
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-m", "vms_mock.nvmet", "--config", str(config),
             "--io-port", "4420", "--discovery-port", "8009", "--ready-file", str(ready),
             "--log-format", "text"], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"target did not start:\n{(workdir / 'target.log').read_text()}")
        time.sleep(0.1)
    json.loads(ready.read_text())
    return proc


def run_guest(ns: str, image: Path, initrd: Path, on_line: Callable[[str], None] | None = None,
              timeout: int = 600, smp: int = 2) -> list[str]:
    """Boot the guest (TCG, -cpu max) and return its console lines; ``on_line`` sees each live."""
    kernel = image / "vmlinux"
    if not kernel.exists():
        kernel = image / "vmlinuz"
    cmd = ["ip", "netns", "exec", ns, "timeout", "--signal=KILL", str(timeout),
           "qemu-system-x86_64", "-accel", "tcg", "-cpu", "max", "-smp", str(smp), "-m", "256",
           "-nographic", "-no-reboot", "-nodefaults", "-serial", "stdio", "-kernel", str(kernel),
           "-initrd", str(initrd), "-append", "console=ttyS0 panic=-1 loglevel=4 nvme_core.multipath=Y",
           "-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0,romfile="]
    lines: list[str] = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          stdin=subprocess.DEVNULL) as qemu:
        assert qemu.stdout is not None
        for raw in qemu.stdout:  # ends when qemu exits (the guest powers off; timeout kills it)
            line = raw.decode(errors="replace").rstrip("\r\n")
            lines.append(line)
            if on_line:
                on_line(line)
        qemu.wait(30)
    return lines


def write_config(path: Path, subnqn: str, hostnqn: str, backing: Path, size: int, nguid: str,
                 ns_uuid: str, extra_namespaces: list[dict[str, object]] | None = None) -> None:
    config = {"subsystems": [{"nqn": subnqn, "namespaces": [{
        "nsid": 1, "volume_id": 1, "nguid": nguid, "uuid": ns_uuid, "size": size,
        "backing_path": str(backing), "hosts": [hostnqn]}, *(extra_namespaces or [])]}]}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(config))
    tmp.replace(path)
