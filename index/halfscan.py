"""Exact top-k from a scan of half-precision codes: the flat index's search (issue 11).

A flat scan of one query reads every stored vector: 15,250 × 128 float32 is 7.8 MB a query, and on this
project's CPU the scan runs at the memory's speed. FAISS's ``SQfp16`` codes are half those bytes (the
scan 0.32–0.39 → 0.20–0.29 ms a query for medquad's 128-d vectors, 0.49 → 0.29 ms for 192-d; README,
"Speed"), but float16 rounds each component, so its top k alone could differ from the exact one. It is
made exact by a bound:

- a unit vector x and its float16 copy x̃ differ by ‖x − x̃‖ ≤ 2⁻¹¹ (round to nearest, relative error
  2⁻¹¹ per normal component) + √D · 2⁻²⁵ (components in float16's subnormal range round absolutely);
  so for a unit query |q·x − q·x̃| ≤ that (Cauchy–Schwarz); FAISS's float32 sum of D products adds at
  most D · 2⁻²⁴ more, and the exact rescoring's own float32 sum as much again: with room, (D + 2) · 2⁻²³
  (``sum_error(D)``), together ``half_error(D)``;
- the scan returns the K = k + margin best by the codes' scores, all rescored from the exact vectors;
  a document the scan did not return scores at most c_K (the K-th code score) by its code, so at most
  c_K + half_error(D) exactly. When that is below the k-th best exact score among the candidates, no
  other document can enter the top k: the answer is the exact top k (ties by row, as every other path).
  Otherwise K grows (×4) until it holds; past a share of the rows (many near-ties at the cut: duplicated
  documents), every allowed row is rescored instead.

On real medquad vectors the exact top 10 was inside the codes' top 26 for all 600 queries tried, so the
widening is the rare path. The scores returned are the exact cosines, row by row (``index.exact.row_scores``),
so a document's score does not depend on which other documents were rescored with it.

A batch of queries takes its candidates from one float32 matrix product instead (``index.batchscan``):
the same rescoring and the same test, with ``sum_error`` as the bound.
"""

from __future__ import annotations

import math

# Candidates beyond k that the codes' scan returns: enough for the bound to settle almost always, few
# enough that the scan's heap and the rescoring stay a small part of the query (k 10 and 26 cost the same).
HALF_MARGIN = 16


def sum_error(dim: int) -> float:
    """An upper bound on |a float32 sum of ``dim`` products − the real inner product| for unit vectors,
    twice over (the scan's sum and the exact rescoring's, whatever their order or FMA): (D + 2) · 2⁻²³."""
    return (dim + 2) * 2.0 ** -23 * 1.01  # 1 % for ‖q‖ ≠ 1 by rounding


def half_error(dim: int) -> float:
    """An upper bound on |exact cosine − FAISS's float16-code score| for unit vectors of ``dim``."""
    return (2.0 ** -11 + math.sqrt(dim) * 2.0 ** -25) * 1.01 + sum_error(dim)


def settled(cut: float, kth_exact: float, complete: bool, error: float) -> bool:
    """Whether a scan's K candidates hold the exact top k. ``cut``: the K-th best score of the scan (no
    document outside the candidates scores above it there); ``kth_exact``: the k-th best exact score
    among the candidates; ``error``: the bound on |scan score − exact score| (``half_error`` for the
    codes, ``sum_error`` for a float32 product). ``complete``: the scan returned every document it may
    (fewer than K exist), so nothing is left outside."""
    if complete:
        return True
    return cut + error < kth_exact
