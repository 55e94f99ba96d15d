"""SafeFetcher against a real HTTP server on loopback: the address rules, pinning, redirects,
the size cap and the time bound. Loopback is only reachable through LNURL_INSECURE_HOSTS, which
is itself one of the rules under test."""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Iterator

import pytest

from service.lnurl import RecipientUnreachable, SafeFetcher
from service.lnurl.fetcher import is_public_address, system_resolve
from tests.lnurl_support import LnurlTestServer, Reply, running_server


@pytest.fixture
def server() -> Iterator[LnurlTestServer]:
    with running_server() as running:
        yield running


def fetcher_for(server: LnurlTestServer, **options) -> SafeFetcher:
    options.setdefault("timeout_seconds", 2.0)
    options.setdefault("insecure_hosts", [server.host_port])
    return SafeFetcher(**options)


def unreachable_reason(fetcher: SafeFetcher, url: str) -> str:
    with pytest.raises(RecipientUnreachable) as caught:
        fetcher.get_json(url)
    assert caught.value.code == "recipient_unreachable"
    return caught.value.reason


def test_insecure_host_answers_json_and_is_told_who_is_asking(server):
    server.reply("/doc", Reply(body={"hello": "world"}))
    fetched = fetcher_for(server).get_json(server.base + "/doc?q=1")
    assert (fetched.status, fetched.body) == (200, {"hello": "world"})
    assert server.seen[0].query == {"q": ["1"]}
    assert "blinkpos" in server.seen[0].headers["user-agent"]


def test_error_statuses_still_return_the_json_body(server):
    server.reply("/doc", Reply(503, {"status": "ERROR", "reason": "down for a bit"}))
    fetched = fetcher_for(server).get_json(server.base + "/doc")
    assert fetched.status == 503 and fetched.body["reason"] == "down for a bit"


def test_loopback_is_refused_unless_listed_as_insecure(server):
    server.reply("/doc", Reply(body={}))
    strict = fetcher_for(server, insecure_hosts=[])
    assert unreachable_reason(strict, f"https://127.0.0.1:{server.port}/doc") == "forbidden_address"
    assert unreachable_reason(strict, f"https://localhost:{server.port}/doc") == "forbidden_address"
    assert unreachable_reason(strict, f"http://127.0.0.1:{server.port}/doc") == "insecure_scheme"
    # Another port of the same host is not exempt either.
    other = fetcher_for(server, insecure_hosts=[f"127.0.0.1:{server.port + 1}"])
    assert unreachable_reason(other, f"https://127.0.0.1:{server.port}/doc") == "forbidden_address"
    assert server.seen == []


@pytest.mark.parametrize(
    "addresses",
    [
        ["10.1.2.3"],
        ["192.168.1.10"],
        ["172.16.0.1"],
        ["169.254.169.254"],
        ["100.64.0.1"],
        ["127.0.0.1"],
        ["0.0.0.0"],
        ["224.0.0.1"],
        ["240.0.0.1"],
        ["::1"],
        ["fe80::1"],
        ["fc00::1"],
        ["ff02::1"],
        ["::ffff:127.0.0.1"],
        ["2002:0a00:0001::1"],
        ["64:ff9b::a00:1"],
        ["93.184.216.34", "10.0.0.7"],
    ],
)
def test_a_name_resolving_to_any_non_public_address_is_refused_before_connecting(addresses):
    asked: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        return addresses

    fetcher = SafeFetcher(timeout_seconds=1.0, resolve=resolve)
    assert (
        unreachable_reason(fetcher, "https://wallet.example.com/.well-known/lnurlp/x") == "forbidden_address"
    )
    assert asked == ["wallet.example.com"]


@pytest.mark.parametrize("address", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111", "2a00:1450:4001::1"])
def test_public_addresses_are_public(address):
    assert is_public_address(ipaddress.ip_address(address))


def test_the_connection_goes_to_the_checked_address_without_a_second_lookup(server):
    lookups: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        lookups.append(host)
        return ["127.0.0.1"]

    server.reply("/doc", Reply(body={"ok": True}))
    # "pinned.invalid" has no DNS entry: only the pinned address can have answered.
    fetcher = fetcher_for(server, insecure_hosts=[f"pinned.invalid:{server.port}"], resolve=resolve)
    fetched = fetcher.get_json(f"http://pinned.invalid:{server.port}/doc")
    assert fetched.body == {"ok": True}
    assert lookups == ["pinned.invalid"]
    assert server.seen[0].headers["host"] == f"pinned.invalid:{server.port}"


def test_a_name_that_does_not_resolve_is_unreachable():
    fetcher = SafeFetcher(
        timeout_seconds=1.0, resolve=lambda host, port: system_resolve("nowhere.invalid", port)
    )
    assert unreachable_reason(fetcher, "https://nowhere.invalid/x") == "dns"


def test_a_hanging_name_lookup_is_given_up_at_the_deadline():
    released = threading.Event()

    def hanging(host: str, port: int) -> list[str]:
        released.wait(10)
        return ["93.184.216.34"]

    fetcher = SafeFetcher(timeout_seconds=0.5, resolve=hanging)
    started = time.monotonic()
    try:
        with pytest.raises(RecipientUnreachable) as excinfo:
            fetcher.get_json("https://slow-dns.example/.well-known/lnurlp/x")
        assert time.monotonic() - started < 1.5
        assert excinfo.value.reason == "timeout"
    finally:
        released.set()


def test_redirect_to_another_host_is_refused(server):
    server.reply("/doc", Reply(302, b"", {"Location": f"http://localhost:{server.port}/doc"}))
    fetcher = fetcher_for(server, insecure_hosts=[server.host_port, f"localhost:{server.port}"])
    assert unreachable_reason(fetcher, server.base + "/doc") == "redirect"
    assert [seen.path for seen in server.seen] == ["/doc"]


def test_redirect_within_the_same_origin_is_followed(server):
    server.reply("/old", Reply(301, b"", {"Location": "/new?x=1"}))
    server.reply("/new", Reply(body={"moved": True}))
    fetched = fetcher_for(server).get_json(server.base + "/old")
    assert fetched.body == {"moved": True} and fetched.url == server.base + "/new?x=1"


def test_redirect_loop_stops(server):
    server.reply("/loop", Reply(302, b"", {"Location": "/loop"}))
    assert unreachable_reason(fetcher_for(server), server.base + "/loop") == "redirect"
    assert len(server.seen) == 4


@pytest.mark.parametrize("send_length", [True, False])
def test_answer_larger_than_the_cap_is_refused(server, send_length):
    big = b'{"pad": "' + b"x" * 70_000 + b'"}'
    server.reply("/big", Reply(body=big, send_length=send_length))
    assert unreachable_reason(fetcher_for(server), server.base + "/big") == "too_large"
    server.reply("/small", Reply(body=b'{"pad": "' + b"x" * 1000 + b'"}', send_length=send_length))
    assert fetcher_for(server).get_json(server.base + "/small").body["pad"] == "x" * 1000
    assert unreachable_reason(fetcher_for(server, max_bytes=500), server.base + "/small") == "too_large"


def test_slow_answer_times_out_within_the_configured_seconds(server):
    server.reply("/slow", Reply(body={}, delay=3.0))
    started = time.monotonic()
    assert unreachable_reason(fetcher_for(server, timeout_seconds=0.5), server.base + "/slow") == "timeout"
    assert time.monotonic() - started < 2.0


def test_a_trickling_answer_is_cut_off_by_the_overall_deadline(server):
    server.reply("/drip", Reply(body=b'{"pad": "' + b"x" * 200 + b'"}', drip=0.02))
    started = time.monotonic()
    assert unreachable_reason(fetcher_for(server, timeout_seconds=1.0), server.base + "/drip") == "timeout"
    assert time.monotonic() - started < 2.5


def test_a_byte_sent_just_inside_each_read_timeout_still_ends_at_the_deadline(server):
    # Each byte alone arrives before a per-read timeout would fire; the whole answer must not.
    server.reply("/slow-drip", Reply(body=b'{"a": 1}', drip=1.8))
    started = time.monotonic()
    fetcher = fetcher_for(server, timeout_seconds=2.0)
    assert unreachable_reason(fetcher, server.base + "/slow-drip") == "timeout"
    assert time.monotonic() - started < 3.0


def test_not_json_is_unreachable(server):
    server.reply("/html", Reply(body=b"<html>hi</html>"))
    assert unreachable_reason(fetcher_for(server), server.base + "/html") == "not_json"


def test_json_nested_deeper_than_the_parser_goes_is_not_json(server):
    # Well inside the size cap, yet deep enough to exhaust the decoder's recursion limit.
    server.reply("/deep", Reply(body=b"[" * 50_000))
    assert unreachable_reason(fetcher_for(server), server.base + "/deep") == "not_json"


@pytest.mark.parametrize("location", ["http://[::1", "https://[not-an-address]/x"])
def test_a_redirect_to_a_url_that_does_not_parse_is_refused(server, location):
    server.reply("/moved", Reply(302, b"", headers={"Location": location}))
    assert unreachable_reason(fetcher_for(server), server.base + "/moved") == "redirect"


def test_a_url_with_a_broken_ipv6_host_is_a_bad_url():
    # A pay request's callback is any string its server wrote.
    assert unreachable_reason(SafeFetcher(timeout_seconds=1.0), "https://[::1/callback") == "bad_url"


def test_nothing_listening_is_a_network_error(server):
    port = server.port
    server.stop()
    fetcher = SafeFetcher(timeout_seconds=1.0, insecure_hosts=[f"127.0.0.1:{port}"])
    assert unreachable_reason(fetcher, f"http://127.0.0.1:{port}/x") == "network_error"


@pytest.mark.parametrize("url", ["ftp://example.com/x", "https://user:pw@example.com/x", "https:///x"])
def test_urls_that_are_not_plain_https_are_refused(url):
    assert unreachable_reason(SafeFetcher(timeout_seconds=1.0), url) in ("bad_url", "insecure_scheme")
