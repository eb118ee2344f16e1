"""Exact dense retrieval over a whole corpus, and its metrics."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from .data import Dataset, Qrels
from .encoder import Encoder
from .metrics import evaluate_run


def exact_topk(queries: np.ndarray, docs: np.ndarray, k: int, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """(Q, k) doc indices and cosines by brute force; rows are unit vectors so dot = cosine."""
    k = min(k, docs.shape[0])
    d = torch.from_numpy(docs)
    idx_out, sc_out = [], []
    for s in range(0, queries.shape[0], chunk):
        scores = torch.from_numpy(queries[s : s + chunk]) @ d.t()  # (chunk, N)
        sc, idx = scores.topk(k, dim=1)
        idx_out.append(idx.numpy())
        sc_out.append(sc.numpy())
    if not idx_out:
        return np.zeros((0, k), dtype=np.int64), np.zeros((0, k), dtype=np.float32)
    return np.concatenate(idx_out), np.concatenate(sc_out)


@dataclass
class DenseEval:
    metrics: dict[str, float]
    run: dict[str, list[str]]
    scores: dict[str, list[float]]


def evaluate_dense(
    encoder: Encoder,
    data: Dataset,
    qrels: Qrels,
    doc_vectors: np.ndarray | None = None,
    k: int = 100,
) -> DenseEval:
    """Encode the corpus (unless given) and the judged queries; search exactly; score.

    ``ms_per_query`` counts query encoding and search, not the one-off corpus encoding.
    """
    if doc_vectors is None:
        doc_vectors = encoder.encode(data.corpus.full_texts(), tower="document")
    qids = list(qrels)
    t0 = time.perf_counter()
    qv = encoder.encode([data.queries[q] for q in qids], tower="query")
    idx, sc = exact_topk(qv, doc_vectors, k)
    ms = 1000 * (time.perf_counter() - t0) / max(len(qids), 1)
    ids = data.corpus.ids
    run = {q: [ids[i] for i in row] for q, row in zip(qids, idx, strict=True)}
    scores = {q: row.tolist() for q, row in zip(qids, sc, strict=True)}
    metrics = evaluate_run(run, qrels)
    metrics["ms_per_query"] = ms
    return DenseEval(metrics, run, scores)
