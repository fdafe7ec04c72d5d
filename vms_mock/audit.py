"""Audit log: one record per mutating API call, in SQLite (queryable) and as JSON lines."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from kubevast_common.logs import redact_text
from vms_mock.store import Store


class AuditLog:
    def __init__(self, store: Store, path: Path | None) -> None:
        self.store = store
        self.path = path
        self._lock = threading.Lock()
        self._fh = path.open("a", encoding="utf-8", buffering=1) if path else None

    def record(self, *, time: str, principal: str | None, tenant: str | None, method: str, path: str,
               object_id: Any, status: int) -> None:
        rec: dict[str, Any] = {
            "time": time, "principal": principal, "tenant": tenant, "method": method,
            "path": redact_text(path), "object_id": None if object_id is None else str(object_id),
            "status": status, "outcome": "success" if status < 400 else "failure",
        }
        self.store.add_audit(rec)
        if self._fh is not None:
            line = json.dumps(rec, separators=(",", ":")) + "\n"
            with self._lock:
                self._fh.write(line)  # line-buffered: in the kernel before the response is sent

    def close(self) -> None:
        if self._fh is not None:
            with self._lock:
                self._fh.close()
                self._fh = None
