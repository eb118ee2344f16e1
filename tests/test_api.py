"""The service in-process: every endpoint and every error case, against the real app (lifespan run)
with a real tiny model and index (tests/conftest.py, tests/support). No mocks."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.routes.search import response_json
from app.schemas import RESULT_FIELDS, SearchResponse, SearchResult
from app.settings import Settings
from index import Hit, SearchIndex
from models.encoder import Encoder
from tests.support import read_corpus

# The fixtures (tiny_index_dir, small_index_dir, other_model_dir …) as a plugin: one session-wide copy.


def make_settings(model_dir: Path, index_dir: Path, **kw: Any) -> Settings:
    # Explicit values for everything the environment could set, so a developer's DSSM_* never leaks in.
    base: dict[str, Any] = dict(model_dir=model_dir, index_dir=index_dir, api_key=None, write_key=None,
                                read_key=None, torch_threads=1)
    base.update(kw)
    return Settings(_env_file=None, **base)


@pytest.fixture(scope="module")
def client(tiny_model_dir: Path, tiny_index_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(tiny_model_dir, tiny_index_dir))) as c:
        yield c


@pytest.fixture(scope="module")
def corpus(tiny_beir: Path) -> dict[str, dict[str, Any]]:
    return {d["_id"]: d for d in read_corpus(tiny_beir)}


def assert_error(r: Any, status: int, err_type: str | None = None, contains: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"type", "message"}, body
    assert body["error"]["message"]
    if err_type is not None:
        assert body["error"]["type"] == err_type, body
    if contains is not None:
        assert contains in body["error"]["message"], body
    return body


# ---- /search ---------------------------------------------------------------------------------------


def test_search_returns_ranked_results_of_the_real_index(client: TestClient, tiny_model_dir: Path, tiny_index_dir: Path) -> None:
    q = "What are the symptoms of kalo disease?"
    r = client.post("/search", json={"query": q, "top_k": 7})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"query", "results", "took_ms", "model", "index"}
    assert body["query"] == q and body["took_ms"] > 0
    assert body["model"].startswith("tiny-model@") and body["index"] == "tiny-index"
    res = body["results"]
    assert len(res) == 7
    assert set(res[0]) == {"id", "score", "dense_score", "title", "text", "metadata"}
    scores = [x["score"] for x in res]
    assert scores == sorted(scores, reverse=True)
    assert all(x["score"] == pytest.approx(x["dense_score"], abs=1e-6) for x in res)  # dense: score = cosine
    # The same as encoding and searching directly with the model and index.
    enc = Encoder.load(tiny_model_dir)
    idx = SearchIndex.load(tiny_index_dir, encoder=enc)
    try:
        direct = idx.search(enc.encode([q], tower="query"), 7)[0]
    finally:
        idx.close()
    assert [x["id"] for x in res] == [h.id for h in direct]
    assert [x["score"] for x in res] == pytest.approx([h.score for h in direct], abs=1e-6)


def test_search_finds_relevant_documents(client: TestClient, tiny_beir: Path) -> None:
    """Training queries of the synthetic data: the model learnt them, so their document ranks high."""
    queries = {}
    with open(tiny_beir / "queries.jsonl", encoding="utf-8") as f:
        for line in f:
            q = json.loads(line)
            queries[q["_id"]] = q["text"]
    qrels = [ln.split("\t") for ln in (tiny_beir / "qrels" / "train.tsv").read_text().splitlines()[1:]]
    hits = 0
    for qid, did, _ in qrels[:30]:
        res = client.post("/search", json={"query": queries[qid], "top_k": 10}).json()["results"]
        hits += did in [x["id"] for x in res]
    assert hits >= 20, f"only {hits}/30 relevant documents in the top 10"


def test_get_search_equals_post(client: TestClient) -> None:
    q = "how to treat serkatu syndrome"
    g = client.get("/search", params={"q": q, "top_k": 5})
    p = client.post("/search", json={"query": q, "top_k": 5})
    assert g.status_code == 200 and p.status_code == 200
    assert [x["id"] for x in g.json()["results"]] == [x["id"] for x in p.json()["results"]]
    assert len(g.json()["results"]) == 5
    # mode and min_score work from the URL too
    h = client.get("/search", params={"q": q, "mode": "hybrid", "min_score": -1.0})
    assert h.status_code == 200 and h.json()["results"]


@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_pages_are_disjoint_slices_of_one_ranking(client: TestClient, mode: str) -> None:
    q = "what are the symptoms of kalo disease"
    full = client.post("/search", json={"query": q, "top_k": 100, "mode": mode}).json()["results"]
    pages = [client.post("/search", json={"query": q, "top_k": 10, "offset": o, "mode": mode}).json()["results"]
             for o in range(0, 100, 10)]
    assert [x["id"] for p in pages for x in p] == [x["id"] for x in full]
    assert [x["score"] for p in pages for x in p] == pytest.approx([x["score"] for x in full], abs=1e-6)
    # the same from the URL, and a page past a filtered ranking's end is empty, not an error
    g = client.get("/search", params={"q": q, "top_k": 7, "offset": 3, "mode": mode}).json()["results"]
    assert [x["id"] for x in g] == [x["id"] for x in full[3:10]]
    r = client.post("/search", json={"query": q, "top_k": 10, "offset": 60, "mode": mode, "filter": {"aspect": "causes"}})
    assert r.status_code == 200 and r.json()["results"] == []
    # min_score then paging: a page of the hits that pass
    cut = full[25]["dense_score"] if mode == "dense" else sorted(x["dense_score"] for x in full)[50]
    passing = [x["id"] for x in client.post("/search", json={"query": q, "top_k": 100, "mode": mode,
                                                               "min_score": cut}).json()["results"]]
    paged = client.post("/search", json={"query": q, "top_k": 10, "offset": 5, "mode": mode, "min_score": cut}).json()
    assert [x["id"] for x in paged["results"]] == passing[5:15]


def test_fields_choose_what_results_carry(client: TestClient) -> None:
    q = "how to treat serkatu syndrome"
    full = client.post("/search", json={"query": q, "top_k": 5}).json()["results"]
    bare = client.post("/search", json={"query": q, "top_k": 5, "fields": []})
    assert bare.status_code == 200
    assert [set(x) for x in bare.json()["results"]] == [{"id", "score"}] * 5
    assert [(x["id"], x["score"]) for x in bare.json()["results"]] == [(x["id"], x["score"]) for x in full]
    assert len(bare.content) * 3 < len(client.post("/search", json={"query": q, "top_k": 5}).content)
    titled = client.post("/search", json={"query": q, "top_k": 5, "fields": ["title", "dense_score"]}).json()["results"]
    assert [set(x) for x in titled] == [{"id", "score", "title", "dense_score"}] * 5
    assert [x["title"] for x in titled] == [x["title"] for x in full]
    g = client.get("/search", params={"q": q, "top_k": 5, "fields": "metadata"}).json()["results"]
    assert [x["metadata"] for x in g] == [x["metadata"] for x in full] and set(g[0]) == {"id", "score", "metadata"}
    assert [set(x) for x in client.get("/search", params={"q": q, "fields": ""}).json()["results"]][0] == {"id", "score"}
    assert set(full[0]) == {"id", "score", "dense_score", "title", "text", "metadata"}  # default: everything


@pytest.mark.parametrize("fields", [RESULT_FIELDS, ("text", "title"), ("metadata",), ()])
def test_answer_json_is_the_schemas_json(fields: tuple[str, ...]) -> None:
    # The route writes the answer with orjson; pydantic's serialiser of SearchResponse is the reference,
    # byte for byte, whatever order the request named its fields in. An integer past 64 bits (orjson
    # refuses it) is written by the fallback.
    hits = [Hit("d1", 0.5, 0.25, "T\u00e9", "line\n\"quoted\" \u2028", {"a": 1, "b": True, "c": 1.5, "d": "x"}),
            Hit("d2", 1e-7, None, "", "", {"big": 2**70})]
    for got_hits in (hits[:1], hits):
        ref = SearchResponse(query="q \u00fc", took_ms=1.25, model="m", index="i", results=[
            SearchResult(id=h.id, score=h.score, **{f: getattr(h, f) for f in fields}) for h in got_hits
        ]).model_dump_json(exclude_unset=True).encode()
        assert response_json("q \u00fc", got_hits, fields, 1.25, "m", "i") == ref


def test_default_top_k_is_10(client: TestClient) -> None:
    assert len(client.post("/search", json={"query": "fever and pain"}).json()["results"]) == 10


def test_hybrid_ranks_by_fused_score_and_keeps_the_cosine(client: TestClient) -> None:
    q = "What causes kalo disease?"
    dense = {x["id"]: x["dense_score"] for x in client.post("/search", json={"query": q, "top_k": 100}).json()["results"]}
    r = client.post("/search", json={"query": q, "top_k": 10, "mode": "hybrid"})
    assert r.status_code == 200, r.text
    res = r.json()["results"]
    assert len(res) == 10
    scores = [x["score"] for x in res]
    assert scores == sorted(scores, reverse=True)
    # score is the fused score (not the cosine); dense_score is still the cosine of that document
    assert any(abs(x["score"] - x["dense_score"]) > 1e-3 for x in res)
    for x in res:
        if x["id"] in dense:
            assert x["dense_score"] == pytest.approx(dense[x["id"]], abs=1e-5)


@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_min_score_filters_on_the_cosine(client: TestClient, mode: str) -> None:
    q = "symptoms of fever"
    full = client.post("/search", json={"query": q, "top_k": 50, "mode": mode}).json()["results"]
    cut = sorted(x["dense_score"] for x in full)[len(full) // 2]
    res = client.post("/search", json={"query": q, "top_k": 50, "mode": mode, "min_score": cut}).json()["results"]
    assert res and all(x["dense_score"] >= cut for x in res)
    assert len(res) < len(full)
    assert client.post("/search", json={"query": q, "min_score": 1.5, "mode": mode}).json()["results"] == []


@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_filter_keeps_matching_documents_and_still_fills_top_k(client: TestClient, mode: str) -> None:
    q = "What are the symptoms of kalo disease?"
    r = client.post("/search", json={"query": q, "top_k": 20, "mode": mode, "filter": {"aspect": "treatment"}})
    assert r.status_code == 200, r.text
    res = r.json()["results"]
    assert len(res) == 20  # 60 treatment documents: enough to fill top_k
    assert all(x["metadata"]["aspect"] == "treatment" for x in res)
    # more than match → all that match (60), no others
    res = client.post("/search", json={"query": q, "top_k": 100, "mode": mode, "filter": {"aspect": "causes"}}).json()["results"]
    assert len(res) == 60 and {x["metadata"]["aspect"] for x in res} == {"causes"}
    # nothing matches → empty, not an error
    r = client.post("/search", json={"query": q, "filter": {"aspect": "prognosis"}})
    assert r.status_code == 200 and r.json()["results"] == []
    r = client.post("/search", json={"query": q, "filter": {"no_such_field": 1}})
    assert r.status_code == 200 and r.json()["results"] == []


def test_unicode_and_odd_queries_work(client: TestClient) -> None:
    for q in ["感冒了怎么办", "🤒 fever!!!", "a", "x" * 1000, "?!.,"]:
        r = client.post("/search", json={"query": q, "top_k": 3})
        assert r.status_code == 200, (q, r.text)


# ---- /search errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, status, err_type, contains",
    [
        ({"query": ""}, 422, "validation_error", "query"),
        ({"query": "   \n\t"}, 422, "validation_error", "whitespace"),
        ({"query": "x" * 1001}, 422, "input_too_long", "1000"),
        ({"query": "fever", "top_k": 0}, 422, "validation_error", "top_k"),
        ({"query": "fever", "top_k": 101}, 422, "top_k_out_of_range", "100"),
        ({"query": "fever", "top_k": -5}, 422, "validation_error", "top_k"),
        ({"query": "fever", "colour": "red"}, 422, "validation_error", "colour: unknown field"),
        ({"query": 5}, 422, "validation_error", "query"),
        ({"query": ["fever"]}, 422, "validation_error", "query"),
        ({"query": None}, 422, "validation_error", "query"),
        ({"query": "fever", "top_k": "10"}, 422, "validation_error", "top_k"),
        ({"query": "fever", "top_k": 2.5}, 422, "validation_error", "top_k"),
        ({"query": "fever", "top_k": True}, 422, "validation_error", "top_k"),
        ({"query": "fever", "mode": "sparse"}, 422, "validation_error", "mode"),
        ({"query": "fever", "min_score": "high"}, 422, "validation_error", "min_score"),
        ({"query": "fever", "filter": "aspect=causes"}, 422, "validation_error", "filter"),
        ({"query": "fever", "filter": {"aspect": ["causes"]}}, 422, "validation_error", "filter"),
        ({"query": "fever", "offset": -1}, 422, "validation_error", "offset"),
        ({"query": "fever", "offset": "10"}, 422, "validation_error", "offset"),
        ({"query": "fever", "offset": 95}, 422, "top_k_out_of_range", "offset + top_k must be at most 100"),
        ({"query": "fever", "offset": 90, "top_k": 20}, 422, "top_k_out_of_range", "90 + 20"),
        ({"query": "fever", "fields": ["body"]}, 422, "validation_error", "fields"),
        ({"query": "fever", "fields": "title"}, 422, "validation_error", "fields"),
        ({}, 422, "validation_error", "query"),
        ([], 422, "validation_error", None),
        ("fever", 422, "validation_error", None),
    ],
)
def test_search_bad_input_is_a_clear_4xx(client: TestClient, body: Any, status: int, err_type: str, contains: str | None) -> None:
    assert_error(client.post("/search", json=body), status, err_type, contains)


def test_query_at_the_limit_is_accepted(client: TestClient) -> None:
    assert client.post("/search", json={"query": "y" * 1000, "top_k": 100}).status_code == 200


@pytest.mark.parametrize(
    "raw, content_type, status, err_type",
    [
        (b'{"query": "fever",', "application/json", 400, "invalid_json"),
        (b"{query: fever}", "application/json", 400, "invalid_json"),
        (b"", "application/json", 422, None),
        (b'{"query": "caf\xe9"}', "application/json", 400, None),  # Latin-1 bytes, not UTF-8
        (b"\xff\xfe\x00\x01garbage", "application/json", 400, None),
        (b"query=fever", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        (b'{"query": "fever"}', "text/plain", 415, "unsupported_media_type"),
        (b'--b\r\nContent-Disposition: form-data; name="query"\r\n\r\nfever\r\n--b--\r\n',
         "multipart/form-data; boundary=b", 415, "unsupported_media_type"),
    ],
)
def test_malformed_bodies_are_a_clear_4xx(client: TestClient, raw: bytes, content_type: str, status: int, err_type: str | None) -> None:
    r = client.post("/search", content=raw, headers={"content-type": content_type})
    assert_error(r, status, err_type)


def test_get_search_bad_parameters(client: TestClient) -> None:
    assert_error(client.get("/search"), 422, "validation_error", "q")
    assert_error(client.get("/search", params={"q": "  "}), 422, "validation_error", "q")
    assert_error(client.get("/search", params={"q": "fever", "top_k": "many"}), 422, "validation_error", "top_k")
    assert_error(client.get("/search", params={"q": "fever", "top_k": 1000}), 422, "top_k_out_of_range")
    assert_error(client.get("/search", params={"q": "z" * 1001}), 422, "input_too_long")
    assert_error(client.get("/search", params={"q": "fever", "mode": "x"}), 422, "validation_error", "mode")


def test_body_over_the_size_limit_is_413(client: TestClient) -> None:
    big = json.dumps({"input": ["word " * 100] * 3000})  # ~1.5 MB
    assert_error(client.post("/embed", content=big, headers={"content-type": "application/json"}), 413, "body_too_large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is enforced while reading
        for _ in range(40):
            yield b"x" * 32768

    assert_error(client.post("/search", content=chunks(), headers={"content-type": "application/json"}), 413, "body_too_large")


def test_unknown_route_and_method_are_json(client: TestClient) -> None:
    assert_error(client.get("/nope"), 404, "not_found")
    assert_error(client.put("/search", json={"query": "x"}), 405, "method_not_allowed")


# ---- /embed ------------------------------------------------------------------------------------------


def test_embed_single_and_list(client: TestClient) -> None:
    r = client.post("/embed", json={"input": "fever and pain"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "list" and body["tower"] == "query" and body["dim"] == 16
    assert body["model"].startswith("tiny-model@")
    (item,) = body["data"]
    assert item["object"] == "embedding" and item["index"] == 0
    assert np.linalg.norm(item["embedding"]) == pytest.approx(1.0, abs=1e-5)
    texts = ["fever", "a much longer text about the treatment of kalo disease", "感冒"]
    body = client.post("/embed", json={"input": texts}).json()
    assert [d["index"] for d in body["data"]] == [0, 1, 2]
    vecs = np.array([d["embedding"] for d in body["data"]])
    assert vecs.shape == (3, 16)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    # each text's vector does not depend on the batch it came in
    one = client.post("/embed", json={"input": texts[1]}).json()["data"][0]["embedding"]
    np.testing.assert_allclose(vecs[1], one, atol=1e-6)


def test_embed_query_vector_scores_like_search(client: TestClient) -> None:
    """The cosine of /embed's query vector with a result's document vector is the result's score."""
    q = "How to treat kalo disease?"
    res = client.post("/search", json={"query": q, "top_k": 3}).json()["results"]
    qv = np.array(client.post("/embed", json={"input": q}).json()["data"][0]["embedding"])
    assert res and np.isfinite(qv).all()
    assert float(np.linalg.norm(qv)) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize(
    "body, status, err_type, contains",
    [
        ({"input": ""}, 422, "validation_error", "input"),
        ({"input": "  "}, 422, "validation_error", "whitespace"),
        ({"input": []}, 422, "validation_error", "empty list"),
        ({"input": ["ok", " "]}, 422, "validation_error", "item 1"),
        ({"input": "x" * 1001}, 422, "input_too_long", None),
        ({"input": ["ok", "x" * 1001]}, 422, "input_too_long", "input[1]"),
        ({"input": ["t"] * 257}, 413, "batch_too_large", "256"),
        ({"input": 42}, 422, "validation_error", "input"),
        ({"input": [1, 2]}, 422, "validation_error", "input"),
        ({"input": "ok", "tower": "both"}, 422, "validation_error", "tower"),
        ({"input": "ok", "model": "x"}, 422, "validation_error", "model: unknown field"),
        ({"text": "ok"}, 422, "validation_error", None),
    ],
)
def test_embed_bad_input(client: TestClient, body: Any, status: int, err_type: str, contains: str | None) -> None:
    assert_error(client.post("/embed", json=body), status, err_type, contains)


def test_embed_batch_at_the_limit_is_accepted(client: TestClient) -> None:
    r = client.post("/embed", json={"input": [f"text {i}" for i in range(256)]})
    assert r.status_code == 200 and len(r.json()["data"]) == 256


# ---- /v1/embeddings ----------------------------------------------------------------------------------


def test_openai_embeddings_float_and_base64(client: TestClient) -> None:
    texts = ["fever", "What causes kalo disease?"]
    r = client.post("/v1/embeddings", json={"input": texts, "model": "text-embedding-3-small"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "list" and body["model"].startswith("tiny-model@")  # ours echoed
    assert body["usage"] == {"prompt_tokens": 5, "total_tokens": 5}
    floats = np.array([d["embedding"] for d in body["data"]], dtype=np.float32)
    b64 = client.post("/v1/embeddings", json={"input": texts, "model": "m", "encoding_format": "base64"}).json()
    decoded = np.array([np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in b64["data"]])
    np.testing.assert_array_equal(decoded, floats)
    # same vectors as /embed with the query tower
    mine = np.array([d["embedding"] for d in client.post("/embed", json={"input": texts}).json()["data"]])
    np.testing.assert_allclose(floats, mine, atol=1e-6)
    assert client.post("/v1/embeddings", json={"input": "x", "dimensions": 16}).status_code == 200


def test_openai_python_client_works_unchanged(client: TestClient) -> None:
    openai = pytest.importorskip("openai")
    oa = openai.OpenAI(api_key="unused", base_url=str(client.base_url) + "/v1", http_client=client, max_retries=0)
    res = oa.embeddings.create(model="text-embedding-ada-002", input=["fever and pain", "感冒"])  # base64 by default
    assert len(res.data) == 2 and len(res.data[0].embedding) == 16
    assert res.model.startswith("tiny-model@")
    want = client.post("/embed", json={"input": ["fever and pain", "感冒"]}).json()["data"]
    np.testing.assert_allclose(res.data[0].embedding, want[0]["embedding"], atol=1e-6)
    np.testing.assert_allclose(res.data[1].embedding, want[1]["embedding"], atol=1e-6)


@pytest.mark.parametrize(
    "body, status, err_type",
    [
        # The same mistakes give the same type as on /embed (issue 9, "one error path").
        ({"input": [1, 2, 3], "model": "m"}, 422, "validation_error"),
        ({"input": [[1, 2]], "model": "m"}, 422, "validation_error"),
        ({"input": [], "model": "m"}, 422, "validation_error"),
        ({"input": " ", "model": "m"}, 422, "validation_error"),
        ({"input": ["ok", " "], "model": "m"}, 422, "validation_error"),
        ({"input": "x", "dimensions": 64}, 422, "invalid_input"),
        ({"input": "x", "encoding_format": "int8"}, 422, "validation_error"),
        ({"input": "x", "temperature": 1}, 422, "validation_error"),
        ({"input": ["t"] * 257}, 413, "batch_too_large"),
        ({"input": "x" * 1001}, 422, "input_too_long"),
    ],
)
def test_openai_embeddings_bad_input(client: TestClient, body: Any, status: int, err_type: str) -> None:
    assert_error(client.post("/v1/embeddings", json=body), status, err_type)


# ---- operations ------------------------------------------------------------------------------------


def test_health_ready_info(client: TestClient, tiny_model_dir: Path, tiny_index_dir: Path) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    r = client.get("/ready")
    assert r.status_code == 200 and r.json()["ready"] is True and r.json()["index"] == "tiny-index"
    info = client.get("/info").json()
    enc = Encoder.load(tiny_model_dir)
    assert info["ready"] is True
    assert info["model"]["fingerprint"] == enc.fingerprint and info["model"]["dim"] == 16
    assert info["model"]["lang"] == "en"
    assert info["index"]["type"] == "flat" and info["index"]["size"] == 180
    assert info["index"]["built_at"]
    # Paths only with the admin key (none configured here): the rest of /info as before.
    assert "path" not in info["index"] and "path" not in info["model"]
    assert str(tiny_index_dir) not in json.dumps(info) and str(tiny_model_dir) not in json.dumps(info)
    assert {"python", "torch", "faiss", "fastapi"} <= set(info["versions"])
    assert info["service"]["limits"]["max_query_chars"] == 1000


def test_metrics(client: TestClient) -> None:
    client.post("/search", json={"query": "metrics please"})
    client.post("/embed", json={"input": "metrics please", "tower": "document"})
    text = client.get("/metrics").text
    assert 'http_requests_total{handler="/search",method="POST",status="2xx"}' in text
    assert "http_request_duration_seconds_bucket" in text
    # Labels stay bounded: a route's template, "none" for no route, "other" for an invented method.
    # A token no metric value can contain (a digit run like "12345" once turned up inside a float).
    client.get("/no/such/path/qzxv-path")
    client.request("BREW", "/search")
    client.get("/documents/some-id-42")
    text = client.get("/metrics").text
    assert 'http_requests_total{handler="none",method="GET",status="4xx"}' in text
    assert 'method="other"' in text and "BREW" not in text and "qzxv-path" not in text
    assert 'handler="/documents/{doc_id:path}"' in text and "some-id-42" not in text
    assert 'handler="/metrics"' not in text
    assert 'dssm_encode_seconds_count{tower="query"}' in text
    assert 'dssm_encode_seconds_count{tower="document"}' in text
    assert 'dssm_search_seconds_count{mode="dense"}' in text
    assert "dssm_index_documents 180.0" in text
    assert "dssm_ready 1.0" in text


def test_docs_and_openapi(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    for path in ("/search", "/embed", "/v1/embeddings", "/health", "/ready", "/info", "/admin/reload"):
        assert path in spec["paths"], path


def test_search_page_and_static_files(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert 'id="q"' in r.text and "/static/app.js" in r.text
    js = client.get("/static/app.js")
    assert js.status_code == 200 and "/search?" in js.text
    assert client.get("/static/style.css").status_code == 200


def test_request_id_is_echoed_or_made(client: TestClient) -> None:
    r = client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    made = client.get("/health").headers["x-request-id"]
    assert len(made) == 32
    bad = client.get("/health", headers={"X-Request-ID": "no spaces <allowed>"}).headers["x-request-id"]
    assert bad != "no spaces <allowed>" and len(bad) == 32
    # error responses carry it too
    assert client.post("/search", json={}, headers={"X-Request-ID": "err-1"}).headers["x-request-id"] == "err-1"


def test_embed_document_tower_gives_what_the_index_holds(
    client: TestClient, tiny_index_dir: Path, corpus: dict[str, dict[str, Any]]
) -> None:
    """Same text (title + " " + text), tower, batching and normalisation as the index build. Equal to
    float32 rounding: CPU matrix kernels round differently for different batch shapes (the index
    encoded 180 documents at once), so a last-bit difference (~3e-8) is possible, nothing more."""
    held = np.load(tiny_index_dir / "vectors.npy")  # row i = document i of the corpus, as indexed
    docs = list(corpus.values())
    picks = [0, 7, 99, 179]
    texts = [f"{docs[i]['title']} {docs[i]['text']}" for i in picks]
    r = client.post("/embed", json={"input": texts, "tower": "document"})
    assert r.status_code == 200 and r.json()["tower"] == "document"
    got = np.array([d["embedding"] for d in r.json()["data"]], dtype=np.float32)
    np.testing.assert_allclose(got, held[picks], rtol=0, atol=2e-7)
    one = client.post("/embed", json={"input": texts[2], "tower": "document"}).json()["data"][0]["embedding"]
    np.testing.assert_allclose(np.array(one, dtype=np.float32), held[99], rtol=0, atol=2e-7)
    # and not what another document holds
    assert np.abs(got[0] - held[1]).max() > 1e-3


@pytest.mark.parametrize(
    "path, raw",
    [
        ("/search", b'{"query": "fever \\ud800"}'),
        ("/search", b'{"query": "fever", "filter": {"aspect": "\\udfff"}}'),
        ("/search", b'{"query": "fever", "filter": {"\\ud800": "x"}}'),
        ("/embed", b'{"input": "\\udfff"}'),
        ("/embed", b'{"input": ["ok", "\\ud800"]}'),
        ("/v1/embeddings", b'{"input": "\\ud800", "model": "m"}'),
    ],
)
def test_unpaired_surrogates_are_a_422_not_a_500(client: TestClient, path: str, raw: bytes) -> None:
    """JSON can escape a lone surrogate; it is not text the featurizer, SQLite or a response can carry."""
    r = client.post(path, content=raw, headers={"content-type": "application/json"})
    assert_error(r, 422, "validation_error", "surrogate")


def test_odd_but_valid_json_numbers(client: TestClient) -> None:
    # NaN / ±Infinity (which Python's JSON parser takes, and 1e400 becomes) would silently match
    # nothing or everything: refused, naming the field.
    for raw, field in ((b'{"query": "x", "min_score": NaN}', "min_score"),
                       (b'{"query": "x", "min_score": -Infinity}', "min_score"),
                       (b'{"query": "x", "min_score": 1e400}', "min_score"),
                       (b'{"query": "x", "filter": {"n": 1e400}}', "filter"),
                       (b'{"query": "x", "filter": {"n": NaN}}', "filter")):
        r = client.post("/search", content=raw, headers={"content-type": "application/json"})
        assert_error(r, 422, "validation_error", field)
    assert client.post("/search", content=b'{"query": "x", "min_score": -1e300}',
                       headers={"content-type": "application/json"}).status_code == 200
    deep = b"[" * 50_000 + b"]" * 50_000  # nesting deeper than the JSON parser's recursion limit
    assert_error(client.post("/search", content=deep, headers={"content-type": "application/json"}), 400)


def test_info_shows_the_familiar_terms_by_size_and_hybrid_applies_them(
    tiny_model_dir: Path, tiny_beir: Path, tmp_path: Path
) -> None:
    """A model whose fusion carries the familiar terms (index/familiar.py), served: /info names the sketch
    without its bits (with and without the admin key), and a hybrid query half of new terms ranks as the
    weighted fusion at ½ (the index's own answer for the same settings)."""
    import shutil

    from index import build_index
    from index.familiar import sketch
    from index.lexical import tokenize
    from models.data import load_beir
    from models.io import write_fusion

    data = load_beir(tiny_beir)
    fam = sketch(tokenize([data.queries[q] for q in data.split("train")], "en"), min_count=1)
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    write_fusion(model, {"method": "weighted", "weight": 1.0, "familiar": fam, "chosen_on": "dev"})
    build_index(Encoder.load(model), tiny_beir / "corpus.jsonl", tmp_path / "index", show_progress=False)
    with TestClient(create_app(make_settings(model, tmp_path / "index", api_key="k" * 32))) as c:
        for headers in ({}, {"Authorization": "Bearer " + "k" * 32}):
            info = c.get("/info", headers=headers).json()["index"]
            for shown in (info["fusion"]["familiar"], info.get("manifest", {}).get("fusion", {}).get("familiar")):
                if shown is not None:
                    assert "bits" not in shown and shown["terms"] == fam["terms"] and shown["bytes"] > 0
            assert fam["bits"] not in json.dumps(info)
        known = tokenize([data.queries[next(iter(data.split("train")))]], "en")[0][0]
        q = f"{known} {data.corpus.texts[0].split()[-1]}"
        got = [h["id"] for h in c.post("/search", json={"query": q, "mode": "hybrid"}).json()["results"]]
        enc = Encoder.load(model)
        with SearchIndex.load(tmp_path / "index", enc) as idx:
            v = enc.encode([q])
            half = [h.id for h in idx.search_hybrid([q], v, 10, fusion={"method": "weighted", "weight": 0.5})[0]]
            full = [h.id for h in idx.search_hybrid([q], v, 10, fusion={"method": "weighted", "weight": 1.0})[0]]
        assert got == half and half != full
