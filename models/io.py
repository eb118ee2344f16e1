"""A model directory: ``config.json``, ``vocab.json``, ``model.safetensors`` (data, never pickle), and
``training.json`` (the training run's record; folders written before it existed hold the record as a
``training`` entry of ``config.json``, which ``load_training_record`` still reads).

Writes go to a temporary directory beside the target, renamed into place at the end, so a crash never
leaves a half-written model where a previous one stood.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors.torch import load_model as st_load_model
from safetensors.torch import save_model as st_save_model

from .config import ModelConfig
from .featurizer import Vocab
from .tower import LSTMDSSM

CONFIG_FILE = "config.json"
VOCAB_FILE = "vocab.json"
WEIGHTS_FILE = "model.safetensors"
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


def fingerprint(model_dir: str | os.PathLike) -> str:
    """sha256 over the config, vocabulary and weights files: ties an index to the exact model."""
    h = hashlib.sha256()
    for name in MODEL_FILES:
        h.update(name.encode())
        with open(Path(model_dir) / name, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


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


def atomic_dir(target: Path) -> Path:
    """A fresh temporary directory beside ``target``, on the same file system (for rename)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private (0700); a model folder is shared data (other users, containers)
    return tmp


def replace_dir(tmp: Path, target: Path) -> None:
    """Move ``tmp`` to ``target``; an existing ``target`` is moved aside first and removed after."""
    old = None
    if target.exists():
        old = target.parent / f".{target.name}.old-{os.getpid()}"
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def save_model(
    model: LSTMDSSM, vocab: Vocab, out_dir: str | os.PathLike, training: dict[str, Any] | None = None,
    extra_files: dict[str, bytes] | None = None,
) -> None:
    """Atomically write a complete model directory at ``out_dir``."""
    target = Path(out_dir)
    tmp = atomic_dir(target)
    try:
        write_model_files(model, vocab, tmp, training)
        for name, data in (extra_files or {}).items():
            (tmp / name).write_bytes(data)
        replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


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
        vocab = Vocab.load(d / VOCAB_FILE)
    except (ValueError, KeyError, TypeError) as e:
        raise ModelDirError(f"{d}: {e}") from e
    if len(vocab.ngrams) != cfg.vocab_size or vocab.num_buckets != cfg.num_buckets:
        raise ModelDirError(f"{d}: vocabulary ({len(vocab)} ids) does not match config.json")
    model = LSTMDSSM(cfg)
    try:
        missing, unexpected = st_load_model(model, str(d / WEIGHTS_FILE), strict=False)
    except Exception as e:  # safetensors raises several types for a damaged file
        raise ModelDirError(f"{d / WEIGHTS_FILE}: cannot read weights ({e})") from e
    if unexpected or [k for k in missing if not k.startswith("doc.")]:
        raise ModelDirError(f"{d / WEIGHTS_FILE}: weights do not match config (missing {missing}, unexpected {unexpected})")
    model.eval()
    return LoadedModel(model, vocab, cfg, fingerprint(d), d)
