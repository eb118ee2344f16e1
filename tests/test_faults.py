"""Faults against real server processes (uvicorn on 127.0.0.1, the tiny model and real indexes):

- ``kill -9`` of ``scripts/build_index.py`` midway, while the service serves the index it is replacing:
  no request fails, the old index stays whole, reloads and serves, and a fresh process serves it;
- damaged index files: the process stays up (no crash loop), /ready says what is wrong, and a reload
  after the repair brings it up without a restart;
- ``/admin/reload`` to broken pairs (damaged files, another model's index, missing folders) while
  clients query: every reload refused with its reason, zero failed requests, the old pair kept.

tests/test_index.py covers the same damages at the library level (SearchIndex.load) and
tests/test_api_admin.py one damage and a model mismatch in-process; these add the running service.
"""

from __future__ import annotations

import json
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from tests.support import API_KEY, ServerProcess, kill_build_midway, start_uvicorn
from tests.synthetic import make_beir
from tests.test_api import make_settings

AUTH = {"Authorization": f"Bearer {API_KEY}"}


# ---- damage helpers ---------------------------------------------------------------------------------


def truncate(d: Path, name: str) -> None:
    f = d / name
    with open(f, "r+b") as fh:
        fh.truncate(f.stat().st_size // 2)


def garble_header(d: Path, name: str) -> None:
    """Same size (the load-time size check passes), unreadable header."""
    f = d / name
    data = f.read_bytes()
    f.write_bytes(b"\xde\xad\xbe\xef" * 4 + data[16:])


def flip_middle(d: Path, name: str) -> None:
    """Same size, a few bytes flipped in the middle: only the sha256 check can see it."""
    f = d / name
    data = bytearray(f.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 8] = bytes(b ^ 0xFF for b in data[mid : mid + 8])
    f.write_bytes(bytes(data))


def remove(d: Path, name: str) -> None:
    (d / name).unlink()


DAMAGES: dict[str, tuple[Callable[[Path], None], str]] = {
    # name: (damage, what /ready's reason must name)
    "truncated docs.sqlite": (lambda d: truncate(d, "docs.sqlite"), "docs.sqlite"),
    "garbled dense.faiss": (lambda d: garble_header(d, "dense.faiss"), "dense.faiss"),
    "missing BM25 file": (lambda d: remove(d, "bm25/vocab.index.json"), "vocab.index.json"),
    "manifest not JSON": (lambda d: (d / "manifest.json").write_text('{"format": "lstm-dssm-in'), "manifest.json"),
    "bit flip in vectors.npy (hash check on)": (lambda d: flip_middle(d, "vectors.npy"), "vectors.npy"),
}


def damaged_copy(src: Path, dst: Path, damage: str) -> Path:
    shutil.copytree(src, dst)
    DAMAGES[damage][0](dst)
    return dst


@contextmanager
def querying(base: str, clients: int = 6) -> Iterator[dict[str, list]]:
    """Clients sending /search in a loop until the block ends; collects statuses and failures."""
    stop = threading.Event()
    seen: dict[str, list] = {"ok": [], "failed": []}
    lock = threading.Lock()

    def client(i: int) -> None:
        with httpx.Client(base_url=base, timeout=30) as c:
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    r = c.post("/search", json={"query": f"symptoms of fever {i} {n}", "top_k": 100})
                    rec = (r.status_code, r.json().get("index"), len(r.json().get("results", [])))
                except (httpx.HTTPError, ValueError) as e:
                    rec = (0, f"{type(e).__name__}: {e}", 0)
                with lock:
                    seen["ok" if rec[0] == 200 else "failed"].append(rec)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    try:
        yield seen
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)


# ---- kill -9 of the index builder ------------------------------------------------------------------


def test_killed_index_build_leaves_the_served_index_serving_and_loadable(
    tmp_path: Path, tiny_model_dir: Path, tiny_index_dir: Path, server_factory: list[ServerProcess]
) -> None:
    served = tmp_path / "served-index"
    shutil.copytree(tiny_index_dir, served)
    manifest_before = (served / "manifest.json").read_bytes()
    srv = start_uvicorn(tmp_path, model_dir=str(tiny_model_dir), index_dir=str(served), api_key=API_KEY)
    server_factory.append(srv)
    srv.wait("/ready", 200)
    big = make_beir(tmp_path / "big", n_entities=600)  # 1,800 documents: the build takes a few seconds
    with querying(srv.url) as seen:
        returncode = kill_build_midway(tiny_model_dir, big, served)
        time.sleep(0.3)
        # The operator reloads "the new index" after the crash: the old one is still there, so it reloads.
        r = httpx.post(f"{srv.url}/admin/reload", headers=AUTH, timeout=60)
        time.sleep(0.3)
    assert returncode == -signal.SIGKILL
    assert list(tmp_path.glob(".served-index.tmp-*")), "killed before or after the build, not midway"
    assert r.status_code == 200, r.text
    assert not seen["failed"], seen["failed"][:5]
    assert len(seen["ok"]) >= 20 and {(idx, n) for _, idx, n in seen["ok"]} == {("served-index", 100)}
    assert (served / "manifest.json").read_bytes() == manifest_before
    assert httpx.get(f"{srv.url}/info").json()["index"]["size"] == 180
    # A fresh process (a restart after the crash) serves the old index too, hashes verified.
    fresh = start_uvicorn(tmp_path, model_dir=str(tiny_model_dir), index_dir=str(served), verify_hashes="true")
    server_factory.append(fresh)
    fresh.wait("/ready", 200)
    assert len(httpx.post(f"{fresh.url}/search", json={"query": "fever", "top_k": 5}).json()["results"]) == 5


# ---- damaged files: not ready, with the reason, and no crash loop ----------------------------------


def test_damaged_index_keeps_the_process_up_not_ready_with_the_reason(
    tmp_path: Path, tiny_model_dir: Path, tiny_index_dir: Path, server_factory: list[ServerProcess]
) -> None:
    """A real process on a damaged index: it stays up (an orchestrator restarting it would loop), says
    why on /ready, and comes up by /admin/reload once the index is repaired, without a restart."""
    broken = damaged_copy(tiny_index_dir, tmp_path / "index", "truncated docs.sqlite")
    srv = start_uvicorn(tmp_path, model_dir=str(tiny_model_dir), index_dir=str(broken), api_key=API_KEY)
    server_factory.append(srv)
    srv.wait("/health", 200)
    deadline = time.monotonic() + 3  # it keeps running: no exit, no restart, the same answer
    while time.monotonic() < deadline:
        r = httpx.get(f"{srv.url}/ready")
        assert r.status_code == 503 and "docs.sqlite" in r.json()["reason"] and "truncated" in r.json()["reason"], r.text
        assert srv.proc.poll() is None
        time.sleep(0.25)
    r = httpx.post(f"{srv.url}/search", json={"query": "fever"})
    assert r.status_code == 503 and r.json()["error"]["type"] == "not_ready" and "docs.sqlite" in r.json()["error"]["message"]
    shutil.rmtree(broken)
    shutil.copytree(tiny_index_dir, broken)  # the operator restores the index
    assert httpx.post(f"{srv.url}/admin/reload", headers=AUTH, timeout=60).status_code == 200
    assert httpx.get(f"{srv.url}/ready").status_code == 200
    assert httpx.post(f"{srv.url}/search", json={"query": "fever", "top_k": 3}).status_code == 200
    assert "Traceback" not in srv.log(tail=None)


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_each_damage_is_not_ready_naming_the_file(damage: str, tmp_path: Path, tiny_model_dir: Path,
                                                   tiny_index_dir: Path) -> None:
    broken = damaged_copy(tiny_index_dir, tmp_path / "index", damage)
    verify = "hash check" in damage  # same size, same header: only hashing every file can find it
    with TestClient(create_app(make_settings(tiny_model_dir, broken, verify_hashes=verify))) as c:
        assert c.get("/health").status_code == 200
        r = c.get("/ready")
        assert r.status_code == 503, r.text
        assert DAMAGES[damage][1] in r.json()["reason"], r.json()
        assert c.post("/search", json={"query": "fever"}).status_code == 503


# ---- reload to broken pairs under load -------------------------------------------------------------


def test_reload_to_broken_pairs_under_load_loses_no_request_and_keeps_the_old_pair(
    tmp_path: Path, tiny_model_dir: Path, tiny_index_dir: Path, other_model_dir: Path,
    server_factory: list[ServerProcess],
) -> None:
    targets: list[tuple[dict[str, str], str]] = []
    for i, damage in enumerate(d for d in DAMAGES if "hash check" not in d):
        targets.append(({"index_dir": str(damaged_copy(tiny_index_dir, tmp_path / f"broken-{i}", damage))},
                        DAMAGES[damage][1]))
    targets += [
        ({"model_dir": str(other_model_dir)}, "fingerprint"),  # model/index mismatch: refused
        ({"index_dir": str(tmp_path / "no-such-index")}, "no-such-index"),
        ({"model_dir": str(tmp_path / "no-such-model")}, "no-such-model"),
    ]
    srv = start_uvicorn(tmp_path, model_dir=str(tiny_model_dir), index_dir=str(tiny_index_dir), api_key=API_KEY)
    server_factory.append(srv)
    srv.wait("/ready", 200)
    with querying(srv.url) as seen:
        time.sleep(0.3)
        reloads = []
        for body, _ in targets:
            reloads.append(httpx.post(f"{srv.url}/admin/reload", headers=AUTH, json=body, timeout=60))
            time.sleep(0.15)
    for r, (body, reason) in zip(reloads, targets, strict=True):
        assert r.status_code == 422, (body, r.text)
        err = r.json()["error"]
        assert err["type"] == "reload_failed" and "previous model and index keep serving" in err["message"], err
        assert reason in err["message"], (reason, err)
    assert not seen["failed"], seen["failed"][:5]
    assert len(seen["ok"]) >= 30, len(seen["ok"])
    assert {(idx, n) for _, idx, n in seen["ok"]} == {("tiny-index", 100)}  # only the old pair answered
    ready = httpx.get(f"{srv.url}/ready").json()
    assert ready["ready"] is True and ready["index"] == "tiny-index" and ready["model"].startswith("tiny-model@")
    metrics = httpx.get(f"{srv.url}/metrics").text
    assert f'dssm_reloads_total{{result="failed"}} {float(len(targets))}' in metrics
    log = srv.log(tail=None)
    assert "Traceback" not in log and API_KEY not in log
    info = httpx.get(f"{srv.url}/info").json()
    assert API_KEY not in json.dumps(info)
