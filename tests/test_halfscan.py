"""The flat index's scan of float16 codes (index.halfscan) and a batch's float32 product
(index.batchscan): exactly the brute-force top k, near-ties, filters and pages included, whatever the
codes' or the product's own order says."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

import index.dense as dense_mod
from index.batchscan import PRODUCT_MIN_BATCH, as_tensor, exact_products, product_candidates
from index.dense import Allowed, DenseIndex, build_faiss, normalise, resolve_spec
from index.exact import row_scores
from index.halfscan import half_error, sum_error


def _unit(x: np.ndarray) -> np.ndarray:
    return normalise(x, x.shape[1])


def _brute(v: np.ndarray, q: np.ndarray, k: int, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The contract: the k best rows by (exact cosine, then row), scored row by row."""
    rows = np.arange(len(v)) if rows is None else rows
    s = row_scores(v[rows], normalise(q, len(q))[0])  # the query as the index normalises it
    order = np.lexsort((rows, -s))[:k]
    return rows[order], s[order]


def _near_ties(n: int = 3000, dim: int = 32, close: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Random documents plus ``close`` documents whose cosines with the query differ by ~1e-5: far less
    than float16's rounding (~5e-4), so the codes rank them almost at random."""
    rng = np.random.default_rng(0)
    q = _unit(rng.standard_normal((1, dim)))[0]
    base = rng.standard_normal((n, dim))
    near = q[None, :] + 0.02 * rng.standard_normal((1, dim)) + 1e-5 * rng.standard_normal((close, dim))
    return _unit(np.concatenate([base, near])), q


def _flat(v: np.ndarray) -> DenseIndex:
    spec = resolve_spec("flat", len(v))
    di = DenseIndex(build_faiss(v, spec), v, spec.search)
    assert di.kind == "half" and di.exhaustive
    return di


def test_near_ties_give_the_exact_top_k():
    v, q = _near_ties()
    di = _flat(v)
    # The codes alone get these wrong: their top 26 misses some of the exact top 10.
    _, codes = di.index.search(q[None], 26)
    assert not set(_brute(v, q, 10)[0]) <= set(codes[0].tolist())
    for k in (1, 10, 50, 250, len(v)):
        (rows, scores), = di.search(q[None], k)
        ref_rows, ref_scores = _brute(v, q, k)
        assert rows.tolist() == ref_rows.tolist(), k
        assert scores.tobytes() == ref_scores.tobytes(), k


def test_without_the_bound_the_codes_would_answer_wrong(monkeypatch):
    """The widening is what makes it exact: told the candidates always settle, the answer differs."""
    v, q = _near_ties()
    monkeypatch.setattr(dense_mod, "settled", lambda *a: True)
    (rows, _), = _flat(v).search(q[None], 10)
    assert rows.tolist() != _brute(v, q, 10)[0].tolist()


def test_random_queries_filters_and_batches_match_brute_force():
    rng = np.random.default_rng(1)
    v = _unit(rng.standard_normal((2000, 24)))
    qs = _unit(rng.standard_normal((30, 24)))
    di = _flat(v)
    allowed_rows = np.sort(rng.choice(2000, 37, replace=False)).astype(np.int64)
    allowed = Allowed.of(allowed_rows, 2000)
    whole = di.search(qs, 10)
    for i, q in enumerate(qs):
        assert whole[i][0].tolist() == _brute(v, q, 10)[0].tolist()
        (alone, _), = di.search(q[None], 10)  # a query's answer does not depend on its batch
        assert alone.tolist() == whole[i][0].tolist()
        (rows, scores), = di.search(q[None], 40, allowed)  # more asked than the filter keeps: all 37
        ref_rows, ref_scores = _brute(v, q, 40, allowed_rows)
        assert rows.tolist() == ref_rows.tolist() and scores.tobytes() == ref_scores.tobytes()


@pytest.mark.parametrize("dim", [8, 128, 768])
def test_the_bound_holds_on_the_codes_faiss_computes(dim):
    rng = np.random.default_rng(dim)
    v = _unit(rng.standard_normal((500, dim)) ** 3)  # heavy tails: components of every size
    qs = _unit(rng.standard_normal((20, dim)))
    codes = faiss.index_factory(dim, "SQfp16", faiss.METRIC_INNER_PRODUCT)
    codes.add(v)
    approx, ids = codes.search(qs, 500)
    exact = np.take_along_axis(qs @ v.T, ids, 1)
    worst = float(np.abs(approx - exact).max())
    assert 0 < worst < half_error(dim)


def test_many_duplicates_at_the_cut_and_a_pre_transform():
    """500 copies of one document at the cut: still the brute-force top k (lowest rows first among the
    copies), by rescoring every row once the widening passes a share of them. Codes behind a PCA are not
    the stored vectors' codes: such an index is not searched as an exact scan."""
    rng = np.random.default_rng(3)
    v = _unit(rng.standard_normal((3000, 16)))
    v[1000:1500] = v[7]
    di = _flat(v)
    for k in (3, 10, 600):
        ref_rows, ref_scores = _brute(v, v[7], k)
        (rows, scores), = di.search(v[7:8], k)
        assert rows.tolist() == ref_rows.tolist() and scores.tobytes() == ref_scores.tobytes(), k
        for rows, scores in di.search(np.repeat(v[7:8], PRODUCT_MIN_BATCH, 0), k):  # a batch: the product
            assert rows.tolist() == ref_rows.tolist() and scores.tobytes() == ref_scores.tobytes(), k
    pca = faiss.index_factory(16, "PCA8,SQfp16", faiss.METRIC_INNER_PRODUCT)
    pca.train(v)
    pca.add(v)
    assert not DenseIndex(pca, v, {}).exhaustive and DenseIndex(pca, v, {}).kind == "other"


def test_a_query_with_no_finite_score_gets_no_hits():
    v = _unit(np.random.default_rng(4).standard_normal((100, 8)))
    q = np.full((1, 8), np.nan, dtype=np.float32)
    (rows, scores), = _flat(v).search(q, 5)
    assert rows.size == 0 and scores.size == 0


# ---- a batch's candidates from one float32 product (index.batchscan) -------------------------------


def test_a_batch_is_answered_by_the_product_exactly():
    """A batch of PRODUCT_MIN_BATCH queries or more takes its candidates from the product, not the codes:
    with codes of only the first 20 documents a lone query's answer goes wrong, the batch's stays exact."""
    v, q = _near_ties()
    rng = np.random.default_rng(5)
    others = _unit(rng.standard_normal((PRODUCT_MIN_BATCH - 1, v.shape[1])))
    qs = np.concatenate([q[None], others]).astype(np.float32)
    good = _flat(v)
    di = _wrong_codes(v)
    for k in (1, 10, 250, len(v)):
        batch = di.search(qs, k)
        for i in range(len(qs)):
            ref_rows, ref_scores = _brute(v, qs[i], k)
            assert batch[i][0].tolist() == ref_rows.tolist(), (k, i)
            assert batch[i][1].tobytes() == ref_scores.tobytes(), (k, i)
            assert good.search(qs[i : i + 1], k)[0][0].tolist() == ref_rows.tolist()  # the codes' path agrees
    (alone, _), = di.search(q[None], 10)  # one query: the (wrong) codes' path, answers differ
    assert alone.tolist() != _brute(v, q, 10)[0].tolist()


def test_a_batch_with_a_non_finite_query_and_a_filter():
    rng = np.random.default_rng(6)
    v = _unit(rng.standard_normal((1500, 12)))
    qs = _unit(rng.standard_normal((PRODUCT_MIN_BATCH + 2, 12)))
    qs[3] = np.nan
    di = _flat(v)
    assert all(r[0].size == 0 for r in di.search(np.full_like(qs, np.nan), 7))  # nothing left to multiply
    res = di.search(qs, 7)
    assert res[3][0].size == 0 and res[3][1].size == 0
    for i in set(range(len(qs))) - {3}:
        ref_rows, ref_scores = _brute(v, qs[i], 7)
        assert res[i][0].tolist() == ref_rows.tolist() and res[i][1].tobytes() == ref_scores.tobytes()
    allowed_rows = np.sort(rng.choice(1500, 300, replace=False)).astype(np.int64)
    for i, (rows, _) in enumerate(di.search(qs, 7, Allowed.of(allowed_rows, 1500))):  # the codes' path
        assert rows.tolist() == ([] if i == 3 else _brute(v, qs[i], 7, allowed_rows)[0].tolist())


def test_product_candidates_across_row_blocks_and_the_sum_bound():
    rng = np.random.default_rng(7)
    v = _unit(rng.standard_normal((1000, 64)) ** 3)
    qs = _unit(rng.standard_normal((9, 64)))
    t = as_tensor(v)
    one_rows, one_cut = product_candidates(t, qs, 30)
    blk_rows, blk_cut = product_candidates(t, qs, 30, block=128)  # 8 blocks, a running top K
    assert [sorted(r) for r in one_rows.tolist()] == [sorted(r) for r in blk_rows.tolist()]
    assert np.abs(one_cut - blk_cut).max() < sum_error(64)  # blocked sums may round differently
    exact = (qs.astype(np.float64) @ v.astype(np.float64).T)  # (9, 1000), the real inner products
    kth = -np.sort(-exact, axis=1)[:, 29]
    assert np.abs(one_cut - kth).max() < sum_error(64)
    whole_rows, _ = product_candidates(t, qs, 5000)  # more asked than stored: every row
    assert whole_rows.shape == (9, 1000) and all(sorted(r) == list(range(1000)) for r in whole_rows.tolist())
    many = _unit(rng.standard_normal((600, 64)))  # more queries than one product takes
    many_rows, many_cut = product_candidates(t, many, 12, block=300)
    for i in (0, 255, 256, 599):
        alone_rows, alone_cut = product_candidates(t, many[i : i + 1], 12)
        assert sorted(many_rows[i].tolist()) == sorted(alone_rows[0].tolist())
        assert abs(float(many_cut[i]) - float(alone_cut[0])) < sum_error(64)


def _wrong_codes(v: np.ndarray) -> DenseIndex:
    """An index whose codes hold only the first 20 documents: the codes' path answers wrong (it trusts
    the scan's count), the product's path right. Which path a search took shows in its answer."""
    return DenseIndex(build_faiss(v[:20], resolve_spec("flat", len(v))), v, {})


def test_a_reduced_matmul_precision_turns_the_product_off():
    import torch

    v, q = _near_ties()
    qs = np.repeat(q[None], PRODUCT_MIN_BATCH, 0)
    di = _wrong_codes(v)
    right = _brute(v, q, 10)[0].tolist()
    before = torch.get_float32_matmul_precision()
    try:
        assert exact_products()
        assert all(rows.tolist() == right for rows, _ in di.search(qs, 10))  # the product
        torch.set_float32_matmul_precision("medium")
        assert not exact_products()
        assert all(rows.tolist() != right for rows, _ in di.search(qs, 10))  # the (wrong) codes
    finally:
        torch.set_float32_matmul_precision(before)
    mkldnn = getattr(torch.backends.mkldnn, "matmul", None)
    if mkldnn is not None and hasattr(mkldnn, "fp32_precision"):  # oneDNN's own setting (torch ≥ 2.9)
        old = mkldnn.fp32_precision
        try:
            mkldnn.fp32_precision = "bf16"
            assert not exact_products()
        finally:
            mkldnn.fp32_precision = old
    assert exact_products()


def test_a_batch_on_a_loaded_index_and_after_an_add(tmp_path):
    """The product reads a read-only memory map (a loaded index) as it is, and sees appended rows."""
    rng = np.random.default_rng(8)
    v = _unit(rng.standard_normal((800, 16)))
    qs = _unit(rng.standard_normal((PRODUCT_MIN_BATCH, 16)))
    _flat(v).save(tmp_path)
    di = DenseIndex.load(tmp_path, 16, 800, {})
    assert isinstance(di.vectors.base, np.memmap) or not di.vectors.flags.writeable
    for i, (rows, scores) in enumerate(di.search(qs, 5)):
        ref_rows, ref_scores = _brute(v, qs[i], 5)
        assert rows.tolist() == ref_rows.tolist() and scores.tobytes() == ref_scores.tobytes()
    di.add(qs[:3])  # three documents equal to the first queries: each the top hit of its own query
    grown = np.asarray(di.vectors)  # the appended rows as add normalised them
    for i, (rows, scores) in enumerate(di.search(qs, 5)):
        ref_rows, ref_scores = _brute(grown, qs[i], 5)
        assert rows.tolist() == ref_rows.tolist() and scores.tobytes() == ref_scores.tobytes()
        assert i >= 3 or rows[0] == 800 + i
