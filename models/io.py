"""A model directory: ``config.json``, ``vocab.json``, ``model.safetensors`` (data, never pickle), and
``training.json`` (the training run's record; folders written before it existed hold the record as a
``training`` entry of ``config.json``, which ``load_training_record`` still reads), and the towers as
ONNX files derived from the weights (``models/onnx_tower.py``; not fingerprinted, rebuilt when stale).

Writes go to a temporary directory beside the target, renamed into place at the end, so a crash never
leaves a half-written model where a previous one stood.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors.torch import load_model as st_load_model
from safetensors.torch import save_model as st_save_model

from common.fs import atomic_dir, atomic_write, sha256_files

from .config import ModelConfig
from .featurizer import Vocab
from .onnx_tower import write_onnx_files
from .tower import LSTMDSSM

CONFIG_FILE = "config.json"
VOCAB_FILE = "vocab.json"
WEIGHTS_FILE = "model.safetensors"
# The hybrid fusion fitted on the training data's dev split (index/fusion.py settings; optional). Not part
# of the fingerprint: refitting how to fuse does not change a single vector of an index.
FUSION_FILE = "fusion.json"
TRAINING_FILE = "training.json"
MODEL_FILES = (CONFIG_FILE, VOCAB_FILE, WEIGHTS_FILE)


class ModelDirError(ValueError):
    """A model directory that is missing, incomplete or not ours."""


@dataclass
class LoadedModel:
    model: LSTMDSSM
    vocab: Vocab
    config: ModelConfig
    fingerprint: str
    path: Path
    fusion: dict[str, Any] | None = None


def fingerprint(model_dir: str | os.PathLike) -> str:
    """sha256 over the config, vocabulary and weights files: ties an index to the exact model."""
    return sha256_files([(name, Path(model_dir) / name) for name in MODEL_FILES])


def is_model_dir(path: str | os.PathLike) -> bool:
    p = Path(path) / CONFIG_FILE
    try:
        return json.loads(p.read_text(encoding="utf-8")).get("format") == "lstm-dssm-model"
    except (OSError, ValueError, AttributeError):
        return False


def write_model_files(
    model: LSTMDSSM, vocab: Vocab, directory: Path, training: dict[str, Any] | None = None
) -> None:
    """Write the three model files (and ``training.json``) into an existing ``directory`` (no atomicity here)."""
    model.cfg.save(directory / CONFIG_FILE)
    if training is not None:
        (directory / TRAINING_FILE).write_text(json.dumps(training, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    vocab.save(directory / VOCAB_FILE)
    # save_model de-duplicates tensors shared between the towers (shared_towers=True).
    st_save_model(model, str(directory / WEIGHTS_FILE), metadata={"format": "lstm-dssm-weights"})


def save_model(
    model: LSTMDSSM, vocab: Vocab, out_dir: str | os.PathLike, training: dict[str, Any] | None = None,
    extra_files: dict[str, bytes] | None = None,
) -> None:
    """Atomically write a complete model directory at ``out_dir``, with its towers' ONNX files."""
    with atomic_dir(out_dir) as tmp:
        write_model_files(model, vocab, tmp, training)
        write_onnx_files(model, tmp, fingerprint(tmp))
        for name, data in (extra_files or {}).items():
            (tmp / name).write_bytes(data)


def write_fusion(model_dir: str | os.PathLike, fusion: dict[str, Any]) -> None:
    """Store the hybrid fusion fitted with this model (``fusion.json``, atomically; not fingerprinted)."""
    atomic_write(Path(model_dir) / FUSION_FILE, (json.dumps(fusion, indent=2) + "\n").encode())


def _vocab_dict(path: Path) -> dict[str, Any]:
    """``vocab.json`` parsed and checked for the shape ``Vocab.from_dict`` reads (ValueError naming the field)."""
    d = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(d, dict):
        raise ValueError(f"{VOCAB_FILE} must be a JSON object, got {type(d).__name__}")
    nb, ngrams = d.get("num_buckets"), d.get("ngrams")
    if not isinstance(nb, int) or isinstance(nb, bool) or nb < 1:
        raise ValueError(f"{VOCAB_FILE}: num_buckets must be a positive integer, got {nb!r}")
    if not isinstance(ngrams, list) or not all(isinstance(g, str) for g in ngrams):
        raise ValueError(f"{VOCAB_FILE}: ngrams must be a list of strings")
    if "lang" in d and d["lang"] not in ("en", "zh"):
        raise ValueError(f"{VOCAB_FILE}: lang must be en or zh, got {d['lang']!r}")
    return d


def load_training_record(model_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The training record of a model folder: ``training.json``, or the ``training`` entry of
    ``config.json`` in folders written before training.json existed; None when there is neither."""
    d = Path(model_dir)
    if (d / TRAINING_FILE).is_file():
        return json.loads((d / TRAINING_FILE).read_text(encoding="utf-8"))
    try:
        rec = json.loads((d / CONFIG_FILE).read_text(encoding="utf-8")).get("training")
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) else None


def load_model(model_dir: str | os.PathLike) -> LoadedModel:
    """Load a model directory for inference (eval mode); clear errors for missing or foreign files."""
    d = Path(model_dir)
    if not d.is_dir():
        raise ModelDirError(f"model directory not found: {d}")
    for name in MODEL_FILES:
        if not (d / name).is_file():
            raise ModelDirError(f"model directory {d} is missing {name}")
    try:
        cfg = ModelConfig.load(d / CONFIG_FILE)
        vocab = Vocab.from_dict(_vocab_dict(d / VOCAB_FILE))
    except (ValueError, KeyError, TypeError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ModelDirError(f"{d}: {e}") from e
    if len(vocab.ngrams) != cfg.vocab_size or vocab.num_buckets != cfg.num_buckets:
        raise ModelDirError(f"{d}: vocabulary ({len(vocab)} ids) does not match config.json")
    # The vocabulary's list is what the model skips; config.json names it. Both are written together,
    # so a disagreement is a hand-edited or mixed-up folder, which would read texts unlike its training.
    if bool(vocab.stopwords) != (cfg.stopwords != "none"):
        raise ModelDirError(f"{d}: config.json says stopwords {cfg.stopwords!r} but {VOCAB_FILE} holds "
                            f"{len(vocab.stopwords)} stop words")
    # The weights must at least hold the float32 embedding table and one LSTM the config asks for:
    # checked before the network is allocated, so a config cannot make this process allocate more
    # than the weights file could fill.
    need = 4 * (len(vocab) * cfg.embed_dim + 4 * cfg.hidden_dim * (cfg.embed_dim + cfg.hidden_dim))
    have = (d / WEIGHTS_FILE).stat().st_size
    if need > have:
        raise ModelDirError(
            f"{d}: config.json asks for {need:,} bytes of weights (vocab_size + num_buckets, embed_dim, "
            f"hidden_dim) but {WEIGHTS_FILE} holds {have:,}: the config does not belong to these weights")
    try:
        model = LSTMDSSM(cfg)
    except (RuntimeError, ValueError, TypeError) as e:  # a combination torch refuses
        raise ModelDirError(f"{d / CONFIG_FILE}: cannot build the network ({e})") from e
    try:
        missing, unexpected = st_load_model(model, str(d / WEIGHTS_FILE), strict=False)
    except Exception as e:  # safetensors raises several types for a damaged file
        raise ModelDirError(f"{d / WEIGHTS_FILE}: cannot read weights ({e})") from e
    if unexpected or [k for k in missing if not k.startswith("doc.")]:
        raise ModelDirError(f"{d / WEIGHTS_FILE}: weights do not match config (missing {missing}, unexpected {unexpected})")
    model.eval()
    fusion = None
    if (d / FUSION_FILE).is_file():
        try:
            fusion = json.loads((d / FUSION_FILE).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ModelDirError(f"{d / FUSION_FILE}: not valid JSON ({e})") from e
        if not isinstance(fusion, dict):
            raise ModelDirError(f"{d / FUSION_FILE}: must be a JSON object")
    return LoadedModel(model, vocab, cfg, fingerprint(d), d, fusion)
