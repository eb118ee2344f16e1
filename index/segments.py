"""Sealed segments of a live index: immutable FAISS indexes over document vectors, keyed by version keys.

The first sealed segment is the built index's own ``dense.faiss`` + ``vectors.npy`` (row r holds the
version key r: a built index goes live without rewriting a byte). A compaction writes a new segment
folder ``segments/seg-<checkpoint>/`` (``vectors.npy`` (N, D) float32, ``dense.faiss``, ``keys.npy`` (N,)
int64 ascending: row → version key, and ``segment.json``) atomically (common/fs.py), and the live
database's ``kv['segment']`` switches to it in one transaction (index/wal.py ``seal``).

A segment never changes; what changes is which of its rows are still current (deletions, updates): a
boolean mask per row, turned into a FAISS ``IDSelectorBitmap`` (index/dense.py ``Allowed``) for search.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from common.fs import atomic_dir

from .dense import FAISS_FILE, VECTORS_FILE, Allowed, DenseIndex, build_faiss, resolve_spec
from .errors import IndexBuildError, IndexLoadError

SEGMENTS_DIR = "segments"
KEYS_FILE = "keys.npy"
SEGMENT_FILE = "segment.json"


@dataclass(frozen=True)
class Segment:
    """One sealed segment: ``dense`` (FAISS + exact vectors, rows 0..n-1) and ``keys`` (n,) ascending."""

    name: str  # "" for the built index's files, else the folder name under segments/
    dense: DenseIndex
    keys: np.ndarray  # (n,) int64, ascending

    @property
    def n(self) -> int:
        return int(self.keys.size)

    def rows_of(self, keys: np.ndarray) -> np.ndarray:
        """Rows (same length as ``keys``) of the given version keys, −1 for a key not in this segment."""
        keys = np.asarray(keys, dtype=np.int64)
        if self.n == 0 or keys.size == 0:
            return np.full(keys.shape, -1, dtype=np.int64)
        pos = np.searchsorted(self.keys, keys)
        pos_c = np.minimum(pos, self.n - 1)
        return np.where(self.keys[pos_c] == keys, pos_c, -1).astype(np.int64)

    def allowed(self, mask: np.ndarray) -> Allowed:
        """The FAISS selector over the rows where ``mask`` (n,) bool is set."""
        return Allowed.of(np.flatnonzero(mask).astype(np.int64), self.n)


def load_base(index_dir: Path, dense: DenseIndex) -> Segment:
    return Segment("", dense, np.arange(dense.n, dtype=np.int64))


def load_segment(index_dir: Path, name: str, dim: int, search_params: dict[str, Any]) -> Segment:
    d = index_dir / SEGMENTS_DIR / name
    try:
        keys = np.load(d / KEYS_FILE, allow_pickle=False)
        info = json.loads((d / SEGMENT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise IndexLoadError(f"{d}: cannot read the sealed segment ({e})") from e
    dense = DenseIndex.load(d, dim, int(info["documents"]), search_params)
    if keys.dtype != np.int64 or keys.shape != (dense.n,):
        raise IndexLoadError(f"{d / KEYS_FILE}: {keys.dtype} {keys.shape}, expected int64 ({dense.n},)")
    return Segment(name, dense, keys)


def write_segment(index_dir: Path, name: str, keys: np.ndarray, vectors: np.ndarray, index_type: str,
                  build: dict[str, Any]) -> str:
    """Write a sealed segment of ``vectors`` (N, D) keyed by ``keys`` (N,) ascending, atomically; the
    FAISS index is the built index's type (flat stays flat: exact results identical before and after).
    Returns the factory string used (a type that cannot be trained on N vectors falls back to Flat)."""
    n, dim = vectors.shape
    params = {k: v for k, v in build.items() if k in ("M", "efConstruction", "nlist")}
    try:
        spec = resolve_spec(index_type if index_type in ("flat", "hnsw", "ivf") else "flat", n,
                            params if index_type != "ivf" or n >= 39 * int(params.get("nlist", 1)) else {})
        index = build_faiss(vectors, spec)
    except IndexBuildError:
        spec = resolve_spec("flat", n)
        index = build_faiss(vectors, spec)
    with atomic_dir(index_dir / SEGMENTS_DIR / name) as tmp:
        np.save(tmp / VECTORS_FILE, np.ascontiguousarray(vectors, dtype=np.float32), allow_pickle=False)
        np.save(tmp / KEYS_FILE, np.ascontiguousarray(keys, dtype=np.int64), allow_pickle=False)
        faiss.write_index(index, str(tmp / FAISS_FILE))
        (tmp / SEGMENT_FILE).write_text(json.dumps({"documents": n, "dim": dim, "factory": spec.factory}) + "\n")
    return spec.factory
