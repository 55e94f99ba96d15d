"""The clients and services of one app instance, built by create_app and shared by the views.

Views reach them through `services()` (which reads `current_app.extensions["blinkpos"]`); business
code receives them as constructor arguments instead. Each is built in `service.create_app` and
closed by `AppServices.close`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask import current_app

from service.config import Config

if TYPE_CHECKING:  # imported for annotations only: nothing is imported or opened at import time
    from redis import Redis

    from service.blink import BlinkClient
    from service.blink.key_check import PosKeyCheck
    from service.lnurl import LnurlPayer, RecipientResolver
    from service.metrics import Metrics
    from service.payments.forwarding import Forwarder
    from service.payments.invoices import InvoiceService
    from service.payments.recipients import PayoutPlanner
    from service.store.cache import SplitCache
    from service.store.fingerprints import Fingerprints
    from service.store.postgres import Database
    from service.store.profiles import ProfileStore
    from service.store.ratelimit import RateLimiter
    from service.store.splits import SplitStore

EXTENSION_KEY = "blinkpos"
log = logging.getLogger(__name__)


@dataclass
class AppServices:
    config: Config
    db: Database
    redis: Redis
    cache: SplitCache
    fingerprints: Fingerprints
    store: SplitStore
    profiles: ProfileStore
    expected_schema_version: int
    # Prometheus instruments of this process (service/metrics.py).
    metrics: Metrics
    # The POS endpoints' collaborators, attached by service.attach_payment_services.
    blink: BlinkClient | None = None
    limiter: RateLimiter | None = None
    invoices: InvoiceService | None = None
    forwarder: Forwarder | None = None
    # LNURL-pay (service/lnurl), attached by service.attach_recipient_resolver.
    lnurl_payer: LnurlPayer | None = None
    recipients: RecipientResolver | None = None
    # Recipients to legs (create-invoice) and saved recipients' checks (split profiles).
    payouts: PayoutPlanner | None = None
    # What Blink last answered for the POS key (/api/health); checked in the background.
    pos_key_check: PosKeyCheck | None = None
    started_monotonic: float = field(default_factory=time.monotonic)
    # Extra resources with a close() (added by later features); closed in reverse order.
    closeables: list[Any] = field(default_factory=list)
    _closed: bool = field(default=False, repr=False)

    def uptime_seconds(self) -> float:
        return time.monotonic() - self.started_monotonic

    def close(self) -> None:
        """Close pools and clients; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        for resource in [*reversed(self.closeables), self.redis, self.db]:
            try:
                resource.close()
            except Exception:  # broad on purpose: closing must go on for the other resources
                log.warning("close_failed", extra={"resource": type(resource).__name__}, exc_info=True)


def services() -> AppServices:
    """The current app's services (inside a request or app context)."""
    return current_app.extensions[EXTENSION_KEY]
