"""Fixtures of the vms_client suite: a real vms-mock process per module, clients, faults."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.vmsproc import VmsProcess
from vms_client import VmsClient, VmsConfig


class Recorder:
    """A vms_client RequestObserver that keeps every HTTP attempt (method, resource, status)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: list[tuple[str, str, str]] = []
        self.retries: list[tuple[str, str, str]] = []
        self.renewals = 0

    def request_done(self, method: str, resource: str, status: str, seconds: float) -> None:
        with self._lock:
            self.calls.append((method, resource, status))

    def retried(self, method: str, resource: str, reason: str) -> None:
        with self._lock:
            self.retries.append((method, resource, reason))

    def token_renewed(self) -> None:
        with self._lock:
            self.renewals += 1

    def count(self, method: str | None = None, resource: str | None = None,
              status: str | None = None) -> int:
        with self._lock:
            return sum(1 for m, r, s in self.calls
                       if (method is None or m == method) and (resource is None or r == resource)
                       and (status is None or s == status))


def uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def start_vms(tmp: Path, **kw: Any) -> VmsProcess:
    kw.setdefault("s3", False)
    kw.setdefault("nvme", False)
    return VmsProcess(tmp / "vms", start_timeout=60, **kw).start()


@pytest.fixture(scope="package")
def vms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VmsProcess]:
    """vms-mock with the admin (fault) endpoint on, shared by this package's tests: each test makes
    its own uniquely named objects and clients, and the ``admin`` fixture clears its faults."""
    proc = start_vms(tmp_path_factory.mktemp("vmsc"), enable_admin=True,
                     extra_args=["--vtask-delay", "0.1"])
    yield proc
    proc.stop()


ClientFactory = Callable[..., VmsClient]


@pytest.fixture
def make_client(vms: VmsProcess) -> Iterator[ClientFactory]:
    made: list[VmsClient] = []

    def make(*, server: VmsProcess | None = None, observer: Any = None, **kw: Any) -> VmsClient:
        srv = server or vms
        values: dict[str, Any] = {"endpoint": srv.api_url, "username": srv.username,
                                  "password": srv.password, "metrics": False,
                                  "backoff_base": 0.02, "backoff_max": 0.2, "timeout": 30}
        if srv.ca_file:
            values["ca_bundle"] = srv.ca_file
        values.update(kw)
        if "api_token" in kw:
            values.pop("username")
            values.pop("password")
        client = VmsClient(VmsConfig.model_validate(values), observer=observer)
        made.append(client)
        return client

    yield make
    for c in made:
        c.close()


@pytest.fixture
def client(make_client: ClientFactory) -> VmsClient:
    return make_client()


class Admin:
    """The emulator's admin endpoint (faults, token expiry), driven with plain requests."""

    def __init__(self, vms: VmsProcess) -> None:
        self.vms = vms
        self.session = vms.session()

    def _call(self, method: str, path: str, **kw: Any) -> requests.Response:
        r = self.session.request(method, f"{self.vms.api_url}/api/admin/{path}", timeout=30, **kw)
        if r.status_code == 403:  # our own session token was expired by a test: log in again
            self.session = self.vms.session()
            r = self.session.request(method, f"{self.vms.api_url}/api/admin/{path}", timeout=30, **kw)
        r.raise_for_status()
        return r

    def fault(self, **rule: Any) -> int:
        return int(self._call("POST", "faults/", json=rule).json()["id"])

    def faults(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "faults/").json())

    def clear_faults(self) -> None:
        self._call("DELETE", "faults/")

    def expire_tokens(self) -> None:
        self._call("POST", "expire_tokens/")
        self.session = self.vms.session()


@pytest.fixture
def admin(vms: VmsProcess) -> Iterator[Admin]:
    a = Admin(vms)
    yield a
    a.clear_faults()
