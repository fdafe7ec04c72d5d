"""Loop attach backend: the storage core's backing file as a loop device (dev/CI, no nvme-tcp).

Valid only where the node shares a filesystem with the storage core: the volume's data is the
file ``<backing dir>/<volume uuid>.img`` that ``vms-mock`` serves. The device is found by its
backing file, never by a remembered name, so a restarted plugin re-attaches what it staged.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path

from csi_block_driver.attach.base import AttachBackend, AttachTarget
from csi_block_driver.errors import FailedPrecondition, InvalidArgument
from csi_block_driver.host import Runner

log = logging.getLogger(__name__)

_DELETED = " (deleted)"


class LoopBackend(AttachBackend):
    name = "loop"

    def __init__(
        self, runner: Runner, backing_dir: str, direct_io: bool = True, detach_timeout: float = 5.0
    ) -> None:
        if not backing_dir:
            raise ValueError(
                "the loop backend needs --loop-backing-dir (the storage core's block/ directory)"
            )
        self.runner = runner
        self.backing_dir = Path(backing_dir)
        self.direct_io = direct_io
        self.detach_timeout = detach_timeout
        # losetup --find is racy between concurrent callers of one process: serialise attach.
        self._lock = threading.Lock()

    def prerequisites(self) -> list[str]:
        problems = []
        if os.geteuid() != 0:
            problems.append("the loop backend needs root (losetup, mount)")
        if not Path("/dev/loop-control").exists():
            problems.append("/dev/loop-control is missing: load the loop module (modprobe loop)")
        if not self.backing_dir.is_dir():
            problems.append(
                f"loop backing dir {self.backing_dir} does not exist: point --loop-backing-dir "
                "at the storage core's block/ directory"
            )
        try:
            self.runner.run(["losetup", "--version"])
        except Exception as exc:
            problems.append(f"losetup is not usable: {exc}")
        return problems

    def backing_file(self, target: AttachTarget) -> Path:
        uuid = target.uuid
        if not uuid or "/" in uuid or uuid.startswith("."):
            raise InvalidArgument(f"publish_context uuid {uuid!r} is not a volume UUID")
        return self.backing_dir / f"{uuid}.img"

    def _devices_of(self, backing: Path) -> list[str]:
        proc = self.runner.run(["losetup", "--list", "--json", "-O", "NAME,BACK-FILE"])
        if not proc.stdout.strip():
            return []
        want = str(backing.resolve()) if backing.exists() else str(backing)
        found = []
        for dev in json.loads(proc.stdout).get("loopdevices", []):
            back = (dev.get("back-file") or "").strip()
            if back.endswith(_DELETED):
                back = back[: -len(_DELETED)]
            if back in (want, str(backing)):
                found.append(dev["name"])
        return sorted(found)

    def find_device(self, target: AttachTarget) -> str | None:
        devices = self._devices_of(self.backing_file(target))
        return devices[0] if devices else None

    def attach(self, target: AttachTarget) -> str:
        backing = self.backing_file(target)
        with self._lock:
            existing = self._devices_of(backing)
            if existing:
                return existing[0]
            if not backing.is_file():
                raise FailedPrecondition(
                    f"backing file {backing} of volume {target.volume_id} does not exist: is the volume "
                    "published and does --loop-backing-dir point at the storage core's block/ directory?"
                )
            argv = ["losetup", "--find", "--show"]
            if self.direct_io:
                argv.append("--direct-io=on")
            device = self.runner.run([*argv, str(backing)]).stdout.strip()
            log.info(
                "loop attached",
                extra={"volume_id": target.volume_id, "device": device, "backing_file": str(backing)},
            )
            return device

    def detach(self, target: AttachTarget, still_staged: list[AttachTarget]) -> None:
        backing = self.backing_file(target)
        with self._lock:
            for device in self._devices_of(backing):
                self.runner.run(["losetup", "--detach", device])
                log.info("loop detached", extra={"volume_id": target.volume_id, "device": device})
            # A detach of a device that is still open is deferred by the kernel (autoclear):
            # poll briefly, then refuse to report success on a device that is still there.
            deadline = time.monotonic() + self.detach_timeout
            left = self._devices_of(backing)
            while left and time.monotonic() < deadline:
                time.sleep(0.1)
                left = self._devices_of(backing)
        if left:
            raise FailedPrecondition(f"loop devices {left} of volume {target.volume_id} are still attached")

    def rescan(self, target: AttachTarget) -> None:
        for device in self._devices_of(self.backing_file(target)):
            self.runner.run(["losetup", "--set-capacity", device])
