"""Equivalence of the write path with the offline build: a whole corpus streamed through
``POST /documents`` (batches of 100, a real server, fsync on) into an empty index gives the same test
NDCG@10, dense and hybrid, as ``build_index.py`` of the same corpus (both with the model's fusion).

    python -m bench.live_equivalence --model MODEL_DIR --data BEIR_DIR [--offline INDEX_DIR] [--json OUT]

Compared: the offline build served read-only (bm25s lexical side), the same offline build made live
(FTS5 lexical side, index/fulltext.py) and the streamed one (FTS5). The dense side must agree within
0.002 (same vectors up to float rounding of another batch shape); hybrid too.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.process import ServerProcess, free_port, product_env
from index import SearchIndex, build_index
from index.evaluation import evaluate_index
from index.live import LiveIndex
from models.data import load_beir
from models.encoder import Encoder

WRITE_KEY = "equivalence-write-key-0123456"


def stream(model: Path, index: Path, corpus: Any, work: Path, batch: int = 100) -> dict[str, float]:
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port)]
    env = product_env(model_dir=str(model), index_dir=str(index), write_key=WRITE_KEY, torch_threads="1",
                      log_level="WARNING", max_batch=str(batch), max_body_bytes=str(16 << 20))
    with ServerProcess(cmd, env, port, work / "equivalence-server.log") as srv:
        srv.wait_ready()
        t0 = time.perf_counter()
        with httpx.Client(base_url=srv.url, timeout=120, headers={"Authorization": f"Bearer {WRITE_KEY}"}) as c:
            for s in range(0, len(corpus), batch):
                docs = [{"id": corpus.ids[i], "title": corpus.titles[i], "text": corpus.texts[i],
                         "metadata": corpus.metadata[i]} for i in range(s, min(s + batch, len(corpus)))]
                r = c.post("/documents", json={"documents": docs})
                if r.status_code != 200:
                    raise RuntimeError(f"POST /documents: {r.status_code} {r.text[:300]}")
        seconds = time.perf_counter() - t0
    return {"documents": len(corpus), "seconds": round(seconds, 1), "docs_per_second": round(len(corpus) / seconds, 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True, help="a BEIR folder (its test split is evaluated)")
    p.add_argument("--offline", help="an offline build of the corpus with this model (--dev-data none); built if absent")
    p.add_argument("--json")
    a = p.parse_args(argv)
    enc = Encoder.load(a.model)
    data = load_beir(a.data)
    qrels = data.qrels["test"]
    out: dict[str, Any] = {"dataset": Path(a.data).name, "queries": len(qrels)}
    with tempfile.TemporaryDirectory(prefix="dssm-equiv-") as tmp:
        work = Path(tmp)
        offline = Path(a.offline) if a.offline else work / "offline"
        if not a.offline:
            build_index(enc, data.corpus, offline, show_progress=False)
        empty = work / "streamed"
        build_index(enc, data.corpus.__class__([], [], [], []), empty, show_progress=False, allow_empty=True)
        out["stream"] = stream(Path(a.model), empty, data.corpus, work)
        print(f"streamed {out['stream']}", flush=True)
        systems = ("lstm-dssm", "hybrid")
        with SearchIndex.load(offline, enc) as idx:
            res, _ = evaluate_index(idx, enc, data.queries, qrels, systems)
            out["offline (bm25s)"] = {s: round(res[s]["ndcg@10"], 4) for s in systems}
        live_copy = work / "offline-live"
        shutil.copytree(offline, live_copy)
        with LiveIndex.open(live_copy, enc) as idx:
            res, _ = evaluate_index(idx, enc, data.queries, qrels, systems)
            out["offline made live (FTS5)"] = {s: round(res[s]["ndcg@10"], 4) for s in systems}
        with LiveIndex.open(empty, enc) as idx:
            assert idx.size == len(data.corpus), idx.size
            res, _ = evaluate_index(idx, enc, data.queries, qrels, systems)
            out["streamed (FTS5)"] = {s: round(res[s]["ndcg@10"], 4) for s in systems}
    for k in ("offline (bm25s)", "offline made live (FTS5)", "streamed (FTS5)"):
        print(f"{k:28s} dense {out[k]['lstm-dssm']:.4f}  hybrid {out[k]['hybrid']:.4f}")
    ref = out["offline (bm25s)"]
    out["max_abs_diff"] = {s: round(max(abs(out[k][s] - ref[s]) for k in ("offline made live (FTS5)", "streamed (FTS5)")), 4)
                           for s in systems}
    print(f"largest difference to the offline build: {out['max_abs_diff']}")
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


def run() -> None:
    raise SystemExit(main())


if __name__ == "__main__":
    run()
