#!/usr/bin/env python
"""Retrieval quality of LSTM-DSSM (and BM25, hybrid) on a BEIR split.

    python scripts/evaluate.py --model MODEL_DIR --data DATASET [--split test]
        [--systems lstm-dssm,bm25,hybrid] [--index INDEX_DIR] [--json OUT] [--trec-run PREFIX]

Every system searches an index, through the same calls the service makes (index/evaluation.py):
``lstm-dssm`` exact cosine search with the model's towers (no lexical signal); ``bm25`` bm25s BM25()
defaults, tokenised for the model's language; ``hybrid`` the index's fusion of the two top-100 lists.

Without ``--index`` the corpus is indexed on the fly into a temporary flat index, whose fusion is
chosen on the dataset's dev split exactly as ``build_index.py`` chooses it (the model's own fusion.json
without one, else RRF k=10), so "hybrid" here is what the service would serve. With ``--split dev`` that
fusion was chosen on the very queries scored: an optimistic figure (report test). With ``--index`` a built index is searched instead; it
must have been built with this model and hold every judged document. ``--rrf-k K`` overrides the
fusion with RRF k=K in both cases.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path
from typing import Any

from cli._run import UsageError, run_cli
from index import IndexBuildError, IndexLoadError, SearchIndex, build_index
from index.evaluation import SYSTEMS, evaluate_index, format_table, write_trec
from models.data import Dataset
from models.data import load_dataset as load_data
from models.encoder import Encoder


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--systems", default="lstm-dssm")
    p.add_argument("--rrf-k", type=float, default=None, help="hybrid as RRF with this k (default: the index's fusion)")
    p.add_argument("--index", help="search this built index instead of indexing the corpus on the fly")
    p.add_argument("--json", help="write the figures here")
    p.add_argument("--trec-run", help="write TREC run files PREFIX.<system>.trec")
    return p.parse_args(argv)


def check_judged(idx: SearchIndex, data: Dataset, split: str, where: str) -> None:
    qrels = data.split(split)
    judged = sorted({d for rel in qrels.values() for d in rel})
    missing = [d for d, h in zip(judged, idx.documents(judged), strict=True) if h is None]
    if missing:
        raise UsageError(
            f"index {where} lacks {len(missing)} of the {len(judged)} judged documents of {data.name}/{split} "
            f"(e.g. {missing[0]!r}); was it built from this dataset's corpus?"
        )


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    systems = [s.strip() for s in a.systems.split(",") if s.strip()]
    bad = [s for s in systems if s not in SYSTEMS]
    if bad or not systems:
        raise UsageError(f"unknown system(s) {bad}; choose from {', '.join(SYSTEMS)}")
    data = load_data(a.data)
    qrels = data.split(a.split)
    enc = Encoder.load(a.model)
    if a.rrf_k is not None and not (math.isfinite(a.rrf_k) and a.rrf_k > 0):
        raise UsageError(f"--rrf-k must be a positive number, got {a.rrf_k}")
    fusion: dict[str, Any] | None = None if a.rrf_k is None else {"method": "rrf", "k": a.rrf_k, "depth": 100}
    with tempfile.TemporaryDirectory(prefix="dssm-eval-") as tmp:
        if a.index:
            where = a.index
        else:
            # An in-memory-sized flat index of the whole corpus; its fusion chosen on dev like any build's.
            where = str(Path(tmp) / "index")
            dev = data.qrels.get("dev")
            try:
                build_index(enc, data.corpus, where, show_progress=False, durable=False,
                            dev_data=({q: data.queries[q] for q in dev}, dev) if dev else None)
            except IndexBuildError as e:
                raise UsageError(str(e)) from e
        try:
            idx = SearchIndex.load(where, enc)
        except IndexLoadError as e:
            raise UsageError(str(e)) from e
        with idx:
            check_judged(idx, data, a.split, where)
            results, runs = evaluate_index(idx, enc, data.queries, qrels, systems, fusion)
    print(format_table(f"{data.name} / {a.split} ({len(qrels)} queries)", results, systems))
    if a.json:
        out: dict[str, Any] = {"dataset": data.name, "split": a.split, "model": str(a.model), "results": results}
        if a.index:
            out["index"] = str(a.index)
        Path(a.json).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    if a.trec_run:
        for s in systems:
            write_trec(f"{a.trec_run}.{s}.trec", *runs[s], tag=s)
    return 0


def run() -> None:
    run_cli(main)


if __name__ == "__main__":
    run()
