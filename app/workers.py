"""Several server processes on one port: the supervisor accepts, each connection goes to the process
that holds the fewest.

Why not the kernel's spreading: with ``uvicorn --workers`` the processes share one listening socket and
whichever wakes first drains every pending connection (libuv accepts in a loop), so 8 keep-alive clients
connecting at once often all land on one process (846 req/s in one run, 1,650 in the next on 2 cores).
A socket per process (``SO_REUSEPORT``) spreads connections by a hash of their addresses, which is even
only over many: 8 clients split 2/6, 5/3, 5/3, 5/3, 5/3, 6/2 in six runs here and never 4/4, and one
process serves at most one core (the GIL), so the busier one set the latency (p99 8.2–12.3 ms at 100k
documents from run to run). So, as Node's cluster module does, the supervisor owns the listening socket,
accepts, and hands each connection (its file descriptor, over a Unix socket: ``SCM_RIGHTS``) to the
ready process with the fewest open connections; each process tells it when one closes. Keep-alive
connections stay where they were handed, so the supervisor is on no request's path after the accept.
At start it accepts once every process is ready (within a minute of the first), so that ``/ready``
means the whole capacity and the first clients are spread over all the processes.

The supervisor starts ``n`` processes (spawned: nothing of the parent's state is inherited), forwards
SIGTERM/SIGINT to them (each shuts down gracefully as one uvicorn server does), and restarts a process
that dies on its own, at most once a second; five that die within 10 s of their start in a row stop the
service (exit 1) instead of a restart loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import multiprocessing
import os
import queue
import selectors
import signal
import socket
import threading
import time
from typing import Any

import uvicorn

log = logging.getLogger("app.workers")

# process -> supervisor: started serving; one handed connection closed; shutting down
READY, CLOSED, LEAVING = b"r", b"c", b"l"


def listening_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port); fails when something listens there already."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


class HandedServer(uvicorn.Server):
    """One process's uvicorn server: the app's lifespan as usual, no listening socket of its own; it serves
    the connections the supervisor hands it over ``channel`` and reports each one's end there."""

    def __init__(self, config: uvicorn.Config, channel: socket.socket) -> None:
        super().__init__(config)
        self.channel = channel

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=[])
        if not self.started:
            return
        self.channel.setblocking(False)
        asyncio.get_running_loop().add_reader(self.channel.fileno(), self._receive)
        self.channel.send(READY)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # Take nothing new and say so; a connection handed meanwhile is closed (its client retries),
        # then the open ones finish as in any uvicorn shutdown.
        asyncio.get_running_loop().remove_reader(self.channel.fileno())
        with contextlib.suppress(OSError):
            self.channel.send(LEAVING)
        while True:
            try:
                _, fds, _, _ = socket.recv_fds(self.channel, 64, 64)
            except OSError:
                break
            if not fds:
                break
            for fd in fds:
                os.close(fd)
        await super().shutdown(sockets=sockets)

    def _protocol(self) -> asyncio.Protocol:
        # What uvicorn's own listener makes per connection (uvicorn.Server.startup's create_protocol),
        # with app.protocol's hook that reports the connection's end.
        proto = self.config.http_protocol_class(config=self.config, server_state=self.server_state,  # type: ignore[call-arg]
                                                app_state=self.lifespan.state)
        proto.on_connection_lost = self._closed  # type: ignore[attr-defined]
        return proto

    def _receive(self) -> None:
        try:
            msg, fds, _, _ = socket.recv_fds(self.channel, 64, 64)
        except BlockingIOError:
            return
        except OSError:
            msg, fds = b"", []
        if not msg:  # the supervisor is gone: finish what is open, then exit
            asyncio.get_running_loop().remove_reader(self.channel.fileno())
            self.should_exit = True
            return
        for _ in range(len(msg) - len(fds)):
            # A connection whose descriptor did not arrive (this process at its open-files limit: the
            # kernel drops it and the client sees the connection close): it is not ours to count.
            self._closed()
        for fd in fds:
            conn = socket.socket(fileno=fd)
            conn.setblocking(False)
            asyncio.get_running_loop().create_task(self._serve_handed(conn))

    async def _serve_handed(self, conn: socket.socket) -> None:
        try:
            await asyncio.get_running_loop().connect_accepted_socket(self._protocol, conn)
        except OSError:  # the client left between the accept and now: no protocol, no hook
            conn.close()
            self._closed()

    def _closed(self) -> None:
        with contextlib.suppress(OSError):  # the supervisor is gone
            self.channel.send(CLOSED)


def _serve(app: str, config: dict[str, Any], channel: socket.socket) -> None:
    HandedServer(uvicorn.Config(app, **config), channel).run()


class _Dispatcher(threading.Thread):
    """Accepts on the listening socket and hands each connection to the ready process holding the fewest
    (ties: the one handed a connection longest ago); reads READY and CLOSED from the processes."""

    def __init__(self, listener: socket.socket, processes: int) -> None:
        super().__init__(name="dssm-dispatch", daemon=True)
        self.listener = listener
        # At start, accept once every process is ready (so /ready means the full capacity and the first
        # clients are spread over all of them), or ALL_READY_WAIT_S after the first one is.
        self.processes = processes
        self.first_ready: float | None = None
        self.started = False
        self.added: queue.Queue[socket.socket] = queue.Queue()
        self.open: dict[socket.socket, int] = {}  # a ready process's channel -> its open connections
        self.last: dict[socket.socket, float] = {}
        self.channels: set[socket.socket] = set()  # every registered channel, ready or not
        self.sel = selectors.DefaultSelector()
        self.stopping = False
        self.failed: BaseException | None = None  # what ended the thread, if not stopping

    def run(self) -> None:
        try:
            self._loop()
        except BaseException as e:  # the supervisor sees it (failed) and stops the service
            self.failed = e
            log.exception("the connection dispatcher failed")
        finally:
            with contextlib.suppress(OSError):
                self.listener.close()  # stopping: new connections are refused while the processes finish

    def add(self, channel: socket.socket) -> None:
        self.added.put(channel)

    def _loop(self) -> None:
        self.listener.setblocking(False)
        accepting = False
        while not self.stopping:
            while not self.added.empty():
                ch = self.added.get()
                self.channels.add(ch)
                self.sel.register(ch, selectors.EVENT_READ)
            # Accept only while some process is ready: before that (start, restarts) connections wait in
            # the listen backlog, as they would for a single server still loading.
            if not self.started and self.open:
                self.first_ready = self.first_ready or time.monotonic()
                self.started = (len(self.open) >= self.processes
                                or time.monotonic() - self.first_ready >= ALL_READY_WAIT_S)
            if (self.started and bool(self.open)) != accepting:
                accepting = not accepting
                if accepting:
                    self.sel.register(self.listener, selectors.EVENT_READ)
                else:
                    self.sel.unregister(self.listener)
            for key, _ in self.sel.select(timeout=0.2):
                if key.fileobj is self.listener:
                    self._accept()
                elif key.fileobj in self.channels:  # not dropped earlier in this batch
                    self._from_process(key.fileobj)

    def _from_process(self, ch: socket.socket) -> None:
        try:
            msg = ch.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            msg = b""
        if not msg:  # the process exited: its channel is done
            self._drop(ch)
            return
        for b in msg:
            if b == READY[0]:
                self.open[ch] = 0
                self.last[ch] = 0.0
            elif b == CLOSED[0] and ch in self.open:
                self.open[ch] = max(0, self.open[ch] - 1)
            elif b == LEAVING[0]:  # shutting down: hand it nothing more
                self.open.pop(ch, None)
                self.last.pop(ch, None)

    def _drop(self, ch: socket.socket) -> None:
        if ch not in self.channels:
            return
        self.channels.discard(ch)
        self.sel.unregister(ch)
        self.open.pop(ch, None)
        self.last.pop(ch, None)
        ch.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    # Out of descriptors or memory: the connection stays in the backlog; back off
                    # instead of spinning on a listener that stays readable (asyncio does the same).
                    log.warning("accept failed (%s); retrying in 0.1 s", e)
                    time.sleep(0.1)
                return  # or closed (stopping), or the client left already
            with conn:
                if conn.family in (socket.AF_INET, socket.AF_INET6):
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as uvicorn's listener does
                tried: set[socket.socket] = set()
                while candidates := [c for c in self.open if c not in tried]:
                    ch = min(candidates, key=lambda c: (self.open[c], self.last[c]))
                    try:
                        socket.send_fds(ch, [b"h"], [conn.fileno()])
                    except OSError as e:
                        if e.errno in (errno.EPIPE, errno.ECONNRESET, errno.EBADF, errno.ENOTCONN):
                            self._drop(ch)  # the process is gone
                        else:
                            tried.add(ch)  # full or short of kernel resources: the next process
                        continue
                    self.open[ch] += 1
                    self.last[ch] = time.monotonic()
                    break
                else:
                    log.warning("no server process could take a connection: closed")
            if not self.open:
                return  # the rest wait in the backlog until a process is ready again


ALL_READY_WAIT_S = 60.0  # at start: the longest the first ready process waits for the others
QUICK_EXIT_S = 10.0  # a process that exits this soon after its start failed to start
MAX_QUICK_EXITS = 5  # in a row: then the service stops instead of restarting forever


def run_workers(n: int, host: str, port: int, app: str, **config: Any) -> int:
    """Serve ``app`` (an import string, e.g. ``"app.main:app"``, read by every process) from ``n``
    processes until SIGTERM/SIGINT; ``config``: further ``uvicorn.Config`` arguments. Returns 0, or 1 when
    the port cannot be bound or the processes keep failing at start (the message says why)."""
    try:
        listener = listening_socket(host, port)
    except OSError as e:
        log.error("cannot listen on %s:%d: %s", host, port, e)
        return 1
    dispatcher = _Dispatcher(listener, n)
    ctx = multiprocessing.get_context("spawn")
    procs: list[tuple[multiprocessing.process.BaseProcess, float]] = []
    stopping = False

    def start() -> tuple[multiprocessing.process.BaseProcess, float]:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        p = ctx.Process(target=_serve, args=(app, config, theirs), name="dssm-server", daemon=False)
        p.start()
        theirs.close()
        ours.setblocking(False)
        dispatcher.add(ours)
        return p, time.monotonic()

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        # No new connections first (the dispatcher closes the listener as it ends), then each process
        # finishes what it has: nothing is handed to a process that is already leaving.
        dispatcher.stopping = True
        if dispatcher.is_alive() and threading.current_thread() is not dispatcher:
            dispatcher.join(timeout=1.0)
        for p, _ in procs:
            if p.is_alive():
                p.terminate()  # SIGTERM: uvicorn's graceful shutdown in that process

    old = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    code = 0
    try:
        dispatcher.start()
        log.info("serving on %s:%d with %d processes", host, port, n)
        for _ in range(n):
            if stopping:
                break
            procs.append(start())
        if stopping:  # a signal during the starts: the last one may have missed it
            stop(signal.SIGTERM, None)
        quick = 0
        while not stopping:
            time.sleep(0.2)
            if not stopping and not dispatcher.is_alive():
                log.error("the connection dispatcher stopped (%s): stopping", dispatcher.failed)
                code = 1
                stop(signal.SIGTERM, None)
                break
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
        dispatcher.stopping = True
        deadline = time.monotonic() + 30
        for p, _ in procs:
            p.join(timeout=max(0.0, deadline - time.monotonic()))
        for p, _ in procs:
            if p.is_alive():
                p.kill()
                p.join()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    return code
