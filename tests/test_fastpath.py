"""The /search fast path (app/fastpath.py): it answers valid requests exactly as the FastAPI route does,
and hands everything else to the route with the body intact. Real app, real tiny model and index."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

from app.fastpath import SearchFastPath
from app.main import create_app
from tests.test_api import make_settings

READ, WRITE = "r" * 32, "w" * 32


@pytest.fixture(scope="module")
def clients(tiny_model_dir: Path, tiny_index_dir: Path) -> Iterator[tuple[TestClient, TestClient]]:
    fast = create_app(make_settings(tiny_model_dir, tiny_index_dir))
    route = create_app(make_settings(tiny_model_dir, tiny_index_dir, search_fast_path=False))
    with TestClient(fast) as f, TestClient(route) as r:
        yield f, r


def _same(a: Any, b: Any) -> None:
    """Equal answers: status, content type, and the JSON with the timing left out."""
    assert (a.status_code, a.headers["content-type"]) == (b.status_code, b.headers["content-type"])
    ja, jb = a.json(), b.json()
    if isinstance(ja, dict):
        ja.pop("took_ms", None), jb.pop("took_ms", None)
    assert ja == jb


BODIES: list[Any] = [
    {"query": "how to treat serkatu syndrome"},
    {"query": "fever and pain", "top_k": 7, "offset": 3, "fields": ["text", "title"]},
    {"query": "What causes kalo disease?", "mode": "hybrid", "top_k": 20, "min_score": 0.1},
    {"query": "symptoms of fever", "fields": []},
    {"query": "symptoms of fever", "filter": {"aspect": "symptoms"}},
    # Refused by validation, the limits or the JSON itself: all answered by the route.
    {"query": "x", "top_k": 0}, {"query": "x", "top_k": 101}, {"query": "x", "top_k": "10"},
    {"query": "   "}, {"query": "x" * 5000}, {"query": "x", "unknown": 1}, {"query": "x", "offset": 95, "top_k": 10},
    {"query": "x", "min_score": None, "mode": "sparse"}, [], "query", None,
]


@pytest.mark.parametrize("body", BODIES)
def test_fast_path_answers_as_the_route(clients: tuple[TestClient, TestClient], body: Any) -> None:
    fast, route = clients
    _same(fast.post("/search", json=body), route.post("/search", json=body))


@pytest.mark.parametrize("raw,ctype", [
    (b'{"query": "fever"', "application/json"),              # truncated JSON
    (b'{"query": "\\ud800"}', "application/json"),           # an unpaired surrogate
    (b'{"query": NaN}', "application/json"),
    (b"\xff\xfe", "application/json"),                       # not UTF-8
    (b"[" * 100_000 + b"]" * 100_000, "application/json"),   # past json's recursion limit
    (b"", "application/json"),
    (b'{"query": "fever"}', "application/vnd.api+json"),     # JSON by its +json suffix: answered
    (b'{"query": "fever"}', "text/plain"),                   # 415 from the body limit, before either
    (b'{"query": "fever"}', "application/a/+json"),          # not JSON to FastAPI (two slashes): 415 too
])
def test_fast_path_hands_bad_bodies_to_the_route(clients: tuple[TestClient, TestClient], raw: bytes, ctype: str) -> None:
    fast, route = clients
    a = fast.post("/search", content=raw, headers={"Content-Type": ctype})
    _same(a, route.post("/search", content=raw, headers={"Content-Type": ctype}))
    assert a.status_code != 500


def test_fast_path_keeps_the_read_key(tiny_model_dir: Path, tiny_index_dir: Path) -> None:
    app = create_app(make_settings(tiny_model_dir, tiny_index_dir, read_key=READ, write_key=WRITE))
    with TestClient(app) as c:
        q = {"query": "fever"}
        assert c.post("/search", json=q).status_code == 401
        assert c.post("/search", json=q, headers={"Authorization": "Bearer nope"}).status_code == 403
        assert c.post("/search", json=q, headers={"Authorization": "Basic " + READ}).status_code == 401
        for key in (READ, WRITE):
            assert c.post("/search", json=q, headers={"Authorization": f"Bearer {key}"}).status_code == 200


async def _call(layer: SearchFastPath, app: Any, body: bytes, path: str = "/search") -> tuple[list[Message], list[bytes]]:
    """One request through the layer alone; returns what it sent and the bodies its inner app received."""
    sent: list[Message] = []
    got: list[bytes] = []
    scope = {"type": "http", "method": "POST", "path": path, "root_path": "", "app": app, "query_string": b"",
             "headers": [(b"content-type", b"application/json")]}

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(m: Message) -> None:
        sent.append(m)

    layer.app = _recording_inner(got)
    await layer(scope, receive, send)
    return sent, got


def _recording_inner(got: list[bytes]) -> Any:
    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        got.append((await receive())["body"])
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b"route"})
    return inner


def test_fast_path_answers_valid_requests_itself(clients: tuple[TestClient, TestClient]) -> None:
    # The layer on its own, over the running app's services: a valid request never reaches the inner
    # app (the route); an invalid one reaches it with its body unchanged; other paths pass through.
    fast, route = clients
    layer = SearchFastPath(lambda *a: None)  # type: ignore[arg-type]

    async def run() -> None:
        ok = json.dumps({"query": "fever and pain", "top_k": 3}).encode()
        sent, got = await _call(layer, fast.app, ok)
        assert got == [] and sent[0]["status"] == 200
        answer = json.loads(sent[1]["body"])
        expected = route.post("/search", content=ok, headers={"Content-Type": "application/json"}).json()
        assert [r["id"] for r in answer["results"]] == [r["id"] for r in expected["results"]]
        assert dict(sent[0]["headers"])[b"content-length"] == str(len(sent[1]["body"])).encode()
        bad = b'{"query": "fever", "top_k": -1}'
        sent, got = await _call(layer, fast.app, bad)
        assert got == [bad] and sent[0]["status"] == 299
        sent, got = await _call(layer, fast.app, ok, path="/embed")
        assert got == [ok]
        sent, got = await _call(layer, route.app, ok)  # switched off: the route answers
        assert got == [ok]

    assert fast.portal is not None
    fast.portal.call(run)  # on the app's own event loop (the micro-batcher lives there)
