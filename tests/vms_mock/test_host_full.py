"""A full host file system under the data directory is a 507, never a 500 or a half-made object."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import missing, require_root, require_tool
from tests.vmsproc import VmsProcess


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    require_root()
    mount = require_tool("mount", "install util-linux")
    target = tmp_path / "small"
    target.mkdir()
    done = subprocess.run([mount, "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(target)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        missing("mounting a tmpfs", f"mount said: {done.stderr.strip()}")
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False)


@pytest.mark.root
def test_snapshot_copy_on_a_full_file_system_is_507(small_fs: Path) -> None:
    with VmsProcess(small_fs / "data", s3=False, nvme=False) as vms:
        s = vms.session()
        vol = s.post(vms.url("volumes/", "v5"), json={"name": "/f/v", "view_id": 1, "size": 64 << 20}).json()
        backing = vms.data_dir / "block" / f"{vol['uuid']}.img"
        with backing.open("r+b") as f:  # 5 MiB of data: a second copy cannot fit in 8 MiB
            f.write(b"\xab" * (5 << 20))
        r = s.post(vms.url("snapshots/"), json={"name": "full", "path": "/block-default/f/v/"})
        assert r.status_code == 507, r.text
        assert r.json()["detail"].startswith("Insufficient capacity")
        assert s.get(vms.url("snapshots/"), params={"name": "full"}).json() == []
        assert not any((vms.data_dir / "snapshots").iterdir())  # the partial copy is gone
        assert s.get(vms.url("versions/")).status_code == 200  # still serving
