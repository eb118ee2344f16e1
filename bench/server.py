"""One uvicorn worker serving the product's app as one of the benchmarked systems.

    python -m bench.server --system lstm-dssm|minilm|bm25 --model MODEL_DIR --index INDEX_DIR --port P

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
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from app.backend import Backend
from app.metrics import ServiceMetrics
from app.search import SearchQuery
from index import Hit

SYSTEMS = ("lstm-dssm", "minilm", "bm25")


def bm25_search_batch(backend: Backend, qs: Sequence[SearchQuery], metrics: ServiceMetrics | None = None) -> list[list[Hit]]:
    """A ``SearchBatch`` (``app.search``) that ranks with BM25 instead of the encoder."""
    groups: dict[str, list[int]] = {}
    for i, q in enumerate(qs):
        groups.setdefault(json.dumps(q.filter or None, sort_keys=True), []).append(i)
    out: list[list[Hit]] = [[] for _ in qs]
    for idx in groups.values():
        k = max(qs[i].top_k for i in idx)
        t0 = time.perf_counter()
        hits = backend.index.search_bm25([qs[i].text for i in idx], k, filter=qs[idx[0]].filter or None)
        if metrics is not None:
            metrics.search_seconds.labels("bm25").observe(time.perf_counter() - t0)
        for i, h in zip(idx, hits, strict=True):
            out[i] = h[: qs[i].top_k]  # min_score is a cosine threshold: BM25 hits have none, ignored here
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--system", choices=SYSTEMS, required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--index", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--torch-threads", type=int, default=1)  # the service's default
    p.add_argument("--faiss-threads", type=int, default=1)
    a = p.parse_args(argv)

    import uvicorn

    from app.main import create_app
    from app.settings import Settings
    from bench.encoders import load_encoder

    # The product's defaults (micro-batching on, one compute thread) for every system; INFO access
    # logs off so that logging costs the same (nothing) everywhere.
    settings = Settings(model_dir=Path(a.model), index_dir=Path(a.index), torch_threads=a.torch_threads,
                        faiss_threads=a.faiss_threads, log_level="WARNING", log_format="text", api_key=None)
    app = create_app(settings, loader=load_encoder,
                     search_batch=bm25_search_batch if a.system == "bm25" else None)
    uvicorn.run(app, host=a.host, port=a.port, workers=1, access_log=False, log_level="warning",
                timeout_graceful_shutdown=5)
    return 0


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
