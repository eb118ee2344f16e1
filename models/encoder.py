"""Inference: texts → unit vectors with one tower, in length-sorted batches.

A model loaded from its folder runs small batches — a search request, a micro-batch, an /embed call —
through ONNX Runtime (``models/onnx_tower.py``; the same vectors to 1e-5) and large ones through torch.
Measured per text on 2 cores (medquad queries / 100k-corpus documents, 1 thread): 1 query 0.30 vs
0.98 ms, 16 queries 0.23 vs 0.29 ms, 64 equal, 256 documents 0.84 vs 0.61 ms (2 threads: 0.73 vs 0.38 —
torch's batched matrix products use the second core, ORT's LSTM kernel does not). An ``Encoder`` made
around a model in memory (training's dev evaluation, whose weights change every epoch) runs torch only.
``Encoder`` satisfies ``index.protocols.TextEncoder`` (name, dim, fingerprint, lang, encode, info), the
seam through which the index build, the served index and the app use a model.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from .featurizer import Vocab
from .io import LoadedModel, load_model
from .onnx_tower import OnnxTower, load_onnx_towers
from .tower import LSTMDSSM, Packed

ONNX_MAX_BATCH = 32  # texts per call up to which ONNX Runtime is faster than torch (measured above)


class Encoder:
    """Encodes texts with the query or the document tower of a trained model.

    Texts are sorted by length before batching, so a batch holds texts of similar length and the
    recurrence wastes few steps on padding; results come back in input order.
    """

    def __init__(self, model: LSTMDSSM, vocab: Vocab, fingerprint: str = "", path: str = "",
                 fusion: dict[str, Any] | None = None, onnx: dict[str, OnnxTower] | None = None) -> None:
        self.model = model.eval()
        self.vocab = vocab
        self.config = model.cfg
        self.fingerprint = fingerprint
        self.path = path
        self.fusion = fusion  # the hybrid fusion fitted with the model (fusion.json), if any
        self.onnx = onnx or {}  # tower name → its ONNX Runtime tower; empty: the torch towers run

    @classmethod
    def from_loaded(cls, lm: LoadedModel, runtime: str = "onnx") -> Encoder:
        """``runtime``: "onnx" (ONNX Runtime, its files made or refreshed in the model folder as needed)
        or "torch". ONNX Runtime gets torch's thread count (the service sets it before loading)."""
        if runtime not in ("onnx", "torch"):
            raise ValueError(f"runtime must be onnx or torch, got {runtime!r}")
        onnx = load_onnx_towers(lm.model, lm.path, lm.fingerprint, torch.get_num_threads()) if runtime == "onnx" else None
        return cls(lm.model, lm.vocab, lm.fingerprint, str(lm.path), lm.fusion, onnx)

    @classmethod
    def load(cls, model_dir: str | os.PathLike, runtime: str = "onnx") -> Encoder:
        return cls.from_loaded(load_model(model_dir), runtime)

    @property
    def runtime(self) -> str:
        return "onnx" if self.onnx else "torch"

    @property
    def name(self) -> str:
        return self.path

    @property
    def dim(self) -> int:
        return self.config.dim

    @property
    def lang(self) -> str:
        return self.config.lang

    def info(self) -> dict[str, Any]:
        cfg = self.config
        return {"kind": "lstm-dssm", "runtime": self.runtime, "lang": cfg.lang, "shared_towers": cfg.shared_towers, "pooling": cfg.pooling,
                "query_max_words": cfg.query_max_words, "doc_max_words": cfg.doc_max_words,
                "stopwords": cfg.stopwords}

    def max_words(self, tower: str) -> int:
        return self.config.query_max_words if tower == "query" else self.config.doc_max_words

    def encode(
        self,
        texts: Sequence[str],
        tower: str = "query",
        batch_size: int = 256,
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """(N, D) float32 unit vectors (the towers end in an L2 normalisation). ``progress(n)`` is called
        after each batch of n texts."""
        feats = self.vocab.featurize(texts, self.max_words(tower))
        run = self.onnx.get("doc" if tower in ("doc", "document") else "query")
        if run is not None and len(feats) <= min(batch_size, ONNX_MAX_BATCH):  # a request or micro-batch
            out1 = run.encode(feats)
            if progress is not None:
                progress(len(feats))
            return out1
        return self.encode_features(feats, tower, batch_size, progress)

    @torch.inference_mode()
    def encode_features(
        self,
        feats: Sequence[list[list[int]]],
        tower: str = "query",
        batch_size: int = 256,
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """:meth:`encode` of texts already featurized for this tower (``Vocab.featurize`` with its
        max words), through torch: training's dev evaluation featurizes its corpus once, not each epoch."""
        net = self.model.tower(tower)
        order = sorted(range(len(feats)), key=lambda i: len(feats[i]), reverse=True)
        out = np.zeros((len(feats), self.dim), dtype=np.float32)
        for s in range(0, len(order), batch_size):
            idx = order[s : s + batch_size]
            out[idx] = net(Packed.from_lists([feats[i] for i in idx])).numpy()
            if progress is not None:
                progress(len(idx))
        return out
