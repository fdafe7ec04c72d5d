"""Durable state of the emulator: one SQLite database, one connection, one lock.

Every API object is a row of ``objects`` (kind, id, tenant_id, JSON data). Uniqueness rules live in
the ``uniques`` table and are inserted in the same transaction as the object, so the database -
not a Python check-then-insert - decides which of many parallel creates wins.

Durability: WAL journal with ``synchronous=NORMAL``. In WAL mode a committed transaction is in the
WAL file (written by ``write()`` before COMMIT returns); NORMAL only skips the fsync, which matters
for power loss, not for a killed process - so no committed change is lost on ``kill -9``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    rid INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    id INTEGER NOT NULL,
    tenant_id INTEGER,
    data TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS obj_kind_id ON objects (kind, id);
CREATE INDEX IF NOT EXISTS obj_kind_tenant ON objects (kind, tenant_id, id);
CREATE TABLE IF NOT EXISTS uniques (
    kind TEXT NOT NULL,
    ukey TEXT NOT NULL,
    obj_id INTEGER NOT NULL,
    PRIMARY KEY (kind, ukey)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS uniques_obj ON uniques (kind, obj_id);
CREATE TABLE IF NOT EXISTS seqs (kind TEXT PRIMARY KEY, last INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS access_keys (
    access_key TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL,
    secret TEXT NOT NULL,
    status TEXT NOT NULL,
    created TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS access_keys_user ON access_keys (user_id);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,
    principal TEXT,
    tenant TEXT,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    object_id TEXT,
    status INTEGER NOT NULL,
    outcome TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS obj_name ON objects (kind, json_extract(data, '$.name'));
"""


# Partial expression indexes: evaluated only for rows of their kind, so an insert pays for the
# indexes of its own kind alone. Queries name the kind as a literal so the planner can use them.
KIND_INDEXES: dict[str, list[tuple[str, ...]]] = {
    "views": [("path",), ("bucket",), ("nqn",), ("policy_id",)],
    "quotas": [("path",)],
    "snapshots": [("path",)],
    "volumes": [("view_id", "nsid"), ("uuid",)],
    "blockhosts": [("nqn",)],
    "blockhostvolumes": [("volume__id",), ("block_host__id",)],
    "users": [("uid",)],
    "managers": [("username",)],
    "vtasks": [("state",)],
}
_KIND_RE = re.compile(r"^[a-z0-9_]+$")


def _kind_indexes_sql() -> str:
    out = []
    for kind, indexes in KIND_INDEXES.items():
        for fields in indexes:
            cols = ", ".join(f"json_extract(data, '{json_path(f)}')" for f in fields)
            name = f"ix_{kind}_{'_'.join(fields)}"
            out.append(f"CREATE INDEX IF NOT EXISTS {name} ON objects ({cols}) WHERE kind='{kind}';")
    return "\n".join(out)


def _lit(kind: str) -> str:
    """``kind`` as an SQL literal (kinds are internal constants; checked anyway)."""
    if not _KIND_RE.match(kind):
        raise ValueError(f"bad kind {kind!r}")
    return f"'{kind}'"


class UniqueViolation(Exception):
    """A unique key of ``kind`` is already taken; ``field`` names the API field to blame."""

    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field


def json_path(field: str) -> str:
    """Django-style ``volume__id`` -> SQLite JSON path ``$.volume.id``."""
    return "$." + ".".join(field.split("__"))


class Store:
    """Thread-safe access to the SQLite state. Callers group writes with :meth:`tx`."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        if path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
            # Checkpoints (the WAL copied into the database file, with an fsync) run in a
            # background thread, not inside whichever API call happens to fill the WAL.
            self._db.execute("PRAGMA wal_autocheckpoint=0")
        # NORMAL is enough for kill -9 durability in WAL mode (see module docstring).
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=OFF")
        self._db.executescript(SCHEMA)
        self._db.executescript(_kind_indexes_sql())
        self._depth = 0
        self._change_seq = 0  # commits that changed objects (what caches must notice)
        self._write_seq = 0  # every commit, counters included (what the checkpointer must notice)
        self._tx_changes = False
        self._pending_events: list[tuple[str, dict[str, Any]]] = []
        self._listeners: list[Callable[[str, dict[str, Any]], None]] = []
        self._stop = threading.Event()
        self._checkpointer: threading.Thread | None = None
        if path != ":memory:":
            self._checkpointer = threading.Thread(target=self._checkpoint_loop, name="sqlite-checkpoint",
                                                  daemon=True)
            self._checkpointer.start()

    def _checkpoint_loop(self, interval: float = 1.0) -> None:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            seen = -1
            while not self._stop.wait(interval):
                if self._write_seq != seen:
                    seen = self._write_seq
                    try:
                        db.execute("PRAGMA wal_checkpoint(PASSIVE)")  # never blocks writers
                    except sqlite3.Error:
                        logging.getLogger(__name__).exception("WAL checkpoint failed")
        finally:
            db.close()

    # ---- transactions -------------------------------------------------------------------------
    @contextlib.contextmanager
    def tx(self, counters_only: bool = False) -> Iterator[sqlite3.Connection]:
        """A write transaction (re-entrant). Commits on success, rolls back on any exception.

        ``counters_only``: the transaction changes nothing but usage counters, so it does not
        bump ``change_seq`` (an S3 PUT's byte count must not empty every lookup cache and wake
        the NVMe target); it still counts as a write for the checkpointer. A nested ``tx()``
        that is not counters-only makes the whole transaction a change."""
        with self._lock:
            outer = self._depth == 0
            if outer:
                self._db.execute("BEGIN IMMEDIATE")
                self._pending_events = []
                self._tx_changes = False
            if not counters_only:
                self._tx_changes = True
            self._depth += 1
            try:
                yield self._db
            except BaseException:
                self._depth -= 1
                if outer:
                    self._db.execute("ROLLBACK")
                    self._pending_events = []
                raise
            self._depth -= 1
            if outer:
                self._db.execute("COMMIT")
                self._write_seq += 1
                if self._tx_changes:
                    self._change_seq += 1
                events, self._pending_events = self._pending_events, []
        if outer:
            for name, payload in events:
                for cb in list(self._listeners):
                    try:
                        cb(name, payload)
                    except Exception:  # a listener must never break the API call that committed
                        logging.getLogger(__name__).exception("change listener failed")

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._db

    def emit(self, name: str, payload: dict[str, Any]) -> None:
        """Queue an in-process change event, delivered after the current transaction commits."""
        with self._lock:
            if self._depth == 0:
                raise RuntimeError("emit() outside a transaction")
            self._pending_events.append((name, payload))

    def subscribe(self, callback: Callable[[str, dict[str, Any]], None]) -> None:
        with self._lock:
            self._listeners.append(callback)

    @property
    def change_seq(self) -> int:
        return self._change_seq

    @property
    def write_seq(self) -> int:
        """Grows on every commit, counters-only ones included."""
        return self._write_seq

    @property
    def in_tx(self) -> bool:
        """A transaction is open (on the thread holding the lock, or on another one)."""
        return self._depth > 0

    def close(self) -> None:
        self._stop.set()
        if self._checkpointer is not None:
            self._checkpointer.join(5)
        with self._lock:
            if self.path != ":memory:":
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()

    # ---- ids and meta -------------------------------------------------------------------------
    def next_id(self, kind: str) -> int:
        with self.tx() as db:
            row = db.execute("INSERT INTO seqs(kind, last) VALUES (?, 1) ON CONFLICT(kind) DO UPDATE "
                             "SET last = last + 1 RETURNING last", (kind,)).fetchone()
            return int(row[0])

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        with self.read() as db:
            row = db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
            return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        with self.tx() as db:
            db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def add_meta_int(self, key: str, delta: int) -> int:
        """Add to an integer counter (a counters-only change: see :meth:`tx`)."""
        with self.tx(counters_only=True) as db:
            row = db.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE "
                             "SET value = CAST(value AS INTEGER) + ? RETURNING value",
                             (key, str(delta), delta)).fetchone()
            return int(row[0])

    def sum_meta_ints(self, *keys: str) -> int:
        with self.read() as db:
            row = db.execute(f"SELECT coalesce(sum(CAST(value AS INTEGER)), 0) FROM meta WHERE key IN "
                             f"({','.join('?' * len(keys))})", keys).fetchone()
            return int(row[0])

    def get_meta_int(self, key: str) -> int:
        return int(self.get_meta(key, "0") or 0)

    # ---- objects ------------------------------------------------------------------------------
    def get(self, kind: str, obj_id: int) -> dict[str, Any] | None:
        with self.read() as db:
            row = db.execute("SELECT data FROM objects WHERE kind=? AND id=?", (kind, obj_id)).fetchone()
            return json.loads(row[0]) if row else None

    def insert(
        self, kind: str, data: dict[str, Any], uniques: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """Insert ``data`` (gets a new ``id``); ``uniques`` maps field -> unique key text."""
        with self.tx() as db:
            obj_id = int(data["id"]) if data.get("id") else self.next_id(kind)
            data["id"] = obj_id
            self._claim(db, kind, obj_id, uniques or {})
            db.execute(
                "INSERT INTO objects(kind, id, tenant_id, data) VALUES (?, ?, ?, ?)",
                (kind, obj_id, data.get("tenant_id"), json.dumps(data)),
            )
            return data

    def update(
        self, kind: str, data: dict[str, Any], uniques: dict[str, str] | None = None
    ) -> dict[str, Any]:
        with self.tx() as db:
            obj_id = int(data["id"])
            if uniques is not None:
                db.execute("DELETE FROM uniques WHERE kind=? AND obj_id=?", (kind, obj_id))
                self._claim(db, kind, obj_id, uniques)
            db.execute(
                "UPDATE objects SET data=?, tenant_id=? WHERE kind=? AND id=?",
                (json.dumps(data), data.get("tenant_id"), kind, obj_id),
            )
            return data

    def delete(self, kind: str, obj_id: int) -> bool:
        with self.tx() as db:
            cur = db.execute("DELETE FROM objects WHERE kind=? AND id=?", (kind, obj_id))
            db.execute("DELETE FROM uniques WHERE kind=? AND obj_id=?", (kind, obj_id))
            return cur.rowcount > 0

    def _claim(self, db: sqlite3.Connection, kind: str, obj_id: int, uniques: dict[str, str]) -> None:
        if not uniques:
            return
        keys = list(uniques.values())
        try:  # one statement for all keys; a clash undoes the whole statement
            db.execute("INSERT INTO uniques(kind, ukey, obj_id) VALUES "
                       + ",".join("(?, ?, ?)" for _ in keys),
                       [v for key in keys for v in (kind, key, obj_id)])
        except sqlite3.IntegrityError:
            taken = {r[0] for r in db.execute(
                f"SELECT ukey FROM uniques WHERE kind=? AND ukey IN ({','.join('?' * len(keys))})",
                [kind, *keys])}
            field = next((f for f, key in uniques.items() if key in taken), next(iter(uniques)))
            raise UniqueViolation(field) from None

    def find(
        self,
        kind: str,
        filters: list[tuple[str, str, Any]] | None = None,
        tenant_id: int | None = None,
        offset: int = 0,
        limit: int | None = None,
        with_count: bool = False,
        include_global: bool = False,
    ) -> tuple[list[dict[str, Any]], int | None]:
        rows, total = self.find_raw(kind, filters, tenant_id, offset, limit, with_count, include_global)
        return [json.loads(r) for r in rows], total

    def find_raw(
        self,
        kind: str,
        filters: list[tuple[str, str, Any]] | None = None,
        tenant_id: int | None = None,
        offset: int = 0,
        limit: int | None = None,
        with_count: bool = False,
        include_global: bool = False,
    ) -> tuple[list[str], int | None]:
        """Objects of ``kind`` matching every ``(field, op, value)``; op is exact/contains/
        startswith/endswith/in. Ordered by id. Returns (page, total count if asked)."""
        where = [f"kind={_lit(kind)}"]
        args: list[Any] = []
        if tenant_id is not None:
            where.append("(tenant_id=? OR tenant_id IS NULL)" if include_global else "tenant_id=?")
            args.append(tenant_id)
        for field, op, value in filters or []:
            expr = "id" if field == "id" else f"json_extract(data, '{json_path(field)}')"
            if op == "exact":
                if value is None:
                    where.append(f"{expr} IS NULL")
                else:
                    where.append(f"{expr}=?")
                    args.append(value)
            elif op == "gt":
                where.append(f"{expr} > ?")
                args.append(value)
            elif op == "in":
                where.append(f"{expr} IN ({','.join('?' * len(value))})")
                args.extend(value)
            else:
                # instr/substr keep Django's case-sensitive match (LIKE would fold ASCII case).
                where.append({
                    "contains": f"instr({expr}, ?) > 0",
                    "startswith": f"substr({expr}, 1, length(?)) = ?",
                    "endswith": f"substr({expr}, -length(?)) = ?",
                }[op])
                args.extend([value] if op == "contains" else [value, value])
        sql_where = " AND ".join(where)
        with self.read() as db:
            total = None
            if with_count:
                total = int(db.execute(f"SELECT count(*) FROM objects WHERE {sql_where}", args).fetchone()[0])
            # Unfiltered: walk the (kind, id) index in order. Filtered: "+id" keeps the planner from
            # choosing that index for the ORDER BY over the filter's own index.
            by_index = not any(f[0] != "id" for f in filters or [])
            order = "kind, id" if by_index else "+id"
            if limit is not None and by_index and offset:
                # skip the offset on the narrow (kind[, tenant], id) index, then fetch one page of rows
                sql = (f"SELECT data FROM objects WHERE kind={_lit(kind)} AND id IN (SELECT id FROM objects "
                       f"WHERE {sql_where} ORDER BY {order} LIMIT ? OFFSET ?) ORDER BY kind, id")
                rows = db.execute(sql, [*args, limit, offset]).fetchall()
            elif limit is not None:
                sql = f"SELECT data FROM objects WHERE {sql_where} ORDER BY {order} LIMIT ? OFFSET ?"
                rows = db.execute(sql, [*args, limit, offset]).fetchall()
            else:
                rows = db.execute(
                    f"SELECT data FROM objects WHERE {sql_where} ORDER BY {order}", args).fetchall()
            return [r[0] for r in rows], total

    def max_of(self, kind: str, field: str, where: str, value: Any) -> int | None:
        """max(``field``) over objects of ``kind`` whose ``where`` equals ``value`` (index-backed)."""
        sql = (f"SELECT max(json_extract(data, '{json_path(field)}')) FROM objects "
               f"WHERE kind={_lit(kind)} AND "
               + ("tenant_id=?" if where == "tenant_id" else f"json_extract(data, '{json_path(where)}')=?"))
        with self.read() as db:
            row = db.execute(sql, (value,)).fetchone()
            return int(row[0]) if row and row[0] is not None else None

    def iter_kind(self, kind: str, batch: int = 1000) -> Iterator[dict[str, Any]]:
        """Every object of ``kind`` in id order, ``batch`` at a time (bounded memory)."""
        last = 0
        while True:
            rows, _ = self.find(kind, [("id", "gt", last)], limit=batch)
            yield from rows
            if len(rows) < batch:
                return
            last = int(rows[-1]["id"])

    def lookup_unique(self, kind: str, ukey: str) -> int | None:
        with self.read() as db:
            row = db.execute("SELECT obj_id FROM uniques WHERE kind=? AND ukey=?", (kind, ukey)).fetchone()
            return int(row[0]) if row else None

    def tenant_in_use(self, tenant_id: int) -> bool:
        with self.read() as db:
            row = db.execute(
                "SELECT 1 FROM objects WHERE tenant_id=? AND kind NOT IN ('tenants', 'vtasks') LIMIT 1",
                (tenant_id,)).fetchone()
            return row is not None

    def exists(self, kind: str, field: str, value: Any) -> bool:
        rows, _ = self.find(kind, [(field, "exact", value)], limit=1)
        return bool(rows)

    def count_kind(self, kind: str) -> int:
        with self.read() as db:
            return int(db.execute("SELECT count(*) FROM objects WHERE kind=?", (kind,)).fetchone()[0])

    # ---- access keys --------------------------------------------------------------------------
    def add_access_key(self, access_key: str, user_id: int, secret: str, created: str) -> None:
        with self.tx() as db:
            db.execute(
                "INSERT INTO access_keys(access_key, user_id, secret, status, created) VALUES (?,?,?,?,?)",
                (access_key, user_id, secret, "enabled", created),
            )

    def delete_access_key(self, user_id: int, access_key: str) -> bool:
        with self.tx() as db:
            cur = db.execute(
                "DELETE FROM access_keys WHERE access_key=? AND user_id=?", (access_key, user_id))
            return cur.rowcount > 0

    def user_access_keys(self, user_id: int) -> list[sqlite3.Row]:
        with self.read() as db:
            return db.execute(
                "SELECT * FROM access_keys WHERE user_id=? ORDER BY created, access_key", (user_id,)
            ).fetchall()

    def access_key(self, access_key: str) -> sqlite3.Row | None:
        with self.read() as db:
            return db.execute("SELECT * FROM access_keys WHERE access_key=?", (access_key,)).fetchone()

    # ---- audit --------------------------------------------------------------------------------
    def add_audit_many(self, recs: list[dict[str, Any]]) -> None:
        with self.tx() as db:
            db.executemany(
                "INSERT INTO audit(time, principal, tenant, method, path, object_id, status, outcome)"
                " VALUES (:time, :principal, :tenant, :method, :path, :object_id, :status, :outcome)",
                recs,
            )

    def count_audit(self) -> int:
        with self.read() as db:
            return int(db.execute("SELECT count(*) FROM audit").fetchone()[0])

    def find_audit(
        self, filters: dict[str, Any], offset: int, limit: int | None, with_count: bool
    ) -> tuple[list[dict[str, Any]], int | None]:
        where, args = ["1=1"], []
        for key, value in filters.items():
            if key.endswith("__contains"):
                where.append(f"instr({key[:-10]}, ?) > 0")
            elif key.endswith("__startswith"):
                where.append(f"substr({key[:-12]}, 1, length(?)) = ?")
                args.append(value)
            else:
                where.append(f"{key}=?")
            args.append(value)
        sql_where = " AND ".join(where)
        with self.read() as db:
            total = None
            if with_count:
                total = int(db.execute(f"SELECT count(*) FROM audit WHERE {sql_where}", args).fetchone()[0])
            sql = f"SELECT * FROM audit WHERE {sql_where} ORDER BY id"
            if limit is not None:
                rows = db.execute(sql + " LIMIT ? OFFSET ?", [*args, limit, offset]).fetchall()
            else:
                rows = db.execute(sql, args).fetchall()
            return [dict(r) for r in rows], total
