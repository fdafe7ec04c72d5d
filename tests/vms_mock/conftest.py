"""Fixtures of the vms_mock suite: one REST-only server per module (S3/NVMe have their own suites)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.vmsproc import VmsProcess


@pytest.fixture(scope="module")
def vms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VmsProcess]:
    proc = VmsProcess(tmp_path_factory.mktemp("vms") / "data", s3=False, nvme=False, enable_admin=True)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def fresh_vms(tmp_path: Path) -> Iterator[VmsProcess]:
    proc = VmsProcess(tmp_path / "data", s3=False, nvme=False, enable_admin=True)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def admin(vms: VmsProcess) -> requests.Session:
    return vms.session()
