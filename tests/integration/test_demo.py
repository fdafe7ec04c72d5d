"""The README's first quickstart command must keep working: run the demo as a new user would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "kubevast_common.demo", "--workdir", str(tmp_path / "demo")],
        capture_output=True, text=True, timeout=300,
    )
    out = proc.stdout
    assert proc.returncode == 0, f"demo failed:\n{out}\n{proc.stderr[-3000:]}"
    assert "demo complete" in out
    # The steps a new user is promised: buckets, keys, objects, volumes, attached devices.
    for marker in ("DriverCreateBucket", "accessKeyID", "GET verified", "refused at once",
                   "CreateVolume", "CreateSnapshot", "ControllerExpandVolume"):
        assert marker in out, f"demo output lacks {marker!r}:\n{out}"
    # No secret key is ever printed.
    assert "accessSecretKey ********" in out
