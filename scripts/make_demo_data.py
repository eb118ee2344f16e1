#!/usr/bin/env python
"""The demo dataset: ``python scripts/make_demo_data.py --out FOLDER``. Thin wrapper over ``cli.make_demo_data`` (also installed as ``dssm-demo-data``)."""

from cli.make_demo_data import run

if __name__ == "__main__":
    run()
