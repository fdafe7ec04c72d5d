"""What the image installs: the project's wheel (`pip install .` in the Dockerfile's build stage).

An editable install hides missing package data; the image does not. Every file the packages ship
(protos, seed files, stubs...) must be in the wheel, and every entry point the charts run must be
importable from it.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from tests.conftest import ROOT

PACKAGES = ("vms_mock", "vms_client", "cosi_driver", "csi_block_driver", "kubevast_common")


def test_wheel_carries_every_package_file_and_entry_point(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(ROOT),
         "-w", str(tmp_path / "dist")],
        capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("kubevast-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())

    tracked = subprocess.run(["git", "ls-files", "--", *PACKAGES], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.split()
    assert tracked, "no package files tracked by git"
    missing = sorted(f for f in tracked if f not in names and not f.endswith(".md"))
    assert not missing, f"files the image would lack (add them to package-data): {missing}"

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    entry_points = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    for name, target in scripts.items():
        module = target.split(":")[0]
        assert f"{module.replace('.', '/')}.py" in names or f"{module.replace('.', '/')}/__init__.py" in names
        assert f"{name} = {target}" in entry_points, name
