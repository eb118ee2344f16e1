"""Pseudo-queries and question rewriting (models/augment.py) and the teacher's embedding cache."""

from __future__ import annotations

import random

import numpy as np
import pytest

from models.augment import (
    TEMPLATE_WORDS,
    inverse_cloze,
    misspell,
    rewrite_probs,
    rewrite_query,
    sentences,
    span,
)
from models.config import ModelConfig
from models.data import load_beir
from models.featurizer import Vocab
from models.stopwords import STOPWORD_LISTS
from models.teacher import cache_key, cached_embed, teacher_cut
from models.training import PAIR, TrainConfig, Trainer
from tests.conftest import TINY_MODEL

DOC = ("Glaucoma is a group of eye diseases. It damages the optic nerve. Vision loss comes slowly. "
       "Treatment includes eye drops and surgery.")


def test_span_is_contiguous_and_30_to_70_percent():
    rng = random.Random(0)
    for n in range(1, 60):
        for _ in range(20):
            s, e = span(n, rng)
            assert 0 <= s < e <= n
            assert max(1, round(0.3 * n)) <= e - s <= max(1, round(0.7 * n))
    assert span(0, rng) == (0, 0)


def test_inverse_cloze_removes_the_sentence_most_of_the_time():
    rng = random.Random(1)
    removed = kept = 0
    for _ in range(400):
        q, passage = inverse_cloze(DOC, rng, keep=0.1)
        assert q in sentences(DOC)
        others = [s for s in sentences(DOC) if s != q]
        assert all(o in passage for o in others)  # the context always stays, in order
        if q in passage:
            kept += 1
        else:
            removed += 1
    assert 0.04 < kept / 400 < 0.2 and removed > kept
    assert inverse_cloze("One sentence only here.", rng) is None


def test_rewrite_keeps_topic_words_and_changes_the_form():
    rng = random.Random(2)
    q = "What are the symptoms of Glaucoma ?"
    outs = [rewrite_query(q, rng, context=["My mother is 70 years old."], p_drop=0.5, p_typo=0.0) for _ in range(200)]
    for o in outs:
        words = o.lower().split()
        assert "symptoms" in words and "glaucoma" in words  # topic words are never dropped without a typo
    assert len(set(outs)) > 10 and any(o.lower().split() != q.lower().split() for o in outs)
    assert any("mother" in o for o in outs) and not all("mother" in o for o in outs)
    dropped = [o for o in outs if "What" not in o and "mother" not in o]
    assert dropped and all(w.lower() not in TEMPLATE_WORDS or w in o for o in dropped for w in o.split())
    assert rewrite_query("", rng) == ""


def test_a_subset_of_rewrites_applies_only_those_on_the_same_random_stream():
    assert rewrite_probs("drop,swap,typo,context") == {"p_drop": 0.5, "p_swap": 0.3, "p_typo": 0.3, "p_context": 0.3}
    assert rewrite_probs(" drop ") == {"p_drop": 0.5, "p_swap": 0.0, "p_typo": 0.0, "p_context": 0.0}
    for bad in ("", ",", "drop,spell"):
        with pytest.raises(ValueError, match="subset of drop, swap, typo, context"):
            rewrite_probs(bad)
    q = "What are the symptoms of Glaucoma ?"
    ctx = ["My mother is 70 years old.", "She has had headaches for a year."]
    subsets = ("drop,swap,typo,context", "drop,swap,typo", "drop", "swap,typo", "context")

    def rewrite(ops: str, seed: int) -> tuple[str, float]:
        """The rewrite, and where it leaves the generator (its next draw)."""
        rng = random.Random(seed)
        return rewrite_query(q, rng, ctx, **rewrite_probs(ops)), rng.random()

    outs = {ops: [rewrite(ops, seed) for seed in range(300)] for ops in subsets}
    # Whatever the subset, the generator ends where the full rewrite leaves it: a training run's other
    # draws (which questions are rewritten, negatives, order) do not depend on --query-aug-ops.
    for ops in subsets:
        assert [n for _, n in outs[ops]] == [n for _, n in outs["drop,swap,typo,context"]], ops
    full, no_ctx = [o for o, _ in outs["drop,swap,typo,context"]], [o for o, _ in outs["drop,swap,typo"]]

    def less_sentence(text: str) -> str:
        for c in ctx:
            text = text.replace(c, "")
        return text.strip()

    # The same rewrite less the sentence; and the sentence comes exactly where the full rewrite adds one.
    assert [less_sentence(f) for f in full] == no_ctx
    assert [any(c in f for c in ctx) for f in full] == [o != q for o, _ in outs["context"]]
    assert 30 < sum(o != q for o, _ in outs["context"]) < 150  # p 0.3 of 300
    assert not any(c in o for o in no_ctx for c in ctx)
    # Template words dropped alone: the question's own words, in their order, the topic always kept.
    only_drop = [o for o, _ in outs["drop"]]
    assert all(o.split() == [w for w in q.replace("?", " ?").split() if w in o.split()] for o in only_drop)
    assert len(set(only_drop)) > 5 and all("symptoms" in o and "Glaucoma" in o for o in only_drop)
    # The swap and the typo alone (positions move once words are dropped: only how often they fire).
    fired = [o != q for o, _ in outs["swap,typo"]]
    assert 100 < sum(fired) < 200  # 1 − 0.7 × 0.7 = 0.51 of 300


def test_the_trainer_rewrites_with_the_chosen_operations(tiny_beir):
    data = load_beir(tiny_beir)

    def make(ops: str) -> Trainer:
        cfg = TrainConfig(query_aug=1.0, query_aug_ops=ops, show_progress=False)
        return Trainer(data, ModelConfig(lang="en", **TINY_MODEL), cfg, log=lambda s: None)

    full, drop = make("drop,swap,typo,context"), make("drop")
    assert full.context and not drop.context  # no sentence pool built for rewrites that never use it
    rng = random.Random(0)
    made = [drop.example((PAIR, q, d), rng) for q, d in drop.pairs]
    for (q, _), m in zip(drop.pairs, made, strict=True):
        words = drop.q_texts[q].replace("?", " ?").split()
        assert m[4] is not None and m[4].split() == [w for w in words if w in m[4].split()]
    assert any(len(m[4].split()) < len(drop.q_texts[q].replace("?", " ?").split())
               for (q, _), m in zip(drop.pairs, made, strict=True))
    with pytest.raises(ValueError, match="subset of drop, swap, typo, context"):
        make("drop,spell")


def test_misspell_makes_one_small_edit():
    rng = random.Random(3)
    outs = [misspell("glaucoma", rng) for _ in range(200)]
    assert all(abs(len(w) - len("glaucoma")) <= 1 and w[0] == "g" for w in outs)
    assert sum(w != "glaucoma" for w in outs) > 190  # (a swap of two equal letters would change nothing)
    assert misspell("eye", rng) == "eye" and misspell("b12x", rng) == "b12x"


class FakeTeacher:
    name, fingerprint = "fake", "f1"

    def __init__(self) -> None:
        self.calls = 0

    def embed(self, texts):
        self.calls += 1
        return np.stack([np.eye(4, dtype=np.float32)[len(t) % 4] for t in texts])


def test_teacher_cache_is_keyed_by_texts_and_teacher(tmp_path):
    t = FakeTeacher()
    a, rec = cached_embed(t, ["a", "bb"], tmp_path, log=lambda s: None)
    assert t.calls == 1 and rec["cached"] is False and a.shape == (2, 4)
    b, rec = cached_embed(t, ["a", "bb"], tmp_path, log=lambda s: None)
    assert t.calls == 1 and rec["cached"] is True and (a == b).all()
    cached_embed(t, ["a", "bbb"], tmp_path, log=lambda s: None)  # other texts: encoded again
    assert t.calls == 2
    assert cache_key("f1", ["a"]) != cache_key("f2", ["a"]) != cache_key("f1", ["b"])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]


def test_teacher_reads_on_to_where_a_stop_word_skipping_student_stops():
    vocab = Vocab([], stopwords=STOPWORD_LISTS["nltk-q"])
    text = "What is (are) glaucoma ? Glaucoma is a group of diseases that can damage the eye's optic nerve"
    for n in (1, 2, 3, 5, 8, 100):
        cut = teacher_cut(text, n, vocab.words)
        assert vocab.words(cut) == vocab.words(text)[:n]  # here: the very words the student reads
        assert text.startswith(cut)
    # A token is kept whole, so the teacher may read a little past the student's last word ("x-ray").
    xray = "the x-ray of my chest"
    assert teacher_cut(xray, 1, vocab.words) == "the x-ray"
    assert vocab.words(teacher_cut(xray, 1, vocab.words))[:1] == vocab.words(xray)[:1]
    # Stop words only: the student reads the text whole, so its first n words count.
    assert teacher_cut("it is that you are", 2, vocab.words) == "it is"
    # The stop words between them are kept: the teacher reads sentences, and stops at the n-th word.
    assert teacher_cut(text, 3, vocab.words) == "What is (are) glaucoma ? Glaucoma"
    assert teacher_cut(text, 4, vocab.words) == "What is (are) glaucoma ? Glaucoma is a group"
    # No list: the first n tokens, as before the option (so those models' teacher caches stay valid).
    assert teacher_cut(text, 3) == "What is (are)"
    assert teacher_cut("  a   b  ", 5) == "a b"
