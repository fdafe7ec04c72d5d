"""Audit log: one record per mutating API call, as JSON lines and in SQLite (queryable).

The JSON line is written before the call's response leaves (line-buffered, so it is in the
kernel and survives kill -9). The SQLite copy is written in batches (one transaction per
``flush_delay``) to keep a second commit off every mutating call; the API flushes before it
answers a query, and a restart imports lines the database has not seen yet (the table is always
a prefix of the file, both being appended in the same order).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

from kubevast_common.logs import redact_text
from vms_mock.store import Store

log = logging.getLogger(__name__)


class AuditLog:
    def __init__(self, store: Store, path: Path | None, flush_delay: float = 0.05) -> None:
        self.store = store
        self.path = path
        self.flush_delay = flush_delay
        self._lock = threading.Lock()
        self._pending: list[dict[str, Any]] = []
        self._wake = threading.Event()
        self._closed = False
        if path is not None:
            self._import_missing(path)
        self._fh = path.open("a", encoding="utf-8", buffering=1) if path else None
        # one long-lived flusher: starting a thread per batch cost more than the insert it saved
        self._flusher = threading.Thread(target=self._flush_loop, name="audit-flush", daemon=True)
        self._flusher.start()

    def _flush_loop(self) -> None:
        while not self._closed:
            self._wake.wait()
            if self._closed:
                return
            time.sleep(self.flush_delay)  # gather what the next calls add
            self._wake.clear()
            try:
                self.flush()
            except Exception:
                log.exception("audit flush failed")

    def _import_missing(self, path: Path) -> None:
        """Insert the file's lines that a crash kept out of the database."""
        if not path.exists():
            return
        known = self.store.count_audit()
        missing = []
        with path.open(encoding="utf-8") as fh:
            for i, line in enumerate(fh):
                if i < known:
                    continue
                try:
                    missing.append(json.loads(line))
                except ValueError:  # a torn last line from a crash mid-write
                    log.warning("skipping unreadable audit line", extra={"line": i + 1})
        if missing:
            self.store.add_audit_many(missing)
            log.info("imported audit records missing from the database", extra={"records": len(missing)})

    def record(self, *, time: str, principal: str | None, tenant: str | None, method: str, path: str,
               object_id: Any, status: int) -> None:
        rec: dict[str, Any] = {
            "time": time, "principal": principal, "tenant": tenant, "method": method,
            "path": redact_text(path), "object_id": None if object_id is None else str(object_id),
            "status": status, "outcome": "success" if status < 400 else "failure",
        }
        with self._lock:
            if self._fh is not None:
                self._fh.write(json.dumps(rec, separators=(",", ":")) + "\n")
            self._pending.append(rec)
        if not self._wake.is_set():
            self._wake.set()

    def flush(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
            # inside the lock: batches reach the database in the order of the file
            if batch:
                self.store.add_audit_many(batch)

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        self._flusher.join(5)
        self.flush()
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None
