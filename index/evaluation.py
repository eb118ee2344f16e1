"""Evaluation of retrieval, in one place: the metrics, the runs of each system, and their output files.

Metrics: NDCG@k (gain 2^grade − 1, as ranx's ``ndcg_burges``), MRR@k, Recall@k over a *run* (query id →
ranked doc ids). Runs: exact dense search of a corpus (training's dev evaluation), and every system of
a loaded :class:`index.SearchIndex` (``scripts/evaluate.py``; a built index or an in-memory flat one, so
"hybrid" is the same fusion the service applies). Output: the JSON figures and TREC run files.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from models.data import Dataset, Qrels

from .exact import exact_search
from .familiar import public_fusion
from .protocols import TextEncoder

if TYPE_CHECKING:
    from .live import LiveIndex
    from .search import Hit, SearchIndex

Run = Mapping[str, Sequence[str]]  # query id → ranked doc ids, best first
Scores = dict[str, list[float]]  # query id → the scores of its run, same order
SYSTEMS = ("lstm-dssm", "bm25", "hybrid")
DEPTH = 100  # every run is cut to its top 100 (Recall@100)


# ---- metrics ------------------------------------------------------------------------------------------

def ndcg_at_k(ranked: Sequence[str], rel: dict[str, int], k: int) -> float:
    dcg = sum((2 ** rel.get(d, 0) - 1) / math.log2(r + 2) for r, d in enumerate(ranked[:k]))
    ideal = sorted(rel.values(), reverse=True)[:k]
    idcg = sum((2**g - 1) / math.log2(r + 2) for r, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def mrr_at_k(ranked: Sequence[str], rel: dict[str, int], k: int) -> float:
    for r, d in enumerate(ranked[:k]):
        if rel.get(d, 0) > 0:
            return 1.0 / (r + 1)
    return 0.0


def recall_at_k(ranked: Sequence[str], rel: dict[str, int], k: int) -> float:
    relevant = {d for d, g in rel.items() if g > 0}
    return len(relevant.intersection(ranked[:k])) / len(relevant) if relevant else 0.0


def per_query_ndcg(run: Run, qrels: Qrels, k: int = 10) -> dict[str, float]:
    return {q: ndcg_at_k(run.get(q, []), rel, k) for q, rel in qrels.items()}


def evaluate_run(run: Run, qrels: Qrels) -> dict[str, float]:
    """Mean metrics over the judged queries of ``qrels``; a query missing from ``run`` scores 0."""
    totals = {"ndcg@10": 0.0, "mrr@10": 0.0, "recall@10": 0.0, "recall@100": 0.0}
    for qid, rel in qrels.items():
        ranked = run.get(qid, [])
        totals["ndcg@10"] += ndcg_at_k(ranked, rel, 10)
        totals["mrr@10"] += mrr_at_k(ranked, rel, 10)
        totals["recall@10"] += recall_at_k(ranked, rel, 10)
        totals["recall@100"] += recall_at_k(ranked, rel, 100)
    n = max(len(qrels), 1)
    return {k: v / n for k, v in totals.items()}


# ---- runs -----------------------------------------------------------------------------------------------

@dataclass
class DenseEval:
    metrics: dict[str, float]
    run: dict[str, list[str]]
    scores: Scores


def evaluate_dense(
    encoder: TextEncoder, data: Dataset, qrels: Qrels, doc_vectors: np.ndarray | None = None, k: int = DEPTH
) -> DenseEval:
    """Encode the corpus (unless given) and the judged queries; search exactly; score. Training's dev
    evaluation (no index is built for it). ``ms_per_query`` counts query encoding and search."""
    if doc_vectors is None:
        doc_vectors = encoder.encode(data.corpus.full_texts(), tower="document")
    qids = list(qrels)
    t0 = time.perf_counter()
    qv = encoder.encode([data.queries[q] for q in qids], tower="query")
    idx, sc = exact_search(qv, doc_vectors, k)
    ms = 1000 * (time.perf_counter() - t0) / max(len(qids), 1)
    ids = data.corpus.ids
    run = {q: [ids[i] for i in row] for q, row in zip(qids, idx, strict=True)}
    scores = {q: row.tolist() for q, row in zip(qids, sc, strict=True)}
    metrics = evaluate_run(run, qrels)
    metrics["ms_per_query"] = ms
    return DenseEval(metrics, run, scores)


def _as_run(qids: list[str], hits: list[list[Hit]]) -> tuple[dict[str, list[str]], Scores]:
    return ({q: [h.id for h in hs] for q, hs in zip(qids, hits, strict=True)},
            {q: [h.score for h in hs] for q, hs in zip(qids, hits, strict=True)})


def evaluate_index(
    index: SearchIndex | LiveIndex, encoder: TextEncoder, queries: dict[str, str], qrels: Qrels, systems: Sequence[str],
    fusion: dict[str, Any] | None = None,
) -> tuple[dict[str, dict[str, Any]], dict[str, tuple[dict[str, list[str]], Scores]]]:
    """Every system in ``systems`` over a loaded index: (figures per system, (run, scores) per system).

    ``hybrid`` applies ``fusion`` when given, else the index's own (chosen on dev at build time): the
    same call the service makes. ms/query counts query encoding (dense, hybrid) and the search.
    """
    qids = list(qrels)
    texts = [queries[q] for q in qids]
    results: dict[str, dict[str, Any]] = {}
    runs: dict[str, tuple[dict[str, list[str]], Scores]] = {}
    for s in systems:
        t0 = time.perf_counter()
        if s == "bm25":
            hits = index.search_bm25(texts, DEPTH)
        else:
            qv = encoder.encode(texts, tower="query")
            if s == "lstm-dssm":
                hits = index.search(qv, DEPTH)
            else:
                settings = index.fusion if fusion is None else fusion
                hits = index.search_hybrid(texts, qv, DEPTH, fusion=settings)
        ms = 1000 * (time.perf_counter() - t0) / max(len(qids), 1)
        runs[s] = _as_run(qids, hits)
        results[s] = {**evaluate_run(runs[s][0], qrels), "ms_per_query": ms}
        if s == "hybrid":
            results[s]["fusion"] = {k: v for k, v in public_fusion(settings).items() if k != "grid"}
            if settings["method"] == "rrf":
                results[s]["rrf_k"] = settings["k"]
    return results, runs


# ---- output ---------------------------------------------------------------------------------------------

def write_trec(path: str, run: dict[str, list[str]], scores: Scores, tag: str) -> None:
    """A TREC run file: ``qid Q0 docid rank score tag`` a line."""
    with open(path, "w", encoding="utf-8") as f:
        for q, docs in run.items():
            for r, (d, s) in enumerate(zip(docs, scores[q], strict=True), 1):
                f.write(f"{q} Q0 {d} {r} {s:.6f} {tag}\n")


def format_table(title: str, results: dict[str, dict[str, Any]], systems: Sequence[str]) -> str:
    lines = [title, f"{'system':<10} {'ndcg@10':>8} {'mrr@10':>8} {'r@10':>8} {'r@100':>8} {'ms/q':>8}"]
    for s in systems:
        m = results[s]
        lines.append(f"{s:<10} {m['ndcg@10']:8.4f} {m['mrr@10']:8.4f} {m['recall@10']:8.4f} "
                     f"{m['recall@100']:8.4f} {m['ms_per_query']:8.2f}")
    return "\n".join(lines)
