"""Fixtures shared by every suite.

Tests that need an external tool ask for it through ``require_tool``: locally a missing tool
skips the test with the command that installs it; under CI (``CI=true``) a missing tool is a
failure, so CI can never go green by skipping what it was meant to prove.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.vmsproc import VmsProcess

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "bin"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(what: str, how: str) -> None:
    """Skip (locally) or fail (in CI) because ``what`` is not available."""
    msg = f"{what} is not available; {how}"
    if IN_CI:
        pytest.fail(msg, pytrace=False)
    pytest.skip(msg)


def require_tool(name: str, how: str = "run `make tools`") -> str:
    """Path of an executable from the project's bin/ or PATH, else skip/fail."""
    local = BIN / name
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    found = shutil.which(name)
    if found:
        return found
    missing(f"tool {name!r}", how)
    raise AssertionError("unreachable")


def require_root() -> None:
    if os.geteuid() != 0:
        missing("root", "run the tests as root (loop devices and mounts need it)")


# ---- vms-mock as a real process (see tests/vmsproc.py for the helper's API) ------------------------
@pytest.fixture
def vms_server(tmp_path: Path) -> Iterator[VmsProcess]:
    """A fresh ``vms-mock`` (REST + S3 + NVMe/TCP when available) on ephemeral loopback ports."""
    from tests.vmsproc import VmsProcess

    proc = VmsProcess(tmp_path / "vms")
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def vms_server_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VmsProcess]:
    """One ``vms-mock`` shared by the session: create uniquely named objects, change no global state."""
    from tests.vmsproc import VmsProcess

    proc = VmsProcess(tmp_path_factory.mktemp("vms-session") / "vms")
    proc.start()
    yield proc
    proc.stop()
