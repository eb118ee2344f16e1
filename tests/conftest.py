"""Shared fixtures: a small synthetic BEIR dataset and a small real model trained on it (once a session)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from models.config import ModelConfig
from models.data import load_beir
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
