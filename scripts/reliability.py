#!/usr/bin/env python
"""Reliability runs: ``python scripts/reliability.py fuzz|load|security``. Thin wrapper over ``bench.reliability`` (also installed as ``dssm-reliability``)."""

from bench.reliability import run

if __name__ == "__main__":
    run()
