"""The benchmark's index builds: a second index type over the same corpus and encoder takes the vectors
the flat build encoded (``bench.benchmark.build(vectors_from=...)``), and only when they are that
encoder's vectors of that corpus."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bench.benchmark import StoredVectors, build
from index import SearchIndex
from models.data import load_corpus
from models.encoder import Encoder


def _nudge(index_dir: Path, seed: int = 0) -> np.ndarray:
    """Move the stored rows by ~1e-3 (still unit rows, still within the sample check's 1e-4 in cosine):
    a build that copies them holds exactly these rows, one that encodes afresh does not."""
    v = np.load(index_dir / "vectors.npy", allow_pickle=False)
    v = v + 1e-3 * np.random.default_rng(seed).standard_normal(v.shape).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    np.save(index_dir / "vectors.npy", v.astype(np.float32), allow_pickle=False)
    return v.astype(np.float32)


def _reordered(corpus: Path, out: Path) -> Path:
    lines = corpus.read_text(encoding="utf-8").splitlines()
    out.write_text("\n".join(lines[1:] + lines[:1]) + "\n", encoding="utf-8")
    return out


def test_second_index_type_takes_the_flat_builds_vectors(tiny_model_dir: Path, tiny_beir: Path, tmp_path: Path) -> None:
    corpus = tiny_beir / "corpus.jsonl"
    flat = build(tiny_model_dir, corpus, tmp_path / "index-lstm-dssm", "flat")
    nudged = _nudge(tmp_path / "index-lstm-dssm")
    hnsw = build(tiny_model_dir, corpus, tmp_path / "index-lstm-dssm-hnsw", "hnsw",
                 vectors_from=tmp_path / "index-lstm-dssm")
    assert flat["vectors_from"] is None
    assert hnsw["vectors_from"] == str(tmp_path / "index-lstm-dssm")
    assert np.array_equal(np.load(tmp_path / "index-lstm-dssm-hnsw" / "vectors.npy", allow_pickle=False), nudged)
    # The copy reports the encoding build's figures, not its own (near-instant) ones.
    assert hnsw["encode_s"] == flat["encode_s"] and hnsw["encode_docs_per_s"] == flat["encode_docs_per_s"]
    with SearchIndex.load(tmp_path / "index-lstm-dssm-hnsw", Encoder.load(tiny_model_dir), verify_hashes=True) as idx:
        assert idx.manifest["index"]["type"] == "hnsw"
    # --reuse keeps it, and still reports where its vectors came from.
    again = build(tiny_model_dir, corpus, tmp_path / "index-lstm-dssm-hnsw", "hnsw", reuse=True)
    assert again["reused"] and again["vectors_from"] == str(tmp_path / "index-lstm-dssm")


def test_no_copy_of_another_corpus_or_order(tiny_model_dir: Path, tiny_beir: Path, tmp_path: Path) -> None:
    """The same 180 documents in another order: the corpus's hash differs, so nothing is copied; and
    with a source stamp forged to claim this corpus, the sample check sees the rows are not its own."""
    corpus = tiny_beir / "corpus.jsonl"
    other = _reordered(corpus, tmp_path / "reordered.jsonl")
    build(tiny_model_dir, other, tmp_path / "index-lstm-dssm", "flat")
    info = build(tiny_model_dir, corpus, tmp_path / "index-lstm-dssm-hnsw", "hnsw",
                 vectors_from=tmp_path / "index-lstm-dssm")
    assert info["vectors_from"] is None and info["documents"] == 180
    assert "copied" not in json.loads((tmp_path / "index-lstm-dssm-hnsw.bench.json").read_text(encoding="utf-8"))

    src_stamp = tmp_path / "index-lstm-dssm.bench.json"
    forged = json.loads(src_stamp.read_text(encoding="utf-8"))
    forged["corpus_sha256"] = json.loads((tmp_path / "index-lstm-dssm-hnsw.bench.json").read_text())["corpus_sha256"]
    src_stamp.write_text(json.dumps(forged), encoding="utf-8")
    info = build(tiny_model_dir, corpus, tmp_path / "index-lstm-dssm-ivf", "ivf",
                 vectors_from=tmp_path / "index-lstm-dssm")
    assert info["vectors_from"] is None
    fresh = Encoder.load(tiny_model_dir).encode(load_corpus(corpus).full_texts(), tower="document")
    got = np.load(tmp_path / "index-lstm-dssm-ivf" / "vectors.npy", allow_pickle=False)
    assert np.allclose(got, fresh, atol=1e-5)


def test_stored_vectors_are_used_only_when_they_are_the_encoders(tiny_model_dir: Path) -> None:
    encoder = Encoder.load(tiny_model_dir)
    texts = [f"document number {i} about topic {i % 7}" for i in range(30)]
    real = encoder.encode(texts, tower="document")
    good = StoredVectors(encoder, real)
    assert good.encode(texts, tower="document") is real and good.used
    # Queries, and texts of another count, go to the encoder itself.
    assert np.allclose(StoredVectors(encoder, real).encode(texts[:3], tower="query"),
                       encoder.encode(texts[:3], tower="query"))
    shuffled = StoredVectors(encoder, real[np.roll(np.arange(len(texts)), 1)])
    out = shuffled.encode(texts, tower="document")
    assert not shuffled.used and np.allclose(out, real, atol=1e-5)
