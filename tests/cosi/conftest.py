"""Fixtures of the COSI suite: a real vms-mock (REST + S3) and a real cosi-driver process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cosi.driverproc import DriverProcess


@pytest.fixture(scope="module")
def cosi_vms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from tests.vmsproc import VmsProcess

    proc = VmsProcess(tmp_path_factory.mktemp("cosi-vms") / "vms", nvme=False, enable_admin=True)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def driver(cosi_vms: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DriverProcess]:
    proc = DriverProcess(cosi_vms, tmp_path_factory.mktemp("cosi-driver"))
    proc.start()
    yield proc
    proc.stop()


class Platform:
    """What is on the platform, read through the REST API (never through the driver)."""

    def __init__(self, vms: Any) -> None:
        self.vms = vms

    def _list(self, kind: str, **params: Any) -> list[dict[str, Any]]:
        resp = self.vms.api("GET", f"{kind}/", params=params)
        resp.raise_for_status()
        return list(resp.json())

    def user(self, name: str) -> dict[str, Any] | None:
        found = self._list("users", name=name)
        return found[0] if found else None

    def users(self) -> list[str]:
        return [u["name"] for u in self._list("users")]

    def views(self, bucket: str) -> list[dict[str, Any]]:
        return self._list("views", bucket=bucket)

    def policies(self) -> list[str]:
        return [p["name"] for p in self._list("s3policies")]

    def quotas(self, path: str) -> list[dict[str, Any]]:
        return self._list("quotas", path=path)


@pytest.fixture
def platform(cosi_vms: Any) -> Platform:
    return Platform(cosi_vms)


def s3_client(endpoint: str, key: str, secret: str, region: str = "us-east-1") -> Any:
    boto3 = pytest.importorskip("boto3")
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        region_name=region,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path
