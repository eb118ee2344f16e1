#!/usr/bin/env python
"""Compact a live index offline: ``python scripts/compact_index.py --index I``. Thin wrapper over ``cli.compact_index`` (also installed as ``dssm-compact``)."""

from cli.compact_index import run

if __name__ == "__main__":
    run()
