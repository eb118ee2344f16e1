"""index/exact.py, the one exact search: against a full sort, and ties cut by row whatever the blocks."""

from __future__ import annotations

import numpy as np

import index.exact as exact
from index.exact import exact_search


def test_equals_a_full_sort_with_and_without_row_subsets():
    rng = np.random.default_rng(0)
    v = rng.standard_normal((5000, 16)).astype(np.float32)
    q = rng.standard_normal((40, 16)).astype(np.float32)
    full = q @ v.T
    rows, scores = exact_search(q, v, 7)
    ref = np.lexsort((np.broadcast_to(np.arange(5000), full.shape), -full), axis=1)[:, :7]
    assert (rows == ref).all() and np.allclose(scores, np.take_along_axis(full, ref, 1))
    sub = np.sort(rng.choice(5000, 300, replace=False))
    rows, _ = exact_search(q, v, 5, sub)
    assert (rows == sub[np.argsort(-full[:, sub], axis=1, kind="stable")[:, :5]]).all()
    assert exact_search(q, v, 0)[0].shape == (40, 0) and exact_search(q, v[:3], 10)[0].shape == (40, 3)


def test_ties_at_the_cut_go_to_the_lowest_rows_whatever_the_block_size(monkeypatch):
    v = np.ones((1000, 4), dtype=np.float32) / 2  # identical documents: every score ties
    q = v[:1].copy()
    for block in (1 << 14, 128, 7):
        monkeypatch.setattr(exact, "D_BLOCK", block)
        rows, _ = exact_search(q, v, 5)
        assert rows.tolist() == [[0, 1, 2, 3, 4]], block
