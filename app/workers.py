"""Several server processes on one port, each with its own listening socket (``SO_REUSEPORT``).

Why not ``uvicorn --workers``: its workers share one listening socket, and whichever process wakes first
drains every pending connection (libuv accepts in a loop), so 8 keep-alive clients connecting at once
often all land on one worker while the other idles — on this project's 2 cores, 8 clients got 846 req/s
in one run and 1,650 in the next. With a socket per process the kernel spreads new connections across
the processes by a hash of their addresses (Linux ≥ 3.9), as nginx's ``reuseport`` does.

The supervisor starts ``n`` processes (spawned: nothing of the parent's state is inherited), forwards
SIGTERM/SIGINT to them (each shuts down gracefully as one uvicorn server does), and restarts a process
that dies on its own, at most once a second; five that die within 10 s of their start in a row stop the
service (exit 1) instead of a restart loop.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import time
from typing import Any

log = logging.getLogger("app.workers")


def reuseport_socket(host: str, port: int, reuse_port: bool = True) -> socket.socket:
    """A listening TCP socket on (host, port) that other sockets of this user may share (SO_REUSEPORT)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _serve(host: str, port: int, app: str, config: dict[str, Any]) -> None:
    import uvicorn

    sock = reuseport_socket(host, port)
    uvicorn.Server(uvicorn.Config(app, **config)).run(sockets=[sock])


QUICK_EXIT_S = 10.0  # a process that exits this soon after its start failed to start
MAX_QUICK_EXITS = 5  # in a row: then the service stops instead of restarting forever


def run_workers(n: int, host: str, port: int, app: str, **config: Any) -> int:
    """Serve ``app`` (an import string, e.g. ``"app.main:app"``, read by every process) from ``n``
    processes until SIGTERM/SIGINT; ``config``: further ``uvicorn.Config`` arguments. Returns 0, or 1 when
    the port cannot be bound or the processes keep failing at start (the message says why)."""
    try:
        # Without SO_REUSEPORT: a server still listening there (even an earlier one of ours) makes this
        # fail, instead of the kernel silently splitting connections between the two.
        reuseport_socket(host, port, reuse_port=False).close()
    except OSError as e:
        log.error("cannot listen on %s:%d: %s", host, port, e)
        return 1
    ctx = multiprocessing.get_context("spawn")
    procs: list[tuple[multiprocessing.process.BaseProcess, float]] = []
    stopping = False

    def start() -> tuple[multiprocessing.process.BaseProcess, float]:
        p = ctx.Process(target=_serve, args=(host, port, app, config), name="dssm-server", daemon=False)
        p.start()
        return p, time.monotonic()

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for p, _ in procs:
            if p.is_alive():
                p.terminate()  # SIGTERM: uvicorn's graceful shutdown in that process

    old = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    code = 0
    try:
        procs += [start() for _ in range(n)]
        quick = 0
        while not stopping:
            time.sleep(0.2)
            for i, (p, started) in enumerate(procs):
                if p.is_alive() or stopping:
                    continue
                quick = quick + 1 if time.monotonic() - started < QUICK_EXIT_S else 0
                if quick >= MAX_QUICK_EXITS:
                    log.error("server processes keep exiting at start (%d in a row; last exit code %s): stopping",
                              quick, p.exitcode)
                    code = 1
                    stop(signal.SIGTERM, None)
                    break
                log.warning("server process %s exited (%s); restarting in 1 s", p.pid, p.exitcode)
                time.sleep(1.0)
                if stopping:  # a signal came during the wait: start nothing more
                    break
                procs[i] = start()
                if stopping:  # ... or during the start: this one did not get it
                    procs[i][0].terminate()
        for p, _ in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
                p.join()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    return code
