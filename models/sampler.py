"""Negative sampling for the DSSM objective: J documents per query, never one relevant to it."""

from __future__ import annotations

import random
from collections.abc import Sequence


class NegativeSampler:
    """Uniform random documents, mixed with "hard" ones (e.g. BM25's top hits) when given.

    ``relevant[q]`` is the set of document indices relevant to query q; ``hard[q]`` an optional list of
    candidate hard negatives for q (relevant ones are filtered out here, whatever the caller passed).
    """

    def __init__(
        self,
        num_docs: int,
        relevant: Sequence[set[int]],
        hard: Sequence[Sequence[int]] | None = None,
        hard_fraction: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.num_docs = num_docs
        self.relevant = relevant
        self.hard = [[d for d in h if d not in relevant[q]] for q, h in enumerate(hard)] if hard else None
        self.hard_fraction = hard_fraction if hard else 0.0
        self.rng = random.Random(seed)

    def sample(self, q: int, j: int) -> list[int]:
        return self.sample_excluding(self.relevant[q], j, self.hard[q] if self.hard else None)

    def sample_excluding(self, rel: set[int], j: int, hard: Sequence[int] | None = None) -> list[int]:
        """j documents not in ``rel``; from ``hard`` with probability ``hard_fraction``."""
        if len(rel) >= self.num_docs:
            return []  # every document is relevant: there is no negative to give
        out: list[int] = []
        while len(out) < j:
            if hard and self.rng.random() < self.hard_fraction:
                d = hard[self.rng.randrange(len(hard))]
            else:
                d = self.rng.randrange(self.num_docs)
            if d not in rel:
                out.append(d)
        return out
