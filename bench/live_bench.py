"""Benchmark of the live index (printed, and written as JSON):

- upsert throughput over HTTP in batches of 1, 10 and 100 (docs/s, fsync on, one client writing
  sequentially) and the document tower's share of the write time (the server's own timings, /info);
- ``/search`` p50/p99 at 8 clients (wrk) idle, then while a writer upserts 100 docs/s, in one run;
- start-up time (to /ready) of a server whose index holds 10k writes not yet compacted, against the
  same index compacted;
- compaction time and peak RSS of the offline compaction (``scripts/compact_index.py``, a child
  process) at 15k and 100k documents (every document in the growing segment, 10 % deleted).

    python -m bench.live_bench --model MODEL_DIR --index INDEX_DIR --data BEIR_DIR [--json OUT]

INDEX_DIR (a built index of BEIR_DIR's corpus with MODEL_DIR) is copied, never written. The compaction
sizes use a hashing encoder (bench/live_bench.py ``HashEncoder``: deterministic unit vectors, no model),
since compaction never encodes and 100k documents would take the LSTM minutes to encode.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.loadgen import run_wrk, write_bodies
from bench.process import ROOT, ServerProcess, free_port, product_env
from index import build_index
from index.live import LiveIndex
from models.data import Corpus, load_beir

WRITE_KEY = "bench-write-key-0123456789"
ADMIN_KEY = "bench-admin-key-0123456789"
W = {"Authorization": f"Bearer {WRITE_KEY}"}


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


WRITE_NICE: str | None = None  # --write-nice: DSSM_WRITE_NICE of the servers (None: the default)


def start(model: Path, index: Path, work: Path, tag: str) -> ServerProcess:
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port)]
    env = product_env(model_dir=str(model), index_dir=str(index), write_key=WRITE_KEY, api_key=ADMIN_KEY,
                      torch_threads="1", log_level="WARNING", max_batch="100", max_body_bytes=str(16 << 20))
    if WRITE_NICE is not None:
        env["DSSM_WRITE_NICE"] = WRITE_NICE
    return ServerProcess(cmd, env, port, work / f"server-{tag}.log")


def docs_of(corpus: Corpus, prefix: str, start: int, n: int) -> list[dict[str, Any]]:
    m = len(corpus)
    return [{"id": f"{prefix}{start + i}", "title": corpus.titles[(start + i) % m], "text": corpus.texts[(start + i) % m],
             "metadata": {"bench": prefix}} for i in range(n)]


def write_timings(c: httpx.Client) -> dict[str, float]:
    return dict(c.get("/info").json()["index"]["live"]["write_timings"])


def upsert_throughput(url: str, corpus: Corpus, sizes: dict[int, int]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with httpx.Client(base_url=url, timeout=120, headers=W) as c:
        for batch, total in sizes.items():
            t_before = write_timings(c)
            t0 = time.perf_counter()
            for s in range(0, total, batch):
                r = c.post("/documents", json={"documents": docs_of(corpus, f"b{batch}-", s, batch)})
                assert r.status_code == 200, r.text
            wall = time.perf_counter() - t0
            t_after = write_timings(c)
            enc = t_after["encode_seconds"] - t_before["encode_seconds"]
            out[f"batch_{batch}"] = {"documents": total, "seconds": round(wall, 2), "docs_per_second": round(total / wall, 1),
                                     "doc_tower_share": round(enc / wall, 3), "load_average": load_average()}
            print(f"upsert batch {batch:3d}: {total / wall:7.1f} docs/s  (doc tower {100 * enc / wall:4.1f} % of the "
                  f"time; load {load_average()})", flush=True)
    return out


def paced_writer(url: str, corpus: Corpus, stop: threading.Event, rate: float = 100.0, batch: int = 10) -> dict[str, Any]:
    """Upserts ``rate`` docs/s in batches of ``batch`` until ``stop``; returns what it managed."""
    sent, n, t0 = 0, 0, time.perf_counter()
    with httpx.Client(base_url=url, timeout=120, headers=W) as c:
        while not stop.is_set():
            due = t0 + n * batch / rate
            time.sleep(max(0.0, due - time.perf_counter()))
            r = c.post("/documents", json={"documents": docs_of(corpus, "paced-", n * batch, batch)})
            assert r.status_code == 200, r.text
            sent += batch
            n += 1
    return {"documents": sent, "docs_per_second": round(sent / (time.perf_counter() - t0), 1)}


def search_under_writes(url: str, server: ServerProcess, corpus: Corpus, queries: list[str], work: Path,
                        seconds: float) -> dict[str, Any]:
    bodies = write_bodies(queries, work / "bodies.jsonl")
    idle = run_wrk(f"{url}/search", bodies, 8, seconds, server)
    stop = threading.Event()
    res: dict[str, Any] = {}
    th = threading.Thread(target=lambda: res.update(paced_writer(url, corpus, stop)))
    th.start()
    time.sleep(0.5)
    busy = run_wrk(f"{url}/search", bodies, 8, seconds, server)
    stop.set()
    th.join()
    out = {"idle": idle, "writing": busy, "writer": res, "p99_ratio": round(busy["p99_ms"] / idle["p99_ms"], 2),
           "p50_ratio": round(busy["p50_ms"] / idle["p50_ms"], 2), "load_average": load_average()}
    print(f"/search 8 clients idle:    p50 {idle['p50_ms']:.1f} ms  p99 {idle['p99_ms']:.1f} ms  {idle['rps']:.0f} req/s", flush=True)
    print(f"/search 8 clients writing: p50 {busy['p50_ms']:.1f} ms  p99 {busy['p99_ms']:.1f} ms  {busy['rps']:.0f} req/s  "
          f"(writer {res.get('docs_per_second')} docs/s); p99 ratio {out['p99_ratio']} (load {load_average()})", flush=True)
    return out


def startup(model: Path, index: Path, work: Path, pending: int) -> float:
    srv = start(model, index, work, f"startup-{pending}")
    try:
        return round(srv.wait_ready(), 2)
    finally:
        srv.stop()


class HashEncoder:
    """A TextEncoder without a model: a unit vector from a hash of the text (compaction benchmarks)."""

    name, dim, lang, fusion = "hash-encoder", 128, "en", None
    fingerprint = "hash-encoder-v1"

    def encode(self, texts: Sequence[str], tower: str = "query", batch_size: int = 256,
               progress: Callable[[int], None] | None = None) -> np.ndarray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            seed = int.from_bytes(hashlib.blake2b(t.encode(), digest_size=8).digest(), "little")
            out[i] = np.random.default_rng(seed).standard_normal(self.dim)
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        if progress:
            progress(len(texts))
        return out

    def info(self) -> dict[str, Any]:
        return {"kind": "hash"}


def compaction(corpus: Corpus, n: int, work: Path) -> dict[str, Any]:
    enc = HashEncoder()
    d = work / f"compact-{n}"
    build_index(enc, Corpus([], [], [], []), d, show_progress=False, allow_empty=True)
    m = len(corpus)
    with LiveIndex.open(d, enc) as idx:  # type: ignore[arg-type]
        for s in range(0, n, 2000):
            idx.upsert([(f"x{i}", corpus.titles[i % m], f"{corpus.texts[i % m]} {i}", {"k": i % 7})
                        for i in range(s, min(n, s + 2000))])
        idx.delete([f"x{i}" for i in range(0, n, 10)])
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "compact_index.py"), "--index", str(d)],
                       capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    report = json.loads(r.stdout)
    out = {"documents": n, "deleted": len(range(0, n, 10)), "seconds_total": round(wall, 2),
           "compact_ms": report["took_ms"], "peak_rss_mib": report["peak_rss_mib"],
           "peak_rss_note": "the whole compaction process (open + replay + compact), its own ru_maxrss",
           "load_average": load_average()}
    print(f"compaction at {n} documents: {report['took_ms'] / 1000:.2f} s compacting ({wall:.1f} s with the "
          f"process start and replay), peak RSS {report['peak_rss_mib']:.0f} MiB (load {load_average()})", flush=True)
    shutil.rmtree(d, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--index", required=True, help="a built index of --data's corpus with --model (copied)")
    p.add_argument("--data", required=True)
    p.add_argument("--seconds", type=float, default=10.0, help="per wrk run")
    p.add_argument("--compaction-sizes", default="15000,100000")
    p.add_argument("--skip", default="", help="comma list of parts to skip: upsert,search,startup,compaction")
    p.add_argument("--write-nice", help="DSSM_WRITE_NICE of the server (default: the setting's default, 4)")
    p.add_argument("--json")
    a = p.parse_args(argv)
    global WRITE_NICE
    WRITE_NICE = a.write_nice
    skip = set(a.skip.split(","))
    data = load_beir(a.data)
    corpus = data.corpus
    queries = [data.queries[q] for q in data.qrels.get("test", {})] or corpus.texts[:500]
    out: dict[str, Any] = {"load_average_start": load_average(), "cpus": os.cpu_count()}
    print(f"load average at start: {out['load_average_start']}", flush=True)
    with tempfile.TemporaryDirectory(prefix="dssm-live-bench-") as tmp:
        work = Path(tmp)
        index = work / "index"
        shutil.copytree(a.index, index)
        model = Path(a.model)
        srv = start(model, index, work, "main")
        try:
            out["first_start_making_live_seconds"] = round(srv.wait_ready(), 2)
            if "upsert" not in skip:
                out["upsert"] = upsert_throughput(srv.url, corpus, {1: 200, 10: 1000, 100: 3000})
            if "search" not in skip:
                out["search"] = search_under_writes(srv.url, srv, corpus, queries, work, a.seconds)
            if "startup" not in skip:
                with httpx.Client(base_url=srv.url, timeout=120, headers=W) as c:
                    pending = c.get("/info").json()["index"]["live"]["growing"]
                    s = 0
                    while pending < 10_000:
                        n = min(100, 10_000 - pending)
                        r = c.post("/documents", json={"documents": docs_of(corpus, "pending-", s, n)})
                        assert r.status_code == 200, r.text
                        s += n
                        pending += n
                    pending = c.get("/info").json()["index"]["live"]["growing"]
        finally:
            srv.stop()
        if "startup" not in skip:
            with_pending = startup(model, index, work, pending)
            subprocess.run([sys.executable, str(ROOT / "scripts" / "compact_index.py"), "--index", str(index)],
                           capture_output=True, check=True)
            compacted = startup(model, index, work, 0)
            out["startup"] = {"pending_writes": pending, "seconds_to_ready": with_pending,
                              "seconds_to_ready_compacted": compacted, "load_average": load_average()}
            print(f"start-up to /ready with {pending} writes not compacted: {with_pending:.2f} s "
                  f"(compacted: {compacted:.2f} s; load {load_average()})", flush=True)
        if "compaction" not in skip:
            out["compaction"] = [compaction(corpus, int(n), work) for n in a.compaction_sizes.split(",") if n]
    out["load_average_end"] = load_average()
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


def run() -> None:
    raise SystemExit(main())


if __name__ == "__main__":
    run()
