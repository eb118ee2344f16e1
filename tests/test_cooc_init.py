"""``--word-init cooc``: the n-gram table starts from the PPMI-SVD of the corpus's own co-occurrences."""

from __future__ import annotations

import json

import pytest
import torch

from models.config import ModelConfig
from models.cooc_init import cooc_matrix, cooc_rows, init_model_cooc, ppmi
from models.data import load_beir
from models.featurizer import Vocab
from models.prepare import new_model
from tests.conftest import TINY_MODEL
from tests.synthetic import write_beir
from tests.test_training import SMALL, train_cli


def test_cooc_matrix_weighs_pairs_by_distance_both_ways():
    vocab = Vocab(["#ab", "ab#", "#cd", "cd#", "#ef", "ef#"], num_buckets=3)
    c = cooc_matrix(vocab, ["ab cd ef", "ab"], window=2).to_dense()  # "ab" alone: no pair
    ab, cd, ef = vocab.id("#ab"), vocab.id("#cd"), vocab.id("#ef")
    assert torch.equal(c, c.t())
    assert c[ab, cd] == 1.0 and c[cd, ef] == 1.0 and c[ab, ef] == 0.5  # 1 / distance
    assert c[ab, vocab.id("ab#")] == 0.0  # n-grams of one word are not each other's context
    assert c[ab, ab] == 0.0
    assert cooc_matrix(vocab, ["ab cd ef"], window=1).to_dense()[ab, ef] == 0.0


def test_ppmi_keeps_only_positive_association():
    c = torch.tensor([[0.0, 4, 1], [4, 0, 1], [1, 1, 0]]).to_sparse().coalesce()
    m = ppmi(c).to_dense()
    assert (m >= 0).all()
    row = c.to_dense().sum(1).double()
    p = row.pow(0.75) / row.pow(0.75).sum()
    want01 = torch.log(torch.tensor(4.0, dtype=torch.float64)) - row[0].log() - p[1].log()
    assert abs(m[0, 1].item() - max(0.0, want01.item())) < 1e-5
    assert m[0, 0] == 0.0 and m[2, 2] == 0.0  # never counted: nothing
    assert m[0, 2] == 0.0  # below chance (log 1 − log 5 − log P(2) < 0): dropped, not negative


def test_words_with_the_same_neighbours_start_as_neighbours():
    # "flu" and "cold" always sit between the same words; "knee" elsewhere.
    texts = (["treat flu fast", "treat cold fast", "sore knee joint", "bad knee joint"] * 30
             + ["treat flu quickly", "treat cold quickly", "old knee pain"] * 10)
    vocab = Vocab.build(texts, size=500, num_buckets=10)
    vecs, counts = cooc_rows(vocab, texts, dim=8)
    assert vecs.shape == (len(vocab), 8)
    assert torch.allclose(vecs[counts > 0].norm(dim=1), torch.ones(int((counts > 0).sum())), atol=1e-5)

    def word(w: str) -> torch.Tensor:
        v = sum(vecs[i] for i in vocab.encode(w)[0])
        return v / v.norm()

    assert float(word("flu") @ word("cold")) > float(word("flu") @ word("knee")) + 0.3
    again, _ = cooc_rows(vocab, texts, dim=8)
    assert torch.equal(vecs, again)  # the random sketch is seeded: the same rows every time


def test_init_sets_seen_rows_at_the_random_scale_and_leaves_the_rest(tiny_beir):
    data = load_beir(tiny_beir)
    model, vocab = new_model(data, ModelConfig(lang="en", shared_towers=False, **TINY_MODEL), seed=0)
    q0, d0 = model.query.embed.weight.detach().clone(), model.doc.embed.weight.detach().clone()
    rng_before = torch.random.get_rng_state()
    rec = init_model_cooc(model, vocab, data.corpus.full_texts(), log=lambda s: None)
    assert torch.equal(torch.random.get_rng_state(), rng_before)  # the training's seeded stream is untouched
    q, d = model.query.embed.weight.detach(), model.doc.embed.weight.detach()
    changed = (q != q0).any(dim=1)
    assert rec["rows_fitted"] == int(changed.sum()) > 0 and not changed.all()
    vecs, counts = cooc_rows(vocab, data.corpus.full_texts(), q.shape[1])
    assert torch.equal(changed, (counts >= 5) & (vecs.norm(dim=1) > 0))  # min_count: the rows seen enough
    high = float(counts[counts > 0].median())  # a threshold half the seen rows miss
    other, _ = new_model(data, ModelConfig(lang="en", **TINY_MODEL), seed=0)
    fewer = init_model_cooc(other, vocab, data.corpus.full_texts(), min_count=high, log=lambda s: None)
    assert 0 < fewer["rows_fitted"] == int(((counts >= high) & (vecs.norm(dim=1) > 0)).sum()) < rec["rows_fitted"]
    assert torch.equal(q[~changed], q0[~changed]) and torch.equal(q[changed], d[changed])
    assert torch.equal(d[~changed], d0[~changed])
    norms = q[changed].norm(dim=1)
    assert torch.allclose(norms, torch.full_like(norms, float(q0.norm(dim=1).mean())), rtol=1e-4)
    assert model.cfg.extra["word_init_from"] == "cooc"


def test_trainer_refuses_cooc_without_a_set_table(tiny_beir):
    from models.training import TrainConfig, Trainer

    with pytest.raises(ValueError, match="word_init 'cooc'"):
        Trainer(load_beir(tiny_beir), ModelConfig(lang="en", **TINY_MODEL), TrainConfig(word_init="cooc"),
                log=lambda s: None)


def test_cli_word_init_cooc_is_recorded_and_skipped_when_fine_tuning(tiny_beir, tmp_path):
    out = tmp_path / "m"
    r = train_cli("--data", str(tiny_beir), "--out", str(out), "--epochs", "1", *SMALL, "--word-init", "cooc")
    assert r.returncode == 0, r.stderr
    assert "co-occurrences" in r.stdout
    rec = json.loads((out / "training.json").read_text())
    assert rec["word_init"] == "cooc" and rec["word_init_used"]["from"] == "cooc"
    assert rec["word_init_used"]["rows_fitted"] > 0
    assert json.loads((out / "config.json").read_text())["extra"]["word_init_from"] == "cooc"
    tuned = tmp_path / "t"
    r = train_cli("--data", str(tiny_beir), "--out", str(tuned), "--epochs", "1", *SMALL, "--word-init", "cooc",
                  "--init", str(out))
    assert r.returncode == 0, r.stderr
    rec = json.loads((tuned / "training.json").read_text())
    assert "not when fine-tuning" in rec["word_init_fallback"] and rec["word_init"] == "random"


def test_cooc_matrix_equals_the_pairs_counted_one_by_one():
    texts = ["kidney stones hurt the kidney badly", "stones", "a b c d e f g", "感冒发烧怎么办 cold 感冒"]
    vocab = Vocab.build(texts, size=40, num_buckets=7, min_count=1)  # small: hashed ids collide too
    for window in (1, 3):
        want = torch.zeros(len(vocab), len(vocab), dtype=torch.float64)
        for t in texts:
            enc = vocab.encode(t)
            for p, wp in enumerate(enc):
                for q, wq in enumerate(enc):
                    if 0 < abs(p - q) <= window:
                        for i in wp:
                            for j in wq:
                                want[i, j] += 1.0 / abs(p - q)
        got = cooc_matrix(vocab, texts, window=window).to_dense().double()
        assert torch.allclose(got, want, atol=1e-5)
        merged_often = cooc_matrix(vocab, texts, window=window, compact_at=5).to_dense().double()
        assert torch.allclose(merged_often, want, atol=1e-5)  # summed in pieces: the same totals
    with pytest.raises(ValueError, match="at least 1"):
        cooc_matrix(vocab, texts, window=0)


def _tiny_chinese_beir(folder):
    """A few Chinese questions over short titles (kuake_qtr's shape), every split present."""
    ills = ["感冒", "发烧", "头痛", "咳嗽", "腹泻", "失眠", "胃痛", "牙痛", "便秘", "过敏", "贫血", "湿疹"]
    asks = [("{i}怎么办", "{i}了怎么办才好"), ("{i}吃什么药", "{i}吃什么药好得快"), ("{i}的原因", "引起{i}的原因有哪些")]
    docs, queries, qrels = [], [], {"train": [], "dev": [], "test": []}
    for k, ill in enumerate(ills):
        split = "test" if k % 6 == 0 else "dev" if k % 6 == 1 else "train"
        for q, d in asks:
            did, qid = f"d{len(docs)}", f"q{len(queries)}"
            docs.append({"_id": did, "title": d.format(i=ill), "text": ""})
            queries.append({"_id": qid, "text": q.format(i=ill)})
            qrels[split].append((qid, did, 1))
    return write_beir(folder, docs, queries, qrels)


def test_the_chinese_preset_starts_from_cooc_even_on_a_tiny_corpus(tmp_path):
    data = _tiny_chinese_beir(tmp_path / "zh")
    out = tmp_path / "m"
    small = [a for a in SMALL if a not in ("--word-init", "random")]  # the zh preset's own table
    r = train_cli("--data", str(data), "--out", str(out), "--epochs", "1", *small)
    assert r.returncode == 0, r.stderr
    rec = json.loads((out / "training.json").read_text())
    assert rec["lang"] == "zh" and rec["word_init"] == "cooc" and rec["embed_lr"] == 0.0
    assert rec["word_init_used"]["rows_fitted"] > 0 and "random and frozen" not in r.stdout
    r = train_cli("--data", str(data), "--out", str(tmp_path / "r"), "--epochs", "1", *small, "--word-init", "random")
    assert r.returncode == 0, r.stderr
    assert "random and frozen" in r.stdout  # the preset's embed_lr 0 on a random table: said, not silent
