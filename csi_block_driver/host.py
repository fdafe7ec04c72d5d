"""Host operations the node plugin performs: running commands, mounts, filesystems, devices.

Everything that touches the host goes through a :class:`Runner`, so the NVMe/TCP backend's
command construction can be unit-tested with a recording runner where no kernel support exists.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from csi_block_driver.errors import HostCommandError

log = logging.getLogger(__name__)


class Runner(Protocol):
    def run(
        self,
        argv: Sequence[str],
        *,
        check: bool = True,
        timeout: float = 120.0,
        input_text: str | None = None,
    ) -> subprocess.CompletedProcess[str]: ...


class HostRunner:
    """Runs real commands; a non-zero exit raises :class:`HostCommandError` when ``check``."""

    def run(
        self,
        argv: Sequence[str],
        *,
        check: bool = True,
        timeout: float = 120.0,
        input_text: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        started = time.monotonic()
        try:
            proc = subprocess.run(
                list(argv), capture_output=True, text=True, timeout=timeout, input=input_text, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise HostCommandError(list(argv), None, f"timed out after {timeout}s") from exc
        except FileNotFoundError as exc:
            raise HostCommandError(list(argv), 127, f"{argv[0]} not found") from exc
        log.debug(
            "host command",
            extra={
                "argv": list(argv),
                "rc": proc.returncode,
                "duration_ms": round((time.monotonic() - started) * 1000, 1),
            },
        )
        if check and proc.returncode != 0:
            raise HostCommandError(list(argv), proc.returncode, proc.stderr or proc.stdout)
        return proc


@dataclass(frozen=True)
class MountInfo:
    mount_point: str
    source: str
    fstype: str
    root: str
    options: str
    major_minor: str


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal.
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def mounts(mountinfo: str = "/proc/self/mountinfo") -> list[MountInfo]:
    result = []
    for line in Path(mountinfo).read_text().splitlines():
        pre, _, post = line.partition(" - ")
        a = pre.split()
        b = post.split()
        if len(a) < 6 or len(b) < 2:
            continue
        result.append(
            MountInfo(
                mount_point=_unescape(a[4]),
                root=_unescape(a[3]),
                options=a[5],
                major_minor=a[2],
                fstype=b[0],
                source=_unescape(b[1]),
            )
        )
    return result


def mount_at(path: str) -> MountInfo | None:
    """The top-most mount whose mount point is exactly ``path`` (after resolving symlinks)."""
    real = os.path.realpath(path)
    found = None
    for m in mounts():
        if m.mount_point == real:
            found = m
    return found


def is_mounted(path: str) -> bool:
    return mount_at(path) is not None


class Mounter:
    """mount/umount/mkfs/resize through a :class:`Runner`."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    def mount(self, source: str, target: str, fstype: str | None = None, options: Sequence[str] = ()) -> None:
        argv = ["mount"]
        if fstype:
            argv += ["-t", fstype]
        if options:
            argv += ["-o", ",".join(options)]
        self.runner.run([*argv, source, target])

    def bind(self, source: str, target: str, readonly: bool = False) -> None:
        self.runner.run(["mount", "--bind", source, target])
        if readonly:
            try:
                self.runner.run(["mount", "-o", "remount,bind,ro", target])
            except HostCommandError:
                self.umount(target)
                raise

    def umount(self, target: str) -> None:
        """Unmount every mount stacked on ``target``; a path that is not mounted is fine."""
        for _ in range(16):
            if not is_mounted(target):
                return
            self.runner.run(["umount", target])
        raise HostCommandError(["umount", target], 1, "still mounted after 16 unmounts")

    def fs_type(self, device: str) -> str:
        """The filesystem on ``device``, or "" when it is blank (blkid exit 2 = nothing found)."""
        proc = self.runner.run(["blkid", "-p", "-o", "value", "-s", "TYPE", device], check=False)
        if proc.returncode == 2:
            return ""
        if proc.returncode != 0:
            raise HostCommandError(["blkid", "-p", device], proc.returncode, proc.stderr)
        return proc.stdout.strip()

    def mkfs(self, device: str, fstype: str) -> None:
        if fstype == "ext4":
            self.runner.run(
                ["mkfs.ext4", "-F", "-q", "-E", "nodiscard,lazy_itable_init=1", device], timeout=600
            )
        elif fstype == "xfs":
            self.runner.run(["mkfs.xfs", "-f", "-q", "-K", device], timeout=600)
        else:
            raise ValueError(f"unsupported fsType {fstype!r}")

    def grow_fs(self, device: str, mount_point: str, fstype: str) -> None:
        if fstype.startswith("ext"):
            self.runner.run(["resize2fs", device], timeout=600)
        elif fstype == "xfs":
            self.runner.run(["xfs_growfs", mount_point], timeout=600)
        else:
            raise ValueError(f"cannot grow filesystem type {fstype!r}")

    def device_size(self, device: str) -> int:
        return int(self.runner.run(["blockdev", "--getsize64", device]).stdout.strip())

    def flush(self, device: str) -> None:
        self.runner.run(["blockdev", "--flushbufs", device])
