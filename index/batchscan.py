"""A batch's exact-search candidates from one float32 matrix product (issue 11).

The float16 codes' scan (``index.halfscan``) costs the same per query whatever the batch: FAISS scans
every code once per query. Under load the service hands the index micro-batches (at 32 clients, two
processes on medquad: batches of 8–16 queries), and a matrix product reads each stored vector once for
the whole batch, at BLAS speed (and so streams all of ``vectors.npy``, 4·N·D bytes, through the
cache once a batch, where the codes' scan reads 2·N·D). Measured on medquad's 15,250 × 192 vectors,
one thread (README, "Benchmarks"): per query at batch 16, 0.31 ms by the codes' scan, 0.16 ms by the product, rescoring included.

Exactness is the codes' argument with a smaller bound: the product's float32 sums and the exact
rescoring's each lie within D · 2⁻²⁴ of the real inner product of unit vectors (any order of the sum,
FMA or not), so a document outside the product's top K scores at most its K-th score + ``sum_error(D)``
exactly; when that is below the k-th exact score among the candidates, they hold the exact top k
(``index.halfscan.settled``). The product runs in torch (MKL / oneDNN: 1.6× NumPy's OpenBLAS for these
skinny products here), only while its float32 matmul precision is "highest": a reduced precision
(TF32, bfloat16) would void the bound, so the caller then scans the codes.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

# Queries in a batch from which the product beats the codes' scan per query (medquad test queries,
# 192-d, one thread, the whole search, the product vs the codes: batch 4 0.33–0.45 vs 0.32–0.45 ms, 8 0.25–0.27 vs 0.30–0.31,
# 16 0.16 vs 0.31–0.32; a lone query 0.79–0.92 vs 0.50–0.57).
PRODUCT_MIN_BATCH = 8
QUERY_BLOCK = 256  # queries per product
ROW_BLOCK = 1 << 14  # stored vectors per product: (256, 16,384) float32 scores are 16 MB


def exact_products() -> bool:
    """Whether torch's float32 products are full float32 (the bound's premise): the legacy setting at
    "highest" and oneDNN's own (torch ≥ 2.9) at "ieee" or unset. torch refuses to report a mix of the
    two APIs (it raises): then no product either."""
    try:
        if torch.get_float32_matmul_precision() != "highest":
            return False
        mkldnn = getattr(torch.backends.mkldnn, "matmul", None)
        return getattr(mkldnn, "fp32_precision", "none") in ("none", "ieee")
    except RuntimeError:
        return False


def as_tensor(vectors: np.ndarray) -> torch.Tensor | None:
    """A torch view of the stored (N, D) vectors, no copy (a memory map stays file pages), or None when
    they are not C-contiguous float32 (a view is then impossible: no product). Made where the index is
    made or grown, single-threaded: ``warnings.catch_warnings`` is not thread-safe."""
    if vectors.dtype != np.float32 or not vectors.flags.c_contiguous:
        return None
    with warnings.catch_warnings():
        # A read-only memory map: torch warns that it cannot enforce read-only; nothing here writes.
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(vectors)


def product_candidates(vectors: torch.Tensor, q: np.ndarray, want: int,
                       block: int = ROW_BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """Per query of ``q`` (B, D) float32 unit rows: the ``want`` best rows of ``vectors`` (N, D) by the
    product's scores, as (rows (B, K), the K-th best product score (B,)), K = min(want, N). Queries go
    ``QUERY_BLOCK`` and stored vectors ``block`` at a time, so the score blocks stay small whatever the
    batch (an evaluation's thousand queries) or the index."""
    n = vectors.shape[0]
    kk = min(want, n)
    rows = np.zeros((len(q), kk), dtype=np.int64)
    cuts = np.zeros(len(q), dtype=np.float32)
    with torch.inference_mode():
        for qs in range(0, len(q), QUERY_BLOCK):
            qt = torch.from_numpy(np.ascontiguousarray(q[qs : qs + QUERY_BLOCK], dtype=np.float32))  # (b, D)
            best_s, best_r = torch.zeros(len(qt), 0), torch.zeros(len(qt), 0, dtype=torch.int64)
            for s in range(0, n, block):
                scores = qt @ vectors[s : s + block].T  # (b, c)
                top_s, top_r = torch.topk(scores, min(kk, scores.shape[1]), dim=1, sorted=False)  # (b, ≤K)
                # The running K best of the blocks so far.
                both_s, both_r = torch.cat([best_s, top_s], 1), torch.cat([best_r, top_r + s], 1)
                if both_s.shape[1] > kk:
                    both_s, pick = torch.topk(both_s, kk, dim=1, sorted=False)
                    both_r = torch.gather(both_r, 1, pick)
                best_s, best_r = both_s, both_r
            rows[qs : qs + len(qt)] = best_r.numpy()
            cuts[qs : qs + len(qt)] = best_s.min(dim=1).values.numpy()
    return rows, cuts
