"""BM25 as a training-time teacher (--lexical-distill): its scores are bm25s's, the loss reads the right
queries and candidates, and a run records it."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from index.lexical import BM25, tokenize
from models.config import ModelConfig
from models.data import load_beir
from models.lexical_teacher import LexicalTeacher, lexical_targets
from models.loss import distill_kl
from models.training import PAIR, SPAN, TrainConfig, Trainer
from tests.conftest import TINY_MODEL
from tests.test_training import SMALL, train_cli

EN = ["The glaucoma answer: glaucoma damages the optic nerve.", "Diabetes raises blood sugar levels",
      "Symptoms of glaucoma include eye pain", "Nothing in common here", "blood tests for diabetes and sugar"]
ZH = ["感冒灵颗粒的功效", "头痛吃什么药", "感冒了头痛怎么办", "糖尿病的症状", "孕妇感冒能吃感冒灵吗"]


@pytest.mark.parametrize("docs, lang, queries", [
    (EN, "en", ["glaucoma symptoms", "what is diabetes blood sugar", "zebra"]),
    (ZH, "zh", ["感冒头痛感冒", "糖尿病", "鲸鱼"]),
])
def test_scores_are_bm25s_scores(docs, lang, queries):
    lt = LexicalTeacher(docs, lang)
    bm = BM25(lang).index(docs)
    got = lt.scores(lt.query_terms(queries), list(range(len(docs)))).numpy()  # (Q, D)
    for i, toks in enumerate(tokenize(queries, lang)):
        known = [t for t in toks if t in lt.terms]  # repeated terms count again, as in bm25s
        want = bm.model.get_scores(known) if known else np.zeros(len(docs))
        np.testing.assert_allclose(got[i], want, rtol=1e-5, atol=1e-6)
    assert got[0].max() > 0 and not got[2].any()  # the last query shares no term with the corpus
    # candidates in any order, repeated: the columns follow them
    cands = [3, 0, 0, 2]
    np.testing.assert_allclose(lt.scores(lt.query_terms(queries[:1]), cands).numpy()[0], got[0, cands], rtol=1e-6)


def test_targets_scale_each_row_by_its_best_and_drop_rows_without_an_opinion():
    s = torch.tensor([[4.0, 2.0, 0.0], [0.0, 0.0, 0.0], [0.5, 1.0, 0.25]])
    target, keep = lexical_targets(s)
    assert keep.tolist() == [True, False, True]
    torch.testing.assert_close(target[0], torch.tensor([1.0, 0.5, 0.0]))
    torch.testing.assert_close(target[2], torch.tensor([0.5, 1.0, 0.25]))
    assert torch.isfinite(target).all()


def test_the_loss_scores_each_examples_own_query_against_the_batchs_candidates(tiny_beir):
    """Recomputed outside the trainer (bm25s over the corpus, the queries' texts): the same number, for
    training questions and span pseudo-queries alike."""
    data = load_beir(tiny_beir)
    lt = LexicalTeacher(data.corpus.full_texts(), "en")
    t = Trainer(data, ModelConfig(lang="en", **TINY_MODEL),
                TrainConfig(batch_size=8, negatives=2, lexical_distill=1.0, augment=1.0, show_progress=False),
                lexical=lt, log=lambda s: None)
    rng = random.Random(3)
    # pairs from the middle (query index ≠ batch position) interleaved with pseudo-queries
    p = t.pairs[5:9]
    batch = [(PAIR, *p[0]), (SPAN, -1, 1), (PAIR, *p[1]), (SPAN, -1, 5), (PAIR, *p[2]), (PAIR, *p[3]), (SPAN, -1, 9)]
    made = [t.example(ex, rng) for ex in batch]
    cands = [ex[2] for ex in batch] + [0, 2, 4]
    exclude = torch.tensor([[c in m[2] for c in cands] for m in made], dtype=torch.bool)
    student = torch.randn(len(batch), len(cands)).clamp(-1, 1)
    got = t.lexical_loss(batch, made, student, cands, exclude)

    bm = BM25("en").index(data.corpus.full_texts())
    texts = [t.q_texts[ex[1]] if m[4] is None else m[4] for ex, m in zip(batch, made, strict=True)]
    assert [m[4] is None for m in made] == [ex[0] == PAIR for ex in batch]
    full = np.stack([bm.model.get_scores([w for w in toks if w in lt.terms])
                     for toks in tokenize(texts, "en")])  # (B, n_docs)
    s = torch.tensor(full[:, cands], dtype=torch.float32)
    others = exclude.clone()
    others[torch.arange(len(batch)), torch.arange(len(batch))] = False
    s = s.masked_fill(others, 0.0)
    keep = s.max(dim=1).values > 0
    want = distill_kl(student, s / s.max(dim=1, keepdim=True).values.clamp_min(1e-9), t.model.gamma, 0.1,
                      exclude, rows=keep)
    assert keep.all() and abs(got.item() - want.item()) < 1e-5 and got.item() > 0


def test_trainer_needs_the_teacher_it_is_asked_for(tiny_beir):
    data = load_beir(tiny_beir)
    with pytest.raises(ValueError, match="BM25 teacher"):
        Trainer(data, ModelConfig(lang="en", **TINY_MODEL), TrainConfig(lexical_distill=1.0), log=lambda s: None)
    with pytest.raises(ValueError, match="does not match the corpus"):
        Trainer(data, ModelConfig(lang="en", **TINY_MODEL), TrainConfig(lexical_distill=1.0),
                lexical=LexicalTeacher(EN, "en"), log=lambda s: None)


def test_cli_trains_with_the_bm25_teacher_and_records_it(tiny_beir, tmp_path):
    out = tmp_path / "m"
    r = train_cli("--data", str(tiny_beir), "--out", str(out), "--epochs", "2", "--lexical-distill", "0.5",
                  "--lexical-tau", "0.2", *SMALL)
    assert r.returncode == 0, r.stderr
    assert "distilling from BM25 over the corpus (weight 0.5, τ 0.2)" in r.stdout
    training = json.loads((out / "training.json").read_text())
    assert training["lexical_distill"] == 0.5 and training["lexical_tau"] == 0.2
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs"][-1]["loss"] > 0 and metrics["best_dev"]["ndcg@10"] > 0
