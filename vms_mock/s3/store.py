"""Object data and metadata of one bucket, kept under the bucket view's directory.

Layout under ``fs_path(view.path)``::

    .s3/meta.sqlite3       objects, versions, multipart uploads and parts (WAL mode)
    .s3/data/<ab>/<id>     object and part data, named by an internal random id
    .s3/tmp/<id>           uploads in flight (removed at the next open after a crash)

Keys never reach the filesystem: a key with ``../``, NUL or anything else is only a column
value, so no request can name a path outside the bucket. Keeping the metadata inside the view's
directory means the folder-delete ("trash") API removes a bucket's objects and their index
together, and a view re-created on a retained path sees its old objects, as on the platform.

Writes are crash-safe: data goes to ``tmp/``, is fsynced once at the end, renamed into
``data/``, and only then the row is committed. A crash leaves at worst an unreferenced data
file, which the sweep at the next open removes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zlib_ng import zlib_ng

from vms_mock.s3.blocks import DIRECT_ALIGN, DIRECT_IO, set_direct
from vms_mock.s3.errors import S3Error

log = logging.getLogger(__name__)

NULL_VERSION = "null"
INLINE_MAX = 64 * 1024  # objects up to this size are stored in their index row, not in a file
# The columns of a listing: everything but the inline bytes.
_LIST_COLS = ("seq, key, version_id, is_latest, is_delete_marker, size, etag, content_type, meta,"
              " last_modified, data_id, lock_mode, retain_until")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    version_id TEXT NOT NULL,
    is_latest INTEGER NOT NULL,
    is_delete_marker INTEGER NOT NULL DEFAULT 0,
    size INTEGER NOT NULL DEFAULT 0,
    etag TEXT NOT NULL DEFAULT '',
    content_type TEXT,
    meta TEXT NOT NULL DEFAULT '{}',
    last_modified REAL NOT NULL,
    data_id TEXT,
    lock_mode TEXT,
    retain_until REAL,
    inline BLOB,
    UNIQUE (key, version_id)
);
CREATE INDEX IF NOT EXISTS objects_latest ON objects (is_latest, key);
CREATE TABLE IF NOT EXISTS uploads (
    upload_id TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    initiated REAL NOT NULL,
    content_type TEXT,
    meta TEXT NOT NULL DEFAULT '{}',
    lock_mode TEXT,
    retain_until REAL
);
CREATE TABLE IF NOT EXISTS parts (
    upload_id TEXT NOT NULL,
    part_number INTEGER NOT NULL,
    size INTEGER NOT NULL,
    etag TEXT NOT NULL,
    data_id TEXT NOT NULL,
    last_modified REAL NOT NULL,
    PRIMARY KEY (upload_id, part_number)
);
CREATE TABLE IF NOT EXISTS usage (id INTEGER PRIMARY KEY CHECK (id = 1), bytes INTEGER NOT NULL);
INSERT OR IGNORE INTO usage VALUES (1, 0);
"""


@dataclass
class ObjectRecord:
    key: str
    version_id: str
    size: int = 0
    etag: str = ""
    content_type: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    last_modified: float = 0.0
    data_id: str | None = None
    is_delete_marker: bool = False
    is_latest: bool = True
    lock_mode: str | None = None
    retain_until: float | None = None
    # Small objects' bytes live in the index row itself (INLINE_MAX): no file, no data_id.
    inline: bytes | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> ObjectRecord:
        return cls(key=row["key"], version_id=row["version_id"], size=row["size"], etag=row["etag"],
                   content_type=row["content_type"], meta=json.loads(row["meta"]),
                   last_modified=row["last_modified"], data_id=row["data_id"],
                   is_delete_marker=bool(row["is_delete_marker"]), is_latest=bool(row["is_latest"]),
                   lock_mode=row["lock_mode"], retain_until=row["retain_until"],
                   inline=row["inline"] if "inline" in row.keys() else None)  # noqa: SIM118 (Row)


@dataclass
class UploadRecord:
    upload_id: str
    key: str
    initiated: float
    content_type: str | None
    meta: dict[str, Any]
    lock_mode: str | None
    retain_until: float | None


@dataclass
class PartRecord:
    part_number: int
    size: int
    etag: str
    data_id: str
    last_modified: float


def prefix_bound(prefix: str) -> str:
    """An upper bound for keys starting with ``prefix`` (lets SQLite stop the index scan)."""
    return prefix + "\U0010ffff" * 4 if prefix else "\U0010ffff" * 256


def new_id() -> str:
    return secrets.token_hex(16)


SPARE_FILES = 4  # empty temp files kept ready per bucket (see refill_spares)


def _load_sync_file_range() -> Any:
    try:
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.sync_file_range
        fn.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
        fn.restype = ctypes.c_int
        return fn
    except (OSError, AttributeError):
        return None


_SYNC_FILE_RANGE = _load_sync_file_range()
_SYNC_FILE_RANGE_WRITE = 2


def start_writeback(fd: int, offset: int, count: int) -> None:
    """Ask the kernel to begin writing a range out (Linux sync_file_range; no wait, no-op elsewhere)."""
    if _SYNC_FILE_RANGE is not None and count > 0:
        _SYNC_FILE_RANGE(fd, offset, count, _SYNC_FILE_RANGE_WRITE)


_CHECKSUMS = ("crc32", "crc32c", "sha1", "sha256")


class _Crc32:
    def __init__(self) -> None:
        self.value = 0

    def update(self, data: bytes | memoryview) -> None:
        # zlib-ng's CRC-32 is the same function, vectorised (5x zlib's here) and GIL-free.
        self.value = zlib_ng.crc32(data, self.value)

    def digest(self) -> bytes:
        return self.value.to_bytes(4, "big")


class _Crc32c:
    def __init__(self) -> None:
        import crc32c

        self._c = crc32c.CRC32CHash()

    def update(self, data: bytes | memoryview) -> None:
        self._c.update(data)

    def digest(self) -> bytes:
        return bytes(self._c.digest())


def make_checksum(algorithm: str) -> Any:
    if algorithm == "crc32":
        return _Crc32()
    if algorithm == "crc32c":
        return _Crc32c()
    return hashlib.new(algorithm)


class ObjectWriter:
    """Streams one object's bytes into a temp file, hashing on the way (thread-safe per call)."""

    def __init__(self, store: BucketStore, want_sha256: bool, checksum: str | None) -> None:
        self.store = store
        self.data_id = new_id()
        self.tmp_path = store.tmp_dir / self.data_id
        self._fd = -1  # opened by the first write, on a worker thread (file creation is slow)
        self._held: list[bytes] = []  # small bodies: written by finish() in one go
        self.md5 = hashlib.md5()
        self.sha256 = hashlib.sha256() if want_sha256 else None
        self.checksum_name = checksum if checksum in _CHECKSUMS else None
        self.checksum = make_checksum(self.checksum_name) if self.checksum_name else None
        self.size = 0
        self._direct: bool | None = None  # O_DIRECT on the temp file: None until first tried
        self.inline_data: bytes | None = None  # the whole object, when it goes into its index row
        self.committed = False

    def feed_md5(self, data: bytes | memoryview) -> None:
        self.md5.update(data)

    def _hash_rest(self, data: bytes | memoryview) -> None:
        """Everything but MD5 (so two workers can share a block: MD5 is the slowest hash)."""
        if self.sha256 is not None:
            self.sha256.update(data)
        if self.checksum is not None:
            self.checksum.update(data)
        self.size += len(data)

    def hold(self, data: bytes) -> None:
        """(Loop) part of a small body: hashed (all but MD5) and kept for finish() or the
        index row."""
        self._hash_rest(data)
        self._held.append(data)

    def open(self) -> None:
        if self._fd < 0:
            spare = self.store.take_spare()
            if spare is not None:
                self.data_id, self._fd = spare
                self.tmp_path = self.store.spare_dir / self.data_id
            else:
                self._fd = os.open(self.tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)

    def take_inline(self) -> bool:
        """Keep the held (small) body in memory for the index row instead of a file."""
        if self._fd >= 0:
            return False
        self.inline_data = b"".join(self._held)
        self._held = []
        self.data_id = ""
        return True

    def write_bytes(self, data: bytes | memoryview) -> None:
        """(Worker) append bytes to the open temp file (counted in ``size``)."""
        self._write(data)
        self.size += len(data)

    def _write(self, chunk: bytes | memoryview) -> None:
        view = memoryview(chunk)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]

    def _write_direct(self, block: memoryview, offset: int) -> None:
        """Write a page-aligned block past the page cache (see blocks.py). The unaligned tail of
        the last block, and file systems without O_DIRECT, take the buffered path."""
        aligned = len(block) - len(block) % DIRECT_ALIGN
        if self._direct is not False and aligned and offset % DIRECT_ALIGN == 0:
            if self._direct is None:
                self._direct = set_direct(self._fd, True)
            if self._direct:
                self._write(block[:aligned])
                block = block[aligned:]
        if block:
            if self._direct:
                set_direct(self._fd, False)
                self._direct = False
            self._write(block)

    def feed_block(self, block: memoryview) -> None:
        """(Worker) SHA-256, checksum and write of one page-aligned receive block (all but MD5)."""
        offset = self.size
        self._hash_rest(block)
        self.open()
        if DIRECT_IO:
            self._write_direct(block, offset)
            return
        self._write(block)
        # Start writing this block to disk now, so the one fsync at the end waits only for the
        # tail instead of the whole object.
        start_writeback(self._fd, offset, len(block))

    def finish(self, publish: bool = False) -> None:
        """(Worker) write held bytes, fsync and close the temp file - once, at the end of the
        object - and with ``publish`` also move it to its data path."""
        self.open()
        try:
            for chunk in self._held:
                self._write(chunk)
            self._held = []
            os.fsync(self._fd)
        finally:
            os.close(self._fd)
            self._fd = -1
        if publish:
            self.publish()

    def publish(self) -> None:
        """Move the finished temp file to its data path (before the metadata commit)."""
        if not self.committed:
            os.rename(self.tmp_path, self.store.data_path(self.data_id, create=True))
            self.committed = True

    def discard(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        with contextlib.suppress(FileNotFoundError):
            if self.committed:
                os.unlink(self.store.data_path(self.data_id))
            else:
                os.unlink(self.tmp_path)


class BucketStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.base = self.root / ".s3"
        self.tmp_dir = self.base / "tmp"
        self.spare_dir = self.base / "spare"  # empty temp files made ahead (refill_spares)
        self.data_dir = self.base / "data"
        self.db_path = self.base / "meta.sqlite3"
        self._made_dirs: set[str] = set()
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self.spare_dir.mkdir(exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.db_path, isolation_level=None, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on the device when it returns (small objects' bytes are in the rows).
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(_SCHEMA)
        columns = {r[1] for r in self.db.execute("PRAGMA table_info(objects)")}
        if "inline" not in columns:  # an index made before small objects were kept inline
            self.db.execute("ALTER TABLE objects ADD COLUMN inline BLOB")
        self.inode = os.stat(self.db_path).st_ino
        self._spares: list[tuple[str, int]] = []
        self._spares_lock = threading.Lock()
        self._closed = False
        self._sweep()

    def close(self) -> None:
        with self._spares_lock:
            self._closed = True
            spares, self._spares = self._spares, []
        for data_id, fd in spares:
            os.close(fd)
            with contextlib.suppress(OSError):
                (self.spare_dir / data_id).unlink()
        self.db.close()

    # -- spare temp files --------------------------------------------------------------------
    def take_spare(self) -> tuple[str, int] | None:
        """An empty temp file made ahead of need: (data id, open fd), or None."""
        with self._spares_lock:
            return self._spares.pop() if self._spares else None

    def refill_spares(self) -> None:
        """(Worker, after a request) create empty temp files for the next uploads.

        Creating a file costs 0.15-0.25 ms of CPU on this machine's ext4 (the inode allocator
        scans past recently deleted inodes): done here, between requests, it is off the PUT's
        path. Spares are plain temp files, so a crash leaves nothing the startup sweep misses."""
        while True:
            with self._spares_lock:
                if self._closed or len(self._spares) >= SPARE_FILES:
                    return
            data_id = new_id()
            fd = os.open(self.spare_dir / data_id, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with self._spares_lock:
                if not self._closed:
                    self._spares.append((data_id, fd))
                    continue
            os.close(fd)
            with contextlib.suppress(OSError):
                (self.spare_dir / data_id).unlink()
            return

    # -- files -----------------------------------------------------------------------------
    def data_path(self, data_id: str, create: bool = False) -> Path:
        d = self.data_dir / data_id[:2]
        if create and data_id[:2] not in self._made_dirs:
            d.mkdir(exist_ok=True)
            self._made_dirs.add(data_id[:2])
        return d / data_id

    def _sweep(self) -> None:
        """Remove what a crash left behind: temp files and data files no row references."""
        for p in [*self.tmp_dir.iterdir(), *self.spare_dir.iterdir()]:
            with contextlib.suppress(OSError):
                p.unlink()
        referenced = {r[0] for r in self.db.execute(
            "SELECT data_id FROM objects WHERE data_id IS NOT NULL UNION SELECT data_id FROM parts")}
        removed = 0
        for sub in self.data_dir.iterdir():
            for p in sub.iterdir():
                if p.name not in referenced:
                    with contextlib.suppress(OSError):
                        p.unlink()
                        removed += 1
        if removed:
            log.info("removed unreferenced S3 data files", extra={"count": removed,
                                                                 "bucket_dir": str(self.root)})

    def unlink_data(self, data_ids: list[str]) -> None:
        for data_id in data_ids:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.data_path(data_id))

    # -- transactions ----------------------------------------------------------------------
    @contextlib.contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def usage(self) -> int:
        return int(self.db.execute("SELECT bytes FROM usage").fetchone()[0])

    def _add_usage(self, db: sqlite3.Connection, delta: int) -> None:
        db.execute("UPDATE usage SET bytes = bytes + ?", (delta,))

    def is_empty(self) -> bool:
        row = self.db.execute("SELECT 1 FROM objects LIMIT 1").fetchone()
        up = self.db.execute("SELECT 1 FROM uploads LIMIT 1").fetchone()
        return row is None and up is None

    # -- objects ---------------------------------------------------------------------------
    def get(self, key: str, version_id: str | None = None) -> ObjectRecord | None:
        if version_id is None:
            row = self.db.execute("SELECT * FROM objects WHERE key = ? AND is_latest = 1",
                                  (key,)).fetchone()
        else:
            row = self.db.execute("SELECT * FROM objects WHERE key = ? AND version_id = ?",
                                  (key, version_id)).fetchone()
        return ObjectRecord.from_row(row) if row else None

    def put(self, rec: ObjectRecord, versioned: bool, quota: int | None) -> tuple[list[str], int]:
        """Insert ``rec`` as the latest version of its key.

        Returns (data ids no longer referenced, change in stored bytes). Raises QuotaExceeded
        (nothing changed) when the bucket's quota would be passed.
        """
        with self.tx() as db:
            freed: list[str] = []
            delta = rec.size
            if versioned:
                db.execute("UPDATE objects SET is_latest = 0 WHERE key = ? AND is_latest = 1",
                           (rec.key,))
                # A "null" version (written while versioning was off) is replaced, as in S3.
                if rec.version_id == NULL_VERSION:
                    freed, delta = self._drop_version(db, rec.key, NULL_VERSION, delta)
            else:
                freed, delta = self._drop_version(db, rec.key, NULL_VERSION, delta)
                db.execute("UPDATE objects SET is_latest = 0 WHERE key = ? AND is_latest = 1",
                           (rec.key,))
            if quota is not None and delta > 0 and self.usage() + delta > quota:
                raise S3Error("QuotaExceeded")
            db.execute(
                "INSERT INTO objects (key, version_id, is_latest, is_delete_marker, size, etag,"
                " content_type, meta, last_modified, data_id, lock_mode, retain_until, inline)"
                " VALUES (?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (rec.key, rec.version_id, int(rec.is_delete_marker), rec.size, rec.etag,
                 rec.content_type, json.dumps(rec.meta), rec.last_modified, rec.data_id,
                 rec.lock_mode, rec.retain_until, rec.inline))
            self._add_usage(db, delta)
        return freed, delta

    def _drop_version(self, db: sqlite3.Connection, key: str, version_id: str,
                      delta: int) -> tuple[list[str], int]:
        old = db.execute("SELECT data_id, size FROM objects WHERE key = ? AND version_id = ?",
                         (key, version_id)).fetchone()
        if old is None:
            return [], delta
        db.execute("DELETE FROM objects WHERE key = ? AND version_id = ?", (key, version_id))
        return ([old["data_id"]] if old["data_id"] else []), delta - old["size"]

    def delete_version(self, key: str, version_id: str) -> tuple[ObjectRecord | None, int]:
        """Permanently remove one version; the previous one becomes latest. (record, -bytes)."""
        with self.tx() as db:
            row = db.execute("SELECT * FROM objects WHERE key = ? AND version_id = ?",
                             (key, version_id)).fetchone()
            if row is None:
                return None, 0
            db.execute("DELETE FROM objects WHERE seq = ?", (row["seq"],))
            if row["is_latest"]:
                db.execute("UPDATE objects SET is_latest = 1 WHERE seq = (SELECT MAX(seq) FROM objects"
                           " WHERE key = ?)", (key,))
            self._add_usage(db, -row["size"])
        return ObjectRecord.from_row(row), -row["size"]

    def set_meta(self, key: str, version_id: str, meta: dict[str, Any]) -> None:
        with self.tx() as db:
            db.execute("UPDATE objects SET meta = ? WHERE key = ? AND version_id = ?",
                       (json.dumps(meta), key, version_id))

    def put_retention(self, key: str, version_id: str, mode: str | None, until: float | None) -> None:
        with self.tx() as db:
            db.execute("UPDATE objects SET lock_mode = ?, retain_until = ? WHERE key = ? AND"
                       " version_id = ?", (mode, until, key, version_id))

    def list_latest(self, prefix: str, after: str, limit: int) -> list[ObjectRecord]:
        """Current (non-deleted) objects with ``key > after`` starting with ``prefix``, by key."""
        start = max(after, prefix) if prefix else after
        op = ">" if start == after else ">="
        rows = self.db.execute(
            f"SELECT {_LIST_COLS} FROM objects WHERE is_latest = 1 AND is_delete_marker = 0 AND key {op} ?"
            " AND key <= ? AND substr(key, 1, ?) = ? ORDER BY key LIMIT ?",
            (start, prefix_bound(prefix), len(prefix), prefix, limit)).fetchall()
        return [ObjectRecord.from_row(r) for r in rows]

    def list_versions(self, prefix: str, key_after: str, limit: int) -> list[ObjectRecord]:
        rows = self.db.execute(
            f"SELECT {_LIST_COLS} FROM objects WHERE key >= ? AND substr(key, 1, ?) = ?"
            " ORDER BY key, seq DESC LIMIT ?", (max(key_after, prefix), len(prefix), prefix, limit)
        ).fetchall()
        return [ObjectRecord.from_row(r) for r in rows]

    # -- multipart -------------------------------------------------------------------------
    def create_upload(self, key: str, content_type: str | None, meta: dict[str, Any],
                      lock_mode: str | None, retain_until: float | None) -> str:
        upload_id = secrets.token_urlsafe(24)
        with self.tx() as db:
            db.execute("INSERT INTO uploads VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (upload_id, key, time.time(), content_type, json.dumps(meta), lock_mode,
                        retain_until))
        return upload_id

    def get_upload(self, upload_id: str, key: str) -> UploadRecord:
        row = self.db.execute("SELECT * FROM uploads WHERE upload_id = ? AND key = ?",
                              (upload_id, key)).fetchone()
        if row is None:
            raise S3Error("NoSuchUpload", UploadId=upload_id)
        return UploadRecord(upload_id=row["upload_id"], key=row["key"], initiated=row["initiated"],
                            content_type=row["content_type"], meta=json.loads(row["meta"]),
                            lock_mode=row["lock_mode"], retain_until=row["retain_until"])

    def list_uploads(self, prefix: str, limit: int) -> list[UploadRecord]:
        rows = self.db.execute("SELECT * FROM uploads WHERE substr(key, 1, ?) = ? ORDER BY key,"
                               " initiated LIMIT ?", (len(prefix), prefix, limit)).fetchall()
        return [UploadRecord(upload_id=r["upload_id"], key=r["key"], initiated=r["initiated"],
                             content_type=r["content_type"], meta=json.loads(r["meta"]),
                             lock_mode=r["lock_mode"], retain_until=r["retain_until"]) for r in rows]

    def put_part(self, upload_id: str, key: str, part: PartRecord,
                 quota: int | None) -> tuple[list[str], int]:
        with self.tx() as db:
            if db.execute("SELECT 1 FROM uploads WHERE upload_id = ? AND key = ?",
                          (upload_id, key)).fetchone() is None:
                raise S3Error("NoSuchUpload", UploadId=upload_id)
            old = db.execute("SELECT data_id, size FROM parts WHERE upload_id = ? AND part_number = ?",
                             (upload_id, part.part_number)).fetchone()
            delta = part.size - (old["size"] if old else 0)
            if quota is not None and delta > 0 and self.usage() + delta > quota:
                raise S3Error("QuotaExceeded")
            db.execute("INSERT OR REPLACE INTO parts VALUES (?, ?, ?, ?, ?, ?)",
                       (upload_id, part.part_number, part.size, part.etag, part.data_id,
                        part.last_modified))
            self._add_usage(db, delta)
        return ([old["data_id"]] if old else []), delta

    def list_parts(self, upload_id: str, after: int, limit: int) -> list[PartRecord]:
        rows = self.db.execute("SELECT * FROM parts WHERE upload_id = ? AND part_number > ?"
                               " ORDER BY part_number LIMIT ?", (upload_id, after, limit)).fetchall()
        return [PartRecord(r["part_number"], r["size"], r["etag"], r["data_id"], r["last_modified"])
                for r in rows]

    def finish_upload(self, upload_id: str, rec: ObjectRecord, versioned: bool) -> tuple[list[str], int]:
        """Replace the upload's parts by the assembled object ``rec`` in one transaction."""
        with self.tx() as db:
            if db.execute("SELECT 1 FROM uploads WHERE upload_id = ?", (upload_id,)).fetchone() is None:
                raise S3Error("NoSuchUpload", UploadId=upload_id)
            parts = db.execute("SELECT data_id, size FROM parts WHERE upload_id = ?",
                               (upload_id,)).fetchall()
            db.execute("DELETE FROM parts WHERE upload_id = ?", (upload_id,))
            db.execute("DELETE FROM uploads WHERE upload_id = ?", (upload_id,))
            part_bytes = sum(p["size"] for p in parts)
            self._add_usage(db, -part_bytes)
        freed, delta = self.put(rec, versioned, None)
        return freed + [p["data_id"] for p in parts], delta - part_bytes

    def abort_upload(self, upload_id: str, key: str) -> tuple[list[str], int]:
        with self.tx() as db:
            if db.execute("SELECT 1 FROM uploads WHERE upload_id = ? AND key = ?",
                          (upload_id, key)).fetchone() is None:
                raise S3Error("NoSuchUpload", UploadId=upload_id)
            parts = db.execute("SELECT data_id, size FROM parts WHERE upload_id = ?",
                               (upload_id,)).fetchall()
            db.execute("DELETE FROM parts WHERE upload_id = ?", (upload_id,))
            db.execute("DELETE FROM uploads WHERE upload_id = ?", (upload_id,))
            freed_bytes = sum(p["size"] for p in parts)
            self._add_usage(db, -freed_bytes)
        return [p["data_id"] for p in parts], -freed_bytes


class StoreRegistry:
    """Open BucketStores by directory; reopened when the directory was removed and re-created."""

    def __init__(self) -> None:
        self._stores: dict[Path, BucketStore] = {}

    def get(self, root: Path) -> BucketStore:
        store = self._stores.get(root)
        if store is not None:
            try:
                if os.stat(store.db_path).st_ino == store.inode:
                    return store
            except FileNotFoundError:
                pass
            store.close()
        store = BucketStore(root)
        self._stores[root] = store
        return store

    def release_under(self, root: Path) -> int:
        """Forget the stores at or under ``root`` (their directory was deleted); their bytes."""
        freed = 0
        for path in [p for p in self._stores if p == root or root in p.parents]:
            store = self._stores.pop(path)
            with contextlib.suppress(sqlite3.Error):
                freed += store.usage()  # the open connection still reads the unlinked file
            store.close()
        return freed

    def close(self) -> None:
        for store in self._stores.values():
            store.close()
        self._stores.clear()
