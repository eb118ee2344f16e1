"""The benchmark's index builds: a second index type over the same corpus and encoder takes the vectors
the first build encoded (``bench.benchmark.build(vectors_from=...)``), and only when they are that
encoder's vectors of that corpus."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.benchmark import StoredVectors, build
from index import SearchIndex
from models.encoder import Encoder


def test_second_index_type_reuses_the_first_builds_vectors(tiny_model_dir: Path, tiny_beir: Path, tmp_path: Path) -> None:
    corpus = tiny_beir / "corpus.jsonl"
    flat = build(tiny_model_dir, corpus, tmp_path / "index-lstm-dssm", "flat")
    hnsw = build(tiny_model_dir, corpus, tmp_path / "index-lstm-dssm-hnsw", "hnsw",
                 vectors_from=tmp_path / "index-lstm-dssm")
    assert flat["vectors_from"] is None
    assert hnsw["vectors_from"] == str(tmp_path / "index-lstm-dssm")
    # The copy reports the encoding build's figures, not its own (near-instant) ones.
    assert hnsw["encode_s"] == flat["encode_s"] and hnsw["encode_docs_per_s"] == flat["encode_docs_per_s"]
    a = np.load(tmp_path / "index-lstm-dssm" / "vectors.npy")
    b = np.load(tmp_path / "index-lstm-dssm-hnsw" / "vectors.npy")
    assert np.array_equal(a, b)
    encoder = Encoder.load(tiny_model_dir)
    with SearchIndex.load(tmp_path / "index-lstm-dssm-hnsw", encoder, verify_hashes=True) as idx:
        assert idx.manifest["index"]["type"] == "hnsw"
    # --reuse keeps it, and still reports where its vectors came from.
    again = build(tiny_model_dir, corpus, tmp_path / "index-lstm-dssm-hnsw", "hnsw", reuse=True)
    assert again["reused"] and again["vectors_from"] == str(tmp_path / "index-lstm-dssm")


def test_no_copy_from_another_corpus(tiny_model_dir: Path, tiny_beir: Path, tmp_path: Path) -> None:
    corpus = tiny_beir / "corpus.jsonl"
    other = tmp_path / "other.jsonl"
    other.write_text("\n".join(corpus.read_text(encoding="utf-8").splitlines()[:40]) + "\n", encoding="utf-8")
    build(tiny_model_dir, other, tmp_path / "index-lstm-dssm", "flat")
    info = build(tiny_model_dir, corpus, tmp_path / "index-lstm-dssm-hnsw", "hnsw",
                 vectors_from=tmp_path / "index-lstm-dssm")
    assert info["vectors_from"] is None and info["documents"] == 180
    stamp = json.loads((tmp_path / "index-lstm-dssm-hnsw.bench.json").read_text(encoding="utf-8"))
    assert "copied" not in stamp


def test_stored_vectors_refuse_rows_that_are_not_the_encoders(tiny_model_dir: Path) -> None:
    encoder = Encoder.load(tiny_model_dir)
    texts = [f"document number {i} about topic {i % 7}" for i in range(30)]
    real = encoder.encode(texts, tower="document")
    assert np.array_equal(StoredVectors(encoder, real).encode(texts, tower="document"), real)
    # Queries, and texts of another count, go to the encoder itself.
    assert np.allclose(StoredVectors(encoder, real).encode(texts[:3], tower="query"),
                       encoder.encode(texts[:3], tower="query"))
    shuffled = real[np.roll(np.arange(len(texts)), 1)]
    with pytest.raises(RuntimeError, match="not this encoder's vectors"):
        StoredVectors(encoder, shuffled).encode(texts, tower="document")
