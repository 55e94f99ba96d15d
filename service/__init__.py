"""BlinkPOS payment service: the Flask app factory.

`create_app` is the only place that opens the Postgres pool and the Redis client. Importing this
package opens nothing, so gunicorn can import it in the master and build the app after fork.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from service.config import Config

if TYPE_CHECKING:  # Flask is imported by create_app: gunicorn's master imports this package without it
    from flask import Flask

    from service.context import AppServices
    from service.lnurl import FeePolicy

__version__ = "0.1.0"

MAX_REQUEST_BYTES = 64 * 1024


def create_app(config: Config | None = None) -> Flask:
    """Build the app: config (from the environment unless given), logging, error handlers, clients."""
    from flask import Flask

    from service.api.cors import init_cors
    from service.api.health import health_blueprint
    from service.api.metrics import init_request_metrics, metrics_blueprint
    from service.api.openapi import openapi_blueprint
    from service.api.payments import payments_blueprint
    from service.api.payouts import payouts_blueprint
    from service.api.profiles import profiles_blueprint
    from service.api.recipients import recipients_blueprint
    from service.api.reports import reports_blueprint
    from service.api.request_log import init_request_logging
    from service.api.webhooks import webhooks_blueprint
    from service.context import EXTENSION_KEY
    from service.errors import register_error_handlers
    from service.logging import configure_logging

    config = config if config is not None else Config.from_env()
    configure_logging(config.log_level, config.log_format)

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    if config.trusted_proxy_count:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(
            app.wsgi_app, x_for=config.trusted_proxy_count, x_proto=config.trusted_proxy_count
        )
    app.json.sort_keys = False  # keep the documented field order in responses
    register_error_handlers(app)
    init_request_logging(app)
    app.extensions[EXTENSION_KEY] = build_services(config)
    app.extensions[EXTENSION_KEY].pos_key_check.start()  # in the background: start-up never waits for Blink
    init_request_metrics(app, app.extensions[EXTENSION_KEY].metrics)
    app.register_blueprint(health_blueprint)
    app.register_blueprint(payments_blueprint)
    app.register_blueprint(profiles_blueprint)
    app.register_blueprint(recipients_blueprint)
    app.register_blueprint(reports_blueprint)
    app.register_blueprint(payouts_blueprint)
    app.register_blueprint(webhooks_blueprint)
    app.register_blueprint(metrics_blueprint)
    app.register_blueprint(openapi_blueprint)
    init_cors(app, config.cors_allowed_origins)
    return app


def build_services(config: Config, *, with_payments: bool = True) -> AppServices:
    """Open the pool and clients and wire the store (and the payment services unless told not to:
    an operator command that only reads splits needs no Blink settings); closed again on failure."""
    import logging
    from datetime import timedelta

    from service.context import AppServices
    from service.metrics import Metrics
    from service.store import cache, fingerprints, legacy, migrations, postgres, profiles, splits

    merchant_fingerprints = fingerprints.Fingerprints.from_setting(config.api_key_encryption_key)
    pool = postgres.open_pool(
        config.database_url,
        min_size=config.pg_pool_min_size,
        max_size=config.pg_pool_max_size,
        timeout=config.pg_connect_timeout_seconds,
        wait=False,
    )
    db = postgres.Database(pool)
    try:
        redis = cache.make_redis(config.redis_url, config.redis_password, config.redis_socket_timeout_seconds)
        split_cache = cache.SplitCache(redis)
        # The cut-over fallback reads the legacy file as `python -m migrate` does (same parser, same TTL).
        legacy_store = (
            legacy.LegacyFileStore(config.tip_store_file, timedelta(seconds=config.tip_ttl_seconds))
            if config.tip_store_file
            else None
        )
        if legacy_store is not None and not legacy_store.path.is_file():
            # The fallback reads it as empty; say so once here rather than on every lookup.
            missing = {"path": config.tip_store_file}
            logging.getLogger(__name__).warning("tip_store_file_missing", extra=missing)
        store = splits.SplitStore(db, split_cache, merchant_fingerprints, legacy_store)
        services = AppServices(
            config=config,
            db=db,
            redis=redis,
            cache=split_cache,
            fingerprints=merchant_fingerprints,
            store=store,
            profiles=profiles.ProfileStore(db, redis),
            expected_schema_version=migrations.expected_version(),
            metrics=Metrics(),
        )
        if with_payments:
            attach_payment_services(services)
        return services
    except BaseException:
        db.close()
        raise


def attach_payment_services(services: AppServices) -> None:
    """The Blink client and the business services of the POS endpoints, over the open store."""
    from service.blink import BlinkClient, InvoiceStatus
    from service.blink.key_check import PosKeyCheck
    from service.payments.forwarding import Forwarder, ForwardSettings
    from service.payments.invoices import InvoiceService, InvoiceSettings
    from service.payments.lnurl_legs import LnurlLegs
    from service.payments.recipients import PayoutPlanner
    from service.store.locks import PaymentLocks
    from service.store.lookups import LookupCache
    from service.store.ratelimit import RateLimiter
    from service.store.shared_answers import SharedAnswers

    config = services.config
    blink = BlinkClient(
        config.blink_api_url,
        connect_timeout=config.blink_connect_timeout_seconds,
        read_timeout=config.blink_read_timeout_seconds,
        observer=services.metrics.observe_blink,
    )
    services.closeables.append(blink)
    services.blink = blink
    services.limiter = RateLimiter(services.redis)
    shared = SharedAnswers(services.redis)

    def invoice_status(payment_hash: str) -> InvoiceStatus:
        answer = shared.get("invoice-status", payment_hash, lambda: blink.invoice_status(payment_hash).value)
        return InvoiceStatus(answer)

    attach_recipient_resolver(services)
    lookups = LookupCache(services.redis)
    services.payouts = PayoutPlanner(
        services.recipients,
        blink.default_btc_wallet,
        pos_wallet_id=config.blinkpos_btc_wallet_id,
        remember_wallet=lookups.remember_recipient_wallet,
    )
    services.invoices = InvoiceService(
        services.store,
        blink,
        lookups,
        services.payouts,
        services.fingerprints.fingerprint,
        InvoiceSettings(
            pos_api_key=config.blinkpos_api_key,
            pos_wallet_id=config.blinkpos_btc_wallet_id,
            ttl_seconds=config.tip_ttl_seconds,
            environment=config.environment,
        ),
    )
    services.forwarder = Forwarder(
        services.store,
        blink,
        PaymentLocks(services.redis),
        ForwardSettings(
            pos_api_key=config.blinkpos_api_key,
            pos_wallet_id=config.blinkpos_btc_wallet_id,
            lease_seconds=config.forward_lease_seconds,
            leg_max_attempts=config.leg_max_attempts,
            instance_id=instance_id(),
            leg_concurrency=config.forward_leg_concurrency,
        ),
        observer=services.metrics.observe_forward,
        invoice_status=invoice_status,
        lnurl=LnurlLegs(
            blink,
            services.lnurl_payer,
            fee_policy(config),
            services.recipients.parse,
            pos_api_key=config.blinkpos_api_key,
            pos_wallet_id=config.blinkpos_btc_wallet_id,
            observer=services.metrics.observe_lnurl_leg,
        ),
    )
    # Its own client, unobserved: a background check is no traffic of any request and must not
    # appear in the request metrics (blinkpos_blink_requests_total) at some random moment.
    key_check_client = BlinkClient(
        config.blink_api_url,
        connect_timeout=config.blink_connect_timeout_seconds,
        read_timeout=config.blink_read_timeout_seconds,
    )
    services.closeables.append(key_check_client)
    services.pos_key_check = PosKeyCheck(
        key_check_client, config.blinkpos_api_key, config.blinkpos_btc_wallet_id
    )
    services.closeables.append(services.pos_key_check)  # closed before its client (reversed order)


def attach_recipient_resolver(services: AppServices) -> None:
    """The LNURL payer and the recipient resolver (DESIGN 8) over the open Redis and Blink client."""
    from service.lnurl import LnurlPayer, RecipientResolver, SafeFetcher
    from service.lnurl.resolver import blink_user_check
    from service.store.lnurl_cache import PayRequestCache

    config = services.config
    fetcher = SafeFetcher(
        timeout_seconds=config.lnurl_timeout_seconds,
        max_bytes=config.lnurl_max_response_bytes,
        insecure_hosts=config.lnurl_insecure_hosts,
    )
    services.lnurl_payer = LnurlPayer(fetcher, min_seconds_left=config.lnurl_invoice_min_seconds_left)
    services.recipients = RecipientResolver(
        services.lnurl_payer,
        fees=fee_policy(config),
        cache=PayRequestCache(services.redis, config.lnurl_cache_seconds),
        blink_domains=config.blink_lightning_domains,
        insecure_hosts=config.lnurl_insecure_hosts,
        blink_user_check=blink_user_check(services.blink.default_btc_wallet),
        observer=services.metrics.observe_lnurl,
    )


def fee_policy(config: Config) -> FeePolicy:
    """The fee reserve of payouts outside Blink, as configured (LNURL_FEE_RESERVE_*)."""
    from service.lnurl import FeePolicy

    return FeePolicy(config.lnurl_fee_reserve_percent, config.lnurl_fee_reserve_min_sats)


def instance_id() -> str:
    """Names this process in claim owners and logs: host and pid (unique across containers)."""
    import os
    import socket

    return f"{socket.gethostname()}:{os.getpid()}"
