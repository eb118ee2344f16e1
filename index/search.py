"""A built index, loaded for search: dense (FAISS), BM25 and hybrid search, documents by id.

Safe to share between threads: FAISS searches take per-call parameters, BM25 arrays are read-only,
and the document store opens one read-only SQLite connection per thread.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .dense import FAISS_FILE, VECTORS_FILE, Allowed, DenseIndex, normalise
from .errors import IndexLoadError, IndexMismatchError
from .fusion import DEPTH, Candidates, check_fusion, fuse
from .lexical import BM25
from .manifest import MANIFEST_FILE, check_files, check_manifest_fields, read_manifest
from .protocols import TextEncoder
from .store import STORE_FILE, DocStore, canonical_value

BM25_DIR = "bm25"
_FILTER_CACHE = 64  # filters kept as row sets; a service sees few distinct ones
# ...and bounded in bytes (row array + bitmap + key), since one entry of a large index or a long filter
# can be megabytes: 64 entries of a 1M-document index would otherwise hold ~520 MB.
_FILTER_CACHE_BYTES = 32 << 20


@dataclass
class Hit:
    id: str
    score: float
    dense_score: float | None
    title: str
    text: str
    metadata: dict[str, Any]


Ranked = tuple[np.ndarray, np.ndarray]  # (rows (n,) int64, scores (n,) float32), best first

# Paging (``offset``): results offset..offset+k-1 of the ranking. An approximate index (HNSW, IVF) can
# order its first 10 differently when asked for 10 than when asked for 20 (efSearch / nprobe grow with
# k), so one document could show on two pages (qdrant#9523): such an index ranks every request at least
# PAGE_WINDOW deep, which makes all pages up to PAGE_WINDOW slices of one ranking. Exact rankings (flat,
# BM25) are prefix-stable already, and hybrid fuses each side's top ``depth`` (100) for any page within it.
PAGE_WINDOW = DEPTH


def page(ranked: list[list[Any]], offset: int) -> list[list[Any]]:
    """Each ranking from ``offset`` on (the ranking was cut at offset + k already)."""
    return ranked if offset == 0 else [r[offset:] for r in ranked]


def _bm25_problem(model: Any, count: int) -> str | None:  # model: a loaded bm25s.BM25
    """What in the BM25 arrays would make a search fail or score garbage, or None.

    bm25s reads them as a CSC matrix (token → documents): ``indptr`` slices ``indices`` (document rows)
    and ``data`` (scores) per token id. Read once at load (they are memory-mapped, ~ms for 10^6 entries)."""
    sc = model.scores
    data, indices, indptr = (np.asarray(sc.get(k)) for k in ("data", "indices", "indptr"))
    if data.ndim != 1 or indices.ndim != 1 or indptr.ndim != 1 or indptr.size < 1:
        return "data, indices and indptr must be 1-D arrays"
    if data.dtype.kind != "f" or indices.dtype.kind not in "iu" or indptr.dtype.kind not in "iu":
        return f"dtypes {data.dtype}, {indices.dtype}, {indptr.dtype} (floats and integers expected)"
    if data.size != indices.size:
        return f"{data.size} scores but {indices.size} document rows"
    if not np.isfinite(data).all():
        return "non-finite scores"
    if indices.size and (int(indices.min()) < 0 or int(indices.max()) >= count):
        return f"document rows outside 0..{count - 1}"
    if int(indptr[0]) != 0 or int(indptr[-1]) != data.size or (np.diff(indptr) < 0).any():
        return "indptr is not a non-decreasing 0..len(data) sequence"
    vocab = model.vocab_dict
    if not isinstance(vocab, dict):
        return "the vocabulary is not a JSON object"
    n_tokens = indptr.size - 1
    for token, tid in vocab.items():
        # bm25s keeps "" as a placeholder id one past the last real token; it is never looked up.
        if not isinstance(tid, int) or tid < 0 or (tid >= n_tokens and not (token == "" and tid == n_tokens)):
            return f"token {str(token)[:40]!r} has id {tid!r}, outside 0..{n_tokens - 1}"
    return None


def _check_store(store: DocStore, count: int) -> None:
    """Rows 0..count-1, text columns, metadata objects and filter rows inside the corpus; else IndexLoadError.

    A row whose metadata is ``[1, 2]`` or whose title is a number would load and then fail every search
    that returns it; a filter row past the corpus would fail every search with that filter."""
    q = store._query  # the store's own read path, which turns a damaged page into IndexLoadError
    lo, hi = q("SELECT MIN(row), MAX(row) FROM docs", ())[0]
    if count and (lo, hi) != (0, count - 1):
        raise IndexLoadError(f"{store.path}: rows {lo}..{hi}, expected 0..{count - 1}")
    bad = q("SELECT row FROM docs WHERE typeof(id) != 'text' OR typeof(title) != 'text' OR typeof(text) != 'text' "
            "OR typeof(metadata) != 'text' LIMIT 1", ())
    if bad:
        raise IndexLoadError(f"{store.path}: row {bad[0][0]}: id, title, text and metadata must be text")
    try:
        bad = store._con().execute(
            "SELECT row FROM docs WHERE NOT json_valid(metadata) OR json_type(metadata) != 'object' LIMIT 1").fetchall()
    except sqlite3.OperationalError:  # an SQLite without JSON functions: read the column here instead
        bad = []
        for row, meta in q("SELECT row, metadata FROM docs", ()):
            try:
                ok = isinstance(json.loads(meta), dict)
            except ValueError:
                ok = False
            if not ok:
                bad = [(row,)]
                break
    except sqlite3.DatabaseError as e:
        raise IndexLoadError(f"{store.path}: cannot read the document store ({e}); rebuild the index") from e
    if bad:
        raise IndexLoadError(f"{store.path}: row {bad[0][0]}: metadata must be a JSON object")
    bad = q("SELECT row FROM meta WHERE typeof(row) != 'integer' OR row < 0 OR row >= ? LIMIT 1", (count,))
    if bad:
        raise IndexLoadError(f"{store.path}: the metadata index names row {bad[0][0]!r}, outside 0..{count - 1}")


def _entry_bytes(key: tuple[tuple[str, str], ...], allowed: Allowed) -> int:
    """Approximate memory of one filter-cache entry: its arrays, plus ~100 bytes of Python objects and
    the text of each (field, value) pair of its key."""
    return allowed.rows.nbytes + allowed.bitmap.nbytes + sum(100 + len(k) + len(v) for k, v in key)


class SearchIndex:
    """Load with :meth:`load`; then :meth:`search`, :meth:`search_bm25`, :meth:`search_hybrid`."""

    def __init__(self, path: Path, manifest: dict[str, Any], store: DocStore, dense: DenseIndex, bm25: BM25 | None) -> None:
        self.path = path
        self.manifest = manifest
        self.size: int = manifest["documents"]
        self.dim: int = manifest["dim"]
        self.index_type: str = manifest["index"]["type"]
        self.lang: str = manifest["model"]["lang"]
        self.model_fingerprint: str = manifest["model"]["fingerprint"]
        self._store = store
        self._dense = dense
        self._bm25 = bm25
        self._filters: OrderedDict[tuple[tuple[str, str], ...], Allowed] = OrderedDict()
        self._filter_bytes = 0  # what _filters holds, by _entry_bytes
        self._lock = threading.Lock()

    @property
    def fusion(self) -> dict[str, Any]:
        """The hybrid settings chosen on dev at build time (a copy), e.g. {"method": "rrf", "k": 10, ...}."""
        return dict(self.manifest["fusion"])

    @classmethod
    def load(cls, index_dir: str | os.PathLike, encoder: TextEncoder | None = None, verify_hashes: bool = False) -> SearchIndex:
        """Open an index directory. With ``encoder``, refuse an index built by another model or of another
        dimension (:class:`IndexMismatchError`). File sizes are always checked against the manifest,
        sha256 hashes only with ``verify_hashes`` (reads every byte)."""
        d = Path(index_dir)
        m = read_manifest(d)
        mp = d / MANIFEST_FILE
        why = check_manifest_fields(m)
        if why:
            raise IndexLoadError(f"{mp}: {why}")
        try:
            dim, count = int(m["dim"]), int(m["documents"])
            fp, lang = m["model"]["fingerprint"], m["model"]["lang"]
            if not isinstance(m["index"]["type"], str):
                raise ValueError("index.type")
            search_params = dict(m["index"].get("search", {}))
            bm25_info = m.get("bm25")
        except (KeyError, TypeError, ValueError) as e:
            raise IndexLoadError(f"{mp}: missing or bad field {e}") from e
        if encoder is not None:
            if encoder.dim != dim:
                raise IndexMismatchError(
                    f"{d}: the index holds {dim}-dimensional vectors but model {encoder.name or '(in memory)'} "
                    f"makes {encoder.dim}-dimensional ones; rebuild the index with this model"
                )
            if encoder.fingerprint != fp:
                raise IndexMismatchError(
                    f"{d}: the index was built with model {m['model'].get('path', '?')} (fingerprint {fp[:12]}), "
                    f"not with {encoder.name or '(in memory)'} (fingerprint {encoder.fingerprint[:12] or 'none'}); "
                    "load the model it was built with, or rebuild the index"
                )
        why = check_fusion(m.get("fusion"))
        if why:
            raise IndexLoadError(f"{mp}: fusion: {why}")
        check_files(d, m, (STORE_FILE, FAISS_FILE, VECTORS_FILE), verify_hashes)
        store = DocStore(d / STORE_FILE)
        try:
            if store.count != count:
                raise IndexLoadError(f"{d / STORE_FILE}: holds {store.count} documents, manifest says {count}")
            _check_store(store, count)
            dense = DenseIndex.load(d, dim, count, search_params)
            bm25 = None
            if bm25_info:
                bm25 = BM25.load(d / bm25_info["dir"], lang, count)
                why = _bm25_problem(bm25.model, count)
                if why:
                    raise IndexLoadError(f"{d / bm25_info['dir']}: damaged BM25 index ({why}); rebuild the index")
        except BaseException:
            store.close()
            raise
        return cls(d, m, store, dense, bm25)

    # ---- helpers ---------------------------------------------------------------------------------

    def _allowed(self, filter: dict[str, Any] | None) -> Allowed | None:
        """The rows a metadata filter keeps (cached), or None for no filter."""
        if not filter:
            return None
        self._check_filter(filter)
        key = tuple(sorted((k, canonical_value(v)) for k, v in filter.items()))
        with self._lock:
            hit = self._filters.get(key)
            if hit is not None:
                self._filters.move_to_end(key)
                return hit
        allowed = Allowed.of(self._store.matching_rows(filter), self.size)
        cost = _entry_bytes(key, allowed)
        if cost > _FILTER_CACHE_BYTES // 4:
            return allowed  # too big to be worth keeping: it would push out everything else
        with self._lock:
            if key not in self._filters:
                self._filters[key] = allowed
                self._filter_bytes += cost
            while len(self._filters) > _FILTER_CACHE or self._filter_bytes > _FILTER_CACHE_BYTES:
                old_key, old = self._filters.popitem(last=False)
                self._filter_bytes -= _entry_bytes(old_key, old)
        return allowed

    @staticmethod
    def _check_filter(filter: dict[str, Any]) -> None:
        if not isinstance(filter, dict) or not all(isinstance(k, str) for k in filter):
            raise ValueError(f"filter must map metadata field names to values, got {filter!r}")
        for k, v in filter.items():
            if not isinstance(v, str | int | float | bool) and v is not None:
                raise ValueError(f"filter value for {k!r} must be a string, number, boolean or null, got {v!r}")

    def _hits(self, ranked: list[list[tuple[int, float, float | None]]]) -> list[list[Hit]]:
        """(row, score, dense score) lists → Hit lists, with one store read for all of them."""
        docs = self._store.get(r for lst in ranked for r, _, _ in lst)
        out = []
        for lst in ranked:
            hits = []
            for r, s, ds in lst:
                did, title, text, meta = docs[r]
                hits.append(Hit(did, float(s), None if ds is None else float(ds), title, text, meta))
            out.append(hits)
        return out

    @staticmethod
    def _check_k(k: int, offset: int = 0) -> None:
        if not isinstance(k, int | np.integer) or k < 0:
            raise ValueError(f"k must be a non-negative integer, got {k!r}")
        if not isinstance(offset, int | np.integer) or offset < 0:
            raise ValueError(f"offset must be a non-negative integer, got {offset!r}")

    def _bm25_ranked(self, queries: list[str], k: int, allowed: Allowed | None,
                     tokens: list[list[str]] | None = None) -> list[Ranked]:
        """Per query: rows with BM25 > 0 and their scores, best first, at most k, inside the filter.
        ``tokens``: the queries' terms (:meth:`BM25.query_tokens`), tokenised once for every deepening."""
        if self._bm25 is None:
            raise IndexLoadError(f"{self.path}: this index has no BM25 side; rebuild it")
        n = self.size
        m = n if allowed is None else allowed.rows.size
        kk = min(k, m)
        out: list[Ranked | None] = [None] * len(queries)
        if kk == 0:
            return [(np.zeros(0, np.int64), np.zeros(0, np.float32)) for _ in queries]
        # Under a filter, ask for about k·N/M so that k of them pass; deepen ×4 while short, until the
        # list reaches documents BM25 scores 0 (none further can match) or the whole corpus.
        depth = kk if allowed is None else min(n, max(4 * kk, math.ceil(2 * kk * n / m)))
        todo = list(range(len(queries)))
        if tokens is None:
            tokens = self._bm25.query_tokens(queries)
        while todo:
            idx, sc = self._bm25.search([queries[i] for i in todo], depth, [tokens[i] for i in todo])
            short = []
            for qi, rows, scores in zip(todo, idx, sc, strict=True):
                rows = rows.astype(np.int64)
                keep = scores > 0
                exhausted = depth >= n or not keep.all()
                if allowed is not None:
                    keep &= ((allowed.bitmap[rows >> 3] >> (rows & 7)) & 1).astype(bool)
                if keep.sum() < kk and not exhausted:
                    short.append(qi)
                    continue
                out[qi] = (rows[keep][:kk], scores[keep][:kk].astype(np.float32))
            todo = short
            depth = min(n, depth * 4)
        # Every query left ``todo`` with its list filled (the loop ends only when none is short).
        done = [r for r in out if r is not None]
        if len(done) != len(out):
            raise RuntimeError("BM25 search left a query without results")
        return done

    # ---- public API ------------------------------------------------------------------------------

    def search(self, vectors: np.ndarray, k: int, filter: dict[str, Any] | None = None,
               offset: int = 0) -> list[list[Hit]]:
        """Dense search. ``vectors`` (Q, D) float32 query vectors (normalised here too); per query up to
        ``k`` hits, score = dense_score = exact cosine. ``filter``: metadata ``field == value`` for every
        item; still ``k`` hits whenever at least ``k`` documents match. ``offset``: skip the first hits
        of the ranking (a page; documents are read only for the hits returned)."""
        self._check_k(k, offset)
        end = offset + k
        depth = end if self._dense.exhaustive else max(end, PAGE_WINDOW)
        # Ranked ``depth`` deep for stable pages, but only the first ``end`` become Python tuples.
        ranked = [[(int(r), float(s), float(s)) for r, s in zip(rows[:end], scores[:end], strict=True)]
                  for rows, scores in self._dense.search(vectors, depth, self._allowed(filter))]
        return self._hits(page(ranked, offset))

    def search_bm25(self, queries: list[str], k: int, filter: dict[str, Any] | None = None,
                    offset: int = 0) -> list[list[Hit]]:
        """BM25 search (bm25s, tokenised for the model's language): score = BM25, dense_score None.
        Documents sharing no term with the query are not returned, so a list can be shorter than k."""
        self._check_k(k, offset)
        ranked = self._bm25_ranked(list(queries), offset + k, self._allowed(filter))
        return self._hits(page([[(int(r), float(s), None) for r, s in zip(*rs, strict=True)] for rs in ranked], offset))

    def hybrid_candidates(
        self, queries: list[str], vectors: np.ndarray, depth: int, filter: dict[str, Any] | None = None
    ) -> list[Candidates]:
        """Top ``depth`` of each side per query, with the exact cosine of every candidate."""
        queries = list(queries)
        q = normalise(vectors, self.dim)
        if len(queries) != len(q):
            raise ValueError(f"{len(queries)} query texts but {len(q)} query vectors")
        allowed = self._allowed(filter)
        dense = self._dense.search(q, depth, allowed)
        if self._bm25 is None:
            raise IndexLoadError(f"{self.path}: this index has no BM25 side; rebuild it")
        tokens = self._bm25.query_tokens(queries)  # once: for the search and the fusion's features
        lexical = self._bm25_ranked(queries, depth, allowed, tokens)
        stats = self._bm25.query_stats(tokens)
        out = []
        for qi, ((drows, dsc), (lrows, lsc)) in enumerate(zip(dense, lexical, strict=True)):
            cos = dict(zip(drows.tolist(), dsc.tolist(), strict=True))
            missing = np.array([r for r in lrows.tolist() if r not in cos], dtype=np.int64)
            cos.update(zip(missing.tolist(), self._dense.cosines(q[qi], missing).tolist(), strict=True))
            bm25 = dict(zip(lrows.tolist(), lsc.tolist(), strict=True))
            out.append(Candidates(drows.tolist(), lrows.tolist(), bm25, cos, qlen=stats[qi][0], known=stats[qi][1],
                                  terms=tuple(tokens[qi])))
        return out

    def search_hybrid(
        self, queries: list[str], vectors: np.ndarray, k: int, filter: dict[str, Any] | None = None,
        fusion: dict[str, Any] | None = None, offset: int = 0,
    ) -> list[list[Hit]]:
        """Fusion of dense and BM25 (settings: :attr:`fusion`, chosen on dev at build time, unless
        ``fusion`` overrides them). score = fused score, dense_score = exact cosine (also for documents
        only BM25 found). ``offset`` as in :meth:`search`."""
        self._check_k(k, offset)
        settings = self.fusion if fusion is None else fusion
        why = check_fusion(settings)
        if why:
            raise ValueError(f"fusion: {why}")
        end = offset + k
        depth = max(end, int(settings.get("depth", DEPTH)))  # pages within depth: one ranking
        cands = self.hybrid_candidates(queries, vectors, depth, filter)
        ranked: list[list[tuple[int, float, float | None]]] = [
            [(r, s, c.cos[r]) for r, s in fuse(c, settings)[:end]] for c in cands
        ]
        return self._hits(page(ranked, offset))

    def documents(self, ids: list[str]) -> list[Hit | None]:
        """The stored documents for ``ids`` (None for an unknown id); score 0.0, dense_score None."""
        rows = self._store.rows_of(ids)
        docs = self._store.get(rows.values())
        out: list[Hit | None] = []
        for i in ids:
            r = rows.get(i)
            if r is None:
                out.append(None)
                continue
            did, title, text, meta = docs[r]
            out.append(Hit(did, 0.0, None, title, text, meta))
        return out

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> SearchIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SearchIndex({str(self.path)!r}, {self.size} documents, {self.index_type}, dim {self.dim})"
