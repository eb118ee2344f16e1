"""The live index's durable log and document store: one SQLite database (``live.sqlite``) in WAL mode.

It is the source of truth of a live index. One transaction per write request holds, for every document
it upserts, the document (id, title, text, metadata), its unit vector (float32 bytes, D·4 bytes), its
FTS5 terms and its metadata rows, plus a ``log`` row (sequence number, op, id) per upsert and delete;
``synchronous=FULL`` makes the commit fsync the WAL before the HTTP answer, so an acknowledged write
survives ``kill -9`` and power loss, and a failed one (disk full, read-only volume) is rolled back whole.

Tables:
- ``docs(key, id, seq, title, text, metadata, vector, sealed)``: the current version of every document.
  ``key`` identifies one *version* (AUTOINCREMENT: never reused, so a row of a sealed segment keyed by
  an old version can never come back to life); an update deletes the old key and inserts a new one.
  ``sealed`` = 1 once a compaction has folded the version into the sealed segment; the versions with
  ``sealed`` = 0 are the growing segment, replayed into memory at start-up (their vectors are here).
- ``meta(field, value, key)``: top-level metadata values (canonical JSON) for filters.
- ``fts``: FTS5 over the terms (index/fulltext.py), rowid = key.
- ``log(seq, op, id)``: every write in order; ``kv['checkpoint']`` is the last sequence number folded
  into the sealed segment, ``kv['segment']`` the sealed segment's folder ("" = the built index's files).
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from .errors import IndexFullError, IndexLoadError, IndexReadOnlyError, IndexWriteError
from .fulltext import FTS_SCHEMA
from .store import Doc, canonical_value

LIVE_FILE = "live.sqlite"
_CHUNK = 900  # bound on SQL variables per statement

SCHEMA = """
CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE docs (key INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, seq INTEGER NOT NULL,
                   title TEXT NOT NULL, text TEXT NOT NULL, metadata TEXT NOT NULL, vector BLOB NOT NULL,
                   sealed INTEGER NOT NULL);
CREATE INDEX docs_growing ON docs (sealed, key);
CREATE TABLE meta (field TEXT NOT NULL, value TEXT NOT NULL, key INTEGER NOT NULL);
CREATE INDEX meta_field_value ON meta (field, value, key);
CREATE INDEX meta_key ON meta (key);
CREATE TABLE log (seq INTEGER PRIMARY KEY AUTOINCREMENT, op TEXT NOT NULL, id TEXT NOT NULL);
""" + FTS_SCHEMA


@dataclass(frozen=True)
class Put:
    """One document to upsert, with what the write path computed outside the lock."""

    id: str
    title: str
    text: str
    metadata: dict[str, Any]
    vector: np.ndarray  # (D,) float32 unit vector (document tower)
    terms: str  # FTS5 column text (index/fulltext.py)


@dataclass(frozen=True)
class Applied:
    """What one committed write changed: new (key, position in the request) versions, the keys that
    stopped being current (replaced or deleted), per put whether it created the id, the deleted ids'
    count and the last sequence number."""

    new_keys: list[int]
    dead_keys: list[int]
    created: list[bool]
    deleted: int
    seq: int


def write_error(e: BaseException, path: Path) -> IndexWriteError:
    """SQLite / OS errors of a write → the index's write errors (the app maps them to 409 / 507)."""
    msg = str(e).lower()
    if "readonly" in msg or "read-only" in msg or (isinstance(e, OSError) and e.errno in (errno.EROFS, errno.EACCES)):
        return IndexReadOnlyError(f"{path}: the index is on a read-only volume or file, writes are refused ({e})")
    if "full" in msg or (isinstance(e, OSError) and e.errno == errno.ENOSPC):
        return IndexFullError(f"{path}: no space left for the write; it was rolled back and not applied ({e})")
    return IndexWriteError(f"{path}: the write failed and was rolled back ({e})")


def _connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        uri = f"file:{quote(str(path.resolve()))}?mode=ro"
        con = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
    else:
        con = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    con.execute("PRAGMA busy_timeout=10000")
    return con


def create(path: Path, docs: Iterable[tuple[int, Doc, np.ndarray, str]]) -> None:
    """Write a new live database at ``path`` holding the given sealed documents (key, doc, vector,
    terms), atomically: a temporary file beside it, fsynced, then renamed."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    try:
        con = sqlite3.connect(tmp, isolation_level=None)
        try:
            con.execute("PRAGMA journal_mode=OFF")  # a fresh file: nothing to protect until the rename
            con.executescript(SCHEMA)
            con.execute("BEGIN")
            con.executemany("INSERT INTO kv VALUES (?, ?)", [("segment", ""), ("checkpoint", "0")])
            batch: list[tuple[int, Doc, np.ndarray, str]] = []
            for item in docs:
                batch.append(item)
                if len(batch) >= 5000:
                    _insert_sealed(con, batch)
                    batch = []
            _insert_sealed(con, batch)
            con.execute("COMMIT")
            con.execute("PRAGMA journal_mode=WAL")  # persistent: every later connection is in WAL mode
        finally:
            con.close()
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _insert_sealed(con: sqlite3.Connection, batch: list[tuple[int, Doc, np.ndarray, str]]) -> None:
    con.executemany(
        "INSERT INTO docs VALUES (?, ?, 0, ?, ?, ?, ?, 1)",
        [(k, d[0], d[1], d[2], json.dumps(d[3], ensure_ascii=False), np.asarray(v, np.float32).tobytes())
         for k, d, v, _ in batch],
    )
    con.executemany("INSERT INTO fts (rowid, terms) VALUES (?, ?)", [(k, t) for k, _, _, t in batch])
    con.executemany("INSERT INTO meta VALUES (?, ?, ?)",
                    [(f, canonical_value(v), k) for k, d, _, _ in batch for f, v in d[3].items()])


class LiveStore:
    """The writer connection (used under the caller's write lock) and one reader connection per thread."""

    def __init__(self, path: Path, dim: int, readonly: bool = False) -> None:
        self.path = path
        self.dim = dim
        if not path.is_file():
            raise IndexLoadError(f"{path}: missing")
        self.readonly = readonly or not os.access(path.parent, os.W_OK) or not os.access(path, os.W_OK)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        self._writer: sqlite3.Connection | None = None
        if not self.readonly:
            try:
                w = _connect(path)
                w.execute("PRAGMA journal_mode=WAL")
                w.execute("PRAGMA synchronous=FULL")  # fsync the WAL at every commit: acknowledged = durable
                self._writer = w
            except sqlite3.OperationalError as e:
                if not isinstance(write_error(e, path), IndexReadOnlyError):
                    raise IndexLoadError(f"{path}: cannot open the live index ({e})") from e
                self.readonly = True
        try:
            self.kv("segment")
        except sqlite3.DatabaseError as e:
            self.close()
            raise IndexLoadError(f"{path}: not a readable live index database ({e})") from e

    # ---- reads -------------------------------------------------------------------------------------

    def con(self) -> sqlite3.Connection:
        if self._closed:
            raise IndexLoadError(f"{self.path}: the index was closed")
        c = getattr(self._local, "con", None)
        if c is None:
            # A writable volume: a normal connection that refuses writes (a mode=ro one needs the WAL's
            # -shm file to exist already); a read-only volume: mode=ro.
            c = _connect(self.path, readonly=self.readonly)
            c.execute("PRAGMA query_only=ON")
            self._local.con = c
            with self._lock:
                self._all.append(c)
        return c

    def kv(self, key: str) -> str | None:
        row = self.con().execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def last_seq(self) -> int:
        row = self.con().execute("SELECT MAX(seq) FROM log").fetchone()
        return int(row[0] or 0)

    def counts(self) -> dict[str, int]:
        c = self.con()
        total = int(c.execute("SELECT COUNT(*) FROM docs").fetchone()[0])
        growing = int(c.execute("SELECT COUNT(*) FROM docs WHERE sealed = 0").fetchone()[0])
        return {"documents": total, "growing": growing}

    def growing(self) -> tuple[np.ndarray, np.ndarray]:
        """The replay: (keys (G,) int64, vectors (G, D) float32) of the versions not yet sealed, in key
        (= write) order."""
        rows = self.con().execute("SELECT key, vector FROM docs WHERE sealed = 0 ORDER BY key").fetchall()
        keys = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        vecs = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), self.dim)
        return keys, vecs.copy()

    def sealed_keys(self) -> np.ndarray:
        rows = self.con().execute("SELECT key FROM docs WHERE sealed = 1 ORDER BY key").fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def get_keys(self, keys: Iterable[int]) -> dict[int, Doc]:
        want = sorted({int(k) for k in keys})
        out: dict[int, Doc] = {}
        c = self.con()
        for s in range(0, len(want), _CHUNK):
            chunk = want[s : s + _CHUNK]
            sql = f"SELECT key, id, title, text, metadata FROM docs WHERE key IN ({','.join('?' * len(chunk))})"
            for key, did, title, text, meta in c.execute(sql, chunk):
                out[key] = (did, title, text, json.loads(meta))
        return out

    def get_ids(self, ids: Sequence[str]) -> dict[str, tuple[int, Doc]]:
        want = list(dict.fromkeys(ids))
        out: dict[str, tuple[int, Doc]] = {}
        c = self.con()
        for s in range(0, len(want), _CHUNK):
            chunk = want[s : s + _CHUNK]
            sql = f"SELECT key, id, title, text, metadata FROM docs WHERE id IN ({','.join('?' * len(chunk))})"
            for key, did, title, text, meta in c.execute(sql, chunk):
                out[did] = (key, (did, title, text, json.loads(meta)))
        return out

    def matching_keys(self, filter: dict[str, Any]) -> np.ndarray:
        """Sorted int64 keys of the current documents whose metadata has every ``field == value``."""
        keys: np.ndarray | None = None
        for field, value in filter.items():
            found = self.con().execute("SELECT key FROM meta WHERE field = ? AND value = ?",
                                       (field, canonical_value(value))).fetchall()
            k = np.unique(np.fromiter((x[0] for x in found), dtype=np.int64, count=len(found)))
            keys = k if keys is None else np.intersect1d(keys, k, assume_unique=True)
            if keys.size == 0:
                break
        return keys if keys is not None else np.zeros(0, np.int64)

    def log_since(self, seq: int) -> list[tuple[int, str, str]]:
        return [(int(s), str(o), str(i)) for s, o, i in
                self.con().execute("SELECT seq, op, id FROM log WHERE seq > ? ORDER BY seq", (seq,))]

    def all_documents(self) -> list[tuple[int, Doc]]:
        rows = self.con().execute("SELECT key, id, title, text, metadata FROM docs ORDER BY key").fetchall()
        return [(k, (d, t, x, json.loads(m))) for k, d, t, x, m in rows]

    # ---- writes (the caller holds its write lock) ------------------------------------------------------

    def _w(self) -> sqlite3.Connection:
        if self._writer is None:
            raise IndexReadOnlyError(f"{self.path}: the index is on a read-only volume; writes are refused")
        return self._writer

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction on the writer connection: BEGIN IMMEDIATE, COMMIT when the block ends,
        ROLLBACK on any exception (nothing half-applied); SQLite/OS errors become the index's write errors."""
        w = self._w()
        try:
            w.execute("BEGIN IMMEDIATE")
            try:
                yield w
                w.execute("COMMIT")
            except BaseException:
                if w.in_transaction:
                    w.execute("ROLLBACK")
                raise
        except (sqlite3.Error, OSError) as e:
            raise write_error(e, self.path) from e

    def apply(self, puts: Sequence[Put], deletes: Sequence[str]) -> Applied:
        """One transaction: upsert ``puts``, delete ``deletes``; all or nothing, fsynced at commit."""
        new_keys: list[int] = []
        dead: list[int] = []
        created: list[bool] = []
        deleted = 0
        with self._transaction() as w:
            for p in puts:
                old = w.execute("SELECT key FROM docs WHERE id = ?", (p.id,)).fetchone()
                if old is not None:
                    self._remove(w, int(old[0]))
                    dead.append(int(old[0]))
                seq = w.execute("INSERT INTO log (op, id) VALUES ('put', ?)", (p.id,)).lastrowid
                key = w.execute(
                    "INSERT INTO docs (id, seq, title, text, metadata, vector, sealed) VALUES (?, ?, ?, ?, ?, ?, 0)",
                    (p.id, seq, p.title, p.text, json.dumps(p.metadata, ensure_ascii=False),
                     np.asarray(p.vector, np.float32).tobytes()),
                ).lastrowid
                assert key is not None
                w.execute("INSERT INTO fts (rowid, terms) VALUES (?, ?)", (key, p.terms))
                w.executemany("INSERT INTO meta VALUES (?, ?, ?)",
                              [(f, canonical_value(v), key) for f, v in p.metadata.items()])
                new_keys.append(int(key))
                created.append(old is None)
            for did in deletes:
                old = w.execute("SELECT key FROM docs WHERE id = ?", (did,)).fetchone()
                if old is None:
                    continue
                self._remove(w, int(old[0]))
                dead.append(int(old[0]))
                w.execute("INSERT INTO log (op, id) VALUES ('delete', ?)", (did,))
                deleted += 1
            seq_row = w.execute("SELECT MAX(seq) FROM log").fetchone()
        return Applied(new_keys, dead, created, deleted, int(seq_row[0] or 0))

    @staticmethod
    def _remove(w: sqlite3.Connection, key: int) -> None:
        w.execute("DELETE FROM docs WHERE key = ?", (key,))
        w.execute("DELETE FROM fts WHERE rowid = ?", (key,))
        w.execute("DELETE FROM meta WHERE key = ?", (key,))

    def seal(self, keys: np.ndarray, segment: str, checkpoint: int) -> None:
        """Compaction's commit: mark ``keys`` (those still current) sealed into ``segment``."""
        with self._transaction() as w:
            ks = [int(k) for k in keys]
            for s in range(0, len(ks), _CHUNK):
                chunk = ks[s : s + _CHUNK]
                w.execute(f"UPDATE docs SET sealed = 1 WHERE sealed = 0 AND key IN ({','.join('?' * len(chunk))})", chunk)
            w.executemany("INSERT OR REPLACE INTO kv VALUES (?, ?)",
                          [("segment", segment), ("checkpoint", str(checkpoint))])

    def limit_pages(self, pages: int | None) -> None:
        """``PRAGMA max_page_count``: a database size cap (the tests' stand-in for a full disk)."""
        w = self._w()
        if pages is None:
            pages = 1 << 30
        w.execute(f"PRAGMA max_page_count={int(pages)}")

    def page_count(self) -> int:
        return int(self._w().execute("PRAGMA page_count").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for c in self._all:
                c.close()
            self._all.clear()
            if self._writer is not None:
                self._writer.close()
                self._writer = None
