"""The model's hyperparameters as one typed object, saved as ``config.json`` beside the weights."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

CONFIG_FORMAT = "lstm-dssm-model"
CONFIG_VERSION = 1

Pooling = Literal["last", "max", "mean"]


@dataclass
class ModelConfig:
    """Everything needed to rebuild the network and its featurizer.

    ``lang`` selects nothing in the network itself (every word is hashed by its own script) but is read
    by every later command (BM25 tokenisation, defaults) from here, so no command needs a flag for it.
    """

    lang: Literal["en", "zh"] = "en"
    vocab_size: int = 40_000  # learned n-grams (the vocabulary file holds them)
    num_buckets: int = 20_000  # hashed buckets for every other n-gram
    embed_dim: int = 256  # word vector = sum of its n-gram embeddings (the paper's W·l_t)
    hidden_dim: int = 256
    out_dim: int = 128  # projection after the LSTM; 0 = use the hidden state as it is
    shared_towers: bool = True
    pooling: Pooling = "last"  # the paper: hidden state at the last word
    query_max_words: int = 32
    doc_max_words: int = 64
    gamma: float = 20.0  # DSSM's smoothing factor on the cosine
    learn_gamma: bool = False
    ngram_dropout: float = 0.1  # training only: drop n-grams inside a word
    word_dropout: float = 0.1  # training only: drop whole words
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes (e.g. training data name)

    @property
    def dim(self) -> int:
        return self.out_dim or self.hidden_dim

    def to_dict(self) -> dict[str, Any]:
        return {"format": CONFIG_FORMAT, "version": CONFIG_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        if d.get("format") != CONFIG_FORMAT:
            raise ValueError(f"not an LSTM-DSSM model config (format={d.get('format')!r})")
        if d.get("version") != CONFIG_VERSION:
            raise ValueError(f"unsupported model config version {d.get('version')!r} (expected {CONFIG_VERSION})")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def save(self, path: str | os.PathLike, training: dict[str, Any] | None = None) -> None:
        d = self.to_dict()
        if training is not None:
            d["training"] = training
        Path(path).write_text(json.dumps(d, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | os.PathLike) -> ModelConfig:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
