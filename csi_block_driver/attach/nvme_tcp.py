"""NVMe/TCP attach backend (production): connect to the subsystem, find the namespace by identity.

* Connect with nvme-cli (``nvme connect -t tcp ...``) or by writing the same option string to
  ``/dev/nvme-fabrics``; "already connected" is success. One connection per target address
  (native NVMe multipath merges them into one ``/dev/nvmeXnY``).
* The device is found by namespace identity: ``/dev/disk/by-id/nvme-uuid.<uuid>``, else by walking
  ``/sys/class/nvme-subsystem/*/nvme*n*/{uuid,nguid,wwid}``; if it does not show up, the
  controllers are asked to rescan namespaces.
* Disconnect is refcounted: the subsystem is disconnected only when no other staged volume on
  this node uses it (the node's persisted staging state is the refcount); the device is flushed
  first and sysfs is polled until the controllers are gone - success is never reported on a
  disconnect that did not complete.

This kernel has no nvme-tcp module, so this backend is exercised only by unit tests against
fixture sysfs trees and a recording command runner.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from csi_block_driver.attach.base import AttachBackend, AttachTarget
from csi_block_driver.errors import FailedPrecondition, HostCommandError, InvalidArgument
from csi_block_driver.host import Runner

log = logging.getLogger(__name__)

_CTRL = re.compile(r"^nvme\d+$")
_NS = re.compile(r"^nvme\d+(c\d+)?n\d+$")
_ALREADY = ("already connected", "operation already in progress", "already exists")


def normalize_id(value: str) -> str:
    """NGUID/UUID/wwid in one comparable form: lower-case hex without separators or prefixes."""
    v = value.strip().lower()
    for prefix in ("uuid.", "eui.", "nguid."):
        if v.startswith(prefix):
            v = v[len(prefix) :]
    return re.sub(r"[^0-9a-f]", "", v)


@dataclass(frozen=True)
class NvmeOptions:
    host_nqn: str
    host_id: str = ""
    ctrl_loss_tmo: int = 600  # seconds; -1 = forever (keeps paths, blocks shutdown)
    reconnect_delay: int = 10
    keep_alive_tmo: int = 5
    nr_io_queues: int = 0  # 0 = kernel default (one per CPU)
    use_fabrics_device: bool = False  # write to /dev/nvme-fabrics instead of running nvme-cli
    device_timeout: float = 30.0  # wait for the namespace's block device
    disconnect_timeout: float = 30.0  # wait for the controllers to disappear from sysfs


def split_address(address: str) -> tuple[str, str]:
    """``host:port`` / ``[v6]:port`` → (host, port)."""
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        port = rest.lstrip(":") or "4420"
        return host, port
    host, sep, port = address.rpartition(":")
    if not sep:
        return address, "4420"
    return host, port


class NvmeTcpBackend(AttachBackend):
    name = "nvme-tcp"

    def __init__(
        self,
        runner: Runner,
        options: NvmeOptions,
        sysfs: str = "/sys",
        dev: str = "/dev",
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not options.host_nqn:
            raise ValueError("the nvme-tcp backend needs a non-empty host NQN")
        self.runner = runner
        self.opts = options
        self.sysfs = Path(sysfs)
        self.dev = Path(dev)
        self.sleep = sleep
        self._lock = threading.Lock()

    # ---- command construction -------------------------------------------------------------

    def connect_argv(self, nqn: str, address: str) -> list[str]:
        host, port = split_address(address)
        argv = [
            "nvme",
            "connect",
            "--transport=tcp",
            f"--traddr={host}",
            f"--trsvcid={port}",
            f"--nqn={nqn}",
            f"--hostnqn={self.opts.host_nqn}",
        ]
        if self.opts.host_id:
            argv.append(f"--hostid={self.opts.host_id}")
        argv += [
            f"--ctrl-loss-tmo={self.opts.ctrl_loss_tmo}",
            f"--reconnect-delay={self.opts.reconnect_delay}",
            f"--keep-alive-tmo={self.opts.keep_alive_tmo}",
        ]
        if self.opts.nr_io_queues > 0:
            argv.append(f"--nr-io-queues={self.opts.nr_io_queues}")
        return argv

    def fabrics_options(self, nqn: str, address: str) -> str:
        host, port = split_address(address)
        parts = [
            "transport=tcp",
            f"traddr={host}",
            f"trsvcid={port}",
            f"nqn={nqn}",
            f"hostnqn={self.opts.host_nqn}",
        ]
        if self.opts.host_id:
            parts.append(f"hostid={self.opts.host_id}")
        parts += [
            f"ctrl_loss_tmo={self.opts.ctrl_loss_tmo}",
            f"reconnect_delay={self.opts.reconnect_delay}",
            f"keep_alive_tmo={self.opts.keep_alive_tmo}",
        ]
        if self.opts.nr_io_queues > 0:
            parts.append(f"nr_io_queues={self.opts.nr_io_queues}")
        return ",".join(parts)

    def disconnect_argv(self, nqn: str) -> list[str]:
        return ["nvme", "disconnect", f"--nqn={nqn}"]

    # ---- sysfs ----------------------------------------------------------------------------

    def _subsystems(self) -> list[Path]:
        root = self.sysfs / "class" / "nvme-subsystem"
        return sorted(p for p in root.iterdir()) if root.is_dir() else []

    @staticmethod
    def _read(path: Path) -> str:
        try:
            return path.read_text().strip()
        except OSError:
            return ""

    def subsystem_dirs(self, nqn: str) -> list[Path]:
        return [s for s in self._subsystems() if self._read(s / "subsysnqn") == nqn]

    def controllers(self, nqn: str) -> list[str]:
        """Controller names (nvme0, ...) of subsystem ``nqn`` that sysfs still lists."""
        names = []
        for sub in self.subsystem_dirs(nqn):
            names += [p.name for p in sub.iterdir() if _CTRL.match(p.name)]
        return sorted(names)

    def live_addresses(self, nqn: str) -> set[str]:
        """``host:port`` of the TCP controllers of ``nqn`` that are not being deleted."""
        out = set()
        for sub in self.subsystem_dirs(nqn):
            for ctrl in sub.iterdir():
                if not _CTRL.match(ctrl.name):
                    continue
                if self._read(ctrl / "state") in ("deleting", "deleting (no IO)", "dead"):
                    continue
                fields = dict(kv.split("=", 1) for kv in self._read(ctrl / "address").split(",") if "=" in kv)
                if "traddr" in fields:
                    out.add(f"{fields['traddr']}:{fields.get('trsvcid', '4420')}")
        return out

    def _namespace_by_sysfs(self, target: AttachTarget) -> str | None:
        want = {normalize_id(x) for x in (target.uuid, target.nguid) if x}
        want.discard("")
        for sub in self._subsystems():
            if target.subsystem_nqn and self._read(sub / "subsysnqn") != target.subsystem_nqn:
                continue
            for ns in sorted(sub.iterdir()):
                if not _NS.match(ns.name):
                    continue
                ids = {normalize_id(self._read(ns / f)) for f in ("uuid", "nguid", "wwid")}
                if want & ids:
                    return str(self.dev / ns.name)
        return None

    def find_device(self, target: AttachTarget) -> str | None:
        if target.uuid:
            link = self.dev / "disk" / "by-id" / f"nvme-uuid.{target.uuid}"
            if link.exists():
                return os.path.realpath(link)
        return self._namespace_by_sysfs(target)

    # ---- lifecycle ------------------------------------------------------------------------

    def prerequisites(self) -> list[str]:
        problems = []
        if not (self.sysfs / "module" / "nvme_tcp").exists():
            problems.append(
                "kernel module nvme_tcp is not loaded: run `modprobe nvme-tcp` "
                "(or choose --attach-backend=loop on development machines)"
            )
        if self.opts.use_fabrics_device:
            if not (self.dev / "nvme-fabrics").exists():
                problems.append("/dev/nvme-fabrics is missing: load nvme-fabrics")
        else:
            try:
                self.runner.run(["nvme", "version"])
            except HostCommandError as exc:
                problems.append(f"nvme-cli is not usable ({exc}); install nvme-cli or use the fabrics device")
        if self._read(self.sysfs / "module" / "nvme_core" / "parameters" / "multipath") == "N":
            log.warning(
                "nvme_core.multipath=N: each path gets its own /dev/nvmeXnY; multipath across "
                "target addresses needs dm-multipath"
            )
        return problems

    def _connect(self, nqn: str, address: str) -> None:
        if self.opts.use_fabrics_device:
            try:
                with open(self.dev / "nvme-fabrics", "r+") as fabrics:
                    fabrics.write(self.fabrics_options(nqn, address))
                    fabrics.read()
            except OSError as exc:
                if exc.errno in (114, 17):  # EALREADY / EEXIST: already connected
                    return
                raise HostCommandError(["write", "/dev/nvme-fabrics"], exc.errno, str(exc)) from exc
            return
        proc = self.runner.run(self.connect_argv(nqn, address), check=False)
        if proc.returncode != 0 and not any(m in (proc.stderr + proc.stdout).lower() for m in _ALREADY):
            raise HostCommandError(self.connect_argv(nqn, address), proc.returncode, proc.stderr)

    def attach(self, target: AttachTarget) -> str:
        if not target.subsystem_nqn or not target.addresses:
            raise InvalidArgument("publish_context needs the subsystem NQN and target addresses for nvme-tcp")
        with self._lock:
            device = self.find_device(target)
            if device:
                return device
            live = self.live_addresses(target.subsystem_nqn)
            errors = []
            for address in target.addresses:
                if address in live:
                    continue
                try:
                    self._connect(target.subsystem_nqn, address)
                except HostCommandError as exc:
                    errors.append(str(exc))
            if errors and len(errors) == len(target.addresses):
                raise FailedPrecondition(
                    f"could not connect to any target of {target.subsystem_nqn}: " + "; ".join(errors)
                )
            return self._wait_for_device(target)

    def _wait_for_device(self, target: AttachTarget) -> str:
        deadline = time.monotonic() + self.opts.device_timeout
        rescanned = False
        while True:
            device = self.find_device(target)
            if device:
                return device
            if time.monotonic() >= deadline:
                raise FailedPrecondition(
                    f"namespace uuid={target.uuid} nguid={target.nguid} of {target.subsystem_nqn} did not "
                    f"appear within {self.opts.device_timeout}s"
                )
            if not rescanned and time.monotonic() >= deadline - self.opts.device_timeout / 2:
                self.rescan(target)
                rescanned = True
            self.sleep(0.2)

    def rescan(self, target: AttachTarget) -> None:
        for ctrl in self.controllers(target.subsystem_nqn):
            self.runner.run(["nvme", "ns-rescan", str(self.dev / ctrl)], check=False)

    def detach(self, target: AttachTarget, still_staged: list[AttachTarget]) -> None:
        nqn = target.subsystem_nqn
        if not nqn:
            return
        with self._lock:
            users = [
                t.volume_id
                for t in still_staged
                if t.subsystem_nqn == nqn and t.volume_id != target.volume_id
            ]
            device = self.find_device(target)
            if device:
                self.runner.run(["blockdev", "--flushbufs", device])
            if users:
                log.info(
                    "subsystem still in use, not disconnecting",
                    extra={"nqn": nqn, "volume_id": target.volume_id, "users": users},
                )
                return
            if not self.controllers(nqn):
                return
            self.runner.run(self.disconnect_argv(nqn))
            deadline = time.monotonic() + self.opts.disconnect_timeout
            while self.controllers(nqn):
                if time.monotonic() >= deadline:
                    raise FailedPrecondition(
                        f"controllers {self.controllers(nqn)} of {nqn} still present "
                        f"{self.opts.disconnect_timeout}s after disconnect"
                    )
                self.sleep(0.2)
            log.info("nvme disconnected", extra={"nqn": nqn, "volume_id": target.volume_id})
