#!/usr/bin/env python
"""Retrieval quality: ``python scripts/evaluate.py --model M --data D [--split test]``. Thin wrapper over ``cli.evaluate`` (also installed as ``dssm-evaluate``)."""

from cli.evaluate import run

if __name__ == "__main__":
    run()
