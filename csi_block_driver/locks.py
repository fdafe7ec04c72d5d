"""Per-key operation locks: a second operation on a busy volume (or name) is ABORTED, as CSI asks,
so the CO backs off and retries instead of two operations racing on one object."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from csi_block_driver.errors import Aborted


class VolumeLocks:
    """One lock per volume id: a second operation on a busy volume is ABORTED (the CO retries)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._held: set[str] = set()

    @contextlib.contextmanager
    def hold(self, volume_id: str) -> Iterator[None]:
        with self._guard:
            if volume_id in self._held:
                raise Aborted(f"an operation on volume {volume_id} is already in progress")
            self._held.add(volume_id)
        try:
            yield
        finally:
            with self._guard:
                self._held.discard(volume_id)


class KeyedMutex:
    """One blocking lock per key (e.g. a CSI name): concurrent callers queue and then see the
    result of the first, which is how 50 parallel CreateVolume calls of one name make one volume."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}

    @contextlib.contextmanager
    def hold(self, key: str) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._locks[key]
                if users <= 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)
