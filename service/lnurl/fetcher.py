"""SafeFetcher: GET a JSON document from an LNURL server without letting it reach inside our network.

The rules (DESIGN 8): https only; every address the host resolves to must be public, and the
connection goes to the address that was checked (the TLS name and Host header stay the host's,
so certificates are verified as usual, but no second DNS lookup can swap the target); a redirect
is followed only within the same origin; the answer is streamed and abandoned past
``max_bytes``; the whole exchange is bounded by ``timeout_seconds`` (each socket read also is).
``insecure_hosts`` (LNURL_INSECURE_HOSTS, ``host:port``) are exempt from https and the
public-address rule, for development and tests.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import time
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import certifi
import urllib3
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import NewConnectionError
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from service.lnurl.errors import RecipientUnreachable

Resolver = Callable[[str, int], list[str]]
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_USER_AGENT = "blinkpos-payment-service/1.0 (LNURL-pay)"
DEFAULT_MAX_BYTES = 64 * 1024
_MAX_REDIRECTS = 3
# Name lookups of every fetcher in the process; bounded so that a resolver that hangs costs at
# most this many threads (callers still give up at their own deadline).
_DNS_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="lnurl-dns")
_CHUNK_BYTES = 8192
# Ranges Python's ipaddress still calls global but that must never be reached: CGNAT shared space
# is not global already; these embed an IPv4 address whose own rules then apply.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


@dataclass(frozen=True)
class Fetched:
    status: int
    body: Any  # the decoded JSON document
    url: str  # the URL that answered (after same-origin redirects)


def system_resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (A and AAAA), as the OS resolver answers."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0].split("%", 1)[0] for info in infos))


def is_public_address(address: IpAddress) -> bool:
    """False for loopback, private, link-local, CGNAT, multicast, reserved and unspecified ranges,
    IPv4-mapped/6to4/NAT64 forms of those, and anything else not globally routable."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return is_public_address(embedded)
        if address.teredo is not None:
            return False
    return address.is_global and not (
        address.is_multicast
        or address.is_reserved
        or address.is_loopback
        or address.is_link_local
        or address.is_unspecified
        or address.is_private
    )


def parse_host_ports(entries: Collection[str]) -> frozenset[str]:
    """``host:port`` entries lowercased, for membership tests (``[::1]:8080`` style for IPv6)."""
    return frozenset(entry.strip().lower() for entry in entries if entry.strip())


class SafeFetcher:
    """Thread-safe; holds no connection between calls (each LNURL server is seen rarely)."""

    def __init__(
        self,
        *,
        timeout_seconds: float,
        max_bytes: int = DEFAULT_MAX_BYTES,
        insecure_hosts: Collection[str] = (),
        user_agent: str = DEFAULT_USER_AGENT,
        resolve: Resolver = system_resolve,
        ca_certs: str | None = None,
    ) -> None:
        self._timeout = timeout_seconds
        self._max_bytes = max_bytes
        self._insecure = parse_host_ports(insecure_hosts)
        self._user_agent = user_agent
        self._resolve = resolve
        self._ca_certs = ca_certs or certifi.where()

    def get_json(self, url: str) -> Fetched:
        """GET ``url`` and decode its JSON body, whatever the HTTP status (LNURL servers answer
        ``{"status": "ERROR"}`` with 200 or 4xx/5xx alike); RecipientUnreachable otherwise."""
        deadline = time.monotonic() + self._timeout
        origin = _origin(url)
        for _ in range(_MAX_REDIRECTS + 1):
            status, location, body = self._exchange(url, deadline)
            if location is None:
                return Fetched(status, _decode_json(body, status), url)
            try:
                target = urljoin(url, location)
            except ValueError:  # a malformed IPv6 host, say: it leads nowhere we may go
                target = ""
            if _origin(target) != origin:
                raise _unreachable("the LNURL server redirected to another host", "redirect")
            url = target
        raise _unreachable("the LNURL server redirected too many times", "redirect")

    def _exchange(self, url: str, deadline: float) -> tuple[int, str | None, bytes]:
        try:
            parts = urlsplit(url)  # raises on a malformed IPv6 host
            host, port = parts.hostname, parts.port
        except ValueError:
            raise _unreachable("the LNURL server's URL is not valid", "bad_url") from None
        scheme = parts.scheme.lower()
        if not host or scheme not in ("https", "http") or parts.username is not None:
            raise _unreachable("the LNURL server's URL is not valid", "bad_url")
        port = port or (443 if scheme == "https" else 80)
        exempt = _host_key(host, port) in self._insecure
        if scheme != "https" and not exempt:
            raise _unreachable("LNURL servers must be reached over https", "insecure_scheme")
        address = self._checked_address(host, port, exempt, deadline)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        default_port = 443 if scheme == "https" else 80
        headers = {
            "Host": host if port == default_port else _host_key(host, port),
            "User-Agent": self._user_agent,
            "Accept": "application/json",
            "Accept-Encoding": "identity",
        }
        remaining = _remaining(deadline)
        pool = self._pool(scheme, host, address, port, remaining)
        try:
            response = pool.urlopen(
                "GET",
                path,
                headers=headers,
                redirect=False,
                retries=False,
                preload_content=False,
                decode_content=False,
                assert_same_host=False,
                timeout=urllib3.Timeout(connect=remaining, read=remaining),
            )
            try:
                if 300 <= response.status < 400:
                    location = response.headers.get("Location")
                    if location:
                        return response.status, location, b""
                return response.status, None, self._read_capped(response, deadline)
            finally:
                response.release_conn()
        except NewConnectionError:  # urllib3 makes it a timeout subclass; it is a refusal
            raise _unreachable("cannot connect to the LNURL server", "network_error") from None
        except Urllib3Timeout:
            raise _unreachable("the LNURL server did not answer in time", "timeout") from None
        except Urllib3Error as exc:
            raise _unreachable(
                f"cannot reach the LNURL server ({type(exc).__name__})", "network_error"
            ) from None
        finally:
            pool.close()

    def _checked_address(self, host: str, port: int, exempt: bool, deadline: float) -> str:
        """The address to connect to: every resolved address must be public (unless exempt)."""
        # getaddrinfo has no timeout of its own: it runs on a small pool and is waited for only
        # until the deadline (a lookup left behind finishes in the background, its answer unused).
        lookup = _DNS_POOL.submit(self._resolve, host, port)
        try:
            addresses = [ipaddress.ip_address(value) for value in lookup.result(timeout=_remaining(deadline))]
        except FutureTimeout:
            lookup.cancel()
            raise _unreachable("the LNURL server's name did not resolve in time", "timeout") from None
        except (OSError, UnicodeError, ValueError):  # the lookup failed, or answered a non-address
            raise _unreachable("the LNURL server's name does not resolve", "dns") from None
        if not addresses:
            raise _unreachable("the LNURL server's name does not resolve", "dns")
        if not exempt and not all(is_public_address(address) for address in addresses):
            raise _unreachable("the LNURL server is not on the public internet", "forbidden_address")
        return str(addresses[0])

    def _pool(
        self, scheme: str, host: str, address: str, port: int, timeout: float
    ) -> urllib3.HTTPConnectionPool:
        options: dict[str, Any] = {"maxsize": 1, "retries": False, "timeout": timeout}
        if scheme == "http":
            return urllib3.HTTPConnectionPool(address, port, **options)
        # Connect to the checked address; SNI and the certificate check use the host name.
        return urllib3.HTTPSConnectionPool(
            address,
            port,
            server_hostname=host,
            assert_hostname=host,
            cert_reqs="CERT_REQUIRED",
            ca_certs=self._ca_certs,
            **options,
        )

    def _read_capped(self, response: urllib3.BaseHTTPResponse, deadline: float) -> bytes:
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > self._max_bytes:
            raise _unreachable("the LNURL server's answer is too large", "too_large")
        received = bytearray()
        while True:
            # Each read waits only for what is left of the whole exchange, so a server sending a
            # byte just inside every read timeout cannot stretch the answer past the deadline.
            _bound_next_read(response, deadline)
            chunk = response.read1(_CHUNK_BYTES)
            if not chunk:
                return bytes(received)
            received += chunk
            if len(received) > self._max_bytes:
                raise _unreachable("the LNURL server's answer is too large", "too_large")
            if time.monotonic() > deadline:
                raise _unreachable("the LNURL server did not answer in time", "timeout")


def _bound_next_read(response: urllib3.BaseHTTPResponse, deadline: float) -> None:
    # The socket under http.client's reader (urllib3 has already let go of it when the server
    # closes after answering); neither library exposes it, so each step is looked up and a
    # missing one leaves the per-read timeout as it was.
    reader = getattr(getattr(response, "_fp", None), "fp", None)
    sock = getattr(getattr(reader, "raw", None), "_sock", None)
    if sock is not None:
        sock.settimeout(_remaining(deadline))


def _host_key(host: str, port: int) -> str:
    host = host.lower()
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port); a URL that does not parse has an origin no other URL shares."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "", "", -1
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), port or (443 if scheme == "https" else 80)


def _remaining(deadline: float) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise _unreachable("the LNURL server did not answer in time", "timeout")
    return remaining


def _decode_json(body: bytes, status: int) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: nested too deep
        raise _unreachable(f"the LNURL server's answer is not JSON (HTTP {status})", "not_json") from None


def _unreachable(message: str, reason: str) -> RecipientUnreachable:
    return RecipientUnreachable(message, reason=reason)
