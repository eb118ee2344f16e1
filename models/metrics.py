"""Retrieval metrics: NDCG@k (gain 2^grade − 1, as ranx's ``ndcg_burges``), MRR@k, Recall@k."""

from __future__ import annotations

import math
from collections.abc import Sequence

from .data import Qrels

Run = dict[str, Sequence[str]]  # query id → ranked doc ids, best first


def ndcg_at_k(ranked: Sequence[str], rel: dict[str, int], k: int) -> float:
    dcg = sum((2 ** rel.get(d, 0) - 1) / math.log2(r + 2) for r, d in enumerate(ranked[:k]))
    ideal = sorted(rel.values(), reverse=True)[:k]
    idcg = sum((2**g - 1) / math.log2(r + 2) for r, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def mrr_at_k(ranked: Sequence[str], rel: dict[str, int], k: int) -> float:
    for r, d in enumerate(ranked[:k]):
        if rel.get(d, 0) > 0:
            return 1.0 / (r + 1)
    return 0.0


def recall_at_k(ranked: Sequence[str], rel: dict[str, int], k: int) -> float:
    relevant = {d for d, g in rel.items() if g > 0}
    return len(relevant.intersection(ranked[:k])) / len(relevant) if relevant else 0.0


def evaluate_run(run: Run, qrels: Qrels) -> dict[str, float]:
    """Mean metrics over the judged queries of ``qrels``; a query missing from ``run`` scores 0."""
    totals = {"ndcg@10": 0.0, "mrr@10": 0.0, "recall@10": 0.0, "recall@100": 0.0}
    for qid, rel in qrels.items():
        ranked = run.get(qid, [])
        totals["ndcg@10"] += ndcg_at_k(ranked, rel, 10)
        totals["mrr@10"] += mrr_at_k(ranked, rel, 10)
        totals["recall@10"] += recall_at_k(ranked, rel, 10)
        totals["recall@100"] += recall_at_k(ranked, rel, 100)
    n = max(len(qrels), 1)
    return {k: v / n for k, v in totals.items()}
