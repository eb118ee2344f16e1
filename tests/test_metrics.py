"""The metric code (index/evaluation.py) on a run small enough to check by hand, and against ranx."""

from __future__ import annotations

import math
import random
import warnings

import pytest

from index.evaluation import evaluate_run, mrr_at_k, ndcg_at_k, recall_at_k

QRELS = {"q1": {"d1": 1, "d3": 2}, "q2": {"d9": 1}, "q3": {"d4": 1}}
RUN = {
    "q1": ["d3", "d2", "d1"],  # grade 2 at rank 1, grade 1 at rank 3
    "q2": ["d5"],  # the relevant document is not retrieved
    "q3": [f"x{i}" for i in range(10)] + ["d4"],  # relevant at rank 11: outside @10, inside @100
}


def test_metrics_by_hand():
    # q1: DCG = (2²−1)/log2(2) + (2¹−1)/log2(4) = 3 + 0.5; ideal = 3/log2(2) + 1/log2(3)
    q1 = 3.5 / (3 + 1 / math.log2(3))
    assert ndcg_at_k(RUN["q1"], QRELS["q1"], 10) == pytest.approx(q1)
    assert ndcg_at_k(RUN["q1"], QRELS["q1"], 1) == pytest.approx(1.0)  # grade 2 first: ideal at cut 1
    assert mrr_at_k(RUN["q1"], QRELS["q1"], 10) == 1.0
    assert recall_at_k(RUN["q1"], QRELS["q1"], 2) == 0.5
    assert mrr_at_k(RUN["q3"], QRELS["q3"], 10) == 0.0
    m = evaluate_run(RUN, QRELS)
    assert m["ndcg@10"] == pytest.approx(q1 / 3)
    assert m["mrr@10"] == pytest.approx(1 / 3)
    assert m["recall@10"] == pytest.approx(1 / 3)
    assert m["recall@100"] == pytest.approx(2 / 3)
    # A judged query missing from the run counts as zero, not skipped.
    assert evaluate_run({"q1": RUN["q1"]}, QRELS)["mrr@10"] == pytest.approx(1 / 3)


def test_metrics_agree_with_ranx():
    ranx = pytest.importorskip("ranx")
    rng = random.Random(0)
    docs = [f"d{i}" for i in range(150)]
    qrels, run = {}, {}
    for q in range(40):
        qid = f"q{q}"
        qrels[qid] = {d: rng.choice([1, 1, 2, 3]) for d in rng.sample(docs, rng.randint(1, 6))}
        run[qid] = rng.sample(docs, rng.randint(5, 120))
    ours = evaluate_run(run, qrels)
    # ranx ranks by score: give strictly decreasing scores in our order.
    ranx_run = ranx.Run({q: {d: float(len(ds) - r) for r, d in enumerate(ds)} for q, ds in run.items()})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba type-safety chatter
        theirs = ranx.evaluate(ranx.Qrels(qrels), ranx_run, ["ndcg_burges@10", "mrr@10", "recall@10", "recall@100"])
    assert ours["ndcg@10"] == pytest.approx(theirs["ndcg_burges@10"], abs=1e-9)
    assert ours["mrr@10"] == pytest.approx(theirs["mrr@10"], abs=1e-9)
    assert ours["recall@10"] == pytest.approx(theirs["recall@10"], abs=1e-9)
    assert ours["recall@100"] == pytest.approx(theirs["recall@100"], abs=1e-9)
