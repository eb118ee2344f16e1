#!/usr/bin/env python
"""Serve the API: ``python scripts/serve.py --model M --index I [--port 8000]``. Thin wrapper over ``cli.serve`` (also installed as ``dssm-serve``)."""

from cli.serve import run

if __name__ == "__main__":
    run()
