#!/usr/bin/env python
"""Train a model: ``python scripts/train.py --data DATASET --out MODEL_DIR``. Thin wrapper over ``cli.train``
(also installed as ``dssm-train``)."""

from cli.train import run

if __name__ == "__main__":
    run()
