"""The fee reserve and the LNURL settings."""

from __future__ import annotations

from decimal import Decimal

import pytest

from service.config import Config, ConfigError
from service.lnurl import FeePolicy

BASE_ENV = {
    "DATABASE_URL": "postgresql://u:p@localhost/db",
    "REDIS_URL": "redis://localhost:6379/0",
    "BLINKPOS_API_KEY": "k",
    "BLINKPOS_BTC_WALLET_ID": "w",
    "API_KEY_ENCRYPTION_KEY": "A" * 43 + "=",
}


@pytest.mark.parametrize(
    ("leg", "reserve"),
    [(0, 0), (1, 1), (2, 2), (3, 3), (10, 3), (300, 3), (301, 4), (1000, 10), (1001, 11), (100_000, 1000)],
)
def test_reserve_is_the_larger_of_the_minimum_and_the_percentage_never_more_than_the_leg(leg, reserve):
    policy = FeePolicy(Decimal("1"), 3)
    assert policy.fee_reserve(leg) == reserve
    assert policy.invoice_sats_for_leg(leg) == leg - reserve


def test_fractional_percent_rounds_the_reserve_up():
    policy = FeePolicy(Decimal("0.5"), 0)
    assert [policy.fee_reserve(n) for n in (1, 199, 200, 201)] == [1, 1, 1, 2]


def test_fee_fits_only_when_invoice_plus_fee_stays_within_the_leg():
    policy = FeePolicy()
    assert policy.fee_fits(1000, 990, 10)
    assert not policy.fee_fits(1000, 990, 11)
    assert not policy.fee_fits(1000, 990, -1)


def test_lnurl_settings_have_safe_defaults():
    config = Config.from_env(BASE_ENV)
    assert config.blink_lightning_domains == ("blink.sv", "pay.blink.sv")
    assert config.lnurl_insecure_hosts == ()
    assert config.lnurl_max_response_bytes == 65536
    assert config.lnurl_fee_reserve_percent == Decimal("1")


def test_lnurl_settings_are_read_from_the_environment():
    config = Config.from_env(
        {
            **BASE_ENV,
            "BLINK_LIGHTNING_DOMAINS": "Blink.SV, tips.example.com",
            "LNURL_INSECURE_HOSTS": "localhost:8080,127.0.0.1:9000",
            "LNURL_TIMEOUT_SECONDS": "2.5",
            "LNURL_FEE_RESERVE_PERCENT": "0.5",
            "LNURL_FEE_RESERVE_MIN_SATS": "2",
        }
    )
    assert config.blink_lightning_domains == ("blink.sv", "tips.example.com")
    assert config.lnurl_insecure_hosts == ("localhost:8080", "127.0.0.1:9000")
    assert config.lnurl_timeout_seconds == 2.5
    assert (config.lnurl_fee_reserve_percent, config.lnurl_fee_reserve_min_sats) == (Decimal("0.5"), 2)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LNURL_INSECURE_HOSTS", "localhost"),
        ("LNURL_INSECURE_HOSTS", "localhost:http"),
        ("LNURL_FEE_RESERVE_PERCENT", "150"),
        ("LNURL_FEE_RESERVE_PERCENT", "NaN"),
        ("LNURL_FEE_RESERVE_PERCENT", "lots"),
        ("LNURL_TIMEOUT_SECONDS", "0"),
        ("BLINK_LIGHTNING_DOMAINS", "blink.sv/x"),
    ],
)
def test_bad_lnurl_settings_fail_at_start_naming_the_variable(name, value):
    with pytest.raises(ConfigError) as caught:
        Config.from_env({**BASE_ENV, name: value})
    assert name in str(caught.value) and value not in str(caught.value).replace(name, "")
