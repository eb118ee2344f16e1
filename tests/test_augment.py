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
from models.teacher import cache_key, cached_embed

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
    ctx = ["My mother is 70 years old."]
    only_drop = [rewrite_query(q, random.Random(i), ctx, **rewrite_probs("drop")) for i in range(200)]
    # Only template words go: what is left is the question's own words, in their order, no sentence added.
    assert all(o.split() == [w for w in q.split() if w in o.split()] for o in only_drop)
    assert len(set(only_drop)) > 5 and all("symptoms" in o and "Glaucoma" in o for o in only_drop)
    # Leaving the sentence out changes nothing else: each seed gives the same question, less the sentence.
    no_ctx = [rewrite_query(q, random.Random(i), ctx, **rewrite_probs("drop,swap,typo")) for i in range(200)]
    all_ops = [rewrite_query(q, random.Random(i), ctx, **rewrite_probs("drop,swap,typo,context")) for i in range(200)]
    assert not any("mother" in o for o in no_ctx) and any("mother" in o for o in all_ops)
    assert all(a.replace(ctx[0], "").strip() == n for a, n in zip(all_ops, no_ctx, strict=True))


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
