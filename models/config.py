"""The model's hyperparameters as one typed object, saved as ``config.json`` beside the weights."""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

CONFIG_FORMAT = "lstm-dssm-model"
CONFIG_VERSION = 1

Pooling = Literal["last", "max", "mean"]


# Field → (kind, low, high) for the values a loaded config may hold. The upper bounds are far above any
# useful model (the demo uses 40k / 20k / 256) and only stop absurd allocations.
_INT_RANGES: dict[str, tuple[int, int]] = {
    "vocab_size": (0, 10_000_000), "num_buckets": (1, 10_000_000), "embed_dim": (1, 16_384),
    "hidden_dim": (1, 16_384), "out_dim": (0, 16_384), "query_max_words": (1, 100_000),
    "doc_max_words": (1, 100_000),
}
_CHOICES: dict[str, tuple[str, ...]] = {"lang": ("en", "zh"), "pooling": ("last", "max", "mean")}


def _check_field(name: str, value: Any) -> str | None:
    """Why ``value`` cannot be field ``name`` of a loaded config, or None."""
    if name in _INT_RANGES:
        lo, hi = _INT_RANGES[name]
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            return f"must be an integer from {lo} to {hi}"
    elif name in _CHOICES:
        if value not in _CHOICES[name]:
            return f"must be one of {', '.join(_CHOICES[name])}"
    elif name in ("shared_towers", "learn_gamma"):
        if not isinstance(value, bool):
            return "must be true or false"
    elif name == "gamma":
        if not _is_number(value) or not 0 < value < 1e6:
            return "must be a finite number above 0"
    elif name in ("ngram_dropout", "word_dropout"):
        if not _is_number(value) or not 0 <= value < 1:
            return "must be a number from 0 to below 1"
    elif name == "extra" and not isinstance(value, dict):
        return "must be a JSON object"
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


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
        """Build from a parsed ``config.json``; a wrong type or range raises ValueError naming the field.

        Checked here, before any tensor is allocated: a config is data from disk (a reload can point at
        any folder), and e.g. ``embed_dim: -1`` or ``num_buckets: 1e12`` would otherwise fail deep in
        torch, or try to allocate terabytes."""
        if not isinstance(d, dict):
            raise ValueError(f"config.json must be a JSON object, got {type(d).__name__}")
        if d.get("format") != CONFIG_FORMAT:
            raise ValueError(f"not an LSTM-DSSM model config (format={d.get('format')!r})")
        if d.get("version") != CONFIG_VERSION:
            raise ValueError(f"unsupported model config version {d.get('version')!r} (expected {CONFIG_VERSION})")
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in d.items() if k in known}
        for name, value in values.items():
            why = _check_field(name, value)
            if why:
                raise ValueError(f"config.json: {name} {why}, got {value!r}")
        return cls(**values)

    def save(self, path: str | os.PathLike, training: dict[str, Any] | None = None) -> None:
        d = self.to_dict()
        if training is not None:
            d["training"] = training
        Path(path).write_text(json.dumps(d, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | os.PathLike) -> ModelConfig:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
