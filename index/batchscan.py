"""A batch's exact-search candidates from one float32 matrix product (issue 11).

The float16 codes' scan (``index.halfscan``) costs the same per query whatever the batch: FAISS scans
every code once per query. Under load the service hands the index micro-batches (at 32 clients, two
processes on medquad: batches of 8–16 queries), and a matrix product reads each stored vector once for
the whole batch, at BLAS speed. Measured on medquad's 15,250 × 192 vectors, one thread (README,
"Speed"): per query at batch 16, 0.31 ms by the codes' scan, 0.16 ms by the product, rescoring included.

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
ROW_BLOCK = 1 << 16  # stored vectors per product: (16, 65,536) float32 scores are 4 MB


def exact_products() -> bool:
    """Whether torch's float32 products are full float32 (the bound's premise)."""
    return torch.get_float32_matmul_precision() == "highest"


def as_tensor(vectors: np.ndarray) -> torch.Tensor:
    """A torch view of the stored (N, D) float32 vectors (no copy: a memory map stays file pages)."""
    with warnings.catch_warnings():
        # A read-only memory map: torch warns that it cannot enforce read-only; nothing here writes.
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(np.asarray(vectors, dtype=np.float32))


def product_candidates(vectors: torch.Tensor, q: np.ndarray, want: int,
                       block: int = ROW_BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """Per query of ``q`` (B, D) float32 unit rows: the ``want`` best rows of ``vectors`` (N, D) by the
    product's scores, as (rows (B, K), the K-th best product score (B,)), K = min(want, N); the stored
    vectors are read ``block`` rows at a time."""
    n = vectors.shape[0]
    kk = min(want, n)
    qt = torch.from_numpy(np.ascontiguousarray(q, dtype=np.float32))  # (B, D)
    best_s: torch.Tensor | None = None
    best_r: torch.Tensor | None = None
    with torch.inference_mode():
        for s in range(0, n, block):
            scores = qt @ vectors[s : s + block].T  # (B, c)
            top_s, top_r = torch.topk(scores, min(kk, scores.shape[1]), dim=1, sorted=False)  # (B, ≤K)
            top_r = top_r + s
            if best_s is None or best_r is None:
                best_s, best_r = top_s, top_r
            else:  # the running K best of the blocks so far
                both_s, both_r = torch.cat([best_s, top_s], 1), torch.cat([best_r, top_r], 1)
                best_s, pick = torch.topk(both_s, kk, dim=1, sorted=False)
                best_r = torch.gather(both_r, 1, pick)
    assert best_s is not None and best_r is not None  # n ≥ 1: the caller has something to search
    return best_r.numpy().astype(np.int64, copy=False), best_s.min(dim=1).values.numpy()
