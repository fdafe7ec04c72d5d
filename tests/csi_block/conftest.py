"""Every csi_block test leaves no mount and no loop device behind, even when it fails."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .nodekit import detach_loops_under, unmount_under


@pytest.fixture(autouse=True)
def _no_leftover_mounts_or_loops(tmp_path: Path) -> Iterator[None]:
    yield
    if os.geteuid() == 0:
        unmount_under(tmp_path)
        detach_loops_under(tmp_path)
