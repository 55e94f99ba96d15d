"""Every setting of the service, read from the environment in one place (12-factor).

`Config.from_env()` validates everything at once and raises `ConfigError` naming every missing or
invalid variable in a single line, so an operator fixes them all in one go.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from service.store.fingerprints import parse_key_setting

DEFAULT_BLINK_API_URL = "https://api.blink.sv/graphql"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class ConfigError(Exception):
    """Missing or invalid settings; the message is one line and never contains a value."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration: " + "; ".join(problems))


@dataclass(frozen=True)
class Config:
    database_url: str = field(repr=False)  # may carry a password
    redis_url: str = field(repr=False)
    blinkpos_api_key: str = field(repr=False)
    blinkpos_btc_wallet_id: str
    api_key_encryption_key: str = field(repr=False)  # the fingerprint secret (store/fingerprints.py)
    redis_password: str | None = field(default=None, repr=False)
    blink_api_url: str = DEFAULT_BLINK_API_URL
    blink_webhook_secret: str | None = field(default=None, repr=False)
    tip_ttl_seconds: int = 86400
    tip_store_file: str | None = None
    max_invoice_sats: int = 10_000_000
    pg_pool_min_size: int = 2
    pg_pool_max_size: int = 10
    pg_connect_timeout_seconds: float = 5.0
    redis_socket_timeout_seconds: float = 0.5
    blink_connect_timeout_seconds: float = 3.0
    blink_read_timeout_seconds: float = 15.0
    forward_lease_seconds: int = 300
    forward_leg_concurrency: int = 8
    leg_max_attempts: int = 10
    rate_limit_per_wallet_per_minute: int = 60
    rate_limit_per_ip_per_minute: int = 120
    # Failed key checks (create-invoice, reports, forward-payment, payment-status) per client
    # address; beyond it every key-authenticated call from that address is refused for the minute.
    rate_limit_failed_auth_per_minute: int = 10
    rate_limit_forward_per_ip_per_minute: int = 120
    rate_limit_forward_per_hash_per_minute: int = 60
    cors_allowed_origins: tuple[str, ...] = ()
    # Load balancers in front that append to X-Forwarded-For; the client address for rate
    # limits is read that many hops from the right. 0 trusts no header (direct exposure).
    trusted_proxy_count: int = 0
    environment: str = "production"
    log_level: str = "INFO"
    worker_poll_seconds: float = 1.0
    pending_poll_after_seconds: int = 30
    # Lightning Address / LNURL-pay payouts (DESIGN 8).
    blink_lightning_domains: tuple[str, ...] = ("blink.sv", "pay.blink.sv")
    lnurl_insecure_hosts: tuple[str, ...] = ()
    lnurl_timeout_seconds: float = 5.0
    lnurl_max_response_bytes: int = 65536
    lnurl_cache_seconds: int = 300
    lnurl_invoice_min_seconds_left: int = 30
    lnurl_fee_reserve_percent: Decimal = Decimal("1")
    lnurl_fee_reserve_min_sats: int = 3

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        """Build and validate the configuration; raise ConfigError listing every problem."""
        env = os.environ if environ is None else environ
        reader = _Reader(env)
        values: dict[str, Any] = {}
        for spec in _SPECS:
            values[spec.attribute] = reader.read(spec)
        config_values = {k: v for k, v in values.items() if v is not _MISSING}
        reader.check_relations(config_values)
        if reader.problems:
            raise ConfigError(reader.problems)
        return cls(**config_values)


_MISSING = object()


@dataclass(frozen=True)
class _Spec:
    variable: str
    parse: Callable[[str], Any]
    default: Any = _MISSING  # _MISSING means required

    @property
    def attribute(self) -> str:
        return self.variable.lower()


def _text(raw: str) -> str:
    if not raw.strip():
        raise ValueError("must not be empty")
    return raw.strip()


def _optional_text(raw: str) -> str | None:
    return raw.strip() or None


def _positive_int(raw: str) -> int:
    value = int(raw.strip())
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def _non_negative_int(raw: str) -> int:
    value = int(raw.strip())
    if value < 0:
        raise ValueError("must be zero or a positive integer")
    return value


def _positive_seconds(raw: str) -> float:
    value = float(raw.strip())
    if not value > 0 or value == float("inf"):
        raise ValueError("must be a positive number of seconds")
    return value


def _origins(raw: str) -> tuple[str, ...]:
    origins = tuple(part.strip().rstrip("/") for part in raw.split(",") if part.strip())
    for origin in origins:
        if not origin.startswith(("http://", "https://")):
            raise ValueError("must be comma-separated http(s) origins")
    return origins


def _domains(raw: str) -> tuple[str, ...]:
    domains = tuple(part.strip().lower().rstrip(".") for part in raw.split(",") if part.strip())
    if not domains or any("/" in d or "@" in d or " " in d for d in domains):
        raise ValueError("must be comma-separated domain names")
    return domains


def _host_ports(raw: str) -> tuple[str, ...]:
    entries = tuple(part.strip().lower() for part in raw.split(",") if part.strip())
    for entry in entries:
        host, _, port = entry.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("must be comma-separated host:port entries")
    return entries


def _percent(raw: str) -> Decimal:
    try:
        value = Decimal(raw.strip())
    except InvalidOperation:
        raise ValueError("must be a percentage between 0 and 100") from None
    if not value.is_finite() or not 0 <= value <= 100:
        raise ValueError("must be a percentage between 0 and 100")
    return value


def _log_level(raw: str) -> str:
    level = raw.strip().upper()
    if level not in LOG_LEVELS:
        raise ValueError("must be one of " + "/".join(LOG_LEVELS))
    return level


def _url(schemes: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = _text(raw)
        if not value.startswith(tuple(f"{scheme}://" for scheme in schemes)):
            raise ValueError("must start with " + " or ".join(f"{s}://" for s in schemes))
        return value

    return parse


def _webhook_secret(raw: str) -> str | None:
    value = raw.strip()
    if not value:
        return None
    if not value.startswith("whsec_"):
        raise ValueError("must start with whsec_")
    try:
        base64.b64decode(value.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("must be whsec_ followed by base64") from None
    return value


def _encryption_key(raw: str) -> str:
    value = _text(raw)
    parse_key_setting(value)  # the fingerprints' own parser: what passes here, the app can use
    return value


_SPECS: tuple[_Spec, ...] = (
    _Spec("DATABASE_URL", _url(("postgresql", "postgres"))),
    _Spec("REDIS_URL", _url(("redis", "rediss", "unix"))),
    _Spec("REDIS_PASSWORD", _optional_text, None),
    _Spec("BLINK_API_URL", _url(("http", "https")), DEFAULT_BLINK_API_URL),
    _Spec("BLINKPOS_API_KEY", _text),
    _Spec("BLINKPOS_BTC_WALLET_ID", _text),
    _Spec("BLINK_WEBHOOK_SECRET", _webhook_secret, None),
    _Spec("API_KEY_ENCRYPTION_KEY", _encryption_key),
    _Spec("TIP_TTL_SECONDS", _positive_int, 86400),
    _Spec("TIP_STORE_FILE", _optional_text, None),
    _Spec("MAX_INVOICE_SATS", _positive_int, 10_000_000),
    _Spec("PG_POOL_MIN_SIZE", _non_negative_int, 2),
    _Spec("PG_POOL_MAX_SIZE", _positive_int, 10),
    _Spec("PG_CONNECT_TIMEOUT_SECONDS", _positive_seconds, 5.0),
    _Spec("REDIS_SOCKET_TIMEOUT_SECONDS", _positive_seconds, 0.5),
    _Spec("BLINK_CONNECT_TIMEOUT_SECONDS", _positive_seconds, 3.0),
    _Spec("BLINK_READ_TIMEOUT_SECONDS", _positive_seconds, 15.0),
    _Spec("FORWARD_LEASE_SECONDS", _positive_int, 300),
    _Spec("FORWARD_LEG_CONCURRENCY", _positive_int, 8),
    _Spec("LEG_MAX_ATTEMPTS", _positive_int, 10),
    _Spec("RATE_LIMIT_PER_WALLET_PER_MINUTE", _positive_int, 60),
    _Spec("RATE_LIMIT_PER_IP_PER_MINUTE", _positive_int, 120),
    _Spec("RATE_LIMIT_FAILED_AUTH_PER_MINUTE", _positive_int, 10),
    _Spec("RATE_LIMIT_FORWARD_PER_IP_PER_MINUTE", _positive_int, 120),
    _Spec("RATE_LIMIT_FORWARD_PER_HASH_PER_MINUTE", _positive_int, 60),
    _Spec("CORS_ALLOWED_ORIGINS", _origins, ()),
    _Spec("TRUSTED_PROXY_COUNT", _non_negative_int, 0),
    _Spec("ENVIRONMENT", _text, "production"),
    _Spec("LOG_LEVEL", _log_level, "INFO"),
    _Spec("WORKER_POLL_SECONDS", _positive_seconds, 1.0),
    _Spec("PENDING_POLL_AFTER_SECONDS", _positive_int, 30),
    _Spec("BLINK_LIGHTNING_DOMAINS", _domains, ("blink.sv", "pay.blink.sv")),
    _Spec("LNURL_INSECURE_HOSTS", _host_ports, ()),
    _Spec("LNURL_TIMEOUT_SECONDS", _positive_seconds, 5.0),
    _Spec("LNURL_MAX_RESPONSE_BYTES", _positive_int, 65536),
    _Spec("LNURL_CACHE_SECONDS", _positive_int, 300),
    _Spec("LNURL_INVOICE_MIN_SECONDS_LEFT", _non_negative_int, 30),
    _Spec("LNURL_FEE_RESERVE_PERCENT", _percent, Decimal("1")),
    _Spec("LNURL_FEE_RESERVE_MIN_SATS", _non_negative_int, 3),
)

# The variable names, in documentation order (README and .env.example list the same).
VARIABLES: tuple[str, ...] = tuple(spec.variable for spec in _SPECS)


def database_url_from_env(environ: Mapping[str, str] | None = None) -> str:
    """Only DATABASE_URL, validated: for commands that need nothing else (`db upgrade`)."""
    reader = _Reader(os.environ if environ is None else environ)
    value = reader.read(next(spec for spec in _SPECS if spec.variable == "DATABASE_URL"))
    if reader.problems:
        raise ConfigError(reader.problems)
    return value


class _Reader:
    """Collects every problem instead of stopping at the first."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []
        self.missing: list[str] = []

    def read(self, spec: _Spec) -> Any:
        raw = self.env.get(spec.variable)
        if raw is None or not raw.strip():  # an empty line in a .env file means "unset"
            if spec.default is _MISSING:
                self._missing(spec.variable)
            return spec.default
        try:
            return spec.parse(raw)
        except ValueError as exc:
            # int()/float() messages echo the value; keep ours, which never do.
            reason = str(exc) if not str(exc).startswith(("invalid literal", "could not convert")) else ""
            self.problems.append(f"{spec.variable} {reason or 'is not a valid number'}")
            return _MISSING

    def _missing(self, variable: str) -> None:
        self.missing.append(variable)
        if len(self.missing) == 1:
            self.problems.insert(0, "")
        self.problems[0] = "missing " + ", ".join(self.missing)

    def check_relations(self, values: Mapping[str, Any]) -> None:
        low, high = values.get("pg_pool_min_size"), values.get("pg_pool_max_size")
        if isinstance(low, int) and isinstance(high, int) and low > high:
            self.problems.append("PG_POOL_MIN_SIZE must not exceed PG_POOL_MAX_SIZE")
