"""Latency and throughput of ``/search`` over HTTP, with N concurrent clients.

    python scripts/load_test.py --model MODEL_DIR --index INDEX_DIR --queries QUERIES.jsonl \
        [--concurrency 1,8,32] [--batching on,off] [--duration 10] [--json OUT]

For each micro-batching setting it starts ``scripts/serve.py`` on a free port of 127.0.0.1 (a
separate process), waits for /ready, and for each concurrency level runs that many clients, each
sending its next query as soon as the last answer came (closed loop), for ``--duration`` seconds
after a short warm-up. ``--url`` measures a server that is already running instead. Queries are
drawn in a fixed order from a BEIR ``queries.jsonl`` (field "text"), a text file (one a line), or
built-in examples. Prints p50/p99 latency (ms) and requests/s per setting.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ["what are the symptoms of glaucoma", "how to treat high blood pressure", "what causes asthma",
            "is diabetes inherited", "treatment for migraine", "感冒了怎么办", "高血压吃什么药"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_queries(path: str | None, limit: int = 2000) -> list[str]:
    if not path:
        return EXAMPLES
    out: list[str] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            out.append(json.loads(line)["text"] if path.endswith(".jsonl") else line)
            if len(out) >= limit:
                break
    return out


def start_server(args: argparse.Namespace, batching: bool, port: int) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, str(ROOT / "scripts" / "serve.py"), "--model", args.model, "--index", args.index,
           "--port", str(port), "--log-level", "warning",
           "--micro-batching" if batching else "--no-micro-batching"]
    if args.batch_wait_ms is not None:
        cmd += ["--batch-wait-ms", str(args.batch_wait_ms)]
    if args.torch_threads:
        cmd += ["--torch-threads", str(args.torch_threads)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DSSM_")}
    return subprocess.Popen(cmd, env=env, cwd=ROOT)


def wait_ready(url: str, proc: subprocess.Popen[bytes] | None, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"server exited with code {proc.returncode}")
        try:
            r = httpx.get(f"{url}/ready", timeout=2)
            if r.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"server at {url} not ready after {timeout:.0f}s")


async def run_level(url: str, queries: list[str], clients: int, duration: float, warmup: float,
                    top_k: int, mode: str) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    counter = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=30.0, limits=limits) as client:
        start = time.perf_counter()
        measure_from = start + warmup
        stop = measure_from + duration

        async def one_client() -> None:
            nonlocal errors, counter
            while (now := time.perf_counter()) < stop:
                q = queries[counter % len(queries)]
                counter += 1
                t0 = time.perf_counter()
                try:
                    r = await client.post("/search", json={"query": q, "top_k": top_k, "mode": mode})
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                t1 = time.perf_counter()
                if now >= measure_from and t1 <= stop:
                    if ok:
                        latencies.append((t1 - t0) * 1000)
                    else:
                        errors += 1

        await asyncio.gather(*(one_client() for _ in range(clients)))
    lat = sorted(latencies)

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(round(p / 100 * (len(lat) - 1))))] if lat else float("nan")

    return {"clients": clients, "requests": len(lat), "errors": errors, "rps": len(lat) / duration,
            "p50_ms": pct(50), "p99_ms": pct(99), "mean_ms": statistics.fmean(lat) if lat else float("nan")}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="model folder (to start a server)")
    p.add_argument("--index", help="index folder (to start a server)")
    p.add_argument("--url", help="measure this running server instead of starting one (127.0.0.1 only)")
    p.add_argument("--queries", help="queries.jsonl (BEIR) or a text file, one query a line")
    p.add_argument("--concurrency", default="1,8,32")
    p.add_argument("--batching", default="on,off", help="micro-batching settings to measure (on, off)")
    p.add_argument("--batch-wait-ms", type=float, default=None)
    p.add_argument("--torch-threads", type=int, default=None)
    p.add_argument("--duration", type=float, default=10.0, help="seconds measured per level")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds run before measuring, per level")
    p.add_argument("--top-k", type=int, default=10)
    p.add_argument("--mode", default="dense", choices=["dense", "hybrid"])
    p.add_argument("--json", help="write the results here")
    args = p.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    queries = read_queries(args.queries)
    results: list[dict[str, Any]] = []
    settings = [None] if args.url else [b.strip() == "on" for b in args.batching.split(",")]
    if args.url and not args.url.startswith(("http://127.0.0.1", "http://localhost")):
        raise SystemExit("--url must point at 127.0.0.1 (load tests stay on this machine)")
    if not args.url and not (args.model and args.index):
        raise SystemExit("give --model and --index (to start a server) or --url")
    for batching in settings:
        proc = None
        url = args.url
        if url is None:
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            proc = start_server(args, bool(batching), port)
        try:
            wait_ready(url, proc)
            size = httpx.get(f"{url}/info", timeout=5).json()["index"]["size"]
            for c in levels:
                r = asyncio.run(run_level(url, queries, c, args.duration, args.warmup, args.top_k, args.mode))
                r.update({"micro_batching": batching, "index_size": size, "mode": args.mode})
                results.append(r)
                print(f"batching={'-' if batching is None else ('on' if batching else 'off'):3} clients={c:3d} "
                      f"docs={size:6d} p50={r['p50_ms']:7.2f}ms p99={r['p99_ms']:7.2f}ms rps={r['rps']:7.1f} "
                      f"errors={r['errors']}", flush=True)
        finally:
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
