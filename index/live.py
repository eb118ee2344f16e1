"""A live index: writes while serving, durable, searchable at once (Lucene's and Milvus's design).

    sealed segment (immutable FAISS, index/segments.py) + deletion mask (bitset → FAISS IDSelector)
  + growing segment (in memory, exact search, index/growing.py)
  + FTS5 over every current document (index/fulltext.py)
  + the durable log and store (index/wal.py, ``live.sqlite``): the source of truth.

A built index (``build_index.py``) goes live unchanged: its FAISS index and vectors are the first sealed
segment (row r = version key r) and ``live.sqlite`` is made beside them from its documents. The built
files are never written again; compactions write new segment folders.

Writes (``upsert``, ``delete``): the document tower encodes the texts and the terms are computed outside
any lock; then, under the write lock, one SQLite transaction (fsynced) applies everything, and a new
immutable snapshot of the in-memory state is published (one reference swap). Searches take the
snapshot current when they start and never lock. A version key shown by a search is current both in
that snapshot and in the database read after it (a version missing from either is dropped), so an
update never shows the old and the new version together, and a deleted document never shows at all.
Read-your-writes: the snapshot is published before the write returns.

Start-up replays the log past the last sealed checkpoint: the growing versions' vectors are read from
``live.sqlite`` (no re-encoding), the sealed segment's deletion mask from which of its keys are still
current. Compaction (:meth:`compact`) folds the growing versions and the deletions into a new sealed
segment while searches and writes go on.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import fulltext
from .dense import Allowed, normalise
from .errors import IndexLoadError, IndexReadOnlyError, IndexWriteError
from .exact import row_scores
from .fusion import DEPTH, Candidates, check_fusion, fuse
from .lexical import tokenize
from .protocols import TextEncoder
from .search import PAGE_WINDOW, Hit, SearchIndex, page
from .segments import SEGMENTS_DIR, Segment, load_base, load_segment, write_segment
from .store import Doc
from .wal import LIVE_FILE, Applied, LiveStore, Put, create

Ranked = list[tuple[int, float, float | None]]  # (version key, score, dense score) best first
_EMPTY = (np.zeros(0, np.int64), np.zeros(0, np.float32))
ID_MAX_CHARS = 512


def is_live(index_dir: str | os.PathLike) -> bool:
    return (Path(index_dir) / LIVE_FILE).is_file()


def full_text(title: str, text: str) -> str:
    """What the model and BM25 read, as ``Corpus.full_text``: ``title + " " + text``."""
    return f"{title} {text}" if title else text


@dataclass(frozen=True)
class _State:
    """An immutable snapshot of what is current (published by a write, read by searches)."""

    segment: Segment
    alive: np.ndarray  # (segment.n,) bool
    allowed: Allowed | None  # the selector over ``alive``; None when every sealed row is current
    growing: Any  # index.growing.GrowingView
    seq: int

    def current(self, keys: np.ndarray) -> np.ndarray:
        """(n,) bool: the version key is current in this snapshot."""
        rows = self.segment.rows_of(keys)
        ok = rows >= 0
        ok[ok] = self.alive[rows[ok]]
        return ok | (self.growing.positions(keys) >= 0)

    def vectors(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(vectors (n, D) float32, current (n,) bool) of version keys (zero rows for the others)."""
        out = np.zeros((keys.size, self.segment.dense.dim), dtype=np.float32)
        rows = self.segment.rows_of(keys)
        s = rows >= 0
        s[s] = self.alive[rows[s]]
        if s.any():
            out[s] = self.segment.dense.vectors[rows[s]]
        pos = self.growing.positions(keys)
        g = pos >= 0
        if g.any():
            out[g] = self.growing.vectors[pos[g]]
        return out, s | g


class LiveIndex:
    """Open with :meth:`open`; the search methods are :class:`SearchIndex`'s, plus writes and compaction."""

    live = True

    def __init__(self, base: SearchIndex, store: LiveStore, encoder: TextEncoder | None) -> None:
        from .growing import Growing

        self.path = base.path
        self.manifest = base.manifest
        self.dim = base.dim
        self.index_type = base.index_type
        self.lang = base.lang
        self.model_fingerprint = base.model_fingerprint
        self._base = base
        self._store = store
        self._encoder = encoder
        self._write_lock = threading.Lock()
        self._compact_lock = threading.Lock()
        self.timings = {"encode_seconds": 0.0, "commit_seconds": 0.0, "documents": 0}
        name = store.kv("segment") or ""
        search_params = dict(self.manifest["index"].get("search", {}))
        segment = load_base(base.path, base._dense) if not name else load_segment(base.path, name, self.dim, search_params)
        alive = np.zeros(segment.n, dtype=bool)
        rows = segment.rows_of(store.sealed_keys())
        if (rows < 0).any():
            raise IndexLoadError(f"{store.path}: sealed documents missing from segment {name or '(built index)'}")
        alive[rows] = True
        keys, vectors = store.growing()  # the replay: versions past the last sealed checkpoint
        self._growing = Growing(self.dim, keys, vectors)
        self._state = _State(segment, alive, None if alive.all() else segment.allowed(alive), self._growing.view(),
                             store.last_seq())
        self._remove_stale_segments(name)

    # ---- opening ---------------------------------------------------------------------------------

    @classmethod
    def open(cls, index_dir: str | os.PathLike, encoder: TextEncoder | None = None, verify_hashes: bool = False,
             create_live: bool = True) -> LiveIndex:
        """Open a live index; a built index without ``live.sqlite`` is made live first (its documents and
        vectors copied into a new ``live.sqlite``, the built files untouched) unless ``create_live`` is
        false. Raises :class:`IndexReadOnlyError` when that file cannot be created (read-only volume)."""
        base = SearchIndex.load(index_dir, encoder, verify_hashes)
        try:
            path = base.path / LIVE_FILE
            if not path.is_file():
                if not create_live:
                    raise IndexLoadError(f"{base.path}: not a live index (no {LIVE_FILE})")
                if not os.access(base.path, os.W_OK):
                    raise IndexReadOnlyError(f"{base.path}: the index folder is read-only; it serves read-only")
                cls._make_live(base, path)
            store = LiveStore(path, base.dim)
            try:
                return cls(base, store, encoder)
            except BaseException:
                store.close()
                raise
        except BaseException:
            base.close()
            raise

    @staticmethod
    def _make_live(base: SearchIndex, path: Path) -> None:
        n = base.size
        docs = base._store.get(range(n)) if n else {}
        texts = [full_text(docs[r][1], docs[r][2]) for r in range(n)]
        terms = fulltext.document_terms(texts, base.lang) if n else []
        vectors = base._dense.vectors
        try:
            create(path, ((r, docs[r], vectors[r], terms[r]) for r in range(n)))
        except OSError as e:
            raise IndexReadOnlyError(f"{base.path}: cannot create {LIVE_FILE} ({e}); it serves read-only") from e

    def _remove_stale_segments(self, current: str) -> None:
        d = self.path / SEGMENTS_DIR
        if self._store.readonly or not d.is_dir():
            return
        for p in d.iterdir():
            if p.name != current:
                shutil.rmtree(p, ignore_errors=True)  # a compaction that crashed or whose swap finished

    # ---- properties --------------------------------------------------------------------------------

    @property
    def fusion(self) -> dict[str, Any]:
        return dict(self.manifest["fusion"])

    @property
    def size(self) -> int:
        st = self._state
        return int(st.alive.sum()) + st.growing.live

    @property
    def readonly(self) -> bool:
        return self._store.readonly

    def counts(self) -> dict[str, Any]:
        """The live counts of ``/info``: documents, growing (not yet sealed), deletions not yet compacted
        (sealed rows no longer current + dead growing versions), the last sequence number."""
        st = self._state
        return {
            "documents": self.size, "growing": st.growing.live,
            "deleted_not_compacted": int(st.segment.n - st.alive.sum()) + int(st.growing.n - st.growing.live),
            "last_seq": st.seq, "sealed": {"segment": st.segment.name or "(built index)", "rows": st.segment.n},
            "checkpoint": int(self._store.kv("checkpoint") or 0), "read_only": self.readonly,
        }

    # ---- search --------------------------------------------------------------------------------------

    @staticmethod
    def _check_k(k: int, offset: int = 0) -> None:
        SearchIndex._check_k(k, offset)

    def _filter_keys(self, filter: dict[str, Any] | None) -> np.ndarray | None:
        if not filter:
            return None
        SearchIndex._check_filter(filter)
        return self._store.matching_keys(filter)

    def _dense(self, st: _State, q: np.ndarray, k: int, fkeys: np.ndarray | None) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per query (keys, cosines) best first, at most k: the sealed segment (FAISS, deletions and the
        filter as one ID selector) and the growing one (exact), merged on exact row-by-row cosines."""
        seg = st.segment
        if fkeys is None:
            allowed, gmask = st.allowed, None
        else:
            rows = seg.rows_of(fkeys)
            mask = np.zeros(seg.n, dtype=bool)
            mask[rows[rows >= 0]] = True
            allowed = seg.allowed(mask & st.alive)
            gmask = np.isin(st.growing.keys[: st.growing.n], fkeys)
        # Each side returns a margin past k, ranked by its own kernel (FAISS, BLAS); the cut at k is made
        # below on the row-by-row exact cosines, so a near-tie at the boundary that the two kernels round
        # differently cannot change which documents make the top k (before and after a compaction alike).
        deep = k + max(8, k // 4)
        if seg.n and (allowed is None or allowed.rows.size):
            sealed = seg.dense.search(q, deep, allowed)
        else:
            sealed = [_EMPTY for _ in q]
        grow = st.growing.search(q, deep, gmask)
        out = []
        for qi, ((srows, _), (gkeys, _)) in enumerate(zip(sealed, grow, strict=True)):
            keys = np.concatenate([seg.keys[srows], gkeys]).astype(np.int64)
            if keys.size == 0:
                out.append(_EMPTY)
                continue
            vecs, _ = st.vectors(keys)
            scores = row_scores(vecs, q[qi])
            order = np.lexsort((keys, -scores))[:k]  # score descending, then key ascending
            out.append((keys[order], scores[order]))
        return out

    def _lexical(self, st: _State, terms: list[list[str]], k: int, filter: dict[str, Any] | None) -> list[tuple[np.ndarray, np.ndarray]]:
        con = self._store.con()
        out = []
        for t in terms:
            keys, scores = fulltext.search(con, t, k, filter)
            ok = st.current(keys)  # committed after this snapshot: not searchable yet (not acknowledged)
            out.append((keys[ok], scores[ok]))
        return out

    def _hits(self, ranked: list[Ranked]) -> list[list[Hit]]:
        docs = self._store.get_keys(k for lst in ranked for k, _, _ in lst)
        out = []
        for lst in ranked:
            hits = []
            for key, s, ds in lst:
                d = docs.get(key)
                if d is None:
                    continue  # replaced or deleted after the snapshot: never show a stale version
                hits.append(Hit(d[0], float(s), None if ds is None else float(ds), d[1], d[2], d[3]))
            out.append(hits)
        return out

    def search(self, vectors: np.ndarray, k: int, filter: dict[str, Any] | None = None,
               offset: int = 0) -> list[list[Hit]]:
        """Dense search (as :meth:`SearchIndex.search`): score = dense_score = exact cosine. Segments may
        be approximate, so every page is ranked at least PAGE_WINDOW deep (index/search.py)."""
        self._check_k(k, offset)
        st = self._state
        q = normalise(vectors, self.dim)
        end = offset + k
        ranked = self._dense(st, q, max(end, PAGE_WINDOW), self._filter_keys(filter))
        return self._hits(page([list(zip(rs[0].tolist(), rs[1].tolist(), rs[1].tolist(), strict=True))[:end]
                                for rs in ranked], offset))

    def search_bm25(self, queries: list[str], k: int, filter: dict[str, Any] | None = None,
                    offset: int = 0) -> list[list[Hit]]:
        """BM25 (FTS5) over the current documents: score = BM25, dense_score None."""
        self._check_k(k, offset)
        if filter:
            SearchIndex._check_filter(filter)
        st = self._state
        ranked = self._lexical(st, fulltext.query_terms(list(queries), self.lang), offset + k, filter)
        return self._hits(page([[(int(r), float(s), None) for r, s in zip(*rs, strict=True)] for rs in ranked], offset))

    def hybrid_candidates(self, queries: list[str], vectors: np.ndarray, depth: int,
                          filter: dict[str, Any] | None = None) -> list[Candidates]:
        queries = list(queries)
        q = normalise(vectors, self.dim)
        if len(queries) != len(q):
            raise ValueError(f"{len(queries)} query texts but {len(q)} query vectors")
        st = self._state
        fkeys = self._filter_keys(filter)
        dense = self._dense(st, q, depth, fkeys)
        tokens = tokenize(queries, self.lang)  # once: the fusion reads them, the full-text table their hex
        terms = fulltext.hex_terms(tokens)
        lexical = self._lexical(st, terms, depth, filter)
        stats = fulltext.known_share(self._store.con(), terms)
        out = []
        for qi, ((dk, dsc), (lk, lsc)) in enumerate(zip(dense, lexical, strict=True)):
            cos = dict(zip(dk.tolist(), dsc.tolist(), strict=True))
            missing = np.array([r for r in lk.tolist() if r not in cos], dtype=np.int64)
            if missing.size:
                vecs, _ = st.vectors(missing)
                cos.update(zip(missing.tolist(), row_scores(vecs, q[qi]).tolist(), strict=True))
            bm25 = dict(zip(lk.tolist(), lsc.tolist(), strict=True))
            out.append(Candidates(dk.tolist(), lk.tolist(), bm25, cos, qlen=stats[qi][0], known=stats[qi][1],
                                  terms=tuple(tokens[qi])))
        return out

    def search_hybrid(self, queries: list[str], vectors: np.ndarray, k: int, filter: dict[str, Any] | None = None,
                      fusion: dict[str, Any] | None = None, offset: int = 0) -> list[list[Hit]]:
        """Dense fused with BM25 (the index's fusion, index/fusion.py), as :meth:`SearchIndex.search_hybrid`."""
        self._check_k(k, offset)
        settings = self.fusion if fusion is None else fusion
        why = check_fusion(settings)
        if why:
            raise ValueError(f"fusion: {why}")
        end = offset + k
        depth = max(end, int(settings.get("depth", DEPTH)))  # pages within depth: one ranking
        cands = self.hybrid_candidates(queries, vectors, depth, filter)
        return self._hits(page([[(r, s, c.cos[r]) for r, s in fuse(c, settings)[:end]] for c in cands], offset))

    def documents(self, ids: list[str]) -> list[Hit | None]:
        found = self._store.get_ids(ids)
        out: list[Hit | None] = []
        for i in ids:
            f = found.get(i)
            out.append(None if f is None else Hit(f[1][0], 0.0, None, f[1][1], f[1][2], f[1][3]))
        return out

    # ---- writes ----------------------------------------------------------------------------------------

    def _check_writable(self) -> None:
        if self._store.readonly:
            raise IndexReadOnlyError(f"{self._store.path}: the index is on a read-only volume; writes are refused")

    def upsert(self, docs: Sequence[Doc]) -> Applied:
        """Insert or replace documents (id, title, text, metadata), all or none; durable on return."""
        self._check_writable()
        if self._encoder is None:
            raise IndexWriteError("this index was opened without its model: it cannot encode documents")
        seen: set[str] = set()
        for d in docs:
            if d[0] in seen:
                raise ValueError(f"document id {d[0]!r} appears twice in one batch")
            seen.add(d[0])
        t = time.perf_counter()
        texts = [full_text(d[1], d[2]) for d in docs]
        vectors = self._encoder.encode(texts, tower="document") if docs else np.zeros((0, self.dim), np.float32)
        if vectors.shape != (len(docs), self.dim) or not np.isfinite(vectors).all():
            raise IndexWriteError(f"the encoder returned {vectors.shape} or non-finite vectors")
        vectors = normalise(vectors, self.dim)  # (n, D) unit rows
        terms = fulltext.document_terms(texts, self.lang) if docs else []
        t_enc = time.perf_counter() - t
        puts = [Put(d[0], d[1], d[2], dict(d[3]), vectors[i], terms[i]) for i, d in enumerate(docs)]
        t = time.perf_counter()
        with self._write_lock:
            applied = self._store.apply(puts, [])
            self._publish(applied, vectors)
        self.timings["encode_seconds"] += t_enc
        self.timings["commit_seconds"] += time.perf_counter() - t
        self.timings["documents"] += len(docs)
        return applied

    def delete(self, ids: Sequence[str]) -> Applied:
        """Delete documents by id (unknown ids are skipped; ``Applied.deleted`` counts the others)."""
        self._check_writable()
        with self._write_lock:
            applied = self._store.apply([], list(dict.fromkeys(ids)))
            self._publish(applied, np.zeros((0, self.dim), np.float32))
        return applied

    def _publish(self, applied: Applied, vectors: np.ndarray) -> None:
        """Under the write lock, after the commit: the new snapshot (one reference swap)."""
        st = self._state
        alive = st.alive
        dead = np.asarray(applied.dead_keys, dtype=np.int64)
        if dead.size:
            rows = st.segment.rows_of(dead)
            rows = rows[rows >= 0]
            if rows.size:
                alive = alive.copy()
                alive[rows] = False
            self._growing.kill(dead)
        if applied.new_keys:
            self._growing.append(np.asarray(applied.new_keys, dtype=np.int64), vectors)
        allowed = st.allowed if alive is st.alive else (None if alive.all() else st.segment.allowed(alive))
        self._state = _State(st.segment, alive, allowed, self._growing.view(), max(applied.seq, st.seq))

    # ---- compaction ------------------------------------------------------------------------------------

    def compact(self) -> dict[str, Any]:
        """Fold the growing segment and the deletions into one new sealed segment (merging the old one),
        while searches and writes go on: the vectors are gathered from a snapshot and the segment is
        built and written without the write lock; the switch (one SQLite transaction, then one snapshot
        swap) takes it briefly. A flat index gives identical results before and after."""
        self._check_writable()
        from .growing import Growing

        with self._compact_lock:
            t0 = time.perf_counter()
            st = self._state
            g = st.growing
            folded = int(g.live)
            purged = int(st.segment.n - st.alive.sum()) + int(g.n - g.live)
            if folded == 0 and purged == 0:
                return {"status": "nothing to compact", "documents": self.size, "segment": st.segment.name,
                        "folded": 0, "purged": 0, "took_ms": 0.0}
            srows = np.flatnonzero(st.alive)
            gpos = np.flatnonzero(g.alive)
            keys = np.concatenate([st.segment.keys[srows], g.keys[gpos]])
            vectors = np.concatenate([np.asarray(st.segment.dense.vectors[srows], dtype=np.float32),
                                      g.vectors[gpos]])  # (N, D)
            order = np.argsort(keys, kind="stable")
            keys, vectors = keys[order], vectors[order]
            name = f"seg-{st.seq:012d}"
            build = dict(self.manifest["index"].get("build", {}))
            factory = write_segment(self.path, name, keys, vectors, self.index_type, build)
            search_params = dict(self.manifest["index"].get("search", {}))
            segment = load_segment(self.path, name, self.dim, search_params)
            with self._write_lock:
                self._store.seal(g.keys[gpos], name, st.seq)
                now = self._state
                # Writes since the snapshot: versions killed meanwhile are dead rows of the new segment;
                # versions added meanwhile stay growing.
                alive = now.current(keys)
                old_growing = now.growing
                later = np.arange(g.n, old_growing.n)
                later = later[old_growing.alive[later]]
                self._growing = Growing(self.dim, old_growing.keys[later].copy(), old_growing.vectors[later].copy())
                self._state = _State(segment, alive, None if alive.all() else segment.allowed(alive),
                                     self._growing.view(), now.seq)
            if st.segment.name:
                shutil.rmtree(self.path / SEGMENTS_DIR / st.segment.name, ignore_errors=True)
            return {"status": "compacted", "documents": self.size, "segment": name, "factory": factory,
                    "folded": folded, "purged": purged, "checkpoint": st.seq,
                    "took_ms": round((time.perf_counter() - t0) * 1000, 1)}

    # ---- catching up (a reload to an index re-encoded from this one) -----------------------------------

    def catch_up(self, source: LiveIndex, since: int) -> int:
        """Apply what ``source``'s log holds past ``since`` (its sequence number when this index was
        re-encoded from it): each id touched since then takes its current state in ``source`` (re-encoded
        with this index's model) or is deleted. Returns how many ids were brought up to date."""
        ids = list(dict.fromkeys(i for _, _, i in source._store.log_since(since)))
        if not ids:
            return 0
        current = source._store.get_ids(ids)
        puts = [current[i][1] for i in ids if i in current]
        gone = [i for i in ids if i not in current]
        for s in range(0, len(puts), 256):
            self.upsert(puts[s : s + 256])
        if gone:
            self.delete(gone)
        return len(ids)

    def all_documents(self) -> list[Doc]:
        return [d for _, d in self._store.all_documents()]

    def last_seq(self) -> int:
        return self._state.seq

    def limit_pages(self, extra_pages: int | None) -> None:
        """Cap the database at its current size + ``extra_pages`` (None lifts it): the stand-in for a full
        disk in tests (SQLite answers SQLITE_FULL exactly as on a full disk)."""
        with self._write_lock:
            self._store.limit_pages(None if extra_pages is None else self._store.page_count() + extra_pages)

    def close(self) -> None:
        self._store.close()
        self._base.close()

    def __enter__(self) -> LiveIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LiveIndex({str(self.path)!r}, {self.size} documents, {self.index_type}, dim {self.dim})"
