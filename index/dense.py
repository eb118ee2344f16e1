"""The dense side: a FAISS index over the L2-normalised document vectors (inner product = cosine).

FAISS int64 ids are the documents' rows (0..N-1, corpus order), the same rows as the document store.
The exact vectors are kept too (``vectors.npy``, memory-mapped): every returned score is recomputed
from them, so ``dense_score`` is the true cosine whatever the index type (PQ codes only approximate
it), and a filter that keeps few documents is answered by an exact scan of those documents.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from .batchscan import PRODUCT_MIN_BATCH, as_tensor, exact_products, product_candidates
from .errors import IndexBuildError, IndexLoadError
from .exact import exact_search, row_scores
from .halfscan import HALF_MARGIN, half_error, settled, sum_error

FAISS_FILE = "dense.faiss"
VECTORS_FILE = "vectors.npy"
FLAT_FACTORY = "SQfp16"  # what --index-type flat builds (index.halfscan)

# Measured with scripts/bench_index.py. HNSW efConstruction: 40 and 100 tie on medquad's 15k real
# vectors (recall@10 0.9996 at efSearch 64), but on 200k clustered synthetic vectors 40 gives 0.967 and
# 100 gives 0.9998 for twice the build time: 100, since an offline build can afford it. IVF with ~2·√N
# lists needs nprobe 32 on medquad for recall@10 0.987 (16 gives 0.953).
HNSW_DEFAULTS = {"M": 32, "efConstruction": 100, "efSearch": 64}
IVF_NPROBE = 32
# A filter keeping at most this many documents is answered by an exact scan of their vectors:
# (Q, D) @ (D, M) costs about as much as one approximate search, and is never short of hits.
EXACT_SCAN_MAX = 20_000


@dataclass
class DenseSpec:
    """What to build: ``type`` as asked (flat / hnsw / ivf / factory), the FAISS factory string, build
    parameters and the search-time parameters (efSearch, nprobe) recorded in the manifest."""

    type: str
    factory: str
    build: dict[str, Any] = field(default_factory=dict)
    search: dict[str, Any] = field(default_factory=dict)


def faiss_message(e: BaseException) -> str:
    """The useful end of a FAISS C++ error ("Error in … at file:line: Error: 'cond' failed: reason")."""
    line = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
    return line.split(" failed: ")[-1] if " failed: " in line else line.split(": ")[-1]


def _int(params: dict[str, Any], key: str, default: int) -> int:
    v = params.pop(key, default)
    try:
        v = int(v)
    except (TypeError, ValueError) as e:
        raise IndexBuildError(f"index parameter {key}={v!r} is not an integer") from e
    if v < 1:
        raise IndexBuildError(f"index parameter {key}={v} must be at least 1")
    return v


def default_nlist(n: int) -> int:
    """~2·√N inverted lists, but at least 39 training vectors per list (FAISS's k-means minimum)."""
    return max(1, min(round(2 * math.sqrt(n)), n // 39))


def resolve_spec(index_type: str, n: int, params: dict[str, Any] | None = None) -> DenseSpec:
    """Turn ``flat`` / ``hnsw`` / ``ivf`` / a FAISS factory string (+ optional parameters) into a spec."""
    p = dict(params or {})
    t = index_type.strip()
    low = t.lower()
    if low == "flat":
        # Exact search: the FAISS file holds float16 codes for the scan (half the bytes a query reads),
        # and index.halfscan makes its top k exact from vectors.npy. Indexes built with "Flat" still load.
        spec = DenseSpec("flat", FLAT_FACTORY)
    elif low == "hnsw":
        m = _int(p, "M", HNSW_DEFAULTS["M"])
        spec = DenseSpec(
            "hnsw", f"HNSW{m},Flat",
            build={"M": m, "efConstruction": _int(p, "efConstruction", HNSW_DEFAULTS["efConstruction"])},
            search={"efSearch": _int(p, "efSearch", HNSW_DEFAULTS["efSearch"])},
        )
    elif low == "ivf":
        nlist = _int(p, "nlist", default_nlist(n))
        spec = DenseSpec(
            "ivf", f"IVF{nlist},Flat",
            # k-means on 64 vectors a list is plenty for the centroids and keeps 1M-vector builds short.
            build={"nlist": nlist, "train_size": _int(p, "train_size", min(n, 64 * nlist))},
            search={"nprobe": min(nlist, _int(p, "nprobe", IVF_NPROBE))},
        )
    elif t:
        spec = DenseSpec("factory", t)
        for key in ("efSearch", "nprobe"):
            if key in p:
                spec.search[key] = _int(p, key, 1)
        if "efConstruction" in p:
            spec.build["efConstruction"] = _int(p, "efConstruction", 1)
    else:
        raise IndexBuildError("empty --index-type (use flat, hnsw, ivf or a FAISS factory string)")
    if p:
        raise IndexBuildError(f"unknown parameter(s) {', '.join(sorted(p))} for index type {t!r}")
    return spec


def _kind(index: faiss.Index) -> str:
    """How an index is searched: hnsw, ivf (their per-call parameters), flat (FAISS's exact scores),
    half (float16 codes made exact by index.halfscan), or other (no per-call parameters)."""
    if isinstance(index, faiss.IndexPreTransform):
        # Search parameters pass through a pre-transform (PCA, OPQ) to the index inside; float16 codes of
        # transformed vectors are not the stored vectors' codes, so index.halfscan's bound does not hold.
        inner = _kind(faiss.downcast_index(index.index))
        return "other" if inner == "half" else inner
    if isinstance(index, faiss.IndexHNSW):
        return "hnsw"
    if isinstance(index, faiss.IndexIVF):
        return "ivf"
    if isinstance(index, faiss.IndexFlat):
        return "flat"
    if isinstance(index, faiss.IndexScalarQuantizer) and index.sq.qtype == faiss.ScalarQuantizer.QT_fp16:
        return "half"
    return "other"


def make_empty(spec: DenseSpec, dim: int) -> faiss.Index:
    """An empty index of ``spec`` (also the check of a factory string, before any encoding)."""
    try:
        return faiss.index_factory(dim, spec.factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as e:
        raise IndexBuildError(f"index type {spec.factory!r}: FAISS cannot make it ({faiss_message(e)})") from e


def build_faiss(vectors: np.ndarray, spec: DenseSpec, seed: int = 0) -> faiss.Index:
    """Build and fill the index for ``vectors`` (N, D) float32 unit rows; row i gets id i."""
    n, d = vectors.shape
    index = make_empty(spec, d)
    if "efConstruction" in spec.build:
        inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexPreTransform) else index
        if isinstance(inner, faiss.IndexHNSW):
            inner.hnsw.efConstruction = spec.build["efConstruction"]
    if not index.is_trained:
        train = vectors
        size = spec.build.get("train_size", n)
        if size < n:
            # A fixed-seed sample: the same corpus and settings give the same index.
            rows = np.sort(np.random.default_rng(seed).choice(n, size, replace=False))
            train = vectors[rows]
        try:
            index.train(np.ascontiguousarray(train))
        except RuntimeError as e:
            raise IndexBuildError(
                f"index type {spec.factory!r} cannot be trained on {n} documents ({faiss_message(e)}); use --index-type flat"
            ) from e
    if n:
        index.add(np.ascontiguousarray(vectors))
    return index


@dataclass
class Allowed:
    """The rows a filter keeps, as a sorted array and as a FAISS selector over a bitmap (kept alive here,
    since the selector only points at it)."""

    rows: np.ndarray  # (M,) int64, sorted
    bitmap: np.ndarray  # (ceil(N/8),) uint8, bit r set for an allowed row
    selector: Any

    @classmethod
    def of(cls, rows: np.ndarray, n: int) -> Allowed:
        mask = np.zeros(n, dtype=bool)
        mask[rows] = True
        bitmap = np.packbits(mask, bitorder="little")  # FAISS reads bit (r & 7) of byte r >> 3
        return cls(rows, bitmap, faiss.IDSelectorBitmap(n, faiss.swig_ptr(bitmap)))


def normalise(q: np.ndarray, dim: int) -> np.ndarray:
    q = np.asarray(q, dtype=np.float32)
    if q.ndim == 1:
        q = q[None, :]
    if q.ndim != 2 or q.shape[1] != dim:
        raise ValueError(f"query vectors have shape {tuple(q.shape)}; this index needs (Q, {dim})")
    norms = np.linalg.norm(q, axis=1, keepdims=True)
    return np.ascontiguousarray(q / np.maximum(norms, 1e-12))


def _top(rows: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best k of (rows, scores), by score then row (deterministic under ties)."""
    if rows.size > k:
        # Exactly by (−score, row), ties at the k-th score included (argpartition would pick any of them).
        keep = np.lexsort((rows, -scores))[:k]
        rows, scores = rows[keep], scores[keep]
    order = np.lexsort((rows, -scores))
    return rows[order], scores[order]


class DenseIndex:
    """Search over a loaded FAISS index and its memory-mapped exact vectors."""

    def __init__(self, index: faiss.Index, vectors: np.ndarray, search_params: dict[str, Any],
                 owned: bool = True) -> None:
        self.index = index
        self._owned = owned  # False: memory-mapped read-only from its file (load), copied before an add
        # (N, D) float32, memory-mapped; as a plain ndarray view (np.memmap's subclass hooks cost ~5 % of a
        # served query's CPU when rows are gathered from it), still backed by the file's pages.
        self.vectors = np.asarray(vectors)
        self._tensor = as_tensor(self.vectors)  # a torch view of them for batches (index.batchscan)
        self.n, self.dim = vectors.shape
        self.kind = _kind(index)
        # Exact top k: a flat scan of the stored vectors themselves (not of a PCA/OPQ transform of them).
        self.exhaustive = isinstance(index, faiss.IndexFlat) or self.kind == "half"
        # FAISS's scores are the exact inner products only for flat storage (a flat index, or HNSW over
        # flat vectors: within 2e-7 of NumPy's on 100k medquad vectors), not under a PCA/OPQ
        # pre-transform, not quantised: others are rescored with the exact vectors.
        self._exact_scores = isinstance(index, faiss.IndexFlat) or (
            isinstance(index, faiss.IndexHNSW) and isinstance(faiss.downcast_index(index.storage), faiss.IndexFlat))
        self.search_params = dict(search_params)
        if self.kind == "other" and search_params:
            # No per-call parameters for this type: set them once (loading is single-threaded).
            ps = faiss.ParameterSpace()
            for k, v in search_params.items():
                ps.set_index_parameter(index, k, v)

    @classmethod
    def load(cls, directory: Path, dim: int, count: int, search_params: dict[str, Any]) -> DenseIndex:
        vp, fp = directory / VECTORS_FILE, directory / FAISS_FILE
        try:
            vectors = np.load(vp, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as e:
            raise IndexLoadError(f"{vp}: cannot read vectors ({e})") from e
        if vectors.dtype != np.float32 or vectors.shape != (count, dim):
            raise IndexLoadError(
                f"{vp}: holds {vectors.dtype} {vectors.shape}, manifest says float32 ({count}, {dim})"
            )
        # NaN or inf in a stored vector would load and then answer "score": null (or NaN ranks); read
        # once, in blocks, so a large memory-mapped file is never copied whole.
        for s in range(0, count, 1 << 16):
            block = np.asarray(vectors[s : s + (1 << 16)])
            if not np.isfinite(block).all():
                row = s + int(np.argwhere(~np.isfinite(block))[0][0])
                raise IndexLoadError(f"{vp}: row {row} holds a non-finite value (NaN or inf); rebuild the index")
        # Memory-mapped read-only (FAISS ≥ 1.10, every type this project builds): the codes and graph stay
        # file-backed pages of the page cache, so several worker processes serving one index share one
        # copy instead of each reading its own (measured: 100k flat vectors, 49 MiB RssFile, 0 RssAnon).
        flags = getattr(faiss, "IO_FLAG_MMAP_IFC", 0) | getattr(faiss, "IO_FLAG_READ_ONLY", 0)
        try:
            index = faiss.read_index(str(fp), flags)
        except RuntimeError as e:
            raise IndexLoadError(f"{fp}: cannot read the FAISS index ({faiss_message(e)}); rebuild the index") from e
        if index.d != dim or index.ntotal != count:
            raise IndexLoadError(f"{fp}: {index.ntotal} vectors of dimension {index.d}, manifest says {count} of {dim}")
        return cls(index, vectors, search_params, owned=not flags)

    def _params(self, k: int, scale: float, selector: Any) -> Any:
        """Per-call FAISS parameters (thread-safe, unlike setting them on the index): efSearch at least
        k, and both efSearch and nprobe widened by ``scale`` when a filter or a short result asks."""
        if self.kind == "hnsw":
            # SearchParametersHNSW exists at run time (SWIG) but not in the faiss stubs mypy sees.
            p = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]
            p.efSearch = int(min(max(self.search_params.get("efSearch", 64), k) * scale, max(self.n, 1)))
        elif self.kind == "ivf":
            p = faiss.SearchParametersIVF()
            nlist = faiss.extract_index_ivf(self.index).nlist
            p.nprobe = int(min(math.ceil(self.search_params.get("nprobe", 1) * scale), nlist))
        elif self.kind in ("flat", "half"):
            p = faiss.SearchParameters()
        else:
            return None
        if selector is not None:
            p.sel = selector
        return p

    def _saturated(self, scale: float) -> bool:
        """True when widening further cannot find more (ef ≥ N, or every list probed)."""
        if self.kind == "hnsw":
            return max(self.search_params.get("efSearch", 64), 1) * scale >= self.n
        if self.kind == "ivf":
            return self.search_params.get("nprobe", 1) * scale >= faiss.extract_index_ivf(self.index).nlist
        return True

    def cosines(self, q: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Exact cosines (len(rows),) of one unit query vector (D,) with the given rows' vectors."""
        if rows.size == 0:
            return np.zeros(0, dtype=np.float32)
        return np.asarray(self.vectors[rows] @ q, dtype=np.float32)

    def exact(self, q: np.ndarray, k: int, rows: np.ndarray | None) -> list[tuple[np.ndarray, np.ndarray]]:
        """Brute force over ``rows`` (all rows when None), per query (rows, cosines) best first."""
        idx, sc = exact_search(q, self.vectors, k, rows)
        return list(zip(idx, sc, strict=True))

    def _search_half(self, q: np.ndarray, kk: int, m: int, allowed: Allowed | None) -> list[tuple[np.ndarray, np.ndarray]]:
        """The float16 codes' scan (a batch: a float32 product) for k + margin candidates, rescored
        exactly, widened until index.halfscan's bound shows no other document can reach the top k.
        ``q`` (Q, D) unit rows; ``m`` documents are allowed (all, or the filter's)."""
        results: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(q)
        todo = np.arange(len(q))
        want = min(kk + max(HALF_MARGIN, kk // 4), m)  # deep pages ask for more room at the cut
        # A batch takes its candidates from one float32 product (index.batchscan), a lone query (or a
        # filtered batch) from the codes' scan; either widens until the bound settles.
        tensor = self._tensor if allowed is None and len(q) >= PRODUCT_MIN_BATCH and exact_products() else None
        error = half_error(self.dim) if tensor is None else sum_error(self.dim)
        while todo.size:
            if want > max(4 * (kk + HALF_MARGIN), m // 8):
                # Many near-ties at the cut (duplicated documents): rescoring a large share of the rows
                # costs more than reading them all once, with the same row-by-row scores.
                for qi in todo.tolist():
                    results[qi] = self._rescore_all(q[qi], kk, allowed)
                break
            wider = []
            for qi, row, cut, complete in self._candidates(q, todo, want, m, allowed, tensor):
                top = _top(row, row_scores(self.vectors[row], q[qi]), kk)
                # No candidate at all: a non-finite query (nothing scores it); nothing to rank.
                if row.size == 0 or settled(cut, float(top[1][-1]), complete, error):
                    results[qi] = top
                else:
                    wider.append(qi)
            todo = np.asarray(wider, dtype=np.int64)  # (n_wider,)
            want = min(want * 4, m)
        done = [r for r in results if r is not None]
        if len(done) != len(results):
            raise RuntimeError("dense search left a query without results")
        return done

    def _candidates(self, q: np.ndarray, todo: np.ndarray, want: int, m: int, allowed: Allowed | None,
                    tensor: Any) -> list[tuple[int, np.ndarray, float, bool]]:
        """Per query row in ``todo``: (row, candidate rows (≤ want,), the scan's K-th best score, whether
        the scan returned every document it may) — from the product over ``tensor`` when given, else
        from the codes' scan."""
        if tensor is not None:
            finite = np.isfinite(q[todo]).all(axis=1)  # (T,): a non-finite query gets no candidates
            out = [(int(qi), np.zeros(0, np.int64), 0.0, True) for qi in todo[~finite]]
            if finite.any():
                rows, cuts = product_candidates(tensor, q[todo[finite]], want)  # (F, K), (F,)
                out += [(int(qi), row, float(cut), want >= m)
                        for qi, row, cut in zip(todo[finite], rows, cuts, strict=True)]
            return out
        sel = None if allowed is None else allowed.selector
        codes, ids = self.index.search(q[todo], want, params=self._params(want, 1.0, sel))
        out = []
        for qi, c, row in zip(todo, codes, ids, strict=True):
            found = row >= 0  # FAISS pads with -1 past the documents it has (none for a NaN query)
            row, c = row[found], c[found]  # (K,) best first by the codes' scores
            out.append((int(qi), row, float(c[-1]) if row.size else 0.0, row.size < want or want >= m))
        return out

    def _rescore_all(self, q: np.ndarray, kk: int, allowed: Allowed | None) -> tuple[np.ndarray, np.ndarray]:
        """The exact top k of one unit query (D,) over every allowed row, scored row by row in blocks."""
        rows = np.arange(self.n, dtype=np.int64) if allowed is None else allowed.rows
        # Gathered in blocks, so a large index is never copied whole: (M,) scores, 4 bytes a row.
        scores = np.concatenate([row_scores(self.vectors[rows[s : s + (1 << 14)]], q)
                                 for s in range(0, rows.size, 1 << 14)] or [np.zeros(0, np.float32)])
        return _top(rows, scores, kk)

    # ---- the VectorStore seam (index.protocols): count, add, save ---------------------------------

    @property
    def count(self) -> int:
        return self.n

    def add(self, vectors: np.ndarray) -> np.ndarray:
        """Append unit vectors (n, D); returns their rows. The exact vectors move from the memory map to
        RAM (a copy): fine for a one-off append; a live index should write new segments instead."""
        v = normalise(vectors, self.dim)
        start = self.n
        self.vectors = np.concatenate([np.asarray(self.vectors, dtype=np.float32), v])
        if v.shape[0]:
            if not self._owned:
                # A loaded index is a read-only memory map, and clone_index keeps viewing it (FAISS
                # aborts the process on an add): a round trip through bytes owns every array.
                self.index, self._owned = faiss.deserialize_index(faiss.serialize_index(self.index)), True
            self.index.add(v)
        self.n = int(self.vectors.shape[0])
        self._tensor = as_tensor(self.vectors)
        return np.arange(start, self.n, dtype=np.int64)

    def save(self, directory: str | os.PathLike) -> None:
        """Write ``vectors.npy`` and ``dense.faiss`` into ``directory`` (the caller makes it atomic)."""
        d = Path(directory)
        np.save(d / VECTORS_FILE, np.asarray(self.vectors, dtype=np.float32), allow_pickle=False)
        faiss.write_index(self.index, str(d / FAISS_FILE))

    def search(self, vectors: np.ndarray, k: int, allowed: Allowed | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per query: (rows, exact cosines), best first, min(k, #allowed) of them."""
        q = normalise(vectors, self.dim)
        m = self.n if allowed is None else int(allowed.rows.size)
        kk = min(k, m)
        if kk <= 0:
            return [(np.zeros(0, np.int64), np.zeros(0, np.float32)) for _ in q]
        if allowed is not None and not self.exhaustive and (m <= EXACT_SCAN_MAX or self.kind == "other"):
            return self.exact(q, kk, allowed.rows)
        if self.kind == "half":
            return self._search_half(q, kk, m, allowed)
        # With a filter, start as wide as the filter is narrow: about k·N/M candidates hold k allowed ones.
        scale = 1.0 if allowed is None else min(self.n / m, 64.0)
        sel = None if allowed is None else allowed.selector
        results: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(q)
        todo = np.arange(len(q))
        while todo.size:
            dist, ids = self.index.search(q[todo], kk, params=self._params(kk, scale, sel))
            short = []
            for qi, d, row in zip(todo, dist, ids, strict=True):
                found = row >= 0
                row = row[found]
                if row.size < kk and not self._saturated(scale):
                    short.append(qi)
                    continue
                # A flat index scores with the exact vectors already; other types may hold lossy codes
                # (SQ, PQ) or search a transformed space (PCA), so their candidates are rescored.
                scores = d[found] if self._exact_scores else self.cosines(q[qi], row)
                results[qi] = _top(row, scores, kk)
            todo = np.asarray(short, dtype=np.int64)  # (n_short,)
            scale *= 4
        for i, res in enumerate(results):
            if res is not None and res[0].size < kk:
                # Even the widest approximate search came back short (HNSW under a narrow filter): scan.
                results[i] = self.exact(q[i : i + 1], kk, None if allowed is None else allowed.rows)[0]
        # Every query left ``todo`` with its result filled (the loop ends only when none is short).
        done = [r for r in results if r is not None]
        if len(done) != len(results):
            raise RuntimeError("dense search left a query without results")
        return done
