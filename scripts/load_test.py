#!/usr/bin/env python
"""HTTP load test: ``python scripts/load_test.py --model M --index I``. Thin wrapper over ``bench.load_test`` (also installed as ``dssm-load-test``)."""

from bench.load_test import run

if __name__ == "__main__":
    run()
