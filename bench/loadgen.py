"""Server processes and the HTTP load generator (wrk) for the benchmark.

wrk runs as its own process with one thread (an epoll loop handles 32 connections easily), so the
load generator costs little CPU and never shares the server's interpreter; its CPU time is read from
the kernel (``RUSAGE_CHILDREN``) and reported beside each level.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .process import ServerProcess, free_port, product_env

LUA = Path(__file__).resolve().parent / "wrk_search.lua"


def system_server(system: str, model: Path, index: Path, log_path: Path, torch_threads: int = 1,
                  workers: int = 1, settings: dict[str, Any] | None = None) -> ServerProcess:
    """``python -m bench.server`` for one system, on a free port of 127.0.0.1, ``workers`` uvicorn workers;
    ``settings``: app settings other than the product's defaults (a lever under measurement)."""
    port = free_port()
    env = product_env()
    env["HF_HUB_OFFLINE"] = "1"
    env["BENCH_SETTINGS"] = json.dumps(settings or {})
    cmd = [sys.executable, "-m", "bench.server", "--system", system, "--model", str(model),
           "--index", str(index), "--port", str(port), "--torch-threads", str(torch_threads),
           "--workers", str(workers)]
    return ServerProcess(cmd, env, port, log_path)


def require_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk not found: install it (Debian/Ubuntu: apt-get install wrk)")
    return wrk


def write_bodies(queries: list[str], path: Path, top_k: int = 10, **extra: Any) -> Path:
    """One /search JSON body a line (wrk's Lua reads them; JSON escaping is done here, not in Lua);
    ``extra``: more request fields (mode="hybrid", fields=[] …)."""
    with open(path, "w", encoding="utf-8") as f:
        for q in queries:
            f.write(json.dumps({"query": q, "top_k": top_k, **extra}, ensure_ascii=True) + "\n")
    return path


def run_wrk(url: str, bodies: Path, clients: int, seconds: float, server: ServerProcess | None = None) -> dict[str, Any]:
    """Closed loop: ``clients`` connections, each sends its next request when the last answer came."""
    if not url.startswith("http://127.0.0.1"):
        raise ValueError("load goes to 127.0.0.1 only")
    cmd = [require_wrk(), "-t1", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--timeout", "30s",
           "-s", str(LUA), url]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    srv_cpu0 = server.cpu_seconds() if server else 0.0
    t0 = time.perf_counter()
    # Bounded in time twice over: wrk's -d, and a hard timeout here in case it hangs.
    out = subprocess.run(cmd, env={**os.environ, "WRK_BODIES": str(bodies)}, capture_output=True, text=True,
                         timeout=seconds + 60, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    srv_cpu = (server.cpu_seconds() - srv_cpu0) if server else float("nan")
    line = next((x for x in out.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr.strip() or out.stdout.strip()}")
    s = json.loads(line[len("WRKJSON "):])
    dur = s["duration_us"] / 1e6
    errors = s["connect_errors"] + s["read_errors"] + s["write_errors"] + s["status_errors"] + s["timeouts"]
    wrk_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "clients": clients, "seconds": round(dur, 2), "requests": s["requests"], "errors": errors,
        "non_2xx": s["status_errors"], "rps": round(s["requests"] / dur, 1),
        "p50_ms": round(s["p50_us"] / 1000, 2), "p90_ms": round(s["p90_us"] / 1000, 2),
        "p99_ms": round(s["p99_us"] / 1000, 2), "max_ms": round(s["max_us"] / 1000, 2),
        "mean_ms": round(s["mean_us"] / 1000, 2),
        # CPU used over the run, as a share of one core (100 = one core busy the whole time).
        "loadgen_cpu_pct": round(100 * wrk_cpu / wall, 1),
        "server_cpu_pct": round(100 * srv_cpu / wall, 1) if server else None,
    }
