"""The document API of the live index, in-process (the real app, model and index; nothing mocked):
status codes, read-your-writes through /search (dense, hybrid, filter, min_score) and GET, the error
table for bad input, the keys (write, read, admin), /info's live counts and /admin/compact."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from tests.support import API_KEY
from tests.test_api import make_settings

WRITE_KEY = "test-write-key-abcdefghij"
READ_KEY = "test-read-key-0123456789"
W = {"Authorization": f"Bearer {WRITE_KEY}"}
A = {"Authorization": f"Bearer {API_KEY}"}
UNIQUE = "quibblethorp"


@pytest.fixture
def live_index(tiny_index_dir: Path, tmp_path: Path) -> Path:
    d = tmp_path / "live"
    shutil.copytree(tiny_index_dir, d)
    return d


@pytest.fixture
def client(tiny_model_dir: Path, live_index: Path) -> Iterator[TestClient]:
    settings = make_settings(tiny_model_dir, live_index, write_key=WRITE_KEY, api_key=API_KEY, max_batch=8)
    with TestClient(create_app(settings)) as c:
        yield c


def search(c: TestClient, query: str, **kw: Any) -> list[dict[str, Any]]:
    r = c.post("/search", json={"query": query, "top_k": 100, **kw})
    assert r.status_code == 200, r.text
    return r.json()["results"]


def err(r: Any) -> str:
    return str(r.json()["error"]["type"])


def test_put_get_update_delete_read_your_writes(client: TestClient) -> None:
    body = {"title": "Quibblethorp syndrome", "text": f"{UNIQUE} syndrome causes pain in the heart", "metadata": {"aspect": "live", "n": 1}}
    r = client.put("/documents/live-1", json=body, headers=W)
    assert r.status_code == 201 and r.json()["result"] == "created" and r.json()["seq"] == 1, r.text
    assert client.get("/documents/live-1").json() == {"id": "live-1", **body}
    for mode in ("dense", "hybrid"):
        assert "live-1" in [h["id"] for h in search(client, f"{UNIQUE} syndrome", mode=mode)], mode
        hits = search(client, f"{UNIQUE} syndrome", mode=mode, filter={"aspect": "live"})
        assert [h["id"] for h in hits] == ["live-1"], mode
    assert all(h["dense_score"] >= -1.0 for h in search(client, UNIQUE, min_score=-1.0))
    # Replace: 200, the new version only, everywhere.
    body2 = {"text": "a replacement about kidney stones", "metadata": {"aspect": "changed"}}
    r = client.put("/documents/live-1", json=body2, headers=W)
    assert r.status_code == 200 and r.json()["result"] == "replaced"
    for mode in ("dense", "hybrid"):
        hits = [h for h in search(client, f"{UNIQUE} kidney stones", mode=mode) if h["id"] == "live-1"]
        assert len(hits) <= 1 and all(h["text"] == body2["text"] for h in hits), mode
        assert search(client, UNIQUE, mode=mode, filter={"aspect": "live"}) == [], mode
    assert client.get("/documents/live-1").json()["title"] == ""
    # Delete: 200, then 404; gone from every mode.
    r = client.delete("/documents/live-1", headers=W)
    assert r.status_code == 200 and r.json()["deleted"] is True
    assert client.delete("/documents/live-1", headers=W).status_code == 404
    r = client.get("/documents/live-1")
    assert r.status_code == 404 and err(r) == "document_not_found"
    for mode in ("dense", "hybrid"):
        assert "live-1" not in [h["id"] for h in search(client, "kidney stones", mode=mode)], mode
        assert search(client, "kidney", mode=mode, filter={"aspect": "changed"}) == [], mode
    # An id with a slash and non-ASCII characters works through the path.
    assert client.put("/documents/a/b-é", json={"text": "slash id"}, headers=W).status_code == 201
    assert client.get("/documents/a/b-é").json()["id"] == "a/b-é"


def test_batch_upsert_and_delete(client: TestClient) -> None:
    docs = [{"id": f"b{i}", "text": f"batch document {i} about the lung", "metadata": {"aspect": "batch"}} for i in range(5)]
    r = client.post("/documents", json={"documents": docs}, headers=W)
    assert r.status_code == 200 and r.json()["created"] == 5 and r.json()["replaced"] == 0, r.text
    r = client.post("/documents", json={"documents": docs[:2] + [{"id": "d0", "text": "replaced d0"}]}, headers=W)
    assert r.json()["created"] == 0 and r.json()["replaced"] == 3
    assert len(search(client, "lung", filter={"aspect": "batch"})) == 5
    r = client.post("/documents/delete", json={"ids": ["b0", "b1", "nope", "d0"]}, headers=W)
    assert r.status_code == 200 and r.json()["deleted"] == 3
    assert sorted(h["id"] for h in search(client, "lung", filter={"aspect": "batch"})) == ["b2", "b3", "b4"]
    info = client.get("/info").json()["index"]["live"]
    assert info["enabled"] is True and info["documents"] == 180 + 5 - 3
    assert info["growing"] == 3 and info["deleted_not_compacted"] >= 1 and info["last_seq"] == 5 + 3 + 3
    assert client.get("/info").json()["index"]["size"] == 182


@pytest.mark.parametrize("path,body,status,kind,names", [
    ("/documents", {"documents": [{"id": f"x{i}", "text": "t"} for i in range(9)]}, 413, "batch_too_large", "limit is 8"),
    ("/documents", {"documents": [{"id": "same", "text": "a"}, {"id": "same", "text": "b"}]}, 422, "invalid_input", "'same'"),
    ("/documents", {"documents": [{"id": 7, "text": "a"}]}, 422, "validation_error", "id"),
    ("/documents", {"documents": [{"id": "", "text": "a"}]}, 422, "validation_error", "empty"),
    ("/documents", {"documents": [{"id": "x" * 513, "text": "a"}]}, 422, "validation_error", "512"),
    ("/documents", {"documents": [{"id": "ok", "title": "no text"}]}, 422, "validation_error", "text"),
    ("/documents", {"documents": [{"id": "ok", "text": "   "}]}, 422, "validation_error", "text"),
    ("/documents", {"documents": [{"id": "ok", "text": "a", "metadata": {"a": {"b": 1}}}]}, 422, "validation_error", "metadata"),
    ("/documents", {"documents": [{"id": "ok", "text": "a", "metadata": {"a": [1]}}]}, 422, "validation_error", "metadata"),
    ("/documents", {"documents": [{"id": "ok", "text": "a", "metadata": {"a": None}}]}, 422, "validation_error", "metadata"),
    ("/documents", {"documents": [{"id": "ok", "text": "a", "metadata": [1]}]}, 422, "validation_error", "metadata"),
    ("/documents", {"documents": []}, 422, "validation_error", "empty"),
    ("/documents/delete", {"ids": ["a", 3]}, 422, "validation_error", "ids"),
    ("/documents/delete", {"ids": [f"x{i}" for i in range(9)]}, 413, "batch_too_large", "limit is 8"),
])
def test_bad_input_is_a_clear_4xx_and_nothing_is_applied(client: TestClient, path: str, body: dict, status: int,
                                                         kind: str, names: str) -> None:
    before = client.get("/info").json()["index"]["live"]
    r = client.post(path, json=body, headers=W)
    assert r.status_code == status and err(r) == kind and names in r.json()["error"]["message"], r.text
    after = client.get("/info").json()["index"]["live"]
    assert after["last_seq"] == before["last_seq"] and after["documents"] == before["documents"]
    assert client.get("/documents/same").status_code == 404


def test_put_with_bad_id_or_body(client: TestClient) -> None:
    r = client.put("/documents/" + "y" * 513, json={"text": "a"}, headers=W)
    assert r.status_code == 422 and "512" in r.json()["error"]["message"]
    assert client.put("/documents/ok", json={"title": "t"}, headers=W).status_code == 422
    assert client.put("/documents/ok", json={"text": "a", "extra": 1}, headers=W).status_code == 422
    assert client.get("/documents/" + "y" * 513).status_code == 422
    # A body nested deeper than the JSON parser's recursion limit, and no body at all: a clear 4xx.
    deep = b"[" * 50_000 + b"]" * 50_000
    r = client.put("/documents/ok", content=deep, headers={**W, "content-type": "application/json"})
    assert r.status_code == 400 and err(r) == "invalid_json"
    r = client.post("/documents", content=b"", headers={**W, "content-type": "application/json"})
    assert r.status_code == 422 and err(r) == "validation_error"


def test_keys(client: TestClient, tiny_model_dir: Path, live_index: Path) -> None:
    assert client.put("/documents/k", json={"text": "a"}).status_code == 401
    r = client.put("/documents/k", json={"text": "a"}, headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 403
    assert client.put("/documents/k", json={"text": "a"}, headers=A).status_code == 403  # admin key ≠ write key
    assert client.post("/admin/compact", headers=W).status_code == 403
    # No write key: the write routes do not exist (404); the built index is served read-only as before.
    settings = make_settings(tiny_model_dir, live_index, read_key=READ_KEY)
    with TestClient(create_app(settings)) as c:
        for method, path in (("PUT", "/documents/k"), ("POST", "/documents"), ("DELETE", "/documents/k"),
                             ("POST", "/documents/delete")):
            r = c.request(method, path, json={"text": "a"}, headers={"Authorization": "Bearer x"})
            assert r.status_code == 404, (method, path, r.text)
        # The read key: reads need it (or the write key); without it 401, a wrong one 403.
        assert c.post("/search", json={"query": "fever"}).status_code == 401
        assert c.post("/search", json={"query": "fever"}, headers={"Authorization": "Bearer nope"}).status_code == 403
        assert c.post("/search", json={"query": "fever"}, headers={"Authorization": f"Bearer {READ_KEY}"}).status_code == 200
        assert c.get("/documents/d1", headers={"Authorization": f"Bearer {READ_KEY}"}).status_code == 200
        assert c.get("/documents/d1").status_code == 401
        assert c.get("/health").status_code == 200


def test_compact_keeps_results_and_a_full_disk_is_507(client: TestClient) -> None:
    docs = [{"id": f"c{i}", "text": f"compaction test {i} about the brain", "metadata": {"aspect": "c"}} for i in range(8)]
    assert client.post("/documents", json={"documents": docs}, headers=W).status_code == 200
    client.post("/documents/delete", json={"ids": ["d3", "d4"]}, headers=W)
    before = {m: search(client, "brain nerve muscle", mode=m) for m in ("dense", "hybrid")}
    r = client.post("/admin/compact", headers=A)
    assert r.status_code == 200 and r.json()["folded"] == 8 and r.json()["purged"] == 2, r.text
    after = {m: search(client, "brain nerve muscle", mode=m) for m in ("dense", "hybrid")}
    assert before == after
    live = client.get("/info").json()["index"]["live"]
    assert live["growing"] == 0 and live["deleted_not_compacted"] == 0
    # Disk full (the database capped at its size: SQLite answers SQLITE_FULL as on a full disk).
    idx = client.app.state.services.holder.current.index  # type: ignore[attr-defined]
    idx.limit_pages(0)
    big = [{"id": f"big{i}", "text": "blood " * 3000} for i in range(8)]
    r = client.post("/documents", json={"documents": big}, headers=W)
    assert r.status_code == 507 and err(r) == "insufficient_storage" and "not applied" in r.json()["error"]["message"]
    assert client.get("/documents/big0").status_code == 404
    assert client.get("/info").json()["index"]["live"]["last_seq"] == live["last_seq"]
    idx.limit_pages(None)
    assert client.post("/documents", json={"documents": big[:1]}, headers=W).status_code == 200


def test_writes_on_an_index_served_read_only_answer_409(tiny_model_dir: Path, live_index: Path) -> None:
    """An index that was made live, served by a process without... a live index always serves its writes;
    one whose folder cannot take live.sqlite is served read-only and writes get 409 with the reason."""
    settings = make_settings(tiny_model_dir, live_index, write_key=WRITE_KEY)
    app = create_app(settings)
    with TestClient(app) as c:
        backend = app.state.services.holder.current
        ro_index = backend.index
        # Stand-in for a read-only volume: the store refuses writes as SQLite does on one.
        ro_index._store.readonly = True
        r = c.put("/documents/z", json={"text": "a"}, headers=W)
        assert r.status_code == 409 and err(r) == "index_read_only" and "read-only" in r.json()["error"]["message"], r.text
        assert c.get("/documents/z").status_code == 404


def test_reload_to_a_re_encoded_index_catches_up_and_restart_keeps_writes(client: TestClient, tiny_model_dir: Path,
                                                                         live_index: Path, tmp_path: Path) -> None:
    from cli.build_index import main as build_main

    assert client.put("/documents/before", json={"text": "written before the re-encoding"}, headers=W).status_code == 201
    new = tmp_path / "re-encoded"
    assert build_main(["--model", str(tiny_model_dir), "--from-index", str(live_index), "--out", str(new), "--quiet"]) == 0
    # Writes made while the new index was being built: they are in the old index's log only.
    assert client.put("/documents/meanwhile", json={"text": "written meanwhile"}, headers=W).status_code == 201
    assert client.delete("/documents/before", headers=W).status_code == 200
    assert client.delete("/documents/d7", headers=W).status_code == 200
    r = client.post("/admin/reload", json={"index_dir": str(new)}, headers=A)
    assert r.status_code == 200, r.text
    assert client.get("/documents/meanwhile").status_code == 200  # caught up from the log before the swap
    assert client.get("/documents/before").status_code == 404
    assert client.get("/documents/d7").status_code == 404
    assert client.get("/info").json()["index"]["size"] == 180 + 1 - 1
    # A reload of the same index keeps every write too (the new pair replays the same log).
    assert client.post("/admin/reload", headers=A).status_code == 200
    assert client.get("/documents/meanwhile").status_code == 200


def test_the_key_is_checked_before_the_body_is_read(client: TestClient) -> None:
    for method, path in (("PUT", "/documents/k"), ("POST", "/documents"), ("POST", "/documents/delete")):
        for body in (b"{not json", b'{"documents": 5}', b"\xff\xfe"):
            r = client.request(method, path, content=body, headers={"content-type": "application/json"})
            assert r.status_code == 401 and err(r) == "unauthorized", (method, path, body, r.text)
            r = client.request(method, path, content=body, headers={"content-type": "application/json",
                                                                   "Authorization": "Bearer wrong"})
            assert r.status_code == 403, (method, path, body, r.text)
    r = client.post("/documents", content=b"{not json", headers={**W, "content-type": "application/json"})
    assert r.status_code == 400 and err(r) == "invalid_json"
    r = client.post("/documents", content=b"x", headers={**W, "content-type": "text/plain"})
    assert r.status_code == 415
