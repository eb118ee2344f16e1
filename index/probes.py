"""Probe queries: self-supervised queries made from a corpus's own documents, for fitting the fusion a
model carries (index/fusion.py ``choose_model_fusion``).

A probe is a sentence of a document (English) or a contiguous span of a document's characters (Chinese,
where documents may be a single short title), and its document is the one relevant answer. Probes are
written in the corpus's words, not in the training questions' form: the kind of query on which a model
trained on one set of templates is weak and BM25 strong, which the training dev split never shows.
"""

from __future__ import annotations

import random
import re

from models.data import Corpus

MIN_WORDS, MAX_WORDS = 6, 40  # an English probe: one sentence of this many words
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+")


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if MIN_WORDS <= len(s.split()) <= MAX_WORDS]


def _span(text: str, rng: random.Random) -> str | None:
    chars = text.strip()
    if len(chars) < 6:
        return None
    n = rng.randint(max(3, round(0.5 * len(chars))), max(3, round(0.8 * len(chars))))
    start = rng.randint(0, len(chars) - n)
    return chars[start : start + n]


def probe_queries(corpus: Corpus, n: int, lang: str, seed: int = 0) -> tuple[list[str], list[dict[str, int]]]:
    """Up to ``n`` probes (text, {doc id: 1}) from random documents; deterministic for a seed."""
    rng = random.Random(seed)
    texts: list[str] = []
    rels: list[dict[str, int]] = []
    tries = 0
    while len(texts) < n and tries < 20 * n and len(corpus):
        tries += 1
        i = rng.randrange(len(corpus))
        if lang == "zh":
            q = _span(corpus.texts[i] or corpus.titles[i], rng)
        else:
            ss = _sentences(corpus.texts[i])
            q = rng.choice(ss) if ss else None
        if q:
            texts.append(q)
            rels.append({corpus.ids[i]: 1})
    return texts, rels
