"""Run ``cosi-driver`` as a real process on a real unix socket for the COSI tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc

from cosi_driver.proto import cosi_v1alpha1_pb2 as v1
from cosi_driver.proto import cosi_v1alpha1_pb2_grpc as v1_grpc
from cosi_driver.proto import cosi_v1alpha2_pb2_grpc as v2_grpc

ROOT = Path(__file__).resolve().parents[2]


class DriverProcess:
    def __init__(
        self,
        vms: Any,
        state_dir: Path,
        *,
        extra_args: list[str] | None = None,
        s3_endpoint: str | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.vms = vms
        self.state_dir = Path(state_dir)
        # AF_UNIX paths are limited to ~107 bytes: keep the socket in a short directory.
        self.sock_dir = Path(tempfile.mkdtemp(prefix="cosi-", dir="/tmp"))
        self.socket = self.sock_dir / "cosi.sock"
        self.endpoint = f"unix://{self.socket}"
        self.extra_args = list(extra_args or [])
        self.extra_env = dict(extra_env or {})
        self.s3_endpoint = s3_endpoint if s3_endpoint is not None else (vms.s3_url or "")
        self.log_path = self.state_dir / "driver.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._channel: grpc.Channel | None = None

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "cosi_driver.cli",
            "--endpoint",
            self.endpoint,
            "--vms-endpoint",
            self.vms.api_url,
            "--s3-endpoint",
            self.s3_endpoint,
            "--key-store",
            "file",
            "--key-store-dir",
            str(self.state_dir / "keys"),
            "--metrics-address",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--max-workers",
            "64",
            *self.extra_args,
        ]

    def start(self, timeout: float = 30.0) -> DriverProcess:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "VMS_USERNAME": self.vms.username, "VMS_PASSWORD": self.vms.password,
               **self.extra_env}
        env.pop("COSI_ENDPOINT", None)
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=log, env=env, cwd=ROOT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"cosi-driver exited with {self.proc.returncode}:\n{self.log_tail()}")
            if self.socket.exists():
                try:
                    self.v1_identity().DriverGetInfo(v1.DriverGetInfoRequest(), timeout=2)
                    return self
                except grpc.RpcError:
                    pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"cosi-driver did not come up:\n{self.log_tail()}")

    @property
    def channel(self) -> grpc.Channel:
        if self._channel is None:
            self._channel = grpc.insecure_channel(self.endpoint)
        return self._channel

    def _close_channel(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def v1_identity(self) -> v1_grpc.IdentityStub:
        return v1_grpc.IdentityStub(self.channel)

    def v1(self) -> v1_grpc.ProvisionerStub:
        return v1_grpc.ProvisionerStub(self.channel)

    def v2_identity(self) -> v2_grpc.IdentityStub:
        return v2_grpc.IdentityStub(self.channel)

    def v2(self) -> v2_grpc.ProvisionerStub:
        return v2_grpc.ProvisionerStub(self.channel)

    def stop(self, timeout: float = 20.0) -> int | None:
        self._close_channel()
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        code = self.proc.returncode
        self.proc = None
        return code

    def kill9(self) -> None:
        self._close_channel()
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)
            self.proc = None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __enter__(self) -> DriverProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
