"""Persisted per-volume staging state of the node plugin (one JSON file per volume).

What was staged where, how, and with which attach target: enough for a restarted plugin to
re-attach and re-mount, and to refcount shared NVMe connections. Device names are never
stored (they change across reconnects); the attach target identifies the device.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from csi_block_driver.attach.base import AttachTarget


class StagedVolume(BaseModel):
    volume_id: str
    staging_path: str
    access_type: Literal["block", "mount"]
    fs_type: str = ""
    mount_flags: list[str] = Field(default_factory=list)
    access_mode: int = 0
    target: dict[str, Any]
    published: dict[str, bool] = Field(default_factory=dict)  # target path -> readonly

    def attach_target(self) -> AttachTarget:
        return AttachTarget.from_dict(self.target)


class StateStore:
    def __init__(self, state_dir: str) -> None:
        self.dir = Path(state_dir) / "volumes"
        self.dir.mkdir(parents=True, exist_ok=True)

    def _path(self, volume_id: str) -> Path:
        return self.dir / (hashlib.sha256(volume_id.encode()).hexdigest()[:32] + ".json")

    def get(self, volume_id: str) -> StagedVolume | None:
        p = self._path(volume_id)
        try:
            return StagedVolume.model_validate_json(p.read_text())
        except FileNotFoundError:
            return None

    def put(self, vol: StagedVolume) -> None:
        p = self._path(vol.volume_id)
        tmp = p.with_name(f".{p.name}.tmp")
        with open(tmp, "w") as f:
            f.write(vol.model_dump_json())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)

    def delete(self, volume_id: str) -> None:
        self._path(volume_id).unlink(missing_ok=True)

    def all(self) -> list[StagedVolume]:
        out = []
        for p in sorted(self.dir.glob("*.json")):
            try:
                out.append(StagedVolume.model_validate(json.loads(p.read_text())))
            except (OSError, ValueError):
                continue
        return out
