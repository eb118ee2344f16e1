"""Readiness, reload without downtime, and the admin key, against the real app and real indexes."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.support import API_KEY
from tests.test_api import assert_error, make_settings

AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture
def admin_client(tiny_model_dir: Path, tiny_index_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(tiny_model_dir, tiny_index_dir, api_key=API_KEY))) as c:
        yield c


# ---- not ready --------------------------------------------------------------------------------------


def _not_ready_checks(c: TestClient, reason_part: str) -> None:
    assert c.get("/health").status_code == 200
    r = c.get("/ready")
    assert r.status_code == 503 and r.json()["ready"] is False
    assert reason_part in r.json()["reason"], r.json()
    assert_error(c.post("/search", json={"query": "fever"}), 503, "not_ready", reason_part)
    assert_error(c.get("/search", params={"q": "fever"}), 503, "not_ready")
    assert_error(c.post("/embed", json={"input": "fever"}), 503, "not_ready")
    assert_error(c.post("/v1/embeddings", json={"input": "fever", "model": "m"}), 503, "not_ready")
    info = c.get("/info").json()
    assert info["ready"] is False and reason_part in info["reason"] and info["model"] is None
    assert "dssm_ready 0.0" in c.get("/metrics").text
    assert c.get("/").status_code == 200  # the page still loads (and will show the 503 message)
    # bad input is still a 4xx, not a 503 or a crash
    assert_error(c.post("/search", json={"query": ""}), 422)


def test_missing_model_dir_starts_but_is_not_ready(tmp_path: Path, tiny_index_dir: Path) -> None:
    with TestClient(create_app(make_settings(tmp_path / "no-model", tiny_index_dir))) as c:
        _not_ready_checks(c, "no-model")


def test_missing_index_dir_starts_but_is_not_ready(tmp_path: Path, tiny_model_dir: Path) -> None:
    with TestClient(create_app(make_settings(tiny_model_dir, tmp_path / "no-index"))) as c:
        _not_ready_checks(c, "no-index")


def test_index_of_another_model_is_refused(other_model_dir: Path, tiny_index_dir: Path) -> None:
    with TestClient(create_app(make_settings(other_model_dir, tiny_index_dir))) as c:
        _not_ready_checks(c, "fingerprint")


def test_damaged_index_is_refused(tmp_path: Path, tiny_model_dir: Path, tiny_index_dir: Path) -> None:
    broken = tmp_path / "broken-index"
    shutil.copytree(tiny_index_dir, broken)
    with open(broken / "vectors.npy", "r+b") as f:
        f.truncate(100)
    with TestClient(create_app(make_settings(tiny_model_dir, broken))) as c:
        _not_ready_checks(c, "vectors.npy")


def test_reload_brings_a_not_ready_service_up(tmp_path: Path, tiny_model_dir: Path, tiny_index_dir: Path) -> None:
    with TestClient(create_app(make_settings(tmp_path / "later", tiny_index_dir, api_key=API_KEY))) as c:
        assert c.get("/ready").status_code == 503
        assert_error(c.post("/admin/reload", headers=AUTH), 422, "reload_failed", "stays not ready")
        r = c.post("/admin/reload", headers=AUTH, json={"model_dir": str(tiny_model_dir)})
        assert r.status_code == 200, r.text
        assert r.json()["previous"] == {"model": None, "index": None}
        assert c.get("/ready").status_code == 200
        assert c.post("/search", json={"query": "fever"}).status_code == 200


# ---- admin key --------------------------------------------------------------------------------------


def test_reload_is_404_without_a_configured_key(tiny_model_dir: Path, tiny_index_dir: Path) -> None:
    with TestClient(create_app(make_settings(tiny_model_dir, tiny_index_dir))) as c:
        assert_error(c.post("/admin/reload"), 404, "not_found")
        assert_error(c.post("/admin/reload", headers=AUTH), 404, "not_found")
    with TestClient(create_app(make_settings(tiny_model_dir, tiny_index_dir, api_key=""))) as c:
        assert_error(c.post("/admin/reload", headers={"Authorization": "Bearer "}), 404)


@pytest.mark.parametrize(
    "headers, status",
    [
        ({}, 401),
        ({"Authorization": API_KEY}, 401),  # no scheme
        ({"Authorization": f"Basic {API_KEY}"}, 401),
        ({"Authorization": "Bearer "}, 401),
        ({"Authorization": "Bearer wrong-key"}, 403),
        ({"Authorization": f"Bearer {API_KEY}x"}, 403),
        ({"Authorization": f"Bearer {API_KEY[:-1]}"}, 403),
    ],
)
def test_reload_needs_the_right_bearer_key(admin_client: TestClient, headers: dict[str, str], status: int) -> None:
    r = admin_client.post("/admin/reload", headers=headers)
    assert_error(r, status)
    if status == 401:
        assert r.headers.get("www-authenticate") == "Bearer"


# ---- reload -----------------------------------------------------------------------------------------


def test_reload_same_pair_and_another_index(admin_client: TestClient, tiny_index_dir: Path, small_index_dir: Path) -> None:
    c = admin_client
    r = c.post("/admin/reload", headers=AUTH)  # no body: the served folders again
    assert r.status_code == 200, r.text
    assert r.json()["index"] == "tiny-index" and r.json()["previous"]["index"] == "tiny-index"
    r = c.post("/admin/reload", headers=AUTH, json={"index_dir": str(small_index_dir)})
    assert r.status_code == 200, r.text
    assert r.json()["index"] == "small-index"
    info = c.get("/info", headers=AUTH).json()  # paths only with the admin key
    assert info["index"]["size"] == 60 and info["index"]["path"] == str(small_index_dir)
    assert "path" not in c.get("/info").json()["index"]
    res = c.post("/search", json={"query": "fever", "top_k": 100}).json()
    assert res["index"] == "small-index" and len(res["results"]) == 60
    assert "dssm_index_documents 60.0" in c.get("/metrics").text
    # a plain reload now re-reads the folder it switched to
    assert c.post("/admin/reload", headers=AUTH).json()["index"] == "small-index"
    assert 'dssm_reloads_total{result="ok"} 3.0' in c.get("/metrics").text


@pytest.mark.parametrize("which", ["missing", "other_model", "not_an_index"])
def test_failed_reload_keeps_serving_the_old_pair(
    admin_client: TestClient, tmp_path: Path, other_model_dir: Path, which: str
) -> None:
    c = admin_client
    body: dict[str, Any] = {
        "missing": {"index_dir": str(tmp_path / "nothing-here")},
        "other_model": {"model_dir": str(other_model_dir)},
        "not_an_index": {"index_dir": str(tmp_path)},
    }[which]
    before = c.post("/search", json={"query": "What causes kalo disease?"}).json()["results"]
    body_err = assert_error(c.post("/admin/reload", headers=AUTH, json=body), 422, "reload_failed")
    assert "previous model and index keep serving" in body_err["error"]["message"]
    assert c.get("/ready").status_code == 200
    after = c.post("/search", json={"query": "What causes kalo disease?"}).json()
    assert after["index"] == "tiny-index" and after["results"] == before
    assert 'dssm_reloads_total{result="failed"} 1.0' in c.get("/metrics").text


def test_reload_bad_body(admin_client: TestClient) -> None:
    assert_error(admin_client.post("/admin/reload", headers=AUTH, json={"index": "x"}), 422, "validation_error", "unknown field")
    assert_error(admin_client.post("/admin/reload", headers=AUTH, json={"index_dir": 3}), 422, "validation_error")
    r = admin_client.post("/admin/reload", headers={**AUTH, "content-type": "application/json"}, content=b"{")
    assert_error(r, 400, "invalid_json")
    for raw in (b'{"index_dir": "/tmp/\\ud800"}', b'{"index_dir": "a\\u0000b"}', b'{"model_dir": " "}'):
        r = admin_client.post("/admin/reload", headers={**AUTH, "content-type": "application/json"}, content=raw)
        assert_error(r, 422, "validation_error")
    assert admin_client.get("/ready").status_code == 200


# ---- reload under load, in process ------------------------------------------------------------------


def test_reload_while_queries_run_loses_none(tiny_model_dir: Path, tiny_index_dir: Path, small_index_dir: Path) -> None:
    """Queries in flight during swaps all succeed, each answered wholly by one pair or the other."""
    app = create_app(make_settings(tiny_model_dir, tiny_index_dir, api_key=API_KEY))

    async def scenario() -> tuple[list[httpx.Response], list[httpx.Response]]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t", timeout=60) as c:
                stop = asyncio.Event()
                answers: list[httpx.Response] = []

                async def querier(i: int) -> None:
                    while not stop.is_set():
                        answers.append(await c.post("/search", json={"query": f"symptoms {i}", "top_k": 100}))

                tasks = [asyncio.create_task(querier(i)) for i in range(8)]
                reloads = []
                for target in [small_index_dir, tiny_index_dir, small_index_dir, tiny_index_dir]:
                    await asyncio.sleep(0.05)
                    reloads.append(await c.post("/admin/reload", headers=AUTH, json={"index_dir": str(target)}))
                await asyncio.sleep(0.05)
                stop.set()
                await asyncio.gather(*tasks)
                return answers, reloads

    answers, reloads = asyncio.run(scenario())
    assert [r.status_code for r in reloads] == [200] * 4, [r.text for r in reloads]
    assert len(answers) > 20
    assert all(r.status_code == 200 for r in answers), [r.text for r in answers if r.status_code != 200][:3]
    sizes = {(r.json()["index"], len(r.json()["results"])) for r in answers}
    assert sizes <= {("tiny-index", 100), ("small-index", 60)}, sizes  # never a mix of two pairs


def test_concurrent_reloads_are_serialised(tiny_model_dir: Path, tiny_index_dir: Path) -> None:
    app = create_app(make_settings(tiny_model_dir, tiny_index_dir, api_key=API_KEY))

    async def scenario() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            rs = await asyncio.gather(*(c.post("/admin/reload", headers=AUTH) for _ in range(3)))
            return sorted(r.status_code for r in rs)

    codes = asyncio.run(scenario())
    assert codes[0] == 200 and set(codes) <= {200, 409}, codes


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DSSM_MODEL_DIR", str(tmp_path / "m"))
    monkeypatch.setenv("DSSM_INDEX_DIR", str(tmp_path / "i"))
    monkeypatch.setenv("DSSM_API_KEY", "k")
    monkeypatch.setenv("DSSM_MAX_QUERY_CHARS", "50")
    monkeypatch.setenv("DSSM_MICRO_BATCHING", "false")
    monkeypatch.setenv("DSSM_CORS_ORIGINS", "https://a.example, https://b.example")
    s = Settings()
    assert s.model_dir == tmp_path / "m" and s.index_dir == tmp_path / "i"
    assert s.api_key is not None and s.api_key.get_secret_value() == "k"
    assert s.max_query_chars == 50 and s.micro_batching is False
    assert s.cors_origins == ["https://a.example", "https://b.example"]
    assert "k" not in repr(s.api_key)


def test_damage_found_while_serving_is_a_clean_503(tmp_path: Path, tiny_model_dir: Path, tiny_index_dir: Path) -> None:
    """A store page first read by a query (here: the metadata index's pages, read only by a filter; the
    load reads the docs and meta tables whole, so damage there is refused at load, see
    tests/test_hostile.py) is damaged: that request gets a JSON 503 naming the file; other requests and
    the process carry on."""
    import sqlite3

    damaged = tmp_path / "damaged-index"
    shutil.copytree(tiny_index_dir, damaged)
    db = damaged / "docs.sqlite"
    con = sqlite3.connect(db)
    page = con.execute("PRAGMA page_size").fetchone()[0]
    roots = [r for (r,) in con.execute("SELECT rootpage FROM sqlite_master WHERE name = 'meta_field_value'")]
    con.close()
    with open(db, "r+b") as f:  # same size, so the load-time size check passes
        for root in roots:
            f.seek((root - 1) * page)
            f.write(b"\xde\xad" * (page // 2))
    with TestClient(create_app(make_settings(tiny_model_dir, damaged))) as c:
        assert c.get("/ready").status_code == 200
        r = c.post("/search", json={"query": "fever", "filter": {"aspect": "causes"}})
        assert_error(r, 503, "index_unavailable", "docs.sqlite")
        assert c.post("/search", json={"query": "fever"}).status_code == 200


def test_a_retired_pair_closes_only_after_its_last_lease(tiny_model_dir: Path, tiny_index_dir: Path) -> None:
    """The bookkeeping behind 'in-flight requests finish on the old pair', on a real loaded pair."""
    import numpy as np

    from app.backend import load_backend
    from app.errors import NotReadyError

    b = load_backend(tiny_model_dir, tiny_index_dir)
    v = b.encoder.encode(["fever"])
    with b.pinned():  # a request's lease
        with b.pinned():  # the compute thread's own lease
            b.retire()  # a reload swapped it out meanwhile
            assert not b.closed
            assert len(b.index.search(v, 3)[0]) == 3  # still fully usable
        assert not b.closed
    assert b.closed and b.leases == 0
    with pytest.raises(NotReadyError):
        b.acquire()
    assert np.isfinite(v).all()
