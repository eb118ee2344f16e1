"""Hybrid search: fusing the dense and the BM25 ranking of one query, and choosing how on dev.

The settings live in the manifest's ``fusion`` entry, which :class:`index.SearchIndex` exposes as
``.fusion`` and ``search_hybrid`` applies: ``{"method": "rrf", "k": 10, "depth": 100}`` or
``{"method": "weighted", "weight": 0.6, "depth": 100}`` (weight on the dense side).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from models.data import Qrels

from .evaluation import evaluate_run

K = TypeVar("K", bound=Hashable)

DEPTH = 100  # candidates taken from each side, as in scripts/evaluate.py
DEFAULT_FUSION: dict[str, Any] = {"method": "rrf", "k": 10, "depth": DEPTH, "chosen_on": "default"}
RRF_GRID = (1, 5, 10, 20, 60)
WEIGHT_GRID = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


@dataclass
class Candidates:
    """One query's candidates: rows in dense order, rows in BM25 order (score > 0 only), their BM25
    scores, and the exact cosine of every candidate of either list."""

    dense: list[int]
    lexical: list[int]
    bm25: dict[int, float]
    cos: dict[int, float]


def rrf(rankings: Sequence[Sequence[K]], k: float = 60.0, weights: Sequence[float] | None = None) -> list[tuple[K, float]]:
    """Reciprocal rank fusion: score(d) = Σ_r w_r / (k + rank_r(d)), rank from 1; best first.

    Works on any hashable keys (corpus ids, index rows). Ties break by first appearance (first ranking
    first), so the result is deterministic.
    """
    weights = weights or [1.0] * len(rankings)
    scores: dict[K, float] = {}
    for w, ranking in zip(weights, rankings, strict=True):
        for r, d in enumerate(ranking, 1):
            scores[d] = scores.get(d, 0.0) + w / (k + r)
    return sorted(scores.items(), key=lambda kv: -kv[1])


def check_fusion(settings: Any) -> str | None:
    """Why ``settings`` cannot be applied, or None when it can."""
    if not isinstance(settings, dict):
        return "fusion settings must be an object"
    method = settings.get("method")
    if method == "rrf":
        k = settings.get("k")
        return None if isinstance(k, int | float) and k > 0 else f"rrf needs k > 0, got {k!r}"
    if method == "weighted":
        w = settings.get("weight")
        return None if isinstance(w, int | float) and 0 <= w <= 1 else f"weighted fusion needs 0 ≤ weight ≤ 1, got {w!r}"
    return f"unknown fusion method {method!r} (rrf or weighted)"


def fuse(c: Candidates, settings: dict[str, Any]) -> list[tuple[int, float]]:
    """(row, fused score) best first; ties keep first appearance (dense list first)."""
    if settings["method"] == "rrf":
        return rrf([c.dense, c.lexical], k=float(settings["k"]))
    # Weighted: min-max normalised cosine (over this query's candidates) against BM25 / its max, so both
    # sides span [0, 1] whatever the query; a document BM25 did not return counts as BM25 0.
    rows = list(dict.fromkeys(c.dense + c.lexical))
    if not rows:
        return []
    cos = np.array([c.cos[r] for r in rows], dtype=np.float64)
    lo, hi = cos.min(), cos.max()
    dn = (cos - lo) / (hi - lo) if hi > lo else np.ones_like(cos)
    bmax = max(c.bm25.values(), default=0.0)
    ln = np.array([c.bm25.get(r, 0.0) / bmax if bmax > 0 else 0.0 for r in rows])
    w = float(settings["weight"])
    score = w * dn + (1 - w) * ln
    order = sorted(range(len(rows)), key=lambda i: -score[i])
    return [(rows[i], float(score[i])) for i in order]


def grid() -> list[dict[str, Any]]:
    return [{"method": "rrf", "k": k} for k in RRF_GRID] + [{"method": "weighted", "weight": w} for w in WEIGHT_GRID]


def choose_fusion(
    candidates: Sequence[Candidates], qids: Sequence[str], qrels: Qrels, doc_ids: Sequence[str], depth: int = DEPTH
) -> dict[str, Any]:
    """Try every setting of :func:`grid` on the dev queries; keep the best NDCG@10 (first on ties).

    ``doc_ids[row]`` is the corpus id of a row. The returned dict records the whole grid, and the dense
    and BM25 figures alone, so the choice can be checked later.
    """

    def ndcg(run: dict[str, list[str]]) -> float:
        return evaluate_run(run, qrels)["ndcg@10"]

    tried = []
    for s in grid():
        run = {q: [doc_ids[r] for r, _ in fuse(c, s)[:depth]] for q, c in zip(qids, candidates, strict=True)}
        tried.append({**s, "ndcg@10": round(ndcg(run), 5)})
    best = max(tried, key=lambda t: t["ndcg@10"])  # max keeps the first of equal values
    dense = ndcg({q: [doc_ids[r] for r in c.dense] for q, c in zip(qids, candidates, strict=True)})
    lexical = ndcg({q: [doc_ids[r] for r in c.lexical] for q, c in zip(qids, candidates, strict=True)})
    chosen = {k: v for k, v in best.items() if k != "ndcg@10"}
    return {
        **chosen, "depth": depth, "chosen_on": "dev", "dev_queries": len(qids), "dev_ndcg@10": best["ndcg@10"],
        "dev_dense_ndcg@10": round(dense, 5), "dev_bm25_ndcg@10": round(lexical, 5), "grid": tried,
    }
