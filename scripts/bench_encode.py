#!/usr/bin/env python
"""Encoding throughput: ``python scripts/bench_encode.py --model M``. Thin wrapper over ``bench.encode`` (also installed as ``dssm-bench-encode``)."""

from bench.encode import run

if __name__ == "__main__":
    run()
