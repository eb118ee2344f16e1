#!/usr/bin/env python
"""Retrieval quality of LSTM-DSSM (and BM25, hybrid) on a BEIR split.

    python scripts/evaluate.py --model MODEL_DIR --data DATASET [--split test]
        [--systems lstm-dssm,bm25,hybrid] [--index INDEX_DIR] [--json OUT] [--trec-run PREFIX]

``lstm-dssm``: exact cosine search with the model's own towers over the whole corpus (no lexical
signal). ``bm25``: bm25s BM25() defaults, tokenised for the model's language. ``hybrid``: reciprocal
rank fusion of the two top-100 lists (k from --rrf-k, default 10).

With ``--index`` the systems search a built index (scripts/build_index.py) instead of encoding the
corpus: its FAISS index, its BM25 index, and for ``hybrid`` the fusion chosen on dev at build time
(--rrf-k overrides it). The index must have been built with this model and hold every judged document.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from index import Hit, IndexLoadError, SearchIndex  # noqa: E402
from models.bm25 import BM25  # noqa: E402
from models.data import Dataset, Qrels, load_dataset  # noqa: E402
from models.encoder import Encoder  # noqa: E402
from models.evaluation import evaluate_dense  # noqa: E402
from models.fusion import rrf  # noqa: E402
from models.metrics import evaluate_run  # noqa: E402
from scripts._cli import UsageError, run_cli  # noqa: E402

SYSTEMS = ("lstm-dssm", "bm25", "hybrid")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--systems", default="lstm-dssm")
    p.add_argument("--rrf-k", type=float, default=None, help="RRF k for hybrid (default 10, or the index's fusion)")
    p.add_argument("--index", help="search this built index instead of encoding the corpus")
    p.add_argument("--json", help="write the figures here")
    p.add_argument("--trec-run", help="write TREC run files PREFIX.<system>.trec")
    return p.parse_args(argv)


def write_trec(path: str, run: dict[str, list[str]], scores: dict[str, list[float]], tag: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for q, docs in run.items():
            for r, (d, s) in enumerate(zip(docs, scores[q], strict=True), 1):
                f.write(f"{q} Q0 {d} {r} {s:.6f} {tag}\n")


def corpus_runs(a: argparse.Namespace, enc: Encoder, data: Dataset, qrels: Qrels, systems: list[str]) -> tuple[dict, dict]:
    """Encode the whole corpus and search it exactly; BM25 indexed on the fly."""
    rrf_k = 10.0 if a.rrf_k is None else a.rrf_k
    results: dict[str, dict[str, float]] = {}
    runs: dict[str, tuple[dict, dict]] = {}
    if "lstm-dssm" in systems or "hybrid" in systems:
        ev = evaluate_dense(enc, data, qrels)
        runs["lstm-dssm"] = (ev.run, ev.scores)
        if "lstm-dssm" in systems:
            results["lstm-dssm"] = ev.metrics
    if "bm25" in systems or "hybrid" in systems:
        bm = BM25(enc.config.lang).index(data.corpus.full_texts())
        qids = list(qrels)
        t0 = time.perf_counter()
        idx, sc = bm.search([data.queries[q] for q in qids], 100)
        ms = 1000 * (time.perf_counter() - t0) / max(len(qids), 1)
        run = {q: [data.corpus.ids[i] for i in row] for q, row in zip(qids, idx, strict=True)}
        runs["bm25"] = (run, {q: row.tolist() for q, row in zip(qids, sc, strict=True)})
        if "bm25" in systems:
            results["bm25"] = {**evaluate_run(run, qrels), "ms_per_query": ms}
    if "hybrid" in systems:
        fused = {q: rrf([runs["lstm-dssm"][0][q], runs["bm25"][0][q]], k=rrf_k)[:100] for q in qrels}
        run = {q: [d for d, _ in f] for q, f in fused.items()}
        runs["hybrid"] = (run, {q: [s for _, s in f] for q, f in fused.items()})
        ms = results.get("lstm-dssm", {}).get("ms_per_query", 0) + results.get("bm25", {}).get("ms_per_query", 0)
        results["hybrid"] = {**evaluate_run(run, qrels), "ms_per_query": ms, "rrf_k": rrf_k}
    return results, runs


def _run(qids: list[str], hits: list[list[Hit]]) -> tuple[dict[str, list[str]], dict[str, list[float]]]:
    return ({q: [h.id for h in hs] for q, hs in zip(qids, hits, strict=True)},
            {q: [h.score for h in hs] for q, hs in zip(qids, hits, strict=True)})


def index_runs(a: argparse.Namespace, enc: Encoder, data: Dataset, qrels: Qrels, systems: list[str]) -> tuple[dict, dict]:
    """Search a built index; ms/query counts query encoding (dense, hybrid) and the search."""
    try:
        idx = SearchIndex.load(a.index, enc)
    except IndexLoadError as e:
        raise UsageError(str(e)) from e
    with idx:
        judged = sorted({d for rel in qrels.values() for d in rel})
        missing = [d for d, h in zip(judged, idx.documents(judged), strict=True) if h is None]
        if missing:
            raise UsageError(
                f"index {a.index} lacks {len(missing)} of the {len(judged)} judged documents of {data.name}/{a.split} "
                f"(e.g. {missing[0]!r}); was it built from this dataset's corpus?"
            )
        qids = list(qrels)
        texts = [data.queries[q] for q in qids]
        results: dict[str, dict[str, float]] = {}
        runs: dict[str, tuple[dict, dict]] = {}
        for s in systems:
            t0 = time.perf_counter()
            if s == "bm25":
                hits = idx.search_bm25(texts, 100)
            else:
                qv = enc.encode(texts, tower="query")
                if s == "lstm-dssm":
                    hits = idx.search(qv, 100)
                else:
                    fusion = idx.fusion if a.rrf_k is None else {"method": "rrf", "k": a.rrf_k, "depth": 100}
                    hits = idx.search_hybrid(texts, qv, 100, fusion=fusion)
            ms = 1000 * (time.perf_counter() - t0) / max(len(qids), 1)
            runs[s] = _run(qids, hits)
            results[s] = {**evaluate_run(runs[s][0], qrels), "ms_per_query": ms}
            if s == "hybrid":
                results[s]["fusion"] = {k: v for k, v in fusion.items() if k != "grid"}
                if fusion["method"] == "rrf":
                    results[s]["rrf_k"] = fusion["k"]
    return results, runs


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    systems = [s.strip() for s in a.systems.split(",") if s.strip()]
    bad = [s for s in systems if s not in SYSTEMS]
    if bad or not systems:
        raise UsageError(f"unknown system(s) {bad}; choose from {', '.join(SYSTEMS)}")
    data = load_dataset(a.data)
    qrels = data.split(a.split)
    enc = Encoder.load(a.model)
    if a.index:
        results, runs = index_runs(a, enc, data, qrels, systems)
    else:
        results, runs = corpus_runs(a, enc, data, qrels, systems)
    print(f"{data.name} / {a.split} ({len(qrels)} queries)")
    print(f"{'system':<10} {'ndcg@10':>8} {'mrr@10':>8} {'r@10':>8} {'r@100':>8} {'ms/q':>8}")
    for s in systems:
        m = results[s]
        print(f"{s:<10} {m['ndcg@10']:8.4f} {m['mrr@10']:8.4f} {m['recall@10']:8.4f} {m['recall@100']:8.4f} {m['ms_per_query']:8.2f}")
    if a.json:
        out = {"dataset": data.name, "split": a.split, "model": str(a.model), "results": results}
        if a.index:
            out["index"] = str(a.index)
        Path(a.json).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    if a.trec_run:
        for s in systems:
            write_trec(f"{a.trec_run}.{s}.trec", *runs[s], tag=s)
    return 0


if __name__ == "__main__":
    run_cli(main)
