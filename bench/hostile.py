"""Hostile-client runner: replays the classes of issue 13 against a running server and prints a table.

    python -m bench.hostile --url http://127.0.0.1:8000 [--model MODEL_DIR --index INDEX_DIR]
        [--pid PID] [--quick] [--json OUT]

The admin key is read from ``DSSM_API_KEY`` (as the server does), never from a flag. ``--model`` /
``--index`` (the served folders) enable the reload rows 5 and 6: damaged copies are made in a temporary
folder and offered to ``/admin/reload``; ``--pid`` adds the server's RSS to the filter row.

Loopback only (127.0.0.1, ::1, localhost): this sends 100 MB headers and hundreds of abandoned
requests, which is an attack anywhere else. Every loop is bounded (bytes, counts, seconds); ``--quick``
shrinks them so that the suite can run it (tests/test_hostile.py). Exit status 1 when a row fails.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np

LOOPBACK = {"127.0.0.1", "::1", "localhost"}


@dataclass
class Row:
    n: int
    name: str
    sent: str
    expected: str
    got: str
    ok: bool


@dataclass
class Limits:
    header_mb: int = 100  # row 1: size of the oversized header
    disconnects: int = 200  # row 7: half bodies abandoned
    slow_wait_s: float = 70.0  # row 8: how long to wait for the server to close a slow socket
    filter_repeats: int = 64  # row 2


QUICK = Limits(header_mb=8, disconnects=20, slow_wait_s=15.0, filter_repeats=4)


class Target:
    def __init__(self, url: str, api_key: str | None) -> None:
        parts = urlsplit(url)
        if parts.hostname not in LOOPBACK:
            raise SystemExit(f"error: {url} is not a loopback address (127.0.0.1, ::1, localhost); refusing")
        self.url = url.rstrip("/")
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.key = api_key
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"} if self.key else {}

    def sock(self, timeout: float = 10.0) -> socket.socket:
        s = socket.create_connection((self.host, self.port), timeout=timeout)
        s.settimeout(timeout)
        return s

    def metric(self, name: str, **labels: str) -> float:
        """Sum of a counter's samples whose labels include ``labels`` (0 when absent)."""
        total = 0.0
        for line in self.http.get("/metrics").text.splitlines():
            if not line.startswith(name) or line.startswith("#"):
                continue
            head, _, value = line.rpartition(" ")
            if head.split("{")[0] != name:
                continue
            if all(f'{k}="{v}"' in head for k, v in labels.items()):
                total += float(value)
        return total


def _read_until_closed(s: socket.socket, limit_s: float) -> tuple[bytes, float | None]:
    """Everything the server sends until it closes (or ``limit_s``); (bytes, seconds until closed or None)."""
    t0 = time.monotonic()
    out = b""
    s.settimeout(0.5)
    while time.monotonic() - t0 < limit_s:
        try:
            d = s.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            return out, time.monotonic() - t0
        if not d:
            return out, time.monotonic() - t0
        out += d
    return out, None


def _status(raw: bytes) -> str:
    line = raw.split(b"\r\n", 1)[0].decode("latin-1")
    return line.split(" ", 2)[1] if line.startswith("HTTP/") and " " in line else "none"


def _err_type(r: httpx.Response) -> str:
    try:
        return str(r.json()["error"]["type"])
    except (ValueError, KeyError, TypeError):
        return "?"


def _rss_mib(pid: int | None) -> float | None:
    if pid is None:
        return None
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


# ---- the classes -----------------------------------------------------------------------------------


def row1_header(t: Target, lim: Limits) -> Row:
    """A huge header on one connection while another client polls /health."""
    lat: list[float] = []
    stop = threading.Event()

    def poll() -> None:
        with httpx.Client(base_url=t.url, timeout=10) as c:
            while not stop.is_set():
                t0 = time.perf_counter()
                c.get("/health")
                lat.append((time.perf_counter() - t0) * 1000)
                time.sleep(0.02)

    th = threading.Thread(target=poll)
    th.start()
    sent, t0 = 0, time.monotonic()
    s = t.sock()
    try:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ")
        chunk = b"a" * 65536
        while sent < lim.header_mb << 20:
            s.sendall(chunk)
            sent += len(chunk)
    except OSError:
        pass  # the server closed the connection: what should happen
    raw, _ = _read_until_closed(s, 5)
    s.close()
    took = time.monotonic() - t0
    time.sleep(0.2)
    stop.set()
    th.join()
    p50 = statistics.median(lat) if lat else float("nan")
    worst = max(lat) if lat else float("nan")
    ok = _status(raw) in ("431", "none") and sent < lim.header_mb << 20 and worst < 1000
    return Row(1, "oversized header", f"{lim.header_mb} MB header, /health polled meanwhile",
               "431 or closed early; /health unaffected",
               f"{_status(raw)} after {sent / 2**20:.1f} MB in {took:.2f} s; /health p50 {p50:.1f} ms, max {worst:.1f} ms", ok)


def row2_filter(t: Target, lim: Limits, pid: int | None) -> Row:
    n = 85_000
    while True:  # as many fields as fit under the default body limit, so that the filter check answers
        big = {f"k{i}": i for i in range(n)}
        body = json.dumps({"query": "fever", "filter": big})
        if len(body) <= 1_000_000:
            break
        n = int(n * 0.95 * 1_000_000 / len(body))
    before = _rss_mib(pid)
    statuses = set()
    t0 = time.perf_counter()
    for _ in range(lim.filter_repeats):
        r = t.http.post("/search", content=body, headers={"content-type": "application/json"})
        statuses.add(f"{r.status_code} {_err_type(r)}")
    ms = (time.perf_counter() - t0) * 1000 / lim.filter_repeats
    limit = t.http.get("/info").json()["service"]["limits"].get("max_filter_fields", 32)
    at = t.http.post("/search", json={"query": "fever", "filter": {f"k{i}": i for i in range(limit)}}).status_code
    past = t.http.post("/search", json={"query": "fever", "filter": {f"k{i}": i for i in range(limit + 1)}})
    after = _rss_mib(pid)
    rss = "" if before is None or after is None else f"; RSS {before} → {after} MiB"
    ok = statuses == {"422 filter_too_large"} and at == 200 and past.status_code == 422
    return Row(2, "huge filter", f"{len(big):,}-field filter ×{lim.filter_repeats}; {limit} and {limit + 1} fields",
               f"422 filter_too_large; {limit} fields 200", f"{', '.join(sorted(statuses))} ({ms:.1f} ms each); "
               f"{limit}: {at}, {limit + 1}: {past.status_code}{rss}", ok)


def row3_min_score(t: Target, queries: list[str]) -> Row:
    bad = pairs = 0
    for q in queries:
        full = t.http.post("/search", json={"query": q, "mode": "hybrid", "top_k": 100})
        if full.status_code != 200:
            return Row(3, "min_score vs top_k", "hybrid", "200", f"{full.status_code} {_err_type(full)}", False)
        cos = sorted({h["dense_score"] for h in full.json()["results"] if h["dense_score"] is not None})
        for th in [cos[int(len(cos) * f)] for f in (0.3, 0.6, 0.9)] if cos else []:
            want = [h["id"] for h in full.json()["results"] if h["dense_score"] is not None and h["dense_score"] >= th][:10]
            got = t.http.post("/search", json={"query": q, "mode": "hybrid", "top_k": 10, "min_score": th}).json()
            pairs += 1
            bad += [h["id"] for h in got["results"]] != want
    return Row(3, "min_score vs top_k", f"hybrid, {pairs} query × threshold pairs",
               "top_k 10 = first 10 passing of top_k 100", f"{bad} of {pairs} differ", bad == 0 and pairs > 0)


def row4_numbers(t: Target) -> Row:
    got = []
    for raw in (b'{"query": "x", "min_score": NaN}', b'{"query": "x", "min_score": Infinity}',
                b'{"query": "x", "min_score": 1e400}'):
        got.append(t.http.post("/search", content=raw, headers={"content-type": "application/json"}).status_code)
    for params in ({"min_score": "nan"}, {"min_score": "inf"}, {"min_score": "1_0"}, {"top_k": "1_0"}, {"top_k": " 5"}):
        got.append(t.http.get("/search", params={"q": "x", **params}).status_code)
    return Row(4, "NaN / Infinity / 1_0", "3 JSON bodies, 5 URLs", "422 each", " ".join(map(str, got)),
               all(s == 422 for s in got))


def _refresh_manifest(d: Path) -> None:
    """After a damage: the manifest's sizes and hashes match again, so only the new checks can see it."""
    from index.manifest import list_files, read_manifest, write_manifest

    m = read_manifest(d)
    m["files"] = list_files(d)
    write_manifest(d, m)


def _model_damages() -> dict[str, Callable[[Path], None]]:
    def cfg(edit: Callable[[dict[str, Any]], Any]) -> Callable[[Path], None]:
        def damage(d: Path) -> None:
            c = json.loads((d / "config.json").read_text(encoding="utf-8"))
            (d / "config.json").write_text(json.dumps(edit(c)), encoding="utf-8")
        return damage

    return {
        "config []": cfg(lambda c: []), "config null": cfg(lambda c: None), 'config "x"': cfg(lambda c: "x"),
        "vocab []": lambda d: (d / "vocab.json").write_text("[]"),
        "embed_dim -1": cfg(lambda c: {**c, "embed_dim": -1}), 'embed_dim "abc"': cfg(lambda c: {**c, "embed_dim": "abc"}),
        "embed_dim 2.5": cfg(lambda c: {**c, "embed_dim": 2.5}), "num_buckets 1e12": cfg(lambda c: {**c, "num_buckets": 10**12}),
        "hidden_dim 0": cfg(lambda c: {**c, "hidden_dim": 0}), "out_dim 0": cfg(lambda c: {**c, "out_dim": 0}),
    }


def manifest_damage(edit: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    """A damage that rewrites an index folder's manifest.json with ``edit`` applied."""
    def damage(d: Path) -> None:
        m = json.loads((d / "manifest.json").read_text(encoding="utf-8"))
        edit(m)
        (d / "manifest.json").write_text(json.dumps(m), encoding="utf-8")
    return damage


def _index_damages() -> dict[str, Callable[[Path], None]]:
    manifest = manifest_damage

    def metadata(d: Path) -> None:
        con = sqlite3.connect(d / "docs.sqlite")
        con.execute("UPDATE docs SET metadata = '[1,2]' WHERE row = 0")
        con.commit()
        con.close()
        _refresh_manifest(d)

    def vectors(d: Path) -> None:
        v = np.load(d / "vectors.npy", allow_pickle=False)
        v[len(v) // 2, 0] = np.nan
        np.save(d / "vectors.npy", v)
        _refresh_manifest(d)

    def bm25(name: str, make: Callable[[np.ndarray], np.ndarray]) -> Callable[[Path], None]:
        def damage(d: Path) -> None:
            p = d / "bm25" / name
            np.save(p, make(np.load(p, allow_pickle=False)))
            _refresh_manifest(d)
        return damage

    return {
        'fusion.depth "abc"': manifest(lambda m: m["fusion"].update(depth="abc")),
        "fusion.depth -5": manifest(lambda m: m["fusion"].update(depth=-5)),
        'index.search efSearch "x"': manifest(lambda m: m["index"].update(search={"efSearch": "x"})),
        "row metadata [1,2]": metadata,
        "a NaN vector": vectors,
        "BM25 rows out of range": bm25("indices.csc.index.npy", lambda a: a + 10**6),
        "BM25 scores NaN": bm25("data.csc.index.npy", lambda a: np.full_like(a, np.nan)),
        "BM25 indptr shuffled": bm25("indptr.csc.index.npy", lambda a: a[::-1].copy()),
    }


def _reload_row(t: Target, n: int, name: str, src: Path, field: str, damages: dict[str, Callable[[Path], None]]) -> Row:
    if not t.key:
        return Row(n, name, "-", "422 reload_failed", "skipped: no DSSM_API_KEY", True)
    failed0 = t.metric("dssm_reloads_total", result="failed")
    got: list[str] = []
    with tempfile.TemporaryDirectory(prefix="hostile-") as tmp:
        for i, (label, damage) in enumerate(damages.items()):
            d = Path(tmp) / f"{i}-{src.name}"
            shutil.copytree(src, d)
            damage(d)
            r = t.http.post("/admin/reload", headers=t.auth(), json={field: str(d)})
            got.append(f"{label}: {r.status_code}" + ("" if r.status_code == 422 else f" {_err_type(r)}"))
    counted = t.metric("dssm_reloads_total", result="failed") - failed0
    serving = t.http.post("/search", json={"query": "fever", "mode": "hybrid"}).status_code
    ok = all(g.endswith(": 422") for g in got) and counted == len(damages) and serving == 200
    bad = [g for g in got if not g.endswith(": 422")]
    return Row(n, name, f"{len(damages)} damaged copies: {', '.join(damages)}", "422 each, counted as failed, old pair serving",
               f"{len(got) - len(bad)}×422{' (' + '; '.join(bad) + ')' if bad else ''}; failed +{counted:g}; search {serving}", ok)


def row7_disconnects(t: Target, lim: Limits) -> Row:
    five0 = t.metric("http_requests_total", status="5xx")
    dis0 = t.metric("dssm_client_disconnects_total")
    for i in range(lim.disconnects):
        s = t.sock()
        if i % 2:
            s.sendall(b"POST /search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"que")
        else:  # a broken chunk
            s.sendall(b"POST /search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n5\r\n{\"que\r\nZZ\r\n")
        s.close()
    time.sleep(1.0)
    five = t.metric("http_requests_total", status="5xx") - five0
    dis = t.metric("dssm_client_disconnects_total") - dis0
    return Row(7, "abandoned bodies", f"{lim.disconnects} half bodies / bad chunks, then close",
               "0 new 5xx; counted as client disconnects (499)", f"5xx +{five:g}, disconnects +{dis:g}", five == 0 and dis > 0)


def row8_slow(t: Target, lim: Limits) -> Row:
    cases = {
        "nothing": b"",
        "half headers": b"GET /health HTTP/1.1\r\nHost: x\r\nX-Sl",
        "half body": b"POST /search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 50\r\n\r\n{\"q",
    }
    results: dict[str, tuple[str, float | None]] = {}

    def one(label: str, data: bytes) -> None:
        s = t.sock()
        if data:
            s.sendall(data)
        raw, closed = _read_until_closed(s, lim.slow_wait_s)
        s.close()
        results[label] = (_status(raw), closed)

    threads = [threading.Thread(target=one, args=item) for item in cases.items()]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    got = [f"{k}: {st} after {c:.1f} s" if c is not None else f"{k}: open after {lim.slow_wait_s:g} s"
           for k, (st, c) in results.items()]
    return Row(8, "slow sockets", ", ".join(cases), f"closed (408) within {lim.slow_wait_s:g} s", "; ".join(got),
               all(c is not None for _, c in results.values()))


def row9_auth_first(t: Target) -> Row:
    r = t.http.post("/admin/reload", content=b"{", headers={"content-type": "application/json"})
    r2 = t.http.post("/admin/reload", content=b"{", headers={"content-type": "text/plain", "Authorization": "Bearer wrong"})
    want = (401, 403) if t.key else (404, 404)
    return Row(9, "admin body before key", 'reload, body "{", no key / wrong key',
               f"{want[0]} / {want[1]}", f"{r.status_code} / {r2.status_code}", (r.status_code, r2.status_code) == want)


def row10_head(t: Target) -> Row:
    got = {p: t.http.head(p).status_code for p in ("/health", "/ready", "/")}
    return Row(10, "HEAD", "HEAD /health /ready /", "200", " ".join(f"{p} {s}" for p, s in got.items()),
               all(s == 200 for s in got.values()))


def row11_media(t: Target) -> Row:
    body = b'{"query": "fever"}'
    got = []
    for ctype, data in (("text/plain", body), ("application/x-www-form-urlencoded", b"query=fever"),
                        ("multipart/form-data; boundary=b", b"--b\r\nContent-Disposition: form-data; name=\"query\"\r\n\r\nfever\r\n--b--\r\n")):
        for path in ("/search", "/embed"):
            r = t.http.post(path, content=data, headers={"content-type": ctype})
            got.append(f"{r.status_code}")
    ok_json = t.http.post("/search", content=body, headers={"content-type": "application/json; charset=utf-8"}).status_code
    return Row(11, "wrong content type", "text/plain, form, multipart to /search and /embed", "415; JSON 200",
               f"{' '.join(got)}; JSON {ok_json}", all(g == "415" for g in got) and ok_json == 200)


def row12_info(t: Target, dirs: list[Path]) -> Row:
    def paths(obj: Any) -> list[str]:
        if isinstance(obj, dict):
            return [p for v in obj.values() for p in paths(v)]
        if isinstance(obj, list):
            return [p for v in obj for p in paths(v)]
        return [obj] if isinstance(obj, str) and (os.path.isabs(obj) or any(str(d) in obj for d in dirs)) else []

    anon = paths({k: v for k, v in t.http.get("/info").json().items() if k != "reason"})
    admin = paths(t.http.get("/info", headers=t.auth()).json()) if t.key else []
    ok = not anon and (not t.key or bool(admin))
    return Row(12, "/info paths", "GET /info without and with the key", "no paths without the key",
               f"without: {len(anon)} paths; with: {len(admin) if t.key else 'no key'}", ok)


def _queries(index: Path | None) -> list[str]:
    if index is not None and (index / "docs.sqlite").is_file():
        con = sqlite3.connect(f"file:{index / 'docs.sqlite'}?mode=ro", uri=True)
        try:
            return [r[0] for r in con.execute("SELECT title FROM docs WHERE title != '' ORDER BY row LIMIT 6")]
        finally:
            con.close()
    return ["what are the symptoms", "how is it treated", "causes of the disease"]


def run(url: str, api_key: str | None = None, model: Path | None = None, index: Path | None = None,
        pid: int | None = None, limits: Limits | None = None, only: set[int] | None = None) -> list[Row]:
    """Every class against the server at ``url``; rows 5/6 need ``model``/``index`` (and the key)."""
    lim = limits or Limits()
    t = Target(url, api_key)
    dirs = [d for d in (model, index) if d is not None]
    steps: dict[int, Callable[[], Row]] = {
        1: lambda: row1_header(t, lim),
        2: lambda: row2_filter(t, lim, pid),
        3: lambda: row3_min_score(t, _queries(index)),
        4: lambda: row4_numbers(t),
        5: lambda: _reload_row(t, 5, "reload: bad model", model, "model_dir", _model_damages()) if model else
        Row(5, "reload: bad model", "-", "-", "skipped: no --model", True),
        6: lambda: _reload_row(t, 6, "reload: bad index", index, "index_dir", _index_damages()) if index else
        Row(6, "reload: bad index", "-", "-", "skipped: no --index", True),
        7: lambda: row7_disconnects(t, lim),
        8: lambda: row8_slow(t, lim),
        9: lambda: row9_auth_first(t),
        10: lambda: row10_head(t),
        11: lambda: row11_media(t),
        12: lambda: row12_info(t, dirs),
    }
    rows = []
    for n, step in steps.items():
        if only is None or n in only:
            t0 = time.monotonic()
            rows.append(step())
            print(f"row {n}: {'ok' if rows[-1].ok else 'FAILED'} ({time.monotonic() - t0:.1f} s)", file=sys.stderr, flush=True)
    with contextlib.suppress(httpx.HTTPError):
        health = t.http.get("/health").status_code
        rows.append(Row(0, "still up", "GET /health after all rows", "200", str(health), health == 200))
    return rows


# ---- what the protection costs ----------------------------------------------------------------------

_SERVE = """
import sys, uvicorn
from pathlib import Path
from app.main import create_app
from app.protocol import guarded_protocol
from app.settings import Settings
kind, port, model, index = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
s = Settings(model_dir=model, index_dir=index, log_level="WARNING", api_key=None)
http = {"httptools": "httptools", "guarded": guarded_protocol(s), "h11": "h11"}[kind]
uvicorn.run(create_app(s), host="127.0.0.1", port=port, access_log=False, log_level="warning", http=http,
            h11_max_incomplete_event_size=s.max_header_bytes if kind == "h11" else None)
"""
PROTOCOLS = ("httptools", "guarded", "h11")  # before this change, scripts/serve.py; now; the h11 alternative


def _load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def protocol_cost(model: Path, index: Path, seconds: float = 3.0, rounds: int = 8, connections: int = 8) -> list[dict[str, Any]]:
    """req/s of the app under each HTTP protocol: the three servers run side by side (idle while not
    measured) and each round measures all three back to back, in a rotating order, so that the other
    jobs of a shared machine weigh on all alike; wrk with one thread (a separate process), for /health
    (HTTP cost only) and GET /search (the whole service)."""
    import subprocess

    from bench.process import ServerProcess, free_port, product_env

    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("error: wrk not found (apt-get install wrk)")
    servers: dict[str, ServerProcess] = {}
    out: list[dict[str, Any]] = []
    paths = ("/health", "/search?q=symptoms+of+fever&top_k=10")
    logs = Path(tempfile.mkdtemp(prefix="hostile-cost-"))

    def measure(url: str, secs: float) -> str:
        return subprocess.run([wrk, "-t1", "-c", str(connections), "-d", f"{secs:g}s", "--latency", url],
                              capture_output=True, text=True, check=True).stdout

    try:
        for kind in PROTOCOLS:
            port = free_port()
            servers[kind] = ServerProcess([sys.executable, "-c", _SERVE, kind, str(port), str(model), str(index)],
                                          product_env(), port, logs / f"{kind}.log")
        for srv in servers.values():
            srv.wait_ready()
            for path in paths:
                measure(srv.url + path, 1)  # warm-up
        for rnd in range(rounds):
            order = PROTOCOLS[rnd % 3:] + PROTOCOLS[: rnd % 3]
            for path in paths:
                for kind in order:
                    load = _load_average()
                    cpu0 = servers[kind].cpu_seconds()
                    res = measure(servers[kind].url + path, seconds)
                    cpu = servers[kind].cpu_seconds() - cpu0
                    rps = float(next(ln.split()[1] for ln in res.splitlines() if ln.startswith("Requests/sec")))
                    n = int(next(ln.split()[0] for ln in res.splitlines() if " requests in " in ln))
                    non2xx = next((int(ln.split()[-1]) for ln in res.splitlines() if "Non-2xx" in ln), 0)
                    p99 = next((ln.split()[1] for ln in res.splitlines() if ln.strip().startswith("99%")), "?")
                    out.append({"round": rnd, "protocol": kind, "path": path.split("?")[0], "req_s": rps,
                                "cpu_us_per_request": cpu / max(n, 1) * 1e6, "p99": p99, "non_2xx": non2xx,
                                "load_average": load})
                    print(f"round {rnd} {kind:9} {path.split('?')[0]:8} {rps:8.0f} req/s  "
                          f"{out[-1]['cpu_us_per_request']:6.0f} µs CPU/req  p99 {p99}  load {load}",
                          file=sys.stderr, flush=True)
    finally:
        for srv in servers.values():
            srv.stop()
    return out


def cost_table(res: list[dict[str, Any]]) -> str:
    """Per protocol and path: median req/s, and the median over rounds of the ratio to httptools
    measured in the same round (the figure that the machine's other load cancels out of)."""
    lines = ["| protocol | path | median req/s | median × httptools (same round) | ratio range | "
             "median µs CPU / request | × httptools | load average (1 min) range |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for path in ("/health", "/search"):
        base = {r["round"]: r["req_s"] for r in res if r["protocol"] == "httptools" and r["path"] == path}
        cpu_base = statistics.median(r["cpu_us_per_request"] for r in res
                                     if r["protocol"] == "httptools" and r["path"] == path)
        for kind in PROTOCOLS:
            rs = [r for r in res if r["protocol"] == kind and r["path"] == path]
            ratios = [r["req_s"] / base[r["round"]] for r in rs]
            loads = [float(r["load_average"].split()[0]) for r in rs]
            cpu = statistics.median(r["cpu_us_per_request"] for r in rs)
            lines.append(f"| {kind} | {path} | {statistics.median(r['req_s'] for r in rs):.0f} | "
                         f"{statistics.median(ratios):.2f} | {min(ratios):.2f}–{max(ratios):.2f} | "
                         f"{cpu:.0f} | {cpu / cpu_base:.2f} | {min(loads):.2f}–{max(loads):.2f} |")
    return "\n".join(lines)


def table(rows: list[Row]) -> str:
    out = ["| # | class | sent | expected | got | ok |", "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        out.append(f"| {r.n or ''} | {r.name} | {r.sent} | {r.expected} | {r.got} | {'yes' if r.ok else '**NO**'} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", help="the server, on a loopback address")
    p.add_argument("--cost", action="store_true",
                   help="instead: req/s of the app under httptools, the guarded protocol and h11 (needs --model, --index, wrk)")
    p.add_argument("--seconds", type=float, default=3.0, help="--cost: seconds per measurement")
    p.add_argument("--rounds", type=int, default=8, help="--cost: rounds, each measuring every protocol")
    p.add_argument("--model", type=Path, help="the served model folder (enables row 5)")
    p.add_argument("--index", type=Path, help="the served index folder (enables row 6, real queries for row 3)")
    p.add_argument("--pid", type=int, help="the server's process id (RSS in row 2)")
    p.add_argument("--quick", action="store_true", help="smaller loops (8 MB header, 20 disconnects, 15 s waits)")
    p.add_argument("--only", help="comma-separated row numbers")
    p.add_argument("--json", type=Path, help="write the rows as JSON")
    a = p.parse_args(argv)
    if a.cost:
        if not (a.model and a.index):
            p.error("--cost needs --model and --index")
        res = protocol_cost(a.model, a.index, a.seconds, a.rounds)
        print(cost_table(res))
        if a.json:
            a.json.write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
        return 0
    if not a.url:
        p.error("--url is required (or --cost)")
    only = {int(x) for x in a.only.split(",")} if a.only else None
    rows = run(a.url, os.environ.get("DSSM_API_KEY") or None, a.model, a.index, a.pid, QUICK if a.quick else None, only)
    print(table(rows))
    if a.json:
        a.json.write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n", encoding="utf-8")
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
