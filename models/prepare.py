"""What a training run needs before its first step, one job per function: the language, the
vocabulary, a fresh network, BM25 hard negatives. The Trainer receives their results."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import torch

from .config import ModelConfig
from .data import Dataset
from .featurizer import Vocab, detect_lang
from .stopwords import STOPWORD_LISTS
from .tower import LSTMDSSM


def train_query_ids(data: Dataset) -> list[str]:
    """The training queries in the one order every component (Trainer, mining, teacher) indexes them."""
    return list(data.split("train"))


def resolve_lang(data: Dataset, lang: str) -> str:
    """``lang`` itself, or (``auto``) the language detected from training queries and documents."""
    if lang != "auto":
        return lang
    sample = [data.queries[q] for q in train_query_ids(data)[:2000]] + data.corpus.texts[:2000]
    return detect_lang(sample)


def build_vocab(data: Dataset, cfg: ModelConfig, min_count: int = 2) -> Vocab:
    """Vocabulary from the training queries and the corpus as the model reads it (first words, without
    the stop words ``cfg.stopwords`` names, which the vocabulary keeps: the model skips them everywhere)."""
    train_q = [data.queries[q] for q in train_query_ids(data)]
    docs = data.corpus.full_texts()
    cut = [" ".join(t.split()[: cfg.doc_max_words * 2]) for t in docs]  # bound the work on long docs
    return Vocab.build(train_q + cut, size=cfg.vocab_size, num_buckets=cfg.num_buckets, lang=cfg.lang, min_count=min_count,
                       stopwords=STOPWORD_LISTS[cfg.stopwords])


def new_model(data: Dataset, cfg: ModelConfig, seed: int = 0) -> tuple[LSTMDSSM, Vocab]:
    """A vocabulary built from ``data`` and an untrained network for it, initialised from ``seed``.

    The network's config is a copy of ``cfg`` with the real learned-vocabulary size (a small corpus
    has fewer n-grams than asked for); ``cfg`` itself is left as it was.
    """
    vocab = build_vocab(data, cfg)
    torch.manual_seed(seed)
    return LSTMDSSM(replace(cfg, vocab_size=len(vocab.ngrams), extra=dict(cfg.extra))), vocab


def mine_hard_negatives(
    data: Dataset, k: int, lang: str, log: Callable[[str], None] = print
) -> list[list[int]]:
    """BM25's top ``k`` corpus indices for each training query (``train_query_ids`` order).

    Relevant documents among them are left in: the sampler filters them per query.
    """
    from index.lexical import BM25

    log(f"mining {k} BM25 hard negatives per training query")
    bm = BM25(lang).index(data.corpus.full_texts())
    idx, _ = bm.search([data.queries[q] for q in train_query_ids(data)], k)
    return [list(map(int, row)) for row in idx]
