"""The supervisor's connection dispatcher (app/workers.py) with real sockets and stand-in processes: the
process end of each channel is a socket this test reads, as a server process would."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from app.workers import CLOSED, LEAVING, READY, _Dispatcher, listening_socket


@pytest.fixture()
def dispatcher() -> Iterator[_Dispatcher]:
    d = _Dispatcher(listening_socket("127.0.0.1", 0), processes=1)
    yield d
    d.stopping = True
    d.join(timeout=2)


def _process(d: _Dispatcher) -> socket.socket:
    """A stand-in server process: its end of a new channel, already ready."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    ours.setblocking(False)
    d.add(ours)
    theirs.send(READY)
    theirs.settimeout(3)
    return theirs


def _handed(proc: socket.socket, timeout: float = 3.0) -> int:
    proc.settimeout(timeout)
    _, fds, _, _ = socket.recv_fds(proc, 16, 16)
    for fd in fds:
        socket.socket(fileno=fd).close()
    return len(fds)


def _drain(proc: socket.socket, quiet_s: float = 1.0) -> int:
    """Connections handed to ``proc`` until none comes for ``quiet_s``."""
    n = 0
    while True:
        try:
            n += _handed(proc, timeout=quiet_s)
        except TimeoutError:
            return n


def _connect(d: _Dispatcher) -> socket.socket:
    return socket.create_connection(d.listener.getsockname(), timeout=3)


def test_fewest_connections_first_and_closes_counted(dispatcher: _Dispatcher) -> None:
    a = _process(dispatcher)
    dispatcher.start()
    clients = [_connect(dispatcher)]
    assert _handed(a) == 1
    b = _process(dispatcher)
    time.sleep(0.5)  # b's READY read
    clients += [_connect(dispatcher) for _ in range(3)]
    # a holds 1, b 0: b, then the older of the two equal counts ... → 2 and 2
    got_a = got_b = 0
    deadline = time.monotonic() + 3
    while got_a + got_b < 3 and time.monotonic() < deadline:
        for proc in (a, b):
            try:
                n = _handed(proc, timeout=0.2)
            except TimeoutError:
                continue
            got_a, got_b = got_a + (n if proc is a else 0), got_b + (n if proc is b else 0)
    assert (1 + got_a, got_b) == (2, 2)
    a.send(CLOSED * 2)  # a's two connections closed: the next two go to a
    time.sleep(0.5)
    clients += [_connect(dispatcher) for _ in range(2)]
    assert _handed(a) + _handed(a) == 2
    for c in clients:
        c.close()


def test_a_process_that_dies_or_leaves_gets_nothing_and_the_dispatcher_survives(dispatcher: _Dispatcher) -> None:
    a = _process(dispatcher)
    dispatcher.start()
    c1 = _connect(dispatcher)
    assert _handed(a) == 1
    a.close()  # the process died; a connection may arrive before its channel's end is read
    c2 = _connect(dispatcher)  # closed (no process left) or waiting in the backlog: either is fine
    time.sleep(0.3)
    b = _process(dispatcher)
    c4 = _connect(dispatcher)
    assert _drain(b) in (1, 2)  # c4, and c2 if it waited
    assert dispatcher.is_alive() and dispatcher.failed is None
    b.send(LEAVING)  # b shuts down: connections wait for a process that is not leaving
    time.sleep(0.5)
    c3 = _connect(dispatcher)
    with pytest.raises(TimeoutError):
        _handed(b, timeout=0.5)
    c = _process(dispatcher)
    assert _handed(c) == 1
    assert dispatcher.is_alive()
    for s in (c1, c2, c3, c4):
        s.close()
