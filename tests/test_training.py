"""The training CLI and loop: bad input, atomic output, time bound, fine-tuning, reproducibility."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from models.config import ModelConfig
from models.data import load_beir, load_pairs
from models.encoder import Encoder
from models.training import TrainConfig, Trainer
from tests.conftest import TINY_MODEL

ROOT = Path(__file__).resolve().parent.parent
SMALL = ["--vocab-size", "500", "--num-buckets", "50", "--embed-dim", "16", "--hidden-dim", "16",
         "--out-dim", "8", "--quiet"]


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
    assert cfg["lang"] == "en" and cfg["training"]["seed"] == 3 and cfg["embed_dim"] == 16
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


def small_trainer(data, **kw) -> Trainer:
    return Trainer(data, ModelConfig(lang="en", **TINY_MODEL), TrainConfig(batch_size=16, show_progress=False, **kw),
                   log=lambda s: None)


def test_same_seed_same_model(tiny_beir):
    data = load_beir(tiny_beir)
    vecs = []
    for _ in range(2):
        t = small_trainer(data, epochs=1, seed=7)
        t.fit()
        vecs.append(Encoder(t.model, t.vocab).encode(["what causes kalo disease"]))
    np.testing.assert_array_equal(vecs[0], vecs[1])


def test_max_minutes_bounds_the_run(tiny_beir):
    data = load_beir(tiny_beir)
    t = small_trainer(data, epochs=10_000, max_minutes=0.25, patience=10_000)
    res = t.fit()
    assert res.stopped == "time" and res.seconds < 0.25 * 60 + 5


def test_fine_tune_keeps_vocabulary_and_shape(tiny_model_dir, tiny_beir, tmp_path):
    out = tmp_path / "ft"
    r = train_cli("--data", str(tiny_beir), "--out", str(out), "--init", str(tiny_model_dir), "--epochs", "1", "--quiet")
    assert r.returncode == 0, r.stderr
    assert (out / "vocab.json").read_text() == (tiny_model_dir / "vocab.json").read_text()
    a, b = (json.loads((d / "config.json").read_text()) for d in (out, tiny_model_dir))
    assert a["hidden_dim"] == b["hidden_dim"] and a["training"]["train_pairs"] > 0


def test_pseudo_queries_are_spans_of_their_document(tiny_beir):
    data = load_beir(tiny_beir)
    t = small_trainer(data, epochs=1, augment=1.0)
    rng = random.Random(0)
    for d in range(0, len(data.corpus), 17):
        doc = t.doc_feats[d]
        q = t.pseudo_query(d, rng)
        assert 1 <= len(q) <= len(doc)
        # every pseudo-query word is a word of the document
        assert all(w in doc for w in q)
    t.fit()  # an epoch with pseudo-queries runs
