"""Shared by the service tests (no tests here): a real tiny index, app factories, a real server process.

Everything is built from the synthetic data the tests make themselves (``tiny_beir``) and the real
tiny model trained on it (``tiny_model_dir``): no mocks, no ../shared.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from index import build_index

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "test-admin-key-0123456789"
_CACHE: dict[str, Path] = {}


@pytest.fixture(scope="session")
def tiny_index_dir(tiny_model_dir: Path, tiny_beir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny corpus (180 docs) indexed with the tiny model; built once even if imported by many modules."""
    if "full" not in _CACHE:
        out = tmp_path_factory.mktemp("index") / "tiny-index"
        build_index(tiny_model_dir, tiny_beir / "corpus.jsonl", out, show_progress=False)
        _CACHE["full"] = out
    return _CACHE["full"]


@pytest.fixture(scope="session")
def small_index_dir(tiny_model_dir: Path, tiny_beir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second, different index for the same model (the first 60 documents): the reload target."""
    if "small" not in _CACHE:
        base = tmp_path_factory.mktemp("index-small")
        corpus = base / "corpus.jsonl"
        lines = (tiny_beir / "corpus.jsonl").read_text(encoding="utf-8").splitlines()[:60]
        corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
        out = base / "small-index"
        build_index(tiny_model_dir, corpus, out, show_progress=False)
        _CACHE["small"] = out
    return _CACHE["small"]


@pytest.fixture(scope="session")
def other_model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model whose fingerprint differs from the tiny model's (same weights, edited config notes):
    an index built with the tiny model must be refused with it."""
    if "other" not in _CACHE:
        out = tmp_path_factory.mktemp("other-model") / "other-model"
        shutil.copytree(tiny_model_dir, out)
        cfg = json.loads((out / "config.json").read_text(encoding="utf-8"))
        cfg["extra"] = {**cfg.get("extra", {}), "note": "a different model"}
        (out / "config.json").write_text(json.dumps(cfg), encoding="utf-8")
        _CACHE["other"] = out
    return _CACHE["other"]


def read_corpus(beir: Path) -> list[dict[str, Any]]:
    with open(beir / "corpus.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """A real server in a child process on a free port of 127.0.0.1."""

    def __init__(self, cmd: list[str], env: dict[str, str], port: int, log_path: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT)

    def wait(self, path: str = "/health", status: int = 200, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited ({self.proc.returncode}):\n{self.log()}")
            try:
                if httpx.get(self.url + path, timeout=2).status_code == status:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{self.url}{path} did not answer {status} in {timeout}s:\n{self.log()}")

    def log(self, tail: int | None = 5000) -> str:
        if not self._log.closed:
            self._log.flush()
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return text[-tail:] if tail else text

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def server_env(**dssm: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DSSM_")}
    env.update({f"DSSM_{k.upper()}": v for k, v in dssm.items()})
    env.setdefault("DSSM_TORCH_THREADS", "1")  # 2 shared cores: leave one to the test process
    return env


def start_uvicorn(tmp: Path, **dssm: str) -> ServerProcess:
    """``python -m uvicorn app.main:app`` configured by DSSM_* environment variables only."""
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port)]
    return ServerProcess(cmd, server_env(**dssm), port, tmp / f"uvicorn-{port}.log")


def start_serve_script(tmp: Path, args: list[str], **dssm: str) -> ServerProcess:
    """``python scripts/serve.py …`` with flags."""
    port = free_port()
    cmd = [sys.executable, str(ROOT / "scripts" / "serve.py"), "--port", str(port), *args]
    return ServerProcess(cmd, server_env(**dssm), port, tmp / f"serve-{port}.log")


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[list[ServerProcess]]:
    """Collects started servers and stops them after the test, whatever happens."""
    servers: list[ServerProcess] = []
    yield servers
    for s in servers:
        s.stop()
