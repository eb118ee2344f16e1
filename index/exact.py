"""Exact (brute-force) top-k by inner product: the one exact search of the project.

Used by the served index (filters that keep few documents, and the fallback when an approximate index
comes back short), by evaluation without a built index (an in-memory flat index) and by the benchmarks'
ground truth. Rows are unit vectors, so inner product = cosine.
"""

from __future__ import annotations

import numpy as np

Q_BLOCK = 256  # queries per block
D_BLOCK = 1 << 14  # documents per block: a (256, 16k) float32 score block is 16 MB


def row_scores(vectors: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Cosines (n,) of unit rows (n, D) with one unit query (D,), row by row: a row's score does not
    depend on which other rows are scored with it (a matrix product's sums may, by its blocking), so a
    document scores the same bits whichever candidates it is rescored among."""
    return np.asarray((np.asarray(vectors, dtype=np.float32) * q[None, :]).sum(axis=1), dtype=np.float32)


def _keep_top(rows: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row of (b, m) candidates, the k best by (score, then lower row), unordered; m ≤ k keeps all.

    argpartition alone keeps an arbitrary subset of the candidates tied at the k-th score (identical
    documents have identical vectors), which would make the answer depend on the block size: a row
    with such a tie is cut exactly by (−score, row) instead (rare; the others keep the fast path)."""
    if scores.shape[1] <= k:
        return rows, scores
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]  # (b, k)
    top_r, top_s = np.take_along_axis(rows, part, 1), np.take_along_axis(scores, part, 1)
    kth = top_s.min(axis=1, keepdims=True)  # (b, 1): the k-th best score of each row
    tied = (scores >= kth).sum(axis=1) > k  # more candidates reach it than fit
    for i in np.flatnonzero(tied):
        order = np.lexsort((rows[i], -scores[i]))[:k]
        top_r[i], top_s[i] = rows[i][order], scores[i][order]
    return top_r, top_s


def exact_search(
    queries: np.ndarray, vectors: np.ndarray, k: int, rows: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(Q, k') document rows and scores, best first (ties: lower row first), k' = min(k, #candidates).

    ``queries`` (Q, D) float32; ``vectors`` (N, D) float32, may be memory-mapped (each document block is
    read once per query block); ``rows`` (M,) int64 restricts the candidates to those rows (a filter).
    """
    q = np.ascontiguousarray(queries, dtype=np.float32)
    n = vectors.shape[0]
    m = n if rows is None else int(rows.size)
    kk = max(0, min(int(k), m))
    out_rows = np.zeros((len(q), kk), dtype=np.int64)
    out_scores = np.zeros((len(q), kk), dtype=np.float32)
    if kk == 0 or len(q) == 0:
        return out_rows, out_scores
    for qs in range(0, len(q), Q_BLOCK):
        qb = q[qs : qs + Q_BLOCK]  # (b, D)
        best_r = np.zeros((len(qb), 0), dtype=np.int64)
        best_s = np.zeros((len(qb), 0), dtype=np.float32)
        for s in range(0, m, D_BLOCK):
            if rows is None:
                r = np.arange(s, min(s + D_BLOCK, n), dtype=np.int64)
                block = np.asarray(vectors[s : s + D_BLOCK], dtype=np.float32)  # (c, D)
            else:
                r = rows[s : s + D_BLOCK]
                block = np.asarray(vectors[r], dtype=np.float32)
            sc = qb @ block.T  # (b, c)
            rr = np.broadcast_to(r, sc.shape)
            rr, sc = _keep_top(rr, sc, kk)
            best_r, best_s = _keep_top(np.concatenate([best_r, rr], 1), np.concatenate([best_s, sc], 1), kk)
        order = np.lexsort((best_r, -best_s), axis=1)  # score descending, then row ascending
        out_rows[qs : qs + len(qb)] = np.take_along_axis(best_r, order, 1)
        out_scores[qs : qs + len(qb)] = np.take_along_axis(best_s, order, 1)
    return out_rows, out_scores
