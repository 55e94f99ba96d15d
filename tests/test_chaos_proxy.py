"""The chaos run's TCP proxy against a real echo server: it forwards, and its faults look like a
dying or hanging server (connections reset or silent), never like a refused connection."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from bench.proxy import FaultyProxy


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(4096):
            self.request.sendall(data)


@pytest.fixture
def proxy() -> Iterator[FaultyProxy]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    proxy = FaultyProxy("echo", lambda: ("tcp", "127.0.0.1", port)).start()
    yield proxy
    proxy.close()
    server.shutdown()
    server.server_close()


def _connect(proxy: FaultyProxy) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proxy.port), timeout=5)


def test_bytes_pass_both_ways(proxy: FaultyProxy):
    with _connect(proxy) as conn:
        conn.sendall(b"hello")
        assert conn.recv(100) == b"hello"


def test_drop_resets_an_open_connection(proxy: FaultyProxy):
    with _connect(proxy) as conn:
        conn.sendall(b"ping")
        assert conn.recv(100) == b"ping"
        assert proxy.drop() == 1
        with pytest.raises(ConnectionResetError):
            conn.sendall(b"more")
            conn.recv(100)
    assert proxy.counters.dropped == 1


def test_a_blackout_accepts_and_resets_instead_of_refusing(proxy: FaultyProxy):
    proxy.blackout(2)
    # The handshake completes and the reset follows, on loopback often before connect() returns:
    # a reset, never ConnectionRefusedError.
    with pytest.raises(ConnectionResetError):
        with _connect(proxy) as conn:
            time.sleep(0.2)
            conn.sendall(b"x")
            conn.recv(100)
    assert proxy.counters.reset_on_accept == 1


def test_a_stall_holds_every_byte_until_it_ends(proxy: FaultyProxy):
    with _connect(proxy) as conn:
        proxy.stall(1.0)
        began = time.monotonic()
        conn.sendall(b"late")
        assert conn.recv(100) == b"late"
        assert time.monotonic() - began >= 0.9
