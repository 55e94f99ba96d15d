"""RecipientResolver with real Redis, a real LNURL server and the Blink simulator: positive
answers cached with a TTL, refusals never cached, the fee reserve applied to the range."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
import redis

from service.blink import BlinkClient
from service.lnurl import (
    AmountOutOfRange,
    FeePolicy,
    LnurlPayer,
    RecipientInvalid,
    RecipientKind,
    RecipientResolver,
    RecipientUnreachable,
    SafeFetcher,
)
from service.lnurl.resolver import blink_user_check
from service.store import keys
from service.store.lnurl_cache import PayRequestCache
from tests.lnurl_support import LnurlTestServer, Reply, running_server

CACHE_SECONDS = 120


@pytest.fixture
def server() -> Iterator[LnurlTestServer]:
    with running_server() as running:
        yield running


@pytest.fixture
def redis_client(clean_redis: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(clean_redis, socket_timeout=2)
    yield client
    client.close()


class Outcomes(list):
    def __call__(self, outcome: str, reason: str) -> None:
        self.append((outcome, reason))


def make_resolver(server: LnurlTestServer, client: redis.Redis | None, **options) -> RecipientResolver:
    payer = LnurlPayer(SafeFetcher(timeout_seconds=2.0, insecure_hosts=[server.host_port]))
    return RecipientResolver(
        payer,
        fees=FeePolicy(Decimal("1"), 3),
        cache=PayRequestCache(client, CACHE_SECONDS) if client is not None else None,
        insecure_hosts=[server.host_port],
        **options,
    )


def test_address_resolves_to_its_kind_normal_form_and_range(server, redis_client):
    address = server.pay_wallet("alice", min_msat=1500, max_msat=2_000_999)
    resolution = make_resolver(server, redis_client).resolve(address.upper())
    assert resolution.as_json() == {
        "valid": True,
        "kind": "lightning_address",
        "normalized": address.lower(),
        "minSendableSats": 2,
        "maxSendableSats": 2000,
    }


def test_positive_answer_is_cached_with_a_ttl_and_not_fetched_again(server, redis_client):
    address = server.pay_wallet("cached")
    outcomes = Outcomes()
    resolver = make_resolver(server, redis_client, observer=outcomes)
    first = resolver.resolve(address)
    second = resolver.resolve(address)
    assert first.normalized == second.normalized
    assert len(server.seen) == 1
    assert outcomes == [("resolved", "ok"), ("cached", "ok")]
    ttl = redis_client.ttl(keys.lnurl_pay_request(first.normalized))
    assert 0 < ttl <= CACHE_SECONDS


def test_refusal_is_not_cached_so_a_fixed_wallet_resolves_at_once(server, redis_client):
    server.reply("/.well-known/lnurlp/later", Reply(200, {"status": "ERROR", "reason": "not yet"}))
    outcomes = Outcomes()
    resolver = make_resolver(server, redis_client, observer=outcomes)
    with pytest.raises(RecipientInvalid):
        resolver.resolve(f"later@{server.host_port}")
    assert redis_client.keys("lnurl:*") == []
    server.pay_wallet("later")
    assert resolver.resolve(f"later@{server.host_port}").kind is RecipientKind.LIGHTNING_ADDRESS
    assert outcomes == [("failed", "status_error"), ("resolved", "ok")]


def test_share_minus_the_fee_reserve_must_fit_the_range(server, redis_client):
    address = server.pay_wallet("ranged", min_msat=100_000, max_msat=1_000_000)
    resolver = make_resolver(server, redis_client)
    assert resolver.resolve(address, leg_sats=103).min_sendable_sats == 100  # 103 - 3 = 100
    with pytest.raises(AmountOutOfRange) as low:
        resolver.resolve(address, leg_sats=102)
    assert low.value.code == "recipient_amount_out_of_range"
    assert resolver.resolve(address, leg_sats=1010).max_sendable_sats == 1000  # 1010 - 11 = 999
    with pytest.raises(AmountOutOfRange):
        resolver.resolve(address, leg_sats=1020)  # 1020 - 11 = 1009


def test_works_without_redis_and_with_redis_down(server, private_valkey):
    address = server.pay_wallet("nocache")
    assert make_resolver(server, None).resolve(address).normalized == address
    client = redis.Redis.from_url(private_valkey.url, socket_timeout=0.5)
    private_valkey.stop()
    try:
        assert make_resolver(server, client).resolve(address).normalized == address
    finally:
        client.close()


def test_unreachable_server_is_reported_by_reason(server, redis_client):
    outcomes = Outcomes()
    resolver = make_resolver(server, redis_client, observer=outcomes)
    server.reply("/.well-known/lnurlp/html", Reply(body=b"<html/>"))
    with pytest.raises(RecipientUnreachable):
        resolver.resolve(f"html@{server.host_port}")
    assert outcomes == [("failed", "not_json")]


def test_blink_user_is_checked_at_blink_without_http_to_any_wallet(server, redis_client, sim):
    account = sim.create_account()
    with BlinkClient(sim.graphql_url, connect_timeout=2, read_timeout=5, retry_backoff_seconds=0.01) as blink:
        resolver = make_resolver(
            server, redis_client, blink_user_check=blink_user_check(blink.default_btc_wallet)
        )
        resolution = resolver.resolve(account["username"].upper() + "@blink.sv")
        assert resolution.as_json()["kind"] == "blink"
        assert resolution.normalized == account["username"].lower()
        with pytest.raises(RecipientInvalid) as caught:
            resolver.resolve("nobody_here_at_all")
        assert caught.value.reason == "blink_user_not_found"
    assert server.seen == []
