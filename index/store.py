"""The document store: one SQLite file holding (row, id, title, text, metadata) per document.

``row`` is the document's position in the corpus and its int64 id in FAISS, so a search hit is
looked up by primary key; nothing of the corpus stays in Python memory. Top-level metadata fields are
also indexed as (field, canonical JSON value, row) so that a filter finds its rows without a scan.

Reads open the file read-only and ``immutable`` (an index never changes after its build: no locking
needed), one connection per thread, so a thread pool can search concurrently.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from .errors import IndexLoadError

STORE_FILE = "docs.sqlite"
_CHUNK = 900  # bound on SQL variables per statement (older SQLite builds allow 999)
MMAP_BYTES = 1 << 30  # the first GiB of a store file is read through a memory map (address space, not memory)

Doc = tuple[str, str, str, dict[str, Any]]  # id, title, text, metadata

SCHEMA = """
CREATE TABLE docs (row INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, title TEXT NOT NULL,
                   text TEXT NOT NULL, metadata TEXT NOT NULL);
CREATE TABLE meta (field TEXT NOT NULL, value TEXT NOT NULL, row INTEGER NOT NULL);
"""


def canonical_value(value: Any) -> str:
    """The JSON text a metadata value is indexed and filtered by; 2.0 and 2 compare equal, as in Python."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def write_store(path: Path, docs: Iterable[Doc]) -> tuple[int, str]:
    """Write every document (rows numbered 0..N-1 in order); returns (count, corpus fingerprint).

    The fingerprint is a sha256 over the documents' content (id, title, text, metadata), so the same
    documents read from a TSV or a JSONL give the same fingerprint.
    """
    h = hashlib.sha256()
    con = sqlite3.connect(path)
    try:
        # The file lives in a temporary build directory: no journal needed, a failed build is discarded.
        con.execute("PRAGMA journal_mode=OFF")
        con.execute("PRAGMA synchronous=OFF")
        con.executescript(SCHEMA)
        n = 0

        def rows() -> Iterator[tuple[int, str, str, str, str]]:
            nonlocal n
            for did, title, text, meta in docs:
                line = json.dumps([did, title, text, meta], ensure_ascii=False, sort_keys=True)
                h.update(line.encode("utf-8") + b"\n")
                yield n, did, title, text, json.dumps(meta, ensure_ascii=False)
                n += 1

        def meta_rows(batch: list[tuple[int, str, str, str, str]]) -> Iterator[tuple[str, str, int]]:
            for row, _, _, _, meta in batch:
                for field, value in json.loads(meta).items():
                    yield field, canonical_value(value), row

        batch: list[tuple[int, str, str, str, str]] = []
        for r in rows():
            batch.append(r)
            if len(batch) >= 10_000:
                con.executemany("INSERT INTO docs VALUES (?,?,?,?,?)", batch)
                con.executemany("INSERT INTO meta VALUES (?,?,?)", meta_rows(batch))
                batch = []
        con.executemany("INSERT INTO docs VALUES (?,?,?,?,?)", batch)
        con.executemany("INSERT INTO meta VALUES (?,?,?)", meta_rows(batch))
        con.execute("CREATE INDEX meta_field_value ON meta (field, value, row)")
        con.commit()
        con.execute("VACUUM")
    finally:
        con.close()
    return n, h.hexdigest()


class DocStore:
    """Read side of the store, safe to share between threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.is_file():
            raise IndexLoadError(f"{path}: missing")
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        try:
            self.count = int(self._query("SELECT COUNT(*) FROM docs", ())[0][0])
        except IndexLoadError:
            self.close()
            raise

    def _con(self) -> sqlite3.Connection:
        if self._closed:
            raise IndexLoadError(f"{self.path}: the index was closed")
        con = getattr(self._local, "con", None)
        if con is None:
            uri = f"file:{quote(str(self.path.resolve()))}?mode=ro&immutable=1"
            con = sqlite3.connect(uri, uri=True, check_same_thread=False)
            # Pages read through a memory map, not read() into the connection's own cache: a search's
            # ten documents 58 -> 47 µs (medquad, 24 MB), and the pages are the OS cache's, shared by
            # every connection and worker process instead of copied into each.
            con.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
            self._local.con = con
            with self._lock:
                self._all.append(con)
        return con

    def _query(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        try:
            return self._con().execute(sql, params).fetchall()
        except sqlite3.DatabaseError as e:
            # A damaged page surfaces only when it is read: name the file, never a bare sqlite error.
            raise IndexLoadError(f"{self.path}: cannot read the document store ({e}); rebuild the index") from e

    def get(self, rows: Iterable[int]) -> dict[int, Doc]:
        """{row: (id, title, text, metadata)} for the rows that exist."""
        want = sorted({int(r) for r in rows})
        out: dict[int, Doc] = {}
        for s in range(0, len(want), _CHUNK):
            chunk = want[s : s + _CHUNK]
            sql = f"SELECT row, id, title, text, metadata FROM docs WHERE row IN ({','.join('?' * len(chunk))})"
            for row, did, title, text, meta in self._query(sql, tuple(chunk)):
                out[row] = (did, title, text, {} if meta == "{}" else json.loads(meta))  # most have none
        return out

    def rows_of(self, ids: Iterable[str]) -> dict[str, int]:
        """{id: row} for the ids that exist."""
        want = list(dict.fromkeys(ids))
        out: dict[str, int] = {}
        for s in range(0, len(want), _CHUNK):
            chunk = want[s : s + _CHUNK]
            sql = f"SELECT id, row FROM docs WHERE id IN ({','.join('?' * len(chunk))})"
            out.update(self._query(sql, tuple(chunk)))
        return out

    def matching_rows(self, filter: dict[str, Any]) -> np.ndarray:
        """Sorted int64 rows whose metadata has every ``field == value`` of ``filter``."""
        rows: np.ndarray | None = None
        for field, value in filter.items():
            found = self._query("SELECT row FROM meta WHERE field = ? AND value = ?", (field, canonical_value(value)))
            r = np.fromiter((x[0] for x in found), dtype=np.int64, count=len(found))
            rows = np.unique(r) if rows is None else np.intersect1d(rows, r, assume_unique=True)
            if rows.size == 0:
                break
        return rows if rows is not None else np.arange(self.count, dtype=np.int64)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for con in self._all:
                con.close()
            self._all.clear()
