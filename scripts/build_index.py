#!/usr/bin/env python
"""Build an index: ``python scripts/build_index.py --model M --corpus C --out I``. Thin wrapper over ``cli.build_index`` (also installed as ``dssm-index``)."""

from cli.build_index import run

if __name__ == "__main__":
    run()
