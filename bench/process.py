"""A real server in a child process, in one place: a free port of 127.0.0.1, start, wait until it
answers, stop (SIGTERM, then kill). Used by the benchmarks, the load and reliability runners and the
test suite alike.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

ROOT = Path(__file__).resolve().parent.parent


class ServerError(RuntimeError):
    """The server exited, or did not become ready in time; the message says why (with its log's tail)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def product_env(**dssm: str) -> dict[str, str]:
    """This process's environment without any ``DSSM_*`` variable, plus ``DSSM_<KEY>`` for each given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DSSM_")}
    env.update({f"DSSM_{k.upper()}": v for k, v in dssm.items()})
    return env


def serve_command(port: int, *args: str) -> list[str]:
    """The product's own command line: ``python scripts/serve.py --port P …``."""
    return [sys.executable, str(ROOT / "scripts" / "serve.py"), "--port", str(port), *args]


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM (peak RSS) of a process in KiB, from /proc."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(rest.split()[0])
    return out


def proc_tree(pid: int) -> list[int]:
    """``pid`` and its live descendants (uvicorn --workers: a supervisor and its worker processes)."""
    parent: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parent[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += [c for c, pp in parent.items() if pp == p]
    return out


def proc_pss_kib(pid: int) -> int:
    """Proportional set size: shared pages (a memory-mapped index, libraries) divided among the
    processes that map them, so a sum over worker processes counts each page once."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def proc_cpu_seconds(pid: int) -> float:
    """user + system CPU seconds a process has used so far (/proc/PID/stat, fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ServerProcess:
    """``cmd`` started at once in a child process (output to ``log_path``) serving on ``port``.

        with ServerProcess(serve_command(port, "--model", m, "--index", i), product_env(), port, log) as s:
            s.wait_ready()
            httpx.get(s.url + "/search?q=x")
    """

    def __init__(self, cmd: list[str], env: dict[str, str] | None, port: int, log_path: Path,
                 cwd: Path = ROOT) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = Path(log_path)
        self.started = time.perf_counter()
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait(self, path: str = "/health", status: int = 200, timeout: float = 60.0) -> float:
        """Poll ``path`` until it answers ``status``; returns the seconds since start."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                if httpx.get(self.url + path, timeout=2).status_code == status:
                    return time.perf_counter() - self.started
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise ServerError(f"{self.url}{path} did not answer {status} in {timeout:.0f}s:\n{self.log()}")

    def wait_ready(self, timeout: float = 300.0) -> float:
        """Wait for ``/ready`` 200; a 503 whose reason is not "starting" is final (a bad model or index)
        and raises at once. Returns the seconds since start (model + index load)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                r = httpx.get(self.url + "/ready", timeout=2)
                if r.status_code == 200:
                    return time.perf_counter() - self.started
                reason = r.json().get("reason", "") if r.status_code == 503 else ""
                if reason and "starting" not in reason:
                    raise ServerError(f"{self.url} is not ready: {reason}")
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.1)
        raise ServerError(f"{self.url} not ready after {timeout:.0f}s:\n{self.log()}")

    def _check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise ServerError(f"server exited ({self.proc.returncode}):\n{self.log()}")

    def log(self, tail: int | None = 5000) -> str:
        if not self._log.closed:
            self._log.flush()
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return text[-tail:] if tail else text

    def memory_mib(self) -> dict[str, float]:
        """Over the server's process tree: RSS summed (shared pages counted once per process), PSS summed
        (each page once: what the deployment costs), peak RSS of the largest process."""
        pids = proc_tree(self.proc.pid)
        st = [proc_status(p) for p in pids]
        return {"rss_mib": round(sum(x["VmRSS"] for x in st) / 1024, 1),
                "pss_mib": round(sum(proc_pss_kib(p) for p in pids) / 1024, 1),
                "peak_rss_mib": round(max(x["VmHWM"] for x in st) / 1024, 1), "processes": len(pids)}

    def cpu_seconds(self) -> float:
        """CPU seconds of the server's process tree (every worker process) so far."""
        total = 0.0
        for p in proc_tree(self.proc.pid):
            try:
                total += proc_cpu_seconds(p)
            except OSError:  # a process that just exited
                continue
        return total

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM (graceful shutdown), then SIGKILL after ``timeout``; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
