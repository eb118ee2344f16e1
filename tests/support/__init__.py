"""Helpers shared by the service tests: the admin key, the corpus rows, real server processes.

Every server is the product itself (``uvicorn app.main:app`` or ``scripts/serve.py``) in a child process
(``bench.process.ServerProcess``, the same helper the benchmarks use); fixtures live in conftest.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.process import ROOT, ServerProcess, free_port, product_env, serve_command

__all__ = ["API_KEY", "ROOT", "ServerProcess", "free_port", "kill_build_midway", "read_corpus", "server_env",
           "start_serve_script", "start_uvicorn"]

API_KEY = "test-admin-key-0123456789"


def read_corpus(beir: Path) -> list[dict[str, Any]]:
    with open(beir / "corpus.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def server_env(**dssm: str) -> dict[str, str]:
    env = product_env(**dssm)
    env.setdefault("DSSM_TORCH_THREADS", "1")  # 2 shared cores: leave one to the test process
    return env


def start_uvicorn(tmp: Path, **dssm: str) -> ServerProcess:
    """``python -m uvicorn app.main:app`` configured by DSSM_* environment variables only."""
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port)]
    return ServerProcess(cmd, server_env(**dssm), port, tmp / f"uvicorn-{port}.log")


def kill_build_midway(model: Path, corpus: Path, out: Path) -> int:
    """``scripts/build_index.py`` of ``corpus`` into ``out``, ``kill -9``'d once its temporary folder holds
    the document store (midway: no cleanup can run); returns its exit code (−SIGKILL)."""
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "build_index.py"), "--model", str(model), "--corpus", str(corpus),
         "--out", str(out), "--quiet", "--dev-data", "none"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not list(out.parent.glob(f".{out.name}.tmp-*/docs.sqlite")):
            assert proc.poll() is None, "the build ended before it could be killed"
            assert time.monotonic() < deadline, "the build did not reach its midway point in 60 s"
            time.sleep(0.01)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    return proc.returncode


def start_serve_script(tmp: Path, args: list[str], **dssm: str) -> ServerProcess:
    """``python scripts/serve.py …`` with flags."""
    port = free_port()
    return ServerProcess(serve_command(port, *args), server_env(**dssm), port, tmp / f"serve-{port}.log")
