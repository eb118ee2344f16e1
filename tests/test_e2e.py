"""End to end: real server processes on free ports of 127.0.0.1, queried over HTTP with httpx."""

from __future__ import annotations

import collections
import json
import os
import threading
import time
from pathlib import Path

import httpx

from tests.support import API_KEY, ServerProcess, start_serve_script, start_uvicorn


def test_uvicorn_serves_reloads_under_concurrent_queries_without_a_failure(
    tmp_path: Path, tiny_model_dir: Path, tiny_index_dir: Path, small_index_dir: Path,
    server_factory: list[ServerProcess],
) -> None:
    srv = start_uvicorn(tmp_path, model_dir=str(tiny_model_dir), index_dir=str(tiny_index_dir), api_key=API_KEY,
                        log_format="json")
    server_factory.append(srv)
    srv.wait("/ready", 200)
    base = srv.url
    r = httpx.post(f"{base}/search", json={"query": "What causes kalo disease?", "top_k": 3})
    assert r.status_code == 200 and len(r.json()["results"]) == 3

    stop = threading.Event()
    outcomes: list[tuple[int, str, int]] = []
    failures: list[str] = []
    lock = threading.Lock()

    def client(i: int) -> None:
        with httpx.Client(base_url=base, timeout=30) as c:
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    if n % 5 == 0:
                        resp = c.post("/embed", json={"input": [f"text {i} {n}"]})
                        ok = resp.status_code == 200 and len(resp.json()["data"]) == 1
                        rec = (resp.status_code, "embed", 1)
                    else:
                        resp = c.get("/search", params={"q": f"symptoms of fever {i} {n}", "top_k": 100})
                        ok = resp.status_code == 200
                        rec = (resp.status_code, resp.json().get("index", ""), len(resp.json().get("results", [])))
                except httpx.HTTPError as e:
                    with lock:
                        failures.append(f"{type(e).__name__}: {e}")
                    continue
                with lock:
                    outcomes.append(rec)
                    if not ok:
                        failures.append(resp.text)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    reloads = []
    try:
        time.sleep(0.5)
        for target in [small_index_dir, tiny_index_dir, small_index_dir]:
            reloads.append(httpx.post(f"{base}/admin/reload", json={"index_dir": str(target)},
                                      headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60))
            time.sleep(0.4)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert [r.status_code for r in reloads] == [200, 200, 200], [r.text for r in reloads]
    assert not failures, failures[:5]
    searches = [o for o in outcomes if o[1] != "embed"]
    assert len(searches) >= 30, len(outcomes)
    seen = {(idx, n) for _, idx, n in searches}
    assert seen == {("tiny-index", 100), ("small-index", 60)}, seen  # both pairs served, never a mix
    assert httpx.get(f"{base}/info").json()["index"]["size"] == 60
    # the metrics count what happened
    metrics = httpx.get(f"{base}/metrics").text
    assert 'dssm_reloads_total{result="ok"} 3.0' in metrics
    assert 'http_requests_total{handler="/search",method="GET",status="2xx"}' in metrics
    # a graceful shutdown (uvicorn re-raises the SIGTERM it handled, hence -15), logs as JSON lines
    assert srv.stop() in (0, -15)
    log = srv.log(tail=None)
    assert "Application shutdown complete" in log and "Traceback" not in log
    lines = [json.loads(x) for x in log.splitlines() if x.startswith("{")]
    assert any(x.get("path") == "/admin/reload" and x.get("status") == 200 and len(x["request_id"]) == 32 for x in lines)


def test_serve_script_starts_without_a_model_then_reports_why(
    tmp_path: Path, tiny_index_dir: Path, server_factory: list[ServerProcess]
) -> None:
    srv = start_serve_script(tmp_path, ["--model", str(tmp_path / "missing-model"), "--index", str(tiny_index_dir),
                                        "--no-micro-batching", "--max-top-k", "7"])
    server_factory.append(srv)
    srv.wait("/health", 200)
    r = httpx.get(f"{srv.url}/ready")
    assert r.status_code == 503 and "missing-model" in r.json()["reason"]
    r = httpx.post(f"{srv.url}/search", json={"query": "fever"})
    assert r.status_code == 503 and r.json()["error"]["type"] == "not_ready"
    info = httpx.get(f"{srv.url}/info").json()
    assert info["service"]["micro_batching"] is False and info["service"]["limits"]["max_top_k"] == 7
    # the default top_k (10) is capped by the configured maximum (7) instead of failing
    assert httpx.post(f"{srv.url}/search", json={"query": "fever", "top_k": 8}).json()["error"]["type"] == "top_k_out_of_range"
    assert httpx.post(f"{srv.url}/admin/reload").status_code == 404  # no DSSM_API_KEY: admin disabled
    assert srv.proc.poll() is None  # still running


def test_load_test_script_measures_a_real_server(tmp_path: Path, tiny_model_dir: Path, tiny_index_dir: Path) -> None:
    """scripts/load_test.py end to end, briefly: it starts its own server, measures, stops it."""
    import subprocess
    import sys

    from tests.support import ROOT, server_env

    out = tmp_path / "load.json"
    cmd = [sys.executable, str(ROOT / "scripts" / "load_test.py"), "--model", str(tiny_model_dir),
           "--index", str(tiny_index_dir), "--concurrency", "1,4", "--batching", "on,off",
           "--duration", "1", "--warmup", "0.2", "--json", str(out)]
    r = subprocess.run(cmd, env=server_env(), cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads(out.read_text())["summary"]
    assert {(s["micro_batching"], s["clients"]) for s in summary} == {("on", 1), ("on", 4), ("off", 1), ("off", 4)}
    for s in summary:
        assert s["errors"] == 0 and s["rps"] > 0 and 0 < s["p50_ms"] <= s["p99_ms"] and s["index_size"] == 180


def test_serve_workers_share_the_port_and_the_load(
    tmp_path: Path, tiny_model_dir: Path, tiny_index_dir: Path, server_factory: list[ServerProcess],
) -> None:
    """scripts/serve.py --workers 2: two server processes answer on one port, each handed the connections
    by the supervisor (app/workers.py); fresh connections reach both, and 8 kept-alive ones split 4/4 (a
    hash of the addresses, the kernel's SO_REUSEPORT, split 8 evenly in 27 % of cases); flags and DSSM_*
    settings reach every worker (--max-top-k 5; the header limit: a 431); SIGTERM stops them all."""
    from bench.process import proc_tree

    srv = start_serve_script(tmp_path, ["--model", str(tiny_model_dir), "--index", str(tiny_index_dir),
                                        "--workers", "2", "--max-top-k", "5"], max_header_bytes="2048",
                             api_key=API_KEY)
    server_factory.append(srv)
    srv.wait("/ready", 200, timeout=120)
    # Ready means every process is: the first two kept-alive connections already reach both.
    with httpx.Client(base_url=srv.url, timeout=30) as a, httpx.Client(base_url=srv.url, timeout=30) as b:
        first = {int(c.get("/info").json()["service"]["pid"]) for c in (a, b)}
        assert len(first) == 2, first
    pids: set[int] = set()
    for i in range(40):  # a fresh connection each: the kernel spreads them over the processes
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            r = c.post("/search", json={"query": f"what causes kalo disease {i}", "top_k": 3})
            assert r.status_code == 200 and len(r.json()["results"]) == 3
            pids.add(int(c.get("/info").json()["service"]["pid"]))
            assert c.post("/search", json={"query": "fever", "top_k": 6}).status_code == 422  # the flag, in each
    assert len(pids) == 2, pids
    clients = [httpx.Client(base_url=srv.url, timeout=30) for _ in range(8)]
    try:
        held = collections.Counter(int(c.get("/info").json()["service"]["pid"]) for c in clients)
        assert sorted(held.values()) == [4, 4], held
        # Four of them close: the next four go where the connections were freed.
        for c in clients[:4]:
            c.close()
        time.sleep(0.5)  # the processes report the closes
        fresh = [httpx.Client(base_url=srv.url, timeout=30) for _ in range(4)]
        clients += fresh
        held = collections.Counter(int(c.get("/info").json()["service"]["pid"]) for c in clients[4:])
        assert sorted(held.values()) == [4, 4], held
    finally:
        for c in clients:
            c.close()
    assert httpx.get(srv.url + "/health", headers={"X-Big": "x" * 4096}).status_code == 431
    # A reload would reach one process of the two: refused, saying what to do instead.
    r = httpx.post(srv.url + "/admin/reload", headers={"Authorization": f"Bearer {API_KEY}"})
    assert r.status_code == 409 and r.json()["error"]["type"] == "reload_unsupported", r.text
    r = httpx.post(srv.url + "/admin/compact", headers={"Authorization": f"Bearer {API_KEY}"})
    assert r.status_code == 409 and "compaction" in r.json()["error"]["message"], r.text
    tree = proc_tree(srv.pid)
    assert len(tree) >= 3  # the supervisor and its two servers
    assert srv.stop() == 0
    time.sleep(0.5)
    assert not [p for p in tree if Path(f"/proc/{p}").exists() and "zombie" not in Path(f"/proc/{p}/status").read_text()]


def test_serve_workers_refuse_a_taken_port(tmp_path: Path, tiny_model_dir: Path, tiny_index_dir: Path) -> None:
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        out = subprocess.run([sys.executable, "scripts/serve.py", "--model", str(tiny_model_dir), "--index",
                              str(tiny_index_dir), "--workers", "2", "--port", str(port)],
                             capture_output=True, text=True, timeout=60, cwd=Path(__file__).resolve().parent.parent)
    assert out.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in out.stderr and "Traceback" not in out.stderr
    # The live index has one writer: several processes with writes on are refused before anything starts.
    out = subprocess.run([sys.executable, "scripts/serve.py", "--model", str(tiny_model_dir), "--index",
                          str(tiny_index_dir), "--workers", "2"], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parent.parent,
                         env={**os.environ, "DSSM_WRITE_KEY": "k" * 32})
    assert out.returncode == 2 and "DSSM_WRITE_KEY" in out.stderr and "Traceback" not in out.stderr
