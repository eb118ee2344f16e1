"""One uvicorn worker serving the product's app as one of the benchmarked systems.

    python -m bench.server --system lstm-dssm|minilm|bm25 --model MODEL_DIR --index INDEX_DIR --port P

- ``lstm-dssm``: the product as shipped (``app.main.create_app``), nothing changed.
- ``minilm``: the same app; MODEL_DIR is a MiniLM encoder folder (``bench.encoders``), INDEX_DIR an
  index built from it by the product's ``build_index``.
- ``bm25``: the same app and an LSTM-DSSM index, but ``/search`` answers from the index's BM25 side
  (``SearchIndex.search_bm25``) and encodes nothing; routing, validation, micro-batching, document
  store and JSON are unchanged, so only the ranking function differs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SYSTEMS = ("lstm-dssm", "minilm", "bm25")


def bm25_search_batch(backend: object, queries: Sequence[object], metrics: object | None = None) -> list[list[object]]:
    """Drop-in for ``app.search.run_search_batch`` that ranks with BM25 instead of the encoder."""
    from app.search import SearchQuery

    qs: list[SearchQuery] = list(queries)  # type: ignore[arg-type]
    groups: dict[str, list[int]] = {}
    for i, q in enumerate(qs):
        groups.setdefault(json.dumps(q.filter or None, sort_keys=True), []).append(i)
    out: list[list[object]] = [[] for _ in qs]
    for idx in groups.values():
        k = max(qs[i].top_k for i in idx)
        t0 = time.perf_counter()
        hits = backend.index.search_bm25([qs[i].text for i in idx], k, filter=qs[idx[0]].filter or None)  # type: ignore[attr-defined]
        if metrics is not None:
            metrics.search_seconds.labels("bm25").observe(time.perf_counter() - t0)  # type: ignore[attr-defined]
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
    p.add_argument("--torch-threads", type=int, default=2)
    p.add_argument("--faiss-threads", type=int, default=1)
    a = p.parse_args(argv)

    import uvicorn

    import app.search
    from app.main import create_app
    from app.settings import Settings
    from bench.encoders import install_encoder_hook

    install_encoder_hook()
    if a.system == "bm25":
        app.search.run_search_batch = bm25_search_batch  # type: ignore[assignment]
    # The product's defaults (micro-batching on, one compute thread) for every system; INFO access
    # logs off so that logging costs the same (nothing) everywhere.
    settings = Settings(model_dir=Path(a.model), index_dir=Path(a.index), torch_threads=a.torch_threads,
                        faiss_threads=a.faiss_threads, log_level="WARNING", log_format="text", api_key=None)
    uvicorn.run(create_app(settings), host=a.host, port=a.port, workers=1, access_log=False, log_level="warning",
                timeout_graceful_shutdown=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
