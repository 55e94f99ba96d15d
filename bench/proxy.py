"""A TCP proxy the chaos run puts between the service and a server it depends on (Postgres, Blink).

It forwards bytes both ways, one thread per direction, until told to misbehave:

- `drop()`: every open connection is cut at once with a TCP reset (SO_LINGER 0), mid-request
  or mid-answer as it happens to be;
- `blackout(seconds)`: drop, and for that long every new connection is accepted and then reset:
  the peer sees a server that answered and hung up, never a refused connection;
- `stall(seconds)`: nothing moves in either direction and new connections wait, then everything
  goes on where it was: the peer sees a server that stopped answering.

The upstream address is looked up on each new connection, so a server restarted elsewhere (a new
socket path) is followed. Counters say what was done, for the chaos report.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

BUFFER_BYTES = 64 * 1024
POLL_SECONDS = 0.05  # how often a stalled pump looks whether the stall is over

# Where to connect: ("unix", path) or ("tcp", host, port).
Upstream = tuple


@dataclass
class ProxyCounters:
    connections: int = 0
    dropped: int = 0  # open connections cut by drop() or a blackout
    reset_on_accept: int = 0  # connections accepted and reset during a blackout
    stalls: int = 0


class FaultyProxy:
    """Listens on 127.0.0.1 (a free port); start() it, close() it when done."""

    def __init__(self, name: str, upstream: Callable[[], Upstream]) -> None:
        self.name = name
        self._upstream = upstream
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(256)
        self.port = self._listener.getsockname()[1]
        self.counters = ProxyCounters()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._stalled_until = 0.0
        self._blackout_until = 0.0
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, name=f"proxy-{name}", daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> FaultyProxy:
        self._thread.start()
        return self

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        self._cut_all()
        self._thread.join(timeout=5)

    # --- faults -----------------------------------------------------------------------------

    def drop(self) -> int:
        """Resets every open connection; returns how many were cut."""
        cut = self._cut_all()
        with self._lock:
            self.counters.dropped += cut
        return cut

    def blackout(self, seconds: float) -> int:
        with self._lock:
            self._blackout_until = time.monotonic() + seconds
        return self.drop()

    def stall(self, seconds: float) -> None:
        with self._lock:
            self._stalled_until = time.monotonic() + seconds
            self.counters.stalls += 1

    # --- forwarding -------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with self._lock:
            self.counters.connections += 1
        if time.monotonic() < self._blackout_until:
            with self._lock:
                self.counters.reset_on_accept += 1
            _reset(client)
            return
        self._wait_out_stall()
        try:
            upstream = _connect(self._upstream())
        except OSError:
            _reset(client)  # as a server that accepted and then died would
            return
        with self._lock:
            self._open.update((client, upstream))
        threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()
        self._pump(client, upstream)

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while True:
                data = source.recv(BUFFER_BYTES)
                if not data:
                    break
                self._wait_out_stall()
                target.sendall(data)
        except OSError:
            pass
        finally:
            self._forget(source, target)

    def _wait_out_stall(self) -> None:
        while time.monotonic() < self._stalled_until and not self._closed.is_set():
            time.sleep(POLL_SECONDS)

    def _forget(self, *sockets: socket.socket) -> None:
        with self._lock:
            mine = [s for s in sockets if s in self._open]
            self._open.difference_update(mine)
        for sock in mine:
            _close(sock)

    def _cut_all(self) -> int:
        with self._lock:
            sockets = list(self._open)
            self._open.clear()
        for sock in sockets:
            _reset(sock)
        return len(sockets) // 2  # a connection is a client and an upstream socket


def _connect(upstream: Upstream) -> socket.socket:
    if upstream[0] == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(5)
        sock.connect(upstream[1])
    else:
        sock = socket.create_connection((upstream[1], upstream[2]), timeout=5)
    sock.settimeout(None)
    return sock


def _reset(sock: socket.socket) -> None:
    """Close with a TCP reset instead of an orderly FIN (a unix socket just closes). The shutdown
    wakes a pump blocked reading this socket, which a bare close would leave blocked."""
    try:
        if sock.family == socket.AF_UNIX:
            sock.shutdown(socket.SHUT_RDWR)
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.shutdown(socket.SHUT_RD)
    except OSError:
        pass
    _close(sock)


def _close(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass
