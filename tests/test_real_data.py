"""Tests on the real data in ../shared/data (skipped on a user's machine, required in CI)."""

from __future__ import annotations

import random

import pytest

from index.evaluation import evaluate_dense
from models.config import ModelConfig
from models.data import Corpus, Dataset, load_beir
from models.encoder import Encoder
from models.training import TrainConfig, Trainer
from tests.conftest import shared_dataset


def medquad_slice(n_queries: int = 800, n_docs: int = 1500) -> Dataset:
    """The first training queries of medquad, their documents, and random other documents."""
    full = load_beir(shared_dataset("medquad"))
    train = full.split("train")
    qids = sorted(train)[:n_queries]
    keep = {d for q in qids for d in train[q]}
    rng = random.Random(0)
    others = [d for d in full.corpus.ids if d not in keep]
    keep |= set(rng.sample(others, n_docs - len(keep)))
    c = full.corpus
    idx = [i for i, d in enumerate(c.ids) if d in keep]
    corpus = Corpus([c.ids[i] for i in idx], [c.titles[i] for i in idx], [c.texts[i] for i in idx], [{} for _ in idx])
    return Dataset("medquad-slice", corpus, full.queries, {"train": {q: train[q] for q in qids}})


@pytest.mark.shared_data
@pytest.mark.slow
def test_small_model_learns_medquad_slice():
    data = medquad_slice()
    cfg = ModelConfig(lang="en", vocab_size=8000, num_buckets=2000, embed_dim=64, hidden_dim=64, out_dim=32,
                      doc_max_words=24, query_max_words=16)
    trainer = Trainer(data, cfg, TrainConfig(epochs=6, batch_size=32, lr=5e-3, show_progress=False), log=lambda s: None)
    trainer.fit()
    m = evaluate_dense(Encoder(trainer.model, trainer.vocab), data, data.split("train")).metrics
    random_mrr = sum(1 / r for r in range(1, 11)) / len(data.corpus)  # ≈ 0.002
    assert m["mrr@10"] > 50 * random_mrr, m  # ≈ 0.1


@pytest.mark.shared_data
def test_reference_bm25_figures_reproduce():
    from index.evaluation import evaluate_run
    from index.lexical import BM25

    for name, lang, ref in (("medquad", "en", 0.602), ("kuake_qtr", "zh", 0.809)):
        d = load_beir(shared_dataset(name))
        qrels = d.split("test")
        qids = list(qrels)
        idx, _ = BM25(lang).index(d.corpus.full_texts()).search([d.queries[q] for q in qids], 100)
        run = {q: [d.corpus.ids[i] for i in row] for q, row in zip(qids, idx, strict=True)}
        assert abs(evaluate_run(run, qrels)["ndcg@10"] - ref) <= 0.01
