#!/usr/bin/env python
"""How the hybrid fusion behaves across distributions: one model, several datasets, side by side.

    python -m bench.fusion_report --model MODEL_DIR --data DATASET [--data DATASET ...] [--split test] [--json OUT]

MODEL_DIR may also be a MiniLM encoder folder (``bench.encoders.make_minilm_dir``): then "dense" is
all-MiniLM-L6-v2 and "hybrid" its fusion with BM25, what a user would assemble instead.

For each dataset, the corpus is indexed once (flat, temporary) and its ``--split`` queries are searched
through the same calls the service makes (index/evaluation.py) with: the dense side alone, BM25 alone,
the fusion the index build chooses on the dataset's own dev split (adaptive or constant,
index/fusion.py), the fusion the model carries from its training dev split (``fusion.json``: what a
corpus without judgements gets), and plain RRF k=10 (the old default). The target "hybrid never hurts"
is checked per row: hybrid NDCG@10 ≥ max(dense, BM25) − 0.01.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from bench.encoders import load_encoder
from cli._run import UsageError, run_cli
from index import SearchIndex, build_index
from index.evaluation import evaluate_index
from index.familiar import public_fusion
from index.fusion import settings_of
from models.data import load_dataset

TOLERANCE = 0.01


def report(model: str, datasets: list[str], split: str) -> list[dict[str, Any]]:
    enc = load_encoder(model)  # an LSTM-DSSM model folder, or a MiniLM encoder folder (bench/encoders.py)
    rows = []
    for path in datasets:
        data = load_dataset(path)
        qrels = data.split(split)
        if not qrels:
            raise UsageError(f"{path}: no {split} queries")
        dev = data.qrels.get("dev")
        with tempfile.TemporaryDirectory(prefix="dssm-fusion-report-") as tmp:
            out = Path(tmp) / "index"
            m = build_index(enc, data.corpus, out, show_progress=False, durable=False,
                            dev_data=({q: data.queries[q] for q in dev}, dev) if dev else None)
            with SearchIndex.load(out, enc) as idx:
                res, _ = evaluate_index(idx, enc, data.queries, qrels, ["lstm-dssm", "bm25", "hybrid"])
                row: dict[str, Any] = {
                    "dataset": data.name, "split": split, "queries": len(qrels),
                    "dense": res["lstm-dssm"]["ndcg@10"], "bm25": res["bm25"]["ndcg@10"],
                    "hybrid_dev": res["hybrid"]["ndcg@10"], "fusion_dev": public_fusion(m["fusion"]),
                }
                variants: dict[str, dict[str, Any] | None] = {
                    "hybrid_model": settings_of(enc.fusion) if enc.fusion else None,
                    "hybrid_rrf10": {"method": "rrf", "k": 10, "depth": 100},
                }
                for name, fusion in variants.items():
                    if fusion is None:
                        row[name] = None
                        continue
                    r, _ = evaluate_index(idx, enc, data.queries, qrels, ["hybrid"], fusion=fusion)
                    row[name] = r["hybrid"]["ndcg@10"]
        best = max(row["dense"], row["bm25"])
        row["never_hurts_dev"] = row["hybrid_dev"] >= best - TOLERANCE
        row["never_hurts_model"] = None if row["hybrid_model"] is None else row["hybrid_model"] >= best - TOLERANCE
        rows.append(row)
        print(format_row(row), flush=True)
    return rows


def _f(x: float | None) -> str:
    return "   —  " if x is None else f"{x:.4f}"


def format_row(r: dict[str, Any]) -> str:
    f = r["fusion_dev"]
    how = f["method"] + (f" ({f.get('base')})" if f["method"] == "adaptive" else "")
    ok = "yes" if r["never_hurts_dev"] else "NO"
    okm = "—" if r["never_hurts_model"] is None else ("yes" if r["never_hurts_model"] else "NO")
    return (f"{r['dataset']:<14} {r['split']:<5} {r['queries']:5d}  dense {_f(r['dense'])}  bm25 {_f(r['bm25'])}  "
            f"hybrid[dev: {how}] {_f(r['hybrid_dev'])} ({ok})  hybrid[model] {_f(r['hybrid_model'])} ({okm})  "
            f"rrf10 {_f(r['hybrid_rrf10'])}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--data", action="append", required=True, help="a dataset (repeatable)")
    p.add_argument("--split", default="test")
    p.add_argument("--json", help="write the rows here")
    a = p.parse_args(argv)
    rows = report(a.model, a.data, a.split)
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0


def run() -> None:
    run_cli(main)


if __name__ == "__main__":
    run()
