"""Latency and throughput of ``/search`` over HTTP, with N concurrent clients.

    python scripts/load_test.py --model MODEL_DIR --index INDEX_DIR --queries QUERIES.jsonl \
        [--concurrency 1,8,32] [--batching on,off] [--duration 8] [--repeat 2] [--json OUT]

It starts one ``scripts/serve.py`` per micro-batching setting (separate processes, free ports of
127.0.0.1), waits for /ready, then measures each concurrency level against each server in turn,
``--repeat`` times: on a shared machine, interleaving spreads background load over the settings
fairly, and the median over repeats damps it. Each client sends its next query as soon as the last
answer came (closed loop) for ``--duration`` seconds after ``--warmup``. ``--url`` measures one
running server instead. Queries come in a fixed order from a BEIR ``queries.jsonl`` (field "text"),
a text file (one a line), or built-in examples. Prints p50/p99 latency (ms) and requests/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.process import ServerError, ServerProcess, free_port, product_env, serve_command

EXAMPLES = ["what are the symptoms of glaucoma", "how to treat high blood pressure", "what causes asthma",
            "is diabetes inherited", "treatment for migraine", "感冒了怎么办", "高血压吃什么药"]


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


def start_server(args: argparse.Namespace, batching: bool, log_dir: Path) -> ServerProcess:
    """The product's ``scripts/serve.py`` with one micro-batching setting, on a free port."""
    port = free_port()
    extra = ["--model", args.model, "--index", args.index, "--log-level", "warning",
             "--micro-batching" if batching else "--no-micro-batching"]
    if args.batch_wait_ms is not None:
        extra += ["--batch-wait-ms", str(args.batch_wait_ms)]
    if args.torch_threads:
        extra += ["--torch-threads", str(args.torch_threads)]
    return ServerProcess(serve_command(port, *extra), product_env(), port, log_dir / f"load-test-server-{port}.log")


class Connection:
    """One client's keep-alive HTTP/1.1 connection, written on asyncio streams.

    httpx's async pool was the bottleneck at 32 concurrent clients (it fell from ~950 to ~290 req/s
    against the trivial /health route while the server idled), so the load comes from this minimal
    client instead: one connection per simulated client, requests sent back to back.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = (f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        self.writer.write(head + body)
        status_line = await self.reader.readline()
        length, close = 0, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "connection" and value.strip().lower() == "close":
                close = True
        data = await self.reader.readexactly(length)
        if close:
            await self.close()
        return int(status_line.split()[1]), data

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


async def run_level(url: str, queries: list[str], clients: int, duration: float, warmup: float,
                    top_k: int, mode: str) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    counter = 0
    hostport = url.split("://", 1)[1].rstrip("/")
    host, port = hostport.rsplit(":", 1)
    bodies = [json.dumps({"query": q, "top_k": top_k, "mode": mode}).encode() for q in queries]
    start = time.perf_counter()
    measure_from = start + warmup
    stop = measure_from + duration

    async def one_client() -> None:
        nonlocal errors, counter
        conn = Connection(host, int(port))
        try:
            while (now := time.perf_counter()) < stop:
                body = bodies[counter % len(bodies)]
                counter += 1
                t0 = time.perf_counter()
                try:
                    status, data = await conn.post("/search", body)
                    ok = status == 200 and data.startswith(b'{"query"')
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    ok = False
                    await conn.close()
                t1 = time.perf_counter()
                if now >= measure_from and t1 <= stop:
                    if ok:
                        latencies.append((t1 - t0) * 1000)
                    else:
                        errors += 1
        finally:
            await conn.close()

    await asyncio.gather(*(one_client() for _ in range(clients)))
    lat = sorted(latencies)

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(round(p / 100 * (len(lat) - 1))))] if lat else float("nan")

    return {"clients": clients, "requests": len(lat), "errors": errors, "rps": len(lat) / duration,
            "p50_ms": pct(50), "p99_ms": pct(99), "mean_ms": statistics.fmean(lat) if lat else float("nan")}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="model folder (to start servers)")
    p.add_argument("--index", help="index folder (to start servers)")
    p.add_argument("--url", help="measure this running server instead of starting one (127.0.0.1 only)")
    p.add_argument("--queries", help="queries.jsonl (BEIR) or a text file, one query a line")
    p.add_argument("--concurrency", default="1,8,32")
    p.add_argument("--batching", default="on,off", help="micro-batching settings to measure (on, off)")
    p.add_argument("--batch-wait-ms", type=float, default=None)
    p.add_argument("--torch-threads", type=int, default=None)
    p.add_argument("--duration", type=float, default=8.0, help="seconds measured per level")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds run before measuring, per level")
    p.add_argument("--repeat", type=int, default=1, help="rounds over all settings and levels; medians reported")
    p.add_argument("--top-k", type=int, default=10)
    p.add_argument("--mode", default="dense", choices=["dense", "hybrid"])
    p.add_argument("--json", help="write the results (every round and the medians) here")
    args = p.parse_args()
    # `timeout` and Ctrl-C end the run through the finally below, so no server is left behind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    levels = [int(c) for c in args.concurrency.split(",")]
    queries = read_queries(args.queries)
    if args.url and not args.url.startswith(("http://127.0.0.1", "http://localhost")):
        raise SystemExit("--url must point at 127.0.0.1 (load tests stay on this machine)")
    if not args.url and not (args.model and args.index):
        raise SystemExit("give --model and --index (to start servers) or --url")
    servers: dict[str, tuple[str, ServerProcess | None]] = {}
    rounds: list[dict[str, Any]] = []
    log_dir = Path(tempfile.mkdtemp(prefix="load-test-"))
    try:
        if args.url:
            servers["-"] = (args.url, None)
        else:
            for b in args.batching.split(","):
                srv = start_server(args, b.strip() == "on", log_dir)
                servers[b.strip()] = (srv.url, srv)
        sizes = {}
        for name, (url, proc) in servers.items():
            if proc is not None:
                try:
                    proc.wait_ready(120)
                except ServerError as e:
                    raise SystemExit(str(e)) from e
            sizes[name] = httpx.get(f"{url}/info", timeout=5).json()["index"]["size"]
        for rnd in range(args.repeat):
            for c in levels:
                for name, (url, _) in servers.items():
                    r = asyncio.run(run_level(url, queries, c, args.duration, args.warmup, args.top_k, args.mode))
                    r.update({"round": rnd, "micro_batching": name, "index_size": sizes[name], "mode": args.mode})
                    rounds.append(r)
                    print(f"round {rnd} batching={name:3} clients={c:3d} docs={sizes[name]:6d} p50={r['p50_ms']:7.2f}ms "
                          f"p99={r['p99_ms']:7.2f}ms rps={r['rps']:7.1f} errors={r['errors']}", flush=True)
    finally:
        for _, proc in servers.values():
            if proc is not None:
                proc.stop(15)
    summary = []
    print("\nmedians over rounds:")
    for name in servers:
        for c in levels:
            rs = [r for r in rounds if r["micro_batching"] == name and r["clients"] == c]
            m = {"micro_batching": name, "clients": c, "index_size": rs[0]["index_size"],
                 "errors": sum(r["errors"] for r in rs),
                 **{k: statistics.median(r[k] for r in rs) for k in ("p50_ms", "p99_ms", "rps")}}
            summary.append(m)
            print(f"batching={name:3} clients={c:3d} docs={m['index_size']:6d} p50={m['p50_ms']:7.2f}ms "
                  f"p99={m['p99_ms']:7.2f}ms rps={m['rps']:7.1f} errors={m['errors']}")
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": summary, "rounds": rounds}, indent=2) + "\n", encoding="utf-8")
    return 0


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
