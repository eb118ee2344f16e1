"""Schemathesis against the real service: generated requests for every operation of its OpenAPI
schema, over HTTP to a real uvicorn process serving the tiny model and index, with the admin key (so
/admin/reload is exercised past the key check). Zero 5xx, zero schema violations.

This is the suite's fixed-seed run (~100 cases); ``scripts/reliability.py fuzz`` runs ≥ 1,000.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, HTTPException

from bench.fuzz import fuzz
from tests.support import API_KEY, ServerProcess, free_port, start_uvicorn

EXAMPLES = 12  # per operation and generation mode (positive, negative): ~100 cases, ~5 s


def test_generated_requests_get_no_5xx_and_match_the_schema(
    tmp_path: Path, tiny_model_dir: Path, tiny_index_dir: Path, server_factory: list[ServerProcess]
) -> None:
    srv = start_uvicorn(tmp_path, model_dir=str(tiny_model_dir), index_dir=str(tiny_index_dir), api_key=API_KEY)
    server_factory.append(srv)
    srv.wait("/ready", 200)
    report = fuzz(srv.url, EXAMPLES, seed=0, headers={"Authorization": f"Bearer {API_KEY}"})
    s = report.summary()
    assert report.cases >= 90, s
    assert set(report.per_operation) >= {"POST /search", "GET /search", "POST /embed", "POST /v1/embeddings",
                                         "POST /admin/reload", "GET /health", "GET /ready", "GET /info", "GET /metrics"}, s
    assert report.server_errors == 0, s
    assert not report.failures, "\n\n".join(report.failures[:5])
    # Both valid and invalid requests were made: some succeeded, some were refused as client errors.
    assert report.statuses.get(200, 0) > 0 and sum(n for st, n in report.statuses.items() if 400 <= st < 500) > 0, s
    assert httpx.get(f"{srv.url}/ready").status_code == 200  # fuzzing the reload left it serving
    assert "Traceback" not in srv.log(tail=None)


# ---- the driver can fail ----------------------------------------------------------------------------


def _canary_app() -> FastAPI:
    """A small app with the two defects the fuzzer must report: a 500, and an undocumented status."""
    app = FastAPI()

    @app.get("/divide")
    def divide(n: int) -> dict[str, float]:
        return {"x": 1 / n}  # n = 0 → ZeroDivisionError → 500

    @app.post("/teapot", responses={200: {}})
    def teapot(body: dict[str, int]) -> dict[str, int]:
        raise HTTPException(418, "undocumented")

    return app


@pytest.fixture
def canary_url() -> Iterator[str]:
    server = uvicorn.Server(uvicorn.Config(_canary_app(), host="127.0.0.1", port=free_port(), log_level="critical"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and t.is_alive(), "canary server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{server.config.port}"
    server.should_exit = True
    t.join(timeout=10)


def test_the_fuzz_driver_reports_5xx_and_schema_violations(canary_url: str) -> None:
    report = fuzz(canary_url, 30, seed=0)
    assert report.server_errors > 0, report.summary()
    assert any("GET /divide" in f and "500" in f for f in report.failures), report.failures[:3]
    assert any("POST /teapot" in f and "Undocumented status code" in f for f in report.failures), report.failures[:3]
