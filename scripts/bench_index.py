#!/usr/bin/env python
"""FAISS index benchmark: ``python scripts/bench_index.py``. Thin wrapper over ``bench.index_bench`` (also installed as ``dssm-bench-index``)."""

from bench.index_bench import run

if __name__ == "__main__":
    run()
