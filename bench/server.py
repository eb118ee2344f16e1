"""One uvicorn worker serving the product's app as one of the benchmarked systems.

    python -m bench.server --system lstm-dssm|hybrid|minilm|bm25 --model MODEL_DIR --index INDEX_DIR --port P [--workers N]

- ``lstm-dssm``: the product as shipped (``app.main.create_app``), nothing changed.
- ``minilm``: the same app with ``loader=bench.encoders.load_encoder`` (the app's encoder seam);
  MODEL_DIR is a MiniLM encoder folder, INDEX_DIR an index built from it by the product's ``build_index``.
- ``bm25``: the same app and an LSTM-DSSM index, with ``search_batch=bm25_search_batch`` (the app's
  search seam): ``/search`` answers from the index's BM25 side (``SearchIndex.search_bm25``) and encodes
  nothing; routing, validation, micro-batching, document store and JSON are unchanged, so only the
  ranking function differs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.backend import Backend
from app.metrics import ServiceMetrics
from app.search import SearchQuery
from index import Hit

SYSTEMS = ("lstm-dssm", "hybrid", "minilm", "bm25")  # hybrid: the lstm-dssm service, asked for mode=hybrid


def bm25_search_batch(backend: Backend, qs: Sequence[SearchQuery], metrics: ServiceMetrics | None = None) -> list[list[Hit]]:
    """A ``SearchBatch`` (``app.search``) that ranks with BM25 instead of the encoder."""
    groups: dict[tuple[str, int], list[int]] = {}
    for i, q in enumerate(qs):
        groups.setdefault((json.dumps(q.filter or None, sort_keys=True), q.offset), []).append(i)
    out: list[list[Hit]] = [[] for _ in qs]
    for (_, offset), idx in groups.items():
        k = max(qs[i].top_k for i in idx)
        t0 = time.perf_counter()
        hits = backend.index.search_bm25([qs[i].text for i in idx], k, filter=qs[idx[0]].filter or None,
                                         offset=offset)
        if metrics is not None:
            metrics.search_seconds.labels("bm25").observe(time.perf_counter() - t0)
        for i, h in zip(idx, hits, strict=True):
            out[i] = h[: qs[i].top_k]  # min_score is a cosine threshold: BM25 hits have none, ignored here
    return out


def make_app() -> Any:
    """The system's app from ``BENCH_*`` variables: what each worker process of ``--workers N`` builds."""
    from app.main import create_app
    from app.settings import Settings
    from bench.encoders import load_encoder

    env = os.environ
    system = env["BENCH_SYSTEM"]
    # The product's defaults (micro-batching on, one compute thread) for every system; INFO access
    # logs off so that logging costs the same (nothing) everywhere.
    # BENCH_SETTINGS: a JSON object of further settings (a lever under measurement, e.g. micro_batching).
    settings = Settings(model_dir=Path(env["BENCH_MODEL"]), index_dir=Path(env["BENCH_INDEX"]),
                        torch_threads=int(env["BENCH_TORCH_THREADS"]), faiss_threads=int(env["BENCH_FAISS_THREADS"]),
                        log_level="WARNING", log_format="text", api_key=None,
                        **json.loads(env.get("BENCH_SETTINGS") or "{}"))
    return create_app(settings, loader=load_encoder, search_batch=bm25_search_batch if system == "bm25" else None)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--system", choices=SYSTEMS, required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--index", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--torch-threads", type=int, default=1)  # the service's default
    p.add_argument("--faiss-threads", type=int, default=1)
    p.add_argument("--workers", type=int, default=1, help="server processes, a socket each (app/workers.py)")
    a = p.parse_args(argv)

    import uvicorn

    os.environ.update({"BENCH_SYSTEM": a.system, "BENCH_MODEL": a.model, "BENCH_INDEX": a.index,
                       "BENCH_TORCH_THREADS": str(a.torch_threads), "BENCH_FAISS_THREADS": str(a.faiss_threads)})
    common: dict[str, Any] = dict(access_log=False, log_level="warning", timeout_graceful_shutdown=5)
    if a.workers == 1:
        uvicorn.run(make_app(), host=a.host, port=a.port, workers=1, **common)
    else:  # as scripts/serve.py --workers: processes with a socket each, the app factory by name (BENCH_*)
        from app.workers import run_workers

        return run_workers(a.workers, a.host, a.port, "bench.server:make_app", factory=True, **common)
    return 0


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
