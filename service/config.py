"""Every setting of the service and of its gunicorn server, read from the environment (12-factor).

Each setting is one dataclass field: its environment variable is the field's name in capitals, its
parser and its default sit on the field, so a default is written once. `from_env()` validates
everything at once and raises `ConfigError` naming every missing or invalid variable in a single
line. A command asks only for the settings it uses (`require=`): `splits failed` needs Postgres,
not Blink. README's configuration table documents every variable read here.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from service.store.fingerprints import parse_key_setting

DEFAULT_BLINK_API_URL = "https://api.blink.sv/graphql"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("auto", "json", "text")
MAX_DEFAULT_WORKERS = 8  # each worker holds its own Postgres pool: keep connections bounded


class ConfigError(ValueError):
    """Missing or invalid settings; the message is one line and never contains a value."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration: " + "; ".join(problems))


# --- parsers: each raises ValueError with a reason that never repeats the value -----------------
def _text(raw: str) -> str:
    return raw.strip()


def _optional_text(raw: str) -> str | None:
    return raw.strip() or None


def _int_at_least(minimum: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(raw.strip())
        if value < minimum:
            raise ValueError(f"must be an integer of at least {minimum}")
        return value

    return parse


_positive_int, _non_negative_int = _int_at_least(1), _int_at_least(0)


def _positive_seconds(raw: str) -> float:
    value = float(raw.strip())
    if not value > 0 or value == float("inf"):
        raise ValueError("must be a positive number of seconds")
    return value


# scheme://host[:port] with a DNS name or IPv4 host: nothing flask-cors could read as a pattern.
_ORIGIN = re.compile(r"(https?)://([a-z0-9-]+(?:\.[a-z0-9-]+)*)(?::(\d{1,5}))?", re.IGNORECASE)


def _origin(text: str) -> str:
    match = _ORIGIN.fullmatch(text)
    if match is None or (match.group(3) is not None and not 0 < int(match.group(3)) < 65536):
        raise ValueError("must be comma-separated exact origins scheme://host[:port] (no wildcard or path)")
    return text.lower()


def _origins(raw: str) -> tuple[str, ...]:
    return tuple(_origin(part.strip().rstrip("/")) for part in raw.split(",") if part.strip())


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


def _choice(choices: tuple[str, ...], transform: Callable[[str], str]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = transform(raw.strip())
        if value not in choices:
            raise ValueError("must be one of " + "/".join(choices))
        return value

    return parse


def _url(schemes: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip()
        if not value.startswith(tuple(f"{scheme}://" for scheme in schemes)):
            raise ValueError("must start with " + " or ".join(f"{s}://" for s in schemes))
        return value

    return parse


def _webhook_secret(raw: str) -> str:
    value = raw.strip()
    if not value.startswith("whsec_"):
        raise ValueError("must start with whsec_")
    try:
        base64.b64decode(value.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("must be whsec_ followed by base64") from None
    return value


def _encryption_key(raw: str) -> str:
    value = raw.strip()
    parse_key_setting(value)  # the fingerprints' own parser: what passes here, the app can use
    return value


def setting(parse: Callable[[str], Any], default: Any = "", *, secret: bool = False) -> Any:
    """A field read from the environment variable of its name; unset or empty means the default."""
    return field(default=default, repr=not secret, metadata={"parse": parse})


@dataclass(frozen=True)
class LogSettings:
    """Read by the app, the commands and gunicorn alike."""

    log_level: str = setting(_choice(LOG_LEVELS, str.upper), "INFO")
    log_format: str = setting(_choice(LOG_FORMATS, str.lower), "auto")


# --- the service ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Config(LogSettings):
    # "" means not set: from_env refuses that for each setting the command requires.
    database_url: str = setting(_url(("postgresql", "postgres")), secret=True)  # may carry a password
    redis_url: str = setting(_url(("redis", "rediss", "unix")), secret=True)
    redis_password: str | None = setting(_optional_text, None, secret=True)
    blink_api_url: str = setting(_url(("http", "https")), DEFAULT_BLINK_API_URL)
    blinkpos_api_key: str = setting(_text, secret=True)
    blinkpos_btc_wallet_id: str = setting(_text)
    blink_webhook_secret: str | None = setting(_webhook_secret, None, secret=True)
    api_key_encryption_key: str = setting(_encryption_key, secret=True)  # the fingerprint secret
    tip_ttl_seconds: int = setting(_positive_int, 86400)
    tip_store_file: str | None = setting(_optional_text, None)
    max_invoice_sats: int = setting(_positive_int, 10_000_000)
    pg_pool_min_size: int = setting(_non_negative_int, 2)
    pg_pool_max_size: int = setting(_positive_int, 10)
    pg_connect_timeout_seconds: float = setting(_positive_seconds, 5.0)
    redis_socket_timeout_seconds: float = setting(_positive_seconds, 0.5)
    blink_connect_timeout_seconds: float = setting(_positive_seconds, 3.0)
    blink_read_timeout_seconds: float = setting(_positive_seconds, 15.0)
    forward_lease_seconds: int = setting(_positive_int, 300)
    forward_leg_concurrency: int = setting(_positive_int, 8)
    leg_max_attempts: int = setting(_positive_int, 10)
    rate_limit_per_wallet_per_minute: int = setting(_positive_int, 60)
    rate_limit_per_ip_per_minute: int = setting(_positive_int, 120)
    # Failed key checks (create-invoice, reports, forward-payment, payment-status) per client
    # address; beyond it every key-authenticated call from that address is refused for the minute.
    rate_limit_failed_auth_per_minute: int = setting(_positive_int, 10)
    rate_limit_forward_per_ip_per_minute: int = setting(_positive_int, 120)
    rate_limit_forward_per_hash_per_minute: int = setting(_positive_int, 60)
    cors_allowed_origins: tuple[str, ...] = setting(_origins, ())
    # Load balancers in front that append to X-Forwarded-For; the client address for rate
    # limits is read that many hops from the right. 0 trusts no header (direct exposure).
    trusted_proxy_count: int = setting(_non_negative_int, 0)
    environment: str = setting(_text, "production")
    worker_poll_seconds: float = setting(_positive_seconds, 1.0)
    pending_poll_after_seconds: int = setting(_positive_int, 30)
    # Lightning Address / LNURL-pay payouts (DESIGN 8).
    blink_lightning_domains: tuple[str, ...] = setting(_domains, ("blink.sv", "pay.blink.sv"))
    lnurl_insecure_hosts: tuple[str, ...] = setting(_host_ports, ())
    lnurl_timeout_seconds: float = setting(_positive_seconds, 5.0)
    lnurl_max_response_bytes: int = setting(_positive_int, 65536)
    lnurl_cache_seconds: int = setting(_positive_int, 300)
    lnurl_invoice_min_seconds_left: int = setting(_non_negative_int, 30)
    lnurl_fee_reserve_percent: Decimal = setting(_percent, Decimal("1"))
    lnurl_fee_reserve_min_sats: int = setting(_non_negative_int, 3)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, require: Collection[str] | None = None
    ) -> Config:
        """The settings; `require` names what the command cannot run without (default: the app's)."""
        env = os.environ if environ is None else environ
        config = _read(cls, env, REQUIRED_VARIABLES if require is None else require)
        if config.pg_pool_min_size > config.pg_pool_max_size:
            raise ConfigError(["PG_POOL_MIN_SIZE must not exceed PG_POOL_MAX_SIZE"])
        return config


# What each kind of command needs, smallest first.
NEEDS_DATABASE: tuple[str, ...] = ("DATABASE_URL",)
NEEDS_STORE: tuple[str, ...] = (*NEEDS_DATABASE, "REDIS_URL", "API_KEY_ENCRYPTION_KEY")
REQUIRED_VARIABLES: tuple[str, ...] = (*NEEDS_STORE, "BLINKPOS_API_KEY", "BLINKPOS_BTC_WALLET_ID")


# --- the gunicorn server (gunicorn.conf.py) --------------------------------------------------------
def available_cores() -> int:
    """CPUs this container may use: the cgroup v2 quota if one is set, else the affinity mask.

    `os.cpu_count()` reports the host's CPUs, which overcounts badly under a container CPU limit.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    try:
        with open("/sys/fs/cgroup/cpu.max", encoding="ascii") as cpu_max:
            quota, period = cpu_max.read().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, -(-int(quota) // int(period))))  # ceiling division
    except (OSError, ValueError):
        pass
    return max(1, cores)


@dataclass(frozen=True)
class ServerConfig(LogSettings):
    port: int = setting(_positive_int, 8080)
    gunicorn_bind: str = setting(_text)  # wins over PORT
    gunicorn_workers: int = setting(_positive_int, 0)  # 0: 2 * cores + 1, at most MAX_DEFAULT_WORKERS
    # 32: measured by `python -m bench` with 100 ms added to every Blink call (a whole sale makes
    # eight sequential calls), 8 threads per worker gave 29 sales/s and 32 gave 48 at 128 clients.
    gunicorn_threads: int = setting(_positive_int, 32)
    gunicorn_timeout: int = setting(_positive_int, 60)
    gunicorn_graceful_timeout: int = setting(_positive_int, 30)
    gunicorn_keepalive: int = setting(_non_negative_int, 5)
    gunicorn_max_requests: int = setting(_non_negative_int, 2000)
    gunicorn_max_requests_jitter: int = setting(_non_negative_int, 200)
    forwarded_allow_ips: str = setting(_text, "127.0.0.1,::1")
    prometheus_multiproc_dir: str = setting(_text)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServerConfig:
        return _read(cls, os.environ if environ is None else environ, ())

    @property
    def bind(self) -> str:
        return self.gunicorn_bind or f"0.0.0.0:{self.port}"

    @property
    def workers(self) -> int:
        return self.gunicorn_workers or min(2 * available_cores() + 1, MAX_DEFAULT_WORKERS)


# --- reading -------------------------------------------------------------------------------------
_Settings = TypeVar("_Settings", Config, ServerConfig)


def _read(settings: type[_Settings], env: Mapping[str, str], require: Collection[str]) -> _Settings:
    """Every field from env; raises ConfigError listing every missing and every invalid variable."""
    missing: list[str] = []
    invalid: list[str] = []
    values: dict[str, Any] = {}
    for item in dataclasses.fields(settings):
        variable = item.name.upper()
        raw = env.get(variable)
        if raw is None or not raw.strip():  # an empty line in a .env file means "unset"
            if variable in require:
                missing.append(variable)
            continue
        try:
            values[item.name] = item.metadata["parse"](raw)
        except ValueError as exc:
            # int()/float() messages echo the value; keep ours, which never do.
            reason = str(exc)
            if reason.startswith(("invalid literal", "could not convert")) or not reason:
                reason = "is not a valid number"
            invalid.append(f"{variable} {reason}")
    problems = ([f"missing {', '.join(missing)}"] if missing else []) + invalid
    if problems:
        raise ConfigError(problems)
    return settings(**values)


# The variable names, in documentation order (README and .env.example list the same).
VARIABLES: tuple[str, ...] = tuple(item.name.upper() for item in dataclasses.fields(Config))
