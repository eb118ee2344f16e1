"""The index's two seams, as small structural interfaces.

``TextEncoder``: what turns texts into vectors. The LSTM-DSSM ``models.Encoder`` is one; the benchmark's
MiniLM adapter (``bench/encoders.py``) is another. ``build_index``, ``SearchIndex.load`` and
``app.create_app`` (through its ``loader`` argument) take one; nothing else about the model is assumed.

``VectorStore``: the dense side of an index (today ``index.dense.DenseIndex``, FAISS over the exact
vectors). A live index and a distributed store (Milvus) are meant to sit behind the same methods.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

Tower = Literal["query", "document"]


@runtime_checkable
class TextEncoder(Protocol):
    """Texts → unit float32 vectors (n, dim). Normalisation happens inside ``encode`` only."""

    @property
    def name(self) -> str:
        """Where the encoder came from (a model folder's path), recorded in the index manifest."""
        ...

    @property
    def dim(self) -> int: ...

    @property
    def fingerprint(self) -> str:
        """Identifies the exact weights: an index is tied to it and refused by any other encoder."""
        ...

    @property
    def lang(self) -> str:
        """``en`` or ``zh``: how the lexical side tokenises the texts this encoder is used with."""
        ...

    def encode(
        self, texts: Sequence[str], tower: str = "query", batch_size: int = 256,
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """(len(texts), dim) float32 unit rows; ``progress(n)`` after each batch of n texts."""
        ...

    def info(self) -> dict[str, Any]:
        """Descriptive fields for ``/info`` (pooling, lengths …); free-form."""
        ...

    @property
    def fusion(self) -> dict[str, Any] | None:
        """The hybrid fusion fitted with this encoder on its training data's dev split (index/fusion.py
        settings), used by an index build without dev data of its own; None when there is none."""
        ...


EncoderLoader = Callable[[Path], TextEncoder]  # a model folder → its encoder (the app's reload uses it)


class Selection(Protocol):
    """The rows a metadata filter keeps (``index.dense.Allowed``)."""

    rows: np.ndarray  # (M,) int64, sorted


class VectorStore(Protocol):
    """The dense side of an index: rows 0..count-1 are the documents' rows in the document store."""

    @property
    def count(self) -> int: ...

    @property
    def dim(self) -> int: ...

    def add(self, vectors: np.ndarray) -> np.ndarray:
        """Append (n, dim) unit vectors; returns their rows."""
        ...

    def search(self, vectors: np.ndarray, k: int, allowed: Any = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per query: (rows, exact cosines) best first, at most k, inside ``allowed`` when given."""
        ...

    def cosines(self, q: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Exact cosines of one unit query (dim,) with the given rows."""
        ...

    def save(self, directory: str | os.PathLike) -> None: ...
