"""Who a recipient is: a Blink username, a Lightning Address (LUD-16) or an LNURL-pay link
(LUD-01 bech32, LUD-17 ``lnurlp://``), in one normalised spelling so the same recipient named
twice is one recipient.

Normalised forms: a Blink user is its lowercase username (``name@blink.sv`` included); an address
is ``name@domain`` in lowercase (``:port`` kept only when not 443); an LNURL is the lowercase
bech32 of its canonical URL, and an LNURL whose URL is an address's ``/.well-known/lnurlp/name``
is that address. Parsing makes no network call.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit, urlunsplit

import bech32

from service.domain.normalize import normalize_username
from service.lnurl.errors import RecipientInvalid

DEFAULT_BLINK_DOMAINS = ("blink.sv", "pay.blink.sv")

# LUD-16 allows a-z0-9-_. ; some servers also use + (sub-addresses). npub.cash names are 63 chars.
_ADDRESS_NAME = re.compile(r"[a-z0-9\-_.+]{1,100}")
_HOST_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_WELL_KNOWN = re.compile(r"/\.well-known/lnurlp/([^/]+)")
_LNURL_HRP = "lnurl"
_URI_PREFIXES = ("lightning:", "lnurl:")
_MAX_RECIPIENT_CHARS = 2000


class RecipientKind(StrEnum):
    BLINK = "blink"
    LIGHTNING_ADDRESS = "lightning_address"
    LNURL = "lnurl"


@dataclass(frozen=True)
class Recipient:
    kind: RecipientKind
    normalized: str  # the one spelling: equal recipients have equal `normalized`
    url: str | None = None  # the pay request's URL; None for a Blink user

    @property
    def is_blink(self) -> bool:
        return self.kind is RecipientKind.BLINK


def parse_recipient(
    raw: object,
    *,
    blink_domains: Collection[str] = DEFAULT_BLINK_DOMAINS,
    insecure_hosts: Collection[str] = (),
) -> Recipient:
    """The recipient ``raw`` names, or RecipientInvalid saying why not.

    ``insecure_hosts`` (``host:port`` entries, LNURL_INSECURE_HOSTS) are reached over plain http.
    """
    if not isinstance(raw, str) or not raw.strip():
        raise _invalid("a recipient must be a non-empty string", "empty")
    text = raw.strip()
    if len(text) > _MAX_RECIPIENT_CHARS:
        raise _invalid("the recipient is too long", "too_long")
    lowered = text.lower()
    for prefix in _URI_PREFIXES:
        if lowered.startswith(prefix):
            text, lowered = text[len(prefix) :], lowered[len(prefix) :]
            break
    if lowered.startswith(_LNURL_HRP + "1"):
        return _from_url(_decode_bech32(text), blink_domains, insecure_hosts)
    if lowered.startswith("lnurlp://"):
        return _from_url(_lud17_url(text, insecure_hosts), blink_domains, insecure_hosts)
    if "@" in text:
        name, _, domain = lowered.rpartition("@")
        return _address(name, domain, blink_domains, insecure_hosts)
    username = normalize_username(text)
    if username is None:
        raise _invalid(
            "not a Blink username, a Lightning Address (name@domain) or an LNURL (lnurl1...)",
            "unrecognised",
        )
    return Recipient(RecipientKind.BLINK, username)


def encode_lnurl(url: str) -> str:
    """The lowercase bech32 LNURL of ``url`` (LUD-01)."""
    data = bech32.convertbits(url.encode("utf-8"), 8, 5, True)
    return bech32.bech32_encode(_LNURL_HRP, data)


def _address(
    name: str, domain: str, blink_domains: Collection[str], insecure_hosts: Collection[str]
) -> Recipient:
    host_port = _host_port(domain)
    if host_port in blink_domains:
        username = normalize_username(name)
        if username is None:
            raise _invalid(f"{name!r} is not a valid Blink username", "bad_blink_username")
        return Recipient(RecipientKind.BLINK, username)
    if not _ADDRESS_NAME.fullmatch(name):
        raise _invalid("a Lightning Address name may hold only a-z, 0-9, -, _, . and +", "bad_name")
    scheme = "http" if host_port in insecure_hosts else "https"
    return Recipient(
        RecipientKind.LIGHTNING_ADDRESS,
        f"{name}@{host_port}",
        f"{scheme}://{host_port}/.well-known/lnurlp/{name}",
    )


def _host_port(domain: str) -> str:
    """``host`` or ``host:port`` checked and lowercased; 443 dropped; .onion refused."""
    host, colon, port = domain.strip().lower().partition(":")
    host = host.rstrip(".")
    labels = host.split(".")
    if len(host) > 253 or len(labels) < 2 and host != "localhost":
        raise _invalid("the domain is not a valid host name", "bad_domain")
    if not all(_HOST_LABEL.fullmatch(label) for label in labels):
        raise _invalid("the domain is not a valid host name", "bad_domain")
    if labels[-1] == "onion":
        raise _invalid(".onion recipients are not supported", "onion")
    if colon:
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise _invalid("the domain's port is not valid", "bad_domain")
        if int(port) != 443:
            return f"{host}:{int(port)}"
    return host


def _decode_bech32(text: str) -> str:
    # bech32 1.2 lifts BIP-173's 90-character limit, which LNURLs routinely exceed (LUD-01).
    hrp, data = bech32.bech32_decode(text)
    decoded = bech32.convertbits(data, 5, 8, False) if data is not None else None
    if hrp != _LNURL_HRP or decoded is None:
        raise _invalid("the LNURL is not valid bech32", "bad_bech32")
    try:
        return bytes(decoded).decode("utf-8")
    except UnicodeDecodeError:
        raise _invalid("the LNURL does not hold a URL", "bad_bech32") from None


def _lud17_url(text: str, insecure_hosts: Collection[str]) -> str:
    rest = text[len("lnurlp://") :]
    host_port = _host_port(rest.split("/", 1)[0].split("?", 1)[0])
    scheme = "http" if host_port in insecure_hosts else "https"
    return f"{scheme}://{rest}"


def _from_url(url: str, blink_domains: Collection[str], insecure_hosts: Collection[str]) -> Recipient:
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise _invalid("the LNURL does not hold a valid URL", "bad_url") from None
    if parts.scheme.lower() not in ("https", "http") or not parts.hostname or parts.username is not None:
        raise _invalid("the LNURL does not hold an http(s) URL", "bad_url")
    netloc = _host_port(parts.hostname + (f":{port}" if port is not None else ""))
    path = parts.path or "/"
    canonical = urlunsplit((parts.scheme.lower(), netloc, path, parts.query, ""))
    well_known = _WELL_KNOWN.fullmatch(path)
    if well_known and not parts.query and _ADDRESS_NAME.fullmatch(well_known.group(1).lower()):
        address = _address(well_known.group(1).lower(), netloc, blink_domains, insecure_hosts)
        if address.url == canonical.lower() or address.is_blink:
            return address
    return Recipient(RecipientKind.LNURL, encode_lnurl(canonical), canonical)


def _invalid(message: str, reason: str) -> RecipientInvalid:
    return RecipientInvalid(message, reason=reason)
