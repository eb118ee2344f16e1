"""Hostile clients and damaged inputs (issue 13), each class tried around and far past its limit.

In process (the real app, model and index): filter limits and the byte-bounded filter cache, min_score
before the top_k cut, non-finite and non-JSON numbers, reloads of damaged models and indexes, 401
before the body, HEAD, 415, /info paths. Real server processes (``scripts/serve.py`` on 127.0.0.1) and
raw sockets: header size limit, header/body/keep-alive timeouts, abandoned bodies counted as 499, and
the hostile runner (``bench/hostile.py --quick``) over every class.
"""

from __future__ import annotations

import json
import shutil
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

import index.search as index_search
from app.main import create_app
from bench import hostile
from bench.hostile import manifest_damage
from index import IndexLoadError, SearchIndex
from models.encoder import Encoder
from models.io import ModelDirError, load_model
from tests.support import API_KEY, ServerProcess, start_serve_script, start_uvicorn
from tests.test_api import assert_error, make_settings

AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture(scope="module")
def client(tiny_model_dir: Path, tiny_index_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(tiny_model_dir, tiny_index_dir, api_key=API_KEY))) as c:
        yield c


# ---- row 2: filter size limits, cache bounded in bytes -------------------------------------------------


@pytest.mark.parametrize("fields, status", [(1, 200), (31, 200), (32, 200), (33, 422), (1000, 422), (50_000, 422)])
def test_filter_field_count_limit(client: TestClient, fields: int, status: int) -> None:
    r = client.post("/search", json={"query": "fever", "filter": {f"k{i}": i for i in range(fields)}})
    if status == 200:
        assert r.status_code == 200, r.text
    else:
        assert_error(r, 422, "filter_too_large", "32")


@pytest.mark.parametrize("key_len, value_len, status", [(256, 256, 200), (257, 1, 422), (1, 257, 422), (1, 100_000, 422)])
def test_filter_name_and_value_length_limit(client: TestClient, key_len: int, value_len: int, status: int) -> None:
    r = client.post("/search", json={"query": "fever", "filter": {"k" * key_len: "v" * value_len}})
    if status == 200:
        assert r.status_code == 200, r.text
    else:
        assert_error(r, 422, "filter_too_large", "256")


def test_filter_cache_is_bounded_in_bytes(tiny_model_dir: Path, tiny_index_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    enc = Encoder.load(tiny_model_dir)
    with SearchIndex.load(tiny_index_dir, encoder=enc) as idx:
        v = enc.encode(["fever"], tower="query")
        one = index_search._entry_bytes((("k0", '"' + "v" * 200 + '"'),), index_search.Allowed.of(np.arange(0), idx.size))
        budget = one * 5  # room for about 5 entries of this size
        monkeypatch.setattr(index_search, "_FILTER_CACHE_BYTES", budget)
        for i in range(40):
            idx.search(v, 3, filter={f"k{i}": "v" * 200})
            assert idx._filter_bytes <= budget
        assert 0 < len(idx._filters) <= 5
        assert idx._filter_bytes == sum(index_search._entry_bytes(k, a) for k, a in idx._filters.items())
        # an entry larger than a quarter of the budget is answered but never kept
        monkeypatch.setattr(index_search, "_FILTER_CACHE_BYTES", 64)
        before = dict(idx._filters)
        assert idx.search(v, 3, filter={"aspect": "causes"}) is not None
        assert dict(idx._filters).keys() == before.keys()


# ---- row 3: min_score before the top_k cut ------------------------------------------------------------


def test_min_score_is_applied_before_the_top_k_cut_in_both_modes(client: TestClient, tiny_beir: Path) -> None:
    queries = [json.loads(line)["text"] for line in (tiny_beir / "queries.jsonl").read_text().splitlines()[:15]]
    pairs = deep = 0
    for mode in ("hybrid", "dense"):
        for q in queries:
            full = client.post("/search", json={"query": q, "mode": mode, "top_k": 100}).json()["results"]
            cos = sorted(h["dense_score"] for h in full)
            for th in (cos[len(cos) // 2], cos[int(len(cos) * 0.8)], cos[-5]):
                passing = [h["id"] for h in full if h["dense_score"] >= th]
                got = client.post("/search", json={"query": q, "mode": mode, "top_k": 10, "min_score": th}).json()
                assert [h["id"] for h in got["results"]] == passing[:10], (mode, q, th)
                assert all(h["dense_score"] >= th for h in got["results"])
                pairs += 1
                # A case the old order (cut, then filter) got wrong: a passing hit below rank 10.
                deep += mode == "hybrid" and any(h["dense_score"] >= th for h in full[10:]) and \
                    any(h["dense_score"] < th for h in full[:10])
    assert pairs == 90 and deep > 0, deep  # the test covers the case that used to fail


# ---- row 4: non-finite and non-JSON numbers -------------------------------------------------------------


@pytest.mark.parametrize("params", [
    {"min_score": "nan"}, {"min_score": "NaN"}, {"min_score": "inf"}, {"min_score": "-Infinity"},
    {"min_score": "1_0"}, {"min_score": "1e999"}, {"min_score": " 0.5"}, {"min_score": "0x10"},
    {"top_k": "1_0"}, {"top_k": "+5"}, {"top_k": " 5"}, {"top_k": "5.0"}, {"top_k": "٥"},
])
def test_url_numbers_must_be_json_numbers(client: TestClient, params: dict[str, str]) -> None:
    assert_error(client.get("/search", params={"q": "fever", **params}), 422, "validation_error", next(iter(params)))


def test_url_numbers_that_are_json_numbers_work(client: TestClient) -> None:
    for params in ({"min_score": "0.5"}, {"min_score": "-1e-3"}, {"min_score": "0"}, {"top_k": "5"}, {"top_k": "100"}):
        assert client.get("/search", params={"q": "fever", **params}).status_code == 200, params
    assert len(client.get("/search", params={"q": "fever", "top_k": "7"}).json()["results"]) == 7


# ---- row 5 and 6: reloads of damaged models and indexes -------------------------------------------------

MODEL_DAMAGES = {  # name: (damage, what the message must name)
    "config []": ("config.json", lambda c: [], "JSON object"),
    "config null": ("config.json", lambda c: None, "JSON object"),
    'config "x"': ("config.json", lambda c: "x", "JSON object"),
    "vocab []": ("vocab.json", lambda c: [], "vocab.json"),
    "vocab ngrams not strings": ("vocab.json", lambda c: {**c, "ngrams": [1, 2]}, "ngrams"),
    "embed_dim -1": ("config.json", lambda c: {**c, "embed_dim": -1}, "embed_dim"),
    'embed_dim "abc"': ("config.json", lambda c: {**c, "embed_dim": "abc"}, "embed_dim"),
    "embed_dim 2.5": ("config.json", lambda c: {**c, "embed_dim": 2.5}, "embed_dim"),
    "embed_dim true": ("config.json", lambda c: {**c, "embed_dim": True}, "embed_dim"),
    "num_buckets 1e12": ("config.json", lambda c: {**c, "num_buckets": 10**12}, "num_buckets"),
    "hidden_dim 0": ("config.json", lambda c: {**c, "hidden_dim": 0}, "hidden_dim"),
    "out_dim 0": ("config.json", lambda c: {**c, "out_dim": 0}, "weights do not match"),
    "lang xx": ("config.json", lambda c: {**c, "lang": "xx"}, "lang"),
    "gamma NaN": ("config.json", lambda c: {**c, "gamma": float("nan")}, "gamma"),
    "embed_dim 4096 (more than the weights hold)": ("config.json", lambda c: {**c, "embed_dim": 4096}, "asks for"),
}


def _damaged_model(src: Path, dst: Path, name: str) -> Path:
    shutil.copytree(src, dst)
    fname, edit, _ = MODEL_DAMAGES[name]
    data = json.loads((dst / fname).read_text(encoding="utf-8"))
    (dst / fname).write_text(json.dumps(edit(data)), encoding="utf-8")
    return dst


@pytest.mark.parametrize("name", list(MODEL_DAMAGES))
def test_damaged_model_is_refused_naming_the_field(tiny_model_dir: Path, tmp_path: Path, name: str) -> None:
    d = _damaged_model(tiny_model_dir, tmp_path / "m", name)
    with pytest.raises(ModelDirError, match=MODEL_DAMAGES[name][2]):
        load_model(d)


def test_reload_of_damaged_models_is_422_and_counted(client: TestClient, tiny_model_dir: Path, tmp_path: Path) -> None:
    text = client.get("/metrics").text
    failed0 = _counter(text, 'dssm_reloads_total{result="failed"}')
    for i, name in enumerate(MODEL_DAMAGES):
        d = _damaged_model(tiny_model_dir, tmp_path / f"m{i}", name)
        r = client.post("/admin/reload", headers=AUTH, json={"model_dir": str(d)})
        assert_error(r, 422, "reload_failed", MODEL_DAMAGES[name][2])
    assert _counter(client.get("/metrics").text, 'dssm_reloads_total{result="failed"}') == failed0 + len(MODEL_DAMAGES)
    assert client.post("/search", json={"query": "fever"}).json()["index"] == "tiny-index"  # the old pair serves


def _counter(text: str, sample: str) -> float:
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[-1])
    return 0.0


INDEX_DAMAGES: dict[str, tuple[Callable[[Path], None], str]] = {
    name: (damage, why) for (name, damage), why in zip(hostile._index_damages().items(), [
        "fusion.depth", "fusion.depth", "index.search.efSearch", "metadata must be a JSON object",
        "non-finite", "document rows outside", "non-finite scores", "indptr"], strict=True)
}


def _more_index_damages() -> dict[str, tuple[Callable[[Path], None], str]]:
    manifest = manifest_damage

    def sql(stmt: str) -> Callable[[Path], None]:
        def damage(d: Path) -> None:
            con = sqlite3.connect(d / "docs.sqlite")
            con.execute(stmt)
            con.commit()
            con.close()
            hostile._refresh_manifest(d)
        return damage

    def garble_table(name: str) -> Callable[[Path], None]:
        def damage(d: Path) -> None:  # same size, so only reading the page finds it
            con = sqlite3.connect(d / "docs.sqlite")
            page = con.execute("PRAGMA page_size").fetchone()[0]
            (root,) = con.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (name,)).fetchone()
            con.close()
            with open(d / "docs.sqlite", "r+b") as f:
                f.seek((root - 1) * page)
                f.write(b"\xde\xad" * (page // 2))
        return damage

    return {
        "meta table page garbled": (garble_table("meta"), "docs.sqlite"),
        "docs table page garbled": (garble_table("docs"), "docs.sqlite"),
        "dim 0": (manifest(lambda m: m.update(dim=0)), "dim"),
        'documents "many"': (manifest(lambda m: m.update(documents="many")), "documents"),
        "lang null": (manifest(lambda m: m["model"].update(lang=None)), "model.lang"),
        "bm25.dir ../x": (manifest(lambda m: m["bm25"].update(dir="../x")), "bm25.dir"),
        "fusion.k inf": (manifest(lambda m: m["fusion"].update(k=float("inf"))), "fusion"),
        "title a blob": (sql("UPDATE docs SET title = X'00FF' WHERE row = 3"), "must be text"),
        "metadata not JSON": (sql("UPDATE docs SET metadata = '{bad' WHERE row = 1"), "metadata"),
        "filter row past the corpus": (sql("UPDATE meta SET row = 99999 WHERE rowid = 1"), "metadata index"),
    }


ALL_INDEX_DAMAGES = {**INDEX_DAMAGES, **_more_index_damages()}


@pytest.mark.parametrize("name", list(ALL_INDEX_DAMAGES))
def test_damaged_index_is_refused_at_load(tiny_model_dir: Path, tiny_index_dir: Path, tmp_path: Path, name: str) -> None:
    d = tmp_path / "idx"
    shutil.copytree(tiny_index_dir, d)
    damage, why = ALL_INDEX_DAMAGES[name]
    damage(d)
    with pytest.raises(IndexLoadError, match=why):
        SearchIndex.load(d, encoder=Encoder.load(tiny_model_dir)).close()


def test_reload_of_damaged_indexes_is_422_and_the_old_pair_serves(client: TestClient, tiny_index_dir: Path, tmp_path: Path) -> None:
    failed0 = _counter(client.get("/metrics").text, 'dssm_reloads_total{result="failed"}')
    for i, (name, (damage, why)) in enumerate(ALL_INDEX_DAMAGES.items()):
        d = tmp_path / f"idx{i}"
        shutil.copytree(tiny_index_dir, d)
        damage(d)
        assert_error(client.post("/admin/reload", headers=AUTH, json={"index_dir": str(d)}), 422, "reload_failed", why)
        for mode in ("dense", "hybrid"):
            r = client.post("/search", json={"query": "fever", "mode": mode, "filter": {"aspect": "causes"}})
            assert r.status_code == 200 and r.json()["index"] == "tiny-index", (name, r.text)
    assert _counter(client.get("/metrics").text, 'dssm_reloads_total{result="failed"}') == failed0 + len(ALL_INDEX_DAMAGES)


# ---- rows 9-12 and the error table ----------------------------------------------------------------------


@pytest.mark.parametrize("raw, ctype", [(b"{", "application/json"), (b"\xff\xfe", "application/json"),
                                        (b'{"index_dir": 3}', "application/json"), (b"x=1", "text/plain"),
                                        (b"[" * 10_000, "application/json")])
def test_admin_key_is_checked_before_the_body(client: TestClient, raw: bytes, ctype: str) -> None:
    assert_error(client.post("/admin/reload", content=raw, headers={"content-type": ctype}), 401, "unauthorized")
    assert_error(client.post("/admin/reload", content=raw, headers={"content-type": ctype, "Authorization": "Bearer no"}),
                 403, "forbidden")


def test_admin_body_errors_after_the_key(client: TestClient) -> None:
    assert_error(client.post("/admin/reload", content=b"{", headers={**AUTH, "content-type": "application/json"}),
                 400, "invalid_json")
    assert_error(client.post("/admin/reload", content=b'{"index_dir": "x"}', headers={**AUTH, "content-type": "text/plain"}),
                 415, "unsupported_media_type", "application/json")
    assert client.post("/admin/reload", content=b"null", headers={**AUTH, "content-type": "application/json"}).status_code == 200


def test_head_on_health_ready_and_the_page(client: TestClient) -> None:
    for path in ("/health", "/ready", "/"):
        r = client.head(path)
        assert r.status_code == 200 and r.content == b"", path
    assert client.head("/search").status_code == 405  # other routes unchanged


def test_head_on_ready_is_503_when_not_ready(tmp_path: Path, tiny_index_dir: Path) -> None:
    with TestClient(create_app(make_settings(tmp_path / "nope", tiny_index_dir))) as c:
        assert c.head("/ready").status_code == 503 and c.head("/health").status_code == 200


@pytest.mark.parametrize("path", ["/search", "/embed", "/v1/embeddings"])
@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=b",
                                   "application/xml", "text/json"])
def test_non_json_bodies_are_415(client: TestClient, path: str, ctype: str) -> None:
    body = {"/search": b'{"query": "fever"}', "/embed": b'{"input": "fever"}', "/v1/embeddings": b'{"input": "fever"}'}[path]
    assert_error(client.post(path, content=body, headers={"content-type": ctype}), 415, "unsupported_media_type",
                 "application/json")


@pytest.mark.parametrize("ctype", ["application/json", "application/json; charset=utf-8", "Application/JSON",
                                   "application/vnd.api+json"])
def test_json_content_types_are_accepted(client: TestClient, ctype: str) -> None:
    assert client.post("/search", content=b'{"query": "fever"}', headers={"content-type": ctype}).status_code == 200


def test_info_shows_paths_only_with_the_admin_key(client: TestClient, tiny_model_dir: Path, tiny_index_dir: Path) -> None:
    anon = json.dumps(client.get("/info").json())
    assert str(tiny_model_dir) not in anon and str(tiny_index_dir) not in anon and '"/' not in anon
    for headers in ({"Authorization": "Bearer wrong"}, {"Authorization": API_KEY}):
        assert '"/' not in json.dumps(client.get("/info", headers=headers).json())
    admin = client.get("/info", headers=AUTH).json()
    assert admin["index"]["path"] == str(tiny_index_dir) and admin["model"]["path"] == str(tiny_model_dir)
    assert json.loads(anon)["versions"] == admin["versions"]  # the rest as before


def test_blank_input_is_the_same_error_on_both_embedding_routes(client: TestClient) -> None:
    for body in ({"input": " "}, {"input": []}, {"input": ["ok", ""]}, {"input": [1, 2]}):
        a = assert_error(client.post("/embed", json=body), 422, "validation_error")
        b = assert_error(client.post("/v1/embeddings", json=body), 422, "validation_error")
        if body["input"] != [1, 2]:  # /embed's strict schema names the type; /v1 says token ids are not read
            assert a["error"]["message"] == b["error"]["message"]


def test_middleware_errors_come_from_the_error_table(client: TestClient) -> None:
    assert_error(client.post("/search", content=b"{}", headers={"content-type": "application/json", "content-length": "1_0"}),
                 400, "bad_request", "Content-Length")
    assert_error(client.post("/search", content=b"x" * (1 << 20 | 1), headers={"content-type": "application/json"}),
                 413, "body_too_large")


# ---- real server processes and raw sockets ---------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tiny_model_dir: Path, tiny_index_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """scripts/serve.py as shipped (the guarded protocol), short timeouts so the tests wait little."""
    s = start_serve_script(tmp_path_factory.mktemp("serve"), ["--model", str(tiny_model_dir), "--index", str(tiny_index_dir)],
                           api_key=API_KEY, header_timeout_s="1", body_timeout_s="1", keep_alive_s="1", log_level="WARNING")
    try:
        s.wait("/ready")
        yield s
    finally:
        s.stop()


def _sock(server: ServerProcess) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    return s


def _exchange(server: ServerProcess, data: bytes, wait: float = 10.0) -> tuple[bytes, float | None]:
    s = _sock(server)
    try:
        if data:
            s.sendall(data)
        return hostile._read_until_closed(s, wait)
    finally:
        s.close()


def _head_of(size: int) -> bytes:
    """A GET /health whose request line + headers are ``size`` bytes as the server counts them."""
    base = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Pad: "
    # The server counts the URL and each header's name + value + 4; this request has 3 headers.
    counted = len("/health") + (4 + 1 + 4) + (10 + 5 + 4) + (5 + 4)
    return base + b"a" * (size - counted) + b"\r\n\r\n"


@pytest.mark.parametrize("size, status", [(1000, "200"), (16384 - 10, "200"), (16384, "200"), (16385, "431"),
                                          (16384 + 300, "431"), (200_000, "431")])
def test_header_size_limit_around_the_limit(server: ServerProcess, size: int, status: str) -> None:
    raw, closed = _exchange(server, _head_of(size))
    assert hostile._status(raw) == status, raw[:300]
    if status == "431":
        body = json.loads(raw.split(b"\r\n\r\n", 1)[1])
        assert body["error"]["type"] == "header_too_large" and "16384" in body["error"]["message"]


def test_far_oversized_header_is_cut_early_and_stalls_no_one(server: ServerProcess) -> None:
    row = hostile.row1_header(hostile.Target(server.url, None), hostile.Limits(header_mb=64))
    assert row.ok, row.got
    assert server.proc.poll() is None and httpx.get(server.url + "/health").status_code == 200


@pytest.mark.parametrize("data, status", [
    (b"", "408"),  # connects, sends nothing
    (b"GET /health HTTP/1.1\r\nHo", "408"),  # half the headers
    (b"POST /search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n{\"q", "408"),
])
def test_slow_sockets_are_closed_after_the_timeout(server: ServerProcess, data: bytes, status: str) -> None:
    raw, closed = _exchange(server, data, wait=10)
    assert closed is not None and 0.8 <= closed <= 4, closed
    assert hostile._status(raw) == status, raw[:200]
    assert json.loads(raw.split(b"\r\n\r\n", 1)[1])["error"]["type"] in ("header_timeout", "body_timeout")


def test_trickled_headers_are_closed_by_the_header_deadline(server: ServerProcess) -> None:
    """One byte every 0.2 s would reset any idle timer; the header deadline (1 s here) still holds."""
    s = _sock(server)
    stop = threading.Event()

    def trickle() -> None:
        for b in b"GET /health HTTP/1.1\r\nX-Slow: " + b"a" * 100:
            if stop.is_set():
                return
            try:
                s.sendall(bytes([b]))
            except OSError:
                return
            time.sleep(0.2)

    th = threading.Thread(target=trickle)
    th.start()
    try:
        raw, closed = hostile._read_until_closed(s, 10)
    finally:
        stop.set()
        th.join()
        s.close()
    assert hostile._status(raw) == "408" and closed is not None and closed < 4, (raw[:100], closed)


def test_idle_keep_alive_connection_is_closed(server: ServerProcess) -> None:
    s = _sock(server)
    try:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        raw, closed = hostile._read_until_closed(s, 10)
    finally:
        s.close()
    assert hostile._status(raw) == "200" and closed is not None and closed < 4


def test_keep_alive_requests_keep_working_under_the_guard(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url) as c:
        for i in range(20):
            assert c.post("/search", json={"query": f"fever {i}", "top_k": 3}).status_code == 200
    s = _sock(server)
    try:  # two pipelined requests in one write
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        raw, _ = hostile._read_until_closed(s, 5)
    finally:
        s.close()
    assert raw.count(b"HTTP/1.1 200") == 2


def test_abandoned_bodies_are_499_not_5xx(server: ServerProcess) -> None:
    row = hostile.row7_disconnects(hostile.Target(server.url, API_KEY), hostile.Limits(disconnects=30))
    assert row.ok, row.got
    assert "POST /search 500" not in server.log(None)


def test_slow_clients_do_not_stall_health(server: ServerProcess) -> None:
    socks = [_sock(server) for _ in range(50)]
    try:
        for s in socks[:25]:
            s.sendall(b"GET /health HTTP/1.1\r\nHo")
        lat = []
        for _ in range(20):
            t0 = time.perf_counter()
            assert httpx.get(server.url + "/health", timeout=5).status_code == 200
            lat.append(time.perf_counter() - t0)
        assert max(lat) < 1.0
    finally:
        for s in socks:
            s.close()


def test_hostile_runner_quick_every_row(server: ServerProcess, tiny_model_dir: Path, tiny_index_dir: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """bench/hostile.py's fast parts: every class against the real server, and its table."""
    rows = hostile.run(server.url, API_KEY, tiny_model_dir, tiny_index_dir, server.proc.pid,
                       hostile.Limits(header_mb=16, disconnects=20, slow_wait_s=8, filter_repeats=2))
    print(hostile.table(rows))
    assert [r.n for r in rows] == [*range(1, 13), 0]
    assert all(r.ok for r in rows), hostile.table(rows)
    assert "| 8 | slow sockets |" in capsys.readouterr().out


def test_hostile_runner_refuses_non_loopback() -> None:
    with pytest.raises(SystemExit, match="loopback"):
        hostile.Target("http://10.0.0.1:8000", None)


def test_plain_uvicorn_still_gets_the_app_level_guards(tiny_model_dir: Path, tiny_index_dir: Path, tmp_path: Path) -> None:
    """``uvicorn app.main:app`` has no header guard (documented) but the body timeout and 499 are the app's."""
    s = start_uvicorn(tmp_path, model_dir=str(tiny_model_dir), index_dir=str(tiny_index_dir), body_timeout_s="1")
    try:
        s.wait("/ready")
        raw, closed = _exchange(s, b"POST /search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                   b"Content-Length: 40\r\n\r\n{\"q", wait=10)
        assert hostile._status(raw) == "408" and closed is not None and closed < 4
    finally:
        s.stop()

