#!/usr/bin/env python
"""The service benchmark: ``python scripts/benchmark.py --model M --data D``. Thin wrapper over ``bench.benchmark`` (also installed as ``dssm-bench``)."""

from bench.benchmark import run

if __name__ == "__main__":
    run()
