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
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
LUA = Path(__file__).resolve().parent / "wrk_search.lua"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM (peak RSS) of a process in KiB, from /proc."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(rest.split()[0])
    return out


def proc_cpu_seconds(pid: int) -> float:
    """user + system CPU seconds a process has used so far (/proc/PID/stat, fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    """``python -m bench.server`` for one system, on a free port of 127.0.0.1, one uvicorn worker."""

    system: str
    model: Path
    index: Path
    log_path: Path
    torch_threads: int = 1
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 300.0) -> float:
        """Start and wait for /ready; returns the seconds it took (model + index load)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("DSSM_")}
        env["HF_HUB_OFFLINE"] = "1"
        cmd = [sys.executable, "-m", "bench.server", "--system", self.system, "--model", str(self.model),
               "--index", str(self.index), "--port", str(self.port), "--torch-threads", str(self.torch_threads)]
        t0 = time.perf_counter()
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.system} server exited ({self.proc.returncode}); see {self.log_path}")
            try:
                r = httpx.get(f"{self.url}/ready", timeout=2)
                if r.status_code == 200:
                    return time.perf_counter() - t0
                if r.status_code == 503 and "starting" not in r.json().get("reason", ""):
                    raise RuntimeError(f"{self.system} server not ready: {r.json()['reason']}")
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.system} server not ready after {timeout:.0f}s; see {self.log_path}")

    def memory_mib(self) -> dict[str, float]:
        assert self.proc is not None
        st = proc_status(self.proc.pid)
        return {"rss_mib": round(st["VmRSS"] / 1024, 1), "peak_rss_mib": round(st["VmHWM"] / 1024, 1)}

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        return proc_cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if hasattr(self, "_log"):
            self._log.close()


def require_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk not found: install it (Debian/Ubuntu: apt-get install wrk)")
    return wrk


def write_bodies(queries: list[str], path: Path, top_k: int = 10) -> Path:
    """One /search JSON body a line (wrk's Lua reads them; JSON escaping is done here, not in Lua)."""
    with open(path, "w", encoding="utf-8") as f:
        for q in queries:
            f.write(json.dumps({"query": q, "top_k": top_k}, ensure_ascii=True) + "\n")
    return path


def run_wrk(url: str, bodies: Path, clients: int, seconds: float, server: Server | None = None) -> dict[str, Any]:
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
