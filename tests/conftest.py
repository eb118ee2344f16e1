"""Shared fixtures: a small synthetic BEIR dataset and a small real model trained on it (once a session)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from bench.process import ServerProcess
from index import build_index
from models.config import ModelConfig
from models.data import load_beir
from models.encoder import Encoder
from models.training import TrainConfig, Trainer
from tests.synthetic import make_beir

SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"

# Small enough to train in seconds on 2 cores, big enough to learn the synthetic task.
TINY_MODEL = dict(vocab_size=2000, num_buckets=500, embed_dim=32, hidden_dim=32, out_dim=16,
                  doc_max_words=24, query_max_words=16)


def shared_dataset(name: str) -> Path:
    """Path of a dataset in ../shared/data; skip when absent, unless DSSM_REQUIRE_SHARED_DATA=1 (CI)."""
    p = SHARED_DATA / name
    if not (p / "corpus.jsonl").is_file():
        if os.environ.get("DSSM_REQUIRE_SHARED_DATA") == "1":
            pytest.fail(f"DSSM_REQUIRE_SHARED_DATA=1 but {p} is missing")
        pytest.skip(f"{p} not present (real-data test; set up ../shared/data to run it)")
    return p


@pytest.fixture(scope="session", autouse=True)
def _threads() -> None:
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_beir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_beir(tmp_path_factory.mktemp("data") / "tiny")


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_beir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real LSTM-DSSM trained for a few epochs on the synthetic data and saved to disk."""
    out = tmp_path_factory.mktemp("model") / "tiny-model"
    data = load_beir(tiny_beir)
    trainer = Trainer(
        data,
        ModelConfig(lang="en", **TINY_MODEL),
        TrainConfig(epochs=12, batch_size=16, lr=5e-3, patience=100, show_progress=False, seed=0),
        log=lambda s: None,
    )
    trainer.save(out, trainer.fit())
    return out


@pytest.fixture(scope="session")
def tiny_index_dir(tiny_model_dir: Path, tiny_beir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny corpus (180 docs) indexed with the tiny model."""
    out = tmp_path_factory.mktemp("index") / "tiny-index"
    build_index(Encoder.load(tiny_model_dir), tiny_beir / "corpus.jsonl", out, show_progress=False)
    return out


@pytest.fixture(scope="session")
def small_index_dir(tiny_model_dir: Path, tiny_beir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second, different index for the same model (the first 60 documents): the reload target."""
    base = tmp_path_factory.mktemp("index-small")
    corpus = base / "corpus.jsonl"
    lines = (tiny_beir / "corpus.jsonl").read_text(encoding="utf-8").splitlines()[:60]
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = base / "small-index"
    build_index(Encoder.load(tiny_model_dir), corpus, out, show_progress=False)
    return out


@pytest.fixture(scope="session")
def other_model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model whose fingerprint differs from the tiny model's (same weights, edited config notes):
    an index built with the tiny model must be refused with it."""
    out = tmp_path_factory.mktemp("other-model") / "other-model"
    shutil.copytree(tiny_model_dir, out)
    cfg = json.loads((out / "config.json").read_text(encoding="utf-8"))
    cfg["extra"] = {**cfg.get("extra", {}), "note": "a different model"}
    (out / "config.json").write_text(json.dumps(cfg), encoding="utf-8")
    return out


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[list[ServerProcess]]:
    """Collects started servers and stops them after the test, whatever happens."""
    servers: list[ServerProcess] = []
    yield servers
    for s in servers:
        s.stop()
