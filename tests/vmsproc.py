"""Start ``vms-mock`` as a real process for tests (stable API; other suites rely on it).

    from tests.vmsproc import VmsProcess

    with VmsProcess(tmp_path / "vms") as vms:          # starts, waits for the ready file
        vms.api_url          # "http://127.0.0.1:<port>"   (https with tls=True; CA in vms.ca_file)
        vms.s3_url           # "http://127.0.0.1:<port>" or None (s3=False / module missing)
        vms.nvme_host, vms.nvme_port, vms.discovery_port     # None when NVMe is off
        vms.data_dir         # Path of the state directory
        vms.username, vms.password                          # "admin", "admin" (super-admin)
        vms.token()          # a fresh access token (POST /api/token/)
        s = vms.session()    # requests.Session with a Bearer token and the CA configured
        vms.api("GET", "views/", params={...})              # -> requests.Response, path under /api/v1/
        vms.stop()           # SIGTERM, wait; vms.kill9() kills without warning
        vms.start()          # start again on the same data dir (new ports unless fixed)

Constructor keywords: ``s3=True, nvme=True`` (pass False to skip those services), ``tls=False``,
``capacity="1TiB"``, ``faults=[SPEC, ...]``, ``enable_admin=False``, ``token_ttl=None``,
``seed=None`` (a YAML path), ``in_memory=False``, ``extra_args=[...]``, ``ports`` (dict with
api/s3/nvme/discovery; default all 0 = ephemeral). The server's log goes to ``vms.log_path``
(``<data_dir>.log``); on a failed start the exception carries its tail.

pytest fixtures in tests/conftest.py: ``vms_server`` (function scope, fresh data dir) and
``vms_server_session`` (one server for the whole session; don't change its global state).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent


def _vms_mock_command() -> list[str]:
    exe = Path(sys.executable).parent / "vms-mock"
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-m", "vms_mock.cli"]


class VmsProcess:
    username = "admin"
    password = "admin"

    def __init__(
        self,
        data_dir: Path,
        *,
        s3: bool = True,
        nvme: bool = True,
        tls: bool = False,
        capacity: str | None = None,
        faults: list[str] | None = None,
        enable_admin: bool = False,
        token_ttl: float | None = None,
        seed: Path | None = None,
        in_memory: bool = False,
        extra_args: list[str] | None = None,
        ports: dict[str, int] | None = None,
        start_timeout: float = 30.0,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.s3, self.nvme, self.tls = s3, nvme, tls
        self.capacity, self.faults, self.enable_admin = capacity, list(faults or []), enable_admin
        self.token_ttl, self.seed, self.in_memory = token_ttl, seed, in_memory
        self.extra_args = list(extra_args or [])
        self.ports = {"api": 0, "s3": 0, "nvme": 0, "discovery": 0, **(ports or {})}
        self.start_timeout = start_timeout
        self.ready_file = self.data_dir.with_name(self.data_dir.name + ".ready.json")
        self.log_path = self.data_dir.with_name(self.data_dir.name + ".log")
        self.proc: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}
        self._session: requests.Session | None = None

    # ---- lifecycle ----------------------------------------------------------------------------
    def command(self) -> list[str]:
        cmd = [*_vms_mock_command(), "--host", "127.0.0.1",
               "--api-port", str(self.ports["api"]), "--s3-port", str(self.ports["s3"]),
               "--nvme-port", str(self.ports["nvme"]), "--discovery-port", str(self.ports["discovery"]),
               "--ready-file", str(self.ready_file), "--log-format", "json"]
        cmd += ["--in-memory"] if self.in_memory else ["--data-dir", str(self.data_dir)]
        if not self.s3:
            cmd.append("--no-s3")
        if not self.nvme:
            cmd.append("--no-nvme")
        if self.tls:
            cmd.append("--tls")
        if self.capacity:
            cmd += ["--capacity", self.capacity]
        for spec in self.faults:
            cmd += ["--fault", spec]
        if self.enable_admin:
            cmd.append("--enable-admin")
        if self.token_ttl is not None:
            cmd += ["--token-ttl", str(self.token_ttl)]
        if self.seed is not None:
            cmd += ["--seed", str(self.seed)]
        return cmd + self.extra_args

    def start(self) -> VmsProcess:
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("vms-mock is already running")
        self.ready_file.unlink(missing_ok=True)
        self._session = None  # an in-memory restart has a new token key
        if not self.in_memory:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
        log.close()
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.ready_file.exists():
                self.info = json.loads(self.ready_file.read_text())
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"vms-mock exited with {self.proc.returncode}:\n{self.log_tail()}")
            time.sleep(0.05)
        self.kill9()
        raise TimeoutError(f"vms-mock not ready after {self.start_timeout}s:\n{self.log_tail()}")

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM and wait; returns the exit code (None if it was not running)."""
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
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    def restart(self) -> VmsProcess:
        self.stop()
        return self.start()

    def __enter__(self) -> VmsProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # ---- ready-file facts ---------------------------------------------------------------------
    @property
    def api_url(self) -> str:
        return str(self.info["api_url"])

    @property
    def s3_url(self) -> str | None:
        return self.info.get("s3_url")

    @property
    def nvme_host(self) -> str | None:
        return self.info.get("nvme_host")

    @property
    def nvme_port(self) -> int | None:
        return self.info.get("nvme_port")

    @property
    def discovery_port(self) -> int | None:
        return self.info.get("discovery_port")

    @property
    def ca_file(self) -> str | None:
        return self.info.get("ca_file")

    @property
    def pid(self) -> int:
        return int(self.info["pid"])

    @property
    def verify(self) -> str | bool:
        return self.ca_file or True

    # ---- HTTP helpers -------------------------------------------------------------------------
    def url(self, path: str, version: str = "v1") -> str:
        base = f"{self.api_url}/api/{version}/" if version else f"{self.api_url}/api/"
        return base + path.lstrip("/")

    def token(self, username: str | None = None, password: str | None = None,
              tenant: str | None = None) -> str:
        headers = {"X-Tenant-Name": tenant} if tenant else {}
        r = requests.post(self.url("token/"), json={"username": username or self.username,
                                                   "password": password or self.password},
                          headers=headers, verify=self.verify, timeout=30)
        r.raise_for_status()
        return str(r.json()["access"])

    def session(self, username: str | None = None, password: str | None = None,
                tenant: str | None = None) -> requests.Session:
        s = requests.Session()
        s.verify = self.verify
        s.headers["Authorization"] = f"Bearer {self.token(username, password, tenant)}"
        return s

    def api(self, method: str, path: str, version: str = "v1", **kw: Any) -> requests.Response:
        """One authenticated call as the super-admin (a new session per helper instance)."""
        if self._session is None:
            self._session = self.session()
        kw.setdefault("timeout", 30)
        return self._session.request(method, self.url(path, version), **kw)
