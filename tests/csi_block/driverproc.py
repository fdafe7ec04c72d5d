"""Start ``csi-block-driver`` as a real process against a real ``vms-mock`` (loop attach backend)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc

from csi_block_driver.proto import csi_pb2_grpc
from tests.vmsproc import VmsProcess

SUBSYSTEM = "block-default"  # seeded by vms-mock
VIP_POOL = "vippool-1"


class DriverProcess:
    def __init__(
        self, root: Path, vms: VmsProcess, mode: str = "all", extra_args: list[str] | None = None
    ) -> None:
        self.root = Path(root)
        self.vms = vms
        self.mode = mode
        self.extra_args = list(extra_args or [])
        self.socket = self.root / "csi.sock"
        self.endpoint = f"unix://{self.socket}"
        self.state_dir = self.root / "state"
        self.log_path = self.root / "driver.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._channel: grpc.Channel | None = None

    def command(self) -> list[str]:
        cmd = [
            sys.executable,
            "-m",
            "csi_block_driver.cli",
            "--mode",
            self.mode,
            "--endpoint",
            self.endpoint,
            "--metrics-address",
            "",
            "--log-format",
            "json",
            "--vms-endpoint",
            self.vms.api_url,
            "--subsystem",
            SUBSYSTEM,
            "--vip-pool",
            VIP_POOL,
            "--vtask-timeout",
            "30",
        ]
        if self.vms.nvme_port:
            cmd += ["--nvme-port", str(self.vms.nvme_port)]
        if self.mode in ("node", "all"):
            cmd += [
                "--attach-backend",
                "loop",
                "--loop-backing-dir",
                str(self.vms.data_dir / "block"),
                "--state-dir",
                str(self.state_dir),
                "--hostnqn-file",
                str(self.root / "hostnqn"),
            ]
        return cmd + self.extra_args

    def start(self, timeout: float = 30.0) -> DriverProcess:
        self.root.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "VMS_USERNAME": self.vms.username,
            "VMS_PASSWORD": self.vms.password,
            "PYTHONUNBUFFERED": "1",
        }
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"csi-block-driver exited with {self.proc.returncode}:\n{self.log_tail()}")
            if self.socket.exists():
                channel = grpc.insecure_channel(self.endpoint)
                try:
                    grpc.channel_ready_future(channel).result(timeout=2)
                    self._channel = channel
                    return self
                except grpc.FutureTimeoutError:
                    channel.close()
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"csi-block-driver did not start within {timeout}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    @property
    def channel(self) -> grpc.Channel:
        assert self._channel is not None, "driver not started"
        return self._channel

    @property
    def controller(self) -> csi_pb2_grpc.ControllerStub:
        return csi_pb2_grpc.ControllerStub(self.channel)

    @property
    def node(self) -> csi_pb2_grpc.NodeStub:
        return csi_pb2_grpc.NodeStub(self.channel)

    @property
    def identity(self) -> csi_pb2_grpc.IdentityStub:
        return csi_pb2_grpc.IdentityStub(self.channel)

    def _close_channel(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def stop(self, timeout: float = 30.0) -> int | None:
        self._close_channel()
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def pause(self) -> None:
        """SIGSTOP: the process freezes with its connections open (a hung controller)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def kill(self) -> None:
        self._close_channel()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def __enter__(self) -> DriverProcess:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
