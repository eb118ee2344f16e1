"""Fusing a dense and a lexical ranking (hybrid search)."""

from __future__ import annotations

from collections.abc import Sequence


def rrf(rankings: Sequence[Sequence[str]], k: float = 60.0, weights: Sequence[float] | None = None) -> list[tuple[str, float]]:
    """Reciprocal rank fusion: score(d) = Σ_r w_r / (k + rank_r(d)), rank from 1; best first.

    Ties break by first appearance, so the result is deterministic.
    """
    weights = weights or [1.0] * len(rankings)
    scores: dict[str, float] = {}
    for w, ranking in zip(weights, rankings, strict=True):
        for r, d in enumerate(ranking, 1):
            scores[d] = scores.get(d, 0.0) + w / (k + r)
    return sorted(scores.items(), key=lambda kv: -kv[1])
