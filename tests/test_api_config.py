"""Configurable limits, micro-batching, CORS and JSON logs, against the real app."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from tests.test_api import assert_error, make_settings


def test_every_limit_is_configurable(tiny_model_dir: Path, tiny_index_dir: Path) -> None:
    s = make_settings(tiny_model_dir, tiny_index_dir, max_query_chars=20, max_top_k=5, max_batch=3, max_body_bytes=2048,
                      max_filter_fields=2, max_filter_chars=8, max_header_bytes=4096, header_timeout_s=3,
                      body_timeout_s=4, keep_alive_s=2)
    with TestClient(create_app(s)) as c:
        assert c.post("/search", json={"query": "q" * 20, "top_k": 5}).status_code == 200
        assert_error(c.post("/search", json={"query": "q" * 21}), 422, "input_too_long", "20")
        assert_error(c.post("/search", json={"query": "fever", "top_k": 6}), 422, "top_k_out_of_range", "5")
        assert c.post("/embed", json={"input": ["a", "b", "c"]}).status_code == 200
        assert_error(c.post("/embed", json={"input": ["a", "b", "c", "d"]}), 413, "batch_too_large", "3")
        assert_error(c.post("/v1/embeddings", json={"input": ["a", "b", "c", "d"]}), 413, "batch_too_large")
        assert_error(c.post("/embed", json={"input": "e" * 21}), 422, "input_too_long")
        assert_error(c.post("/search", json={"query": "fever", "pad": "x" * 3000}), 413, "body_too_large", "2048")
        assert c.post("/search", json={"query": "fever", "filter": {"a": "12345678", "b": 1}}).status_code == 200
        assert_error(c.post("/search", json={"query": "fever", "filter": {"a": 1, "b": 2, "c": 3}}), 422,
                     "filter_too_large", "2")
        assert_error(c.post("/search", json={"query": "fever", "filter": {"a": "123456789"}}), 422, "filter_too_large")
        assert_error(c.post("/search", json={"query": "fever", "filter": {"abcdefghi": 1}}), 422, "filter_too_large")
        assert c.get("/info").json()["service"]["limits"] == {
            "max_query_chars": 20, "max_body_bytes": 2048, "max_batch": 3, "max_top_k": 5,
            "max_filter_fields": 2, "max_filter_chars": 8, "max_header_bytes": 4096, "header_timeout_s": 3.0,
            "body_timeout_s": 4.0, "keep_alive_s": 2}


QUERIES = [f"What are the symptoms of {w}?" for w in ["kalo", "serkatu", "mivex", "fever", "pain", "blood"]] + [
    "How to treat kalo disease?", "What causes dratu syndrome?", "感冒", "liver kidney brain",
]


def _concurrent(micro_batching: bool, model: Path, index: Path, wait_ms: float = 0.0) -> tuple[list[dict], str]:
    app = create_app(make_settings(model, index, micro_batching=micro_batching, batch_wait_ms=wait_ms))

    async def scenario() -> tuple[list[dict], str]:
        transport = httpx.ASGITransport(app=app)
        async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            bodies = [{"query": q, "top_k": 3 + i % 5, "mode": ["dense", "hybrid"][i % 2],
                       **({"filter": {"aspect": "causes"}} if i % 3 == 0 else {}),
                       **({"min_score": 0.2} if i % 4 == 0 else {})}
                      for i, q in enumerate(QUERIES * 4)]
            rs = await asyncio.gather(*(c.post("/search", json=b) for b in bodies))
            assert all(r.status_code == 200 for r in rs), [r.text for r in rs if r.status_code != 200]
            return [r.json()["results"] for r in rs], (await c.get("/metrics")).text

    return asyncio.run(scenario())


def _batch_stats(metrics: str) -> tuple[float, float]:
    count = float(re.search(r"^dssm_search_batch_size_count (\S+)$", metrics, re.M).group(1))  # type: ignore[union-attr]
    total = float(re.search(r"^dssm_search_batch_size_sum (\S+)$", metrics, re.M).group(1))  # type: ignore[union-attr]
    return count, total


def test_micro_batching_batches_concurrent_queries_with_the_same_results(tiny_model_dir: Path, tiny_index_dir: Path) -> None:
    batched, m_on = _concurrent(True, tiny_model_dir, tiny_index_dir, wait_ms=5.0)
    single, m_off = _concurrent(False, tiny_model_dir, tiny_index_dir)
    n_on, sum_on = _batch_stats(m_on)
    n_off, sum_off = _batch_stats(m_off)
    assert sum_on == sum_off == len(QUERIES) * 4
    assert n_off == len(QUERIES) * 4  # one query per run without micro-batching
    assert n_on < n_off / 4, (n_on, n_off)  # 40 concurrent queries in a handful of batches
    # Same answers: ids and ranks exactly, scores to float rounding (batch shapes differ).
    assert [[h["id"] for h in r] for r in batched] == [[h["id"] for h in r] for r in single]
    for a, b in zip(batched, single, strict=True):
        assert [h["score"] for h in a] == pytest.approx([h["score"] for h in b], abs=1e-5)
        assert [h["metadata"] for h in a] == [h["metadata"] for h in b]


def test_cors_origins(tiny_model_dir: Path, tiny_index_dir: Path) -> None:
    s = make_settings(tiny_model_dir, tiny_index_dir, cors_origins=["https://ok.example"])
    with TestClient(create_app(s)) as c:
        pre = c.options("/search", headers={"Origin": "https://ok.example", "Access-Control-Request-Method": "POST",
                                            "Access-Control-Request-Headers": "content-type"})
        assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == "https://ok.example"
        r = c.post("/search", json={"query": "x"}, headers={"Origin": "https://ok.example"})
        assert r.headers["access-control-allow-origin"] == "https://ok.example"
        r = c.post("/search", json={"query": "x"}, headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers
    with TestClient(create_app(make_settings(tiny_model_dir, tiny_index_dir))) as c:  # default: no CORS
        r = c.post("/search", json={"query": "x"}, headers={"Origin": "https://ok.example"})
        assert "access-control-allow-origin" not in r.headers


def test_json_logs_carry_the_request_id(tiny_model_dir: Path, tiny_index_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with TestClient(create_app(make_settings(tiny_model_dir, tiny_index_dir, log_format="json"))) as c:
        c.post("/search", json={"query": "fever"}, headers={"X-Request-ID": "trace-42"})
        c.post("/search", json={"query": ""}, headers={"X-Request-ID": "trace-43"})
    lines = [json.loads(x) for x in capsys.readouterr().err.splitlines() if x.startswith("{")]
    access = {x["request_id"]: x for x in lines if x["logger"] == "app.access"}
    assert access["trace-42"]["status"] == 200 and access["trace-42"]["path"] == "/search"
    assert access["trace-43"]["status"] == 422
    assert {"ts", "level", "message", "method", "ms"} <= set(access["trace-42"])
    assert any(x["logger"] == "app.backend" and "serving model" in x["message"] for x in lines)


def test_default_top_k_is_capped_by_a_lower_maximum(tiny_model_dir: Path, tiny_index_dir: Path) -> None:
    with TestClient(create_app(make_settings(tiny_model_dir, tiny_index_dir, max_top_k=4))) as c:
        assert len(c.post("/search", json={"query": "fever"}).json()["results"]) == 4
        assert len(c.get("/search", params={"q": "fever"}).json()["results"]) == 4
        assert_error(c.post("/search", json={"query": "fever", "top_k": 10}), 422, "top_k_out_of_range")


def test_lone_queries_inline_give_the_executor_path_results(tiny_model_dir: Path, tiny_index_dir: Path) -> None:
    """DSSM_INLINE_LONE_QUERIES: a query alone on an idle service is computed on the event loop; the
    answers (every mode, filters, min_score, pages) are those of the compute thread's path."""
    bodies = [{"query": q, "top_k": 3 + i % 5, "mode": ["dense", "hybrid"][i % 2], "offset": i % 3,
               **({"filter": {"aspect": "causes"}} if i % 3 == 0 else {}), **({"min_score": 0.2} if i % 4 == 0 else {})}
              for i, q in enumerate(QUERIES)]
    answers = []
    for inline in (True, False):
        with TestClient(create_app(make_settings(tiny_model_dir, tiny_index_dir, inline_lone_queries=inline))) as c:
            assert c.get("/info").json()["service"]["inline_lone_queries"] is inline
            rs = [c.post("/search", json=b) for b in bodies]
            assert all(r.status_code == 200 for r in rs)
            answers.append([[(h["id"], round(h["score"], 5)) for h in r.json()["results"]] for r in rs])
    assert answers[0] == answers[1] and any(answers[0])
