"""A real server under concurrent writers, readers and compactions for a few seconds: zero failed
requests, no result list holding a document twice (old and new version together), every writer's
final state stored exactly, /info's counts consistent, and flat results identical across a compaction."""

from __future__ import annotations

import random
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support import API_KEY, ServerProcess, start_uvicorn

WRITE_KEY = "load-test-write-key-012345"
W = {"Authorization": f"Bearer {WRITE_KEY}"}
A = {"Authorization": f"Bearer {API_KEY}"}
QUERIES = ["fever pain", "heart and lung", "what causes it", "bone treatment", "kidney stones", "brain nerve"]


def test_writers_readers_and_compactions_for_seconds(tmp_path: Path, tiny_model_dir: Path, tiny_index_dir: Path,
                                                     server_factory: list[ServerProcess]) -> None:
    index = tmp_path / "index"
    shutil.copytree(tiny_index_dir, index)
    srv = start_uvicorn(tmp_path, model_dir=str(tiny_model_dir),
                        index_dir=str(index), write_key=WRITE_KEY, api_key=API_KEY)
    server_factory.append(srv)
    srv.wait_ready()
    stop = threading.Event()
    failures: list[Any] = []
    duplicates: list[Any] = []
    counts = {"search": 0, "write": 0, "compact": 0}
    finals: list[dict[str, dict[str, Any] | None]] = [{}, {}]
    lock = threading.Lock()

    def reader(i: int) -> None:
        rng = random.Random(i)
        with httpx.Client(base_url=srv.url, timeout=60) as c:
            while not stop.is_set():
                body: dict[str, Any] = {"query": rng.choice(QUERIES), "top_k": 50, "mode": rng.choice(["dense", "hybrid"])}
                if rng.random() < 0.3:
                    body["filter"] = {"aspect": rng.choice(["w0", "w1", "causes"])}
                r = c.post("/search", json=body)
                with lock:
                    counts["search"] += 1
                    if r.status_code != 200:
                        failures.append(("search", r.status_code, r.text[:200]))
                        continue
                    ids = [h["id"] for h in r.json()["results"]]
                    if len(ids) != len(set(ids)):
                        duplicates.append(ids)

    def writer(w: int) -> None:
        rng = random.Random(100 + w)
        final = finals[w]
        n = 0
        with httpx.Client(base_url=srv.url, timeout=60, headers=W) as c:
            while not stop.is_set():
                n += 1
                if rng.random() < 0.7:
                    docs = {f"w{w}-{rng.randrange(40)}": {"title": f"W{w}", "text": f"writer {w} version {n} heart lung",
                                                         "metadata": {"aspect": f"w{w}"}} for _ in range(rng.randint(1, 4))}
                    r = c.post("/documents", json={"documents": [{"id": k, **v} for k, v in docs.items()]})
                    ok = r.status_code == 200
                    upd: dict[str, dict[str, Any] | None] = dict(docs)
                else:
                    did = f"w{w}-{rng.randrange(40)}"
                    r = c.delete(f"/documents/{did}")
                    ok = r.status_code in (200, 404)
                    upd = {did: None}
                with lock:
                    counts["write"] += 1
                    if not ok:
                        failures.append(("write", r.status_code, r.text[:200]))
                        continue
                final.update(upd)

    def compactor() -> None:
        with httpx.Client(base_url=srv.url, timeout=120) as c:
            for _ in range(3):
                time.sleep(1.2)
                r = c.post("/admin/compact", headers=A)
                with lock:
                    counts["compact"] += 1
                    if r.status_code != 200:
                        failures.append(("compact", r.status_code, r.text[:200]))

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(3)]
    threads += [threading.Thread(target=writer, args=(w,)) for w in range(2)]
    threads.append(threading.Thread(target=compactor))
    for t in threads:
        t.start()
    time.sleep(5)
    stop.set()
    for t in threads:
        t.join(timeout=120)
    assert not failures, failures[:5]
    assert not duplicates, duplicates[:2]
    assert counts["search"] >= 20 and counts["write"] >= 20 and counts["compact"] == 3, counts
    with httpx.Client(base_url=srv.url, timeout=60) as c:
        for final in finals:
            for did, want in final.items():
                r = c.get(f"/documents/{did}")
                if want is None:
                    assert r.status_code == 404, did
                else:
                    assert r.status_code == 200 and r.json()["text"] == want["text"], did
        live = sum(v is not None for f in finals for v in f.values())
        info = c.get("/info").json()["index"]
        assert info["live"]["documents"] == info["size"] == 180 + live, info["live"]
        # Flat results identical across a compaction (idle now).
        before = [c.post("/search", json={"query": q, "top_k": 100}).json()["results"] for q in QUERIES]
        assert c.post("/admin/compact", headers=A).status_code == 200
        after = [c.post("/search", json={"query": q, "top_k": 100}).json()["results"] for q in QUERIES]
        assert before == after
        assert c.get("/info").json()["index"]["live"]["growing"] == 0
    assert "Traceback" not in srv.log(tail=None)
