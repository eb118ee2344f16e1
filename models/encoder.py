"""Inference: texts → unit vectors with one tower, in length-sorted batches.

``Encoder`` satisfies ``index.protocols.TextEncoder`` (name, dim, fingerprint, lang, encode, info), the
seam through which the index build, the served index and the app use a model.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from .fast import NumpyTower
from .featurizer import Vocab
from .io import LoadedModel, load_model
from .tower import LSTMDSSM, Packed


class Encoder:
    """Encodes texts with the query or the document tower of a trained model.

    Texts are sorted by length before batching, so a batch holds texts of similar length and the
    recurrence wastes few steps on padding; results come back in input order.
    """

    def __init__(self, model: LSTMDSSM, vocab: Vocab, fingerprint: str = "", path: str = "",
                 fusion: dict[str, Any] | None = None) -> None:
        self.model = model.eval()
        self.vocab = vocab
        self.config = model.cfg
        self.fingerprint = fingerprint
        self.path = path
        self.fusion = fusion  # the hybrid fusion fitted with the model (fusion.json), if any
        self._fast: dict[str, NumpyTower] = {}  # per tower, made on first use

    @classmethod
    def from_loaded(cls, lm: LoadedModel) -> Encoder:
        return cls(lm.model, lm.vocab, lm.fingerprint, str(lm.path), lm.fusion)

    @classmethod
    def load(cls, model_dir: str | os.PathLike) -> Encoder:
        return cls.from_loaded(load_model(model_dir))

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
        return {"kind": "lstm-dssm", "lang": cfg.lang, "shared_towers": cfg.shared_towers, "pooling": cfg.pooling,
                "query_max_words": cfg.query_max_words, "doc_max_words": cfg.doc_max_words}

    def max_words(self, tower: str) -> int:
        return self.config.query_max_words if tower == "query" else self.config.doc_max_words

    @torch.inference_mode()
    def encode(
        self,
        texts: Sequence[str],
        tower: str = "query",
        batch_size: int = 256,
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """(N, D) float32 unit vectors (the towers end in an L2 normalisation). ``progress(n)`` is called
        after each batch of n texts."""
        net = self.model.tower(tower)
        feats = self.vocab.featurize(texts, self.max_words(tower))
        if len(feats) == 1 and not net.training:
            # A lone text (a search request): NumPy, ~2x faster than torch's per-op dispatch here.
            fast = self._fast.get(tower)
            if fast is None:
                fast = self._fast[tower] = NumpyTower(net)
            out1 = fast.encode(feats[0])[None, :]
            if progress is not None:
                progress(1)
            return out1
        order = sorted(range(len(feats)), key=lambda i: len(feats[i]), reverse=True)
        out = np.zeros((len(feats), self.dim), dtype=np.float32)
        for s in range(0, len(order), batch_size):
            idx = order[s : s + batch_size]
            out[idx] = net(Packed.from_lists([feats[i] for i in idx])).numpy()
            if progress is not None:
                progress(len(idx))
        return out
