"""Test helpers for LNURL: a scripted HTTP server on loopback and signed BOLT11 invoices."""

from __future__ import annotations

import hashlib
import json
import secrets
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import bolt11
from bolt11.models.tags import TagChar, Tags
from bolt11.types import Bolt11, MilliSatoshi
from coincurve import PrivateKey


def make_invoice(
    amount_msat: int | None,
    *,
    currency: str = "bc",
    expiry: int = 600,
    date: int | None = None,
    description_hash: str | None = None,
    key: PrivateKey | None = None,
    payee: PrivateKey | None = None,
) -> str:
    """A BOLT11 string signed with ``key``; with ``payee`` its `n` field names that key instead."""
    key = key or PrivateKey()
    tags = Tags()
    tags.add(TagChar.payment_hash, secrets.token_hex(32))
    tags.add(TagChar.payment_secret, secrets.token_hex(32))
    if description_hash is None:
        tags.add(TagChar.description, "tip")
    else:
        tags.add(TagChar.description_hash, description_hash)
    tags.add(TagChar.expire_time, expiry)
    if payee is not None:
        tags.add(TagChar.payee, payee.public_key.format(compressed=True).hex())
    invoice = Bolt11(
        currency=currency,
        date=int(time.time()) if date is None else date,
        tags=tags,
        amount_msat=MilliSatoshi(amount_msat) if amount_msat is not None else None,
    )
    return bolt11.encode(invoice, key.to_hex(), keep_payee=payee is not None)


@dataclass
class Reply:
    status: int = 200
    body: bytes | str | dict | list = b"{}"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before the headers
    drip: float = 0.0  # seconds between body bytes (a slow sender)
    send_length: bool = True  # False: the body ends when the connection closes

    def payload(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


Route = Callable[[str, dict[str, list[str]], dict[str, str]], Reply]


@dataclass
class Seen:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


class LnurlTestServer:
    """Answers GETs by path with scripted Replies; records every request."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.routes: dict[str, Route] = {}
        self.seen: list[Seen] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                headers = {name.lower(): value for name, value in self.headers.items()}
                server.seen.append(Seen(parts.path, query, headers))
                route = server.routes.get(parts.path)
                reply = route(parts.path, query, headers) if route else Reply(404, {"status": "ERROR"})
                time.sleep(reply.delay)
                payload = reply.payload()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    if reply.send_length and not reply.drip:
                        self.send_header("Content-Length", str(len(payload)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    if reply.drip:
                        for index in range(len(payload)):
                            self.wfile.write(payload[index : index + 1])
                            self.wfile.flush()
                            time.sleep(reply.drip)
                    else:
                        self.wfile.write(payload)
                except OSError:
                    pass  # the client gave up, as it should

            def log_message(self, *_args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.host_port = f"127.0.0.1:{self.port}"
        self.base = f"http://{self.host_port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def start(self) -> LnurlTestServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def reply(self, path: str, reply: Reply) -> None:
        self.routes[path] = lambda *_: reply

    def pay_wallet(
        self,
        name: str,
        *,
        min_msat: int = 1000,
        max_msat: int = 100_000_000_000,
        comment_allowed: int | None = None,
        invoice: Callable[[int], str] | None = None,
    ) -> str:
        """An honest LNURL-pay wallet at /.well-known/lnurlp/<name>; returns its address."""
        metadata = json.dumps([["text/plain", f"pay {name}"]])
        description_hash = hashlib.sha256(metadata.encode()).hexdigest()
        callback = f"/lnurlp/{name}/callback"
        document: dict = {
            "tag": "payRequest",
            "callback": self.base + callback,
            "minSendable": min_msat,
            "maxSendable": max_msat,
            "metadata": metadata,
        }
        if comment_allowed is not None:
            document["commentAllowed"] = comment_allowed
        self.reply(f"/.well-known/lnurlp/{name}", Reply(body=document))
        make = invoice or (lambda msat: make_invoice(msat, description_hash=description_hash))

        def answer(_path: str, query: dict[str, list[str]], _headers: dict[str, str]) -> Reply:
            return Reply(body={"pr": make(int(query["amount"][0])), "routes": []})

        self.routes[callback] = answer
        return f"{name}@{self.host_port}"

    def callbacks(self, name: str) -> list[Seen]:
        return [seen for seen in self.seen if seen.path == f"/lnurlp/{name}/callback"]


@contextmanager
def running_server() -> Iterator[LnurlTestServer]:
    server = LnurlTestServer().start()
    try:
        yield server
    finally:
        server.stop()
