"""One operation at a time per bucket / access name.

A second request for a name that is already being worked on either waits for the first (when
it is the very same request: the 50 identical concurrent Grants a crashed sidecar may send all
get the one result) or fails fast with ABORTED (when it is a different operation, e.g. a Delete
while a Create runs, so the caller retries with back-off as the COSI spec asks).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from cosi_driver.errors import Aborted


@dataclass
class _Entry:
    fingerprint: str
    done: threading.Event = field(default_factory=threading.Event)


class InflightRegistry:
    def __init__(self, wait_seconds: float = 30.0) -> None:
        self._mu = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._wait = wait_seconds

    @contextmanager
    def claim(self, key: str, fingerprint: str, what: str) -> Iterator[None]:
        deadline = time.monotonic() + self._wait
        while True:
            with self._mu:
                current = self._entries.get(key)
                if current is None:
                    mine = _Entry(fingerprint)
                    self._entries[key] = mine
                    break
                if current.fingerprint != fingerprint:
                    raise Aborted(f"another operation on {what} is in progress; retry later")
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not current.done.wait(remaining):
                raise Aborted(f"the same request for {what} is still in progress; retry later")
        try:
            yield
        finally:
            with self._mu:
                del self._entries[key]
            mine.done.set()

    def busy(self) -> int:
        with self._mu:
            return len(self._entries)
