"""The background worker (`python -m service worker`): server-side payment detection and retries.

Every cycle (WORKER_POLL_SECONDS) it:
1. asks Blink about pending splits old enough (PENDING_POLL_AFTER_SECONDS), each on its own
   backoff, and once more right after expiry; a PAID answer marks the split paid (a missed webhook);
2. expires unpaid splits past expiry, but only those Blink has just answered (not paid) after expiring;
3. claims a batch of due splits in one statement (FOR UPDATE SKIP LOCKED: any number of workers
   never take the same split) and forwards each through Forwarder.forward_claimed, the same leg
   logic as the POS endpoints (failed legs come back when their backoff is due);
4. beats its heartbeat, sets the lag gauge, and now and then refreshes the backlog gauges the
   alerts watch, writes system_metrics samples and prunes old ones.

Liveness: every cycle and every split touches `heartbeat_file` (when set) and stamps the
last-cycle gauge, so a probe can tell a loop that turns from one that hangs.

Stopping (SIGTERM/SIGINT set the stop event): no new batch is taken, the split in hand is
finished, and the claims on the rest of the batch are released for another worker.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from service.blink import BlinkClient, BlinkError, InvoiceStatus
from service.domain.clock import Clock, utc_now
from service.domain.errors import PaymentError, SplitNotFound
from service.domain.model import Split
from service.metrics import Metrics, SampleWindow
from service.payments.forwarding import Forwarder
from service.store.backlog import Backlog
from service.store.cache import SplitCache
from service.store.errors import StoreError, StoreUnavailable
from service.store.postgres import Database
from service.store.worker_rows import WorkerRows

log = logging.getLogger(__name__)


class WorkerStore(Protocol):
    """Every split state change the worker makes, as SplitStore methods; `now` is the worker's clock."""

    cache: SplitCache
    def claim_pending_checks(
        self, now: datetime, min_age_seconds: float, max_interval_seconds: float, limit: int
    ) -> list[str]: ...
    def mark_paid(self, payment_hash: str, source: str) -> Split: ...
    def expire_checked_unpaid(self, now: datetime, payment_hashes: list[str]) -> int: ...
    def claim_due(self, now: datetime, owner: str, lease_seconds: float, limit: int) -> list[Split]: ...
    def renew_lease(self, now: datetime, payment_hash: str, owner: str) -> bool: ...
    def release(self, payment_hash: str, owner: str, error: str | None = None) -> bool: ...
    def oldest_due_age_seconds(self, now: datetime, lease_seconds: float) -> float: ...

    def backlog(self, now: datetime) -> Backlog: ...


@dataclass(frozen=True)
class WorkerSettings:
    poll_seconds: float = 1.0
    lease_seconds: float = 300
    pending_poll_after_seconds: float = 30
    batch_size: int = 20
    pending_batch_size: int = 50
    # A pending split is asked at most this rarely once its backoff has grown.
    pending_max_interval_seconds: float = 600
    sample_interval_seconds: float = 60
    housekeeping_interval_seconds: float = 3600
    metrics_retention_days: int = 30
    heartbeat_retention: timedelta = timedelta(days=1)
    backlog_interval_seconds: float = 15
    # Touched on every sign of life; a liveness probe checks its age (None: no file).
    heartbeat_file: str | None = None

    @classmethod
    def from_config(cls, config: Any, **overrides: Any) -> WorkerSettings:
        values = {
            "poll_seconds": config.worker_poll_seconds,
            "lease_seconds": config.forward_lease_seconds,
            "pending_poll_after_seconds": config.pending_poll_after_seconds,
        }
        values.update(overrides)
        return cls(**values)


@dataclass
class CycleReport:
    checked: int = 0
    expired: int = 0
    claimed: int = 0
    completed: int = 0


class Worker:
    def __init__(
        self,
        db: Database,
        store: WorkerStore,
        blink: BlinkClient,
        forwarder: Forwarder,
        settings: WorkerSettings,
        *,
        metrics: Metrics | None = None,
        worker_id: str | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self._rows = WorkerRows(db)
        self._store = store
        self._blink = blink
        self._forwarder = forwarder
        self._settings = settings
        self._metrics = metrics or Metrics()
        self.worker_id = worker_id or f"worker:{uuid.uuid4().hex[:12]}"
        self._now = clock
        self._samples = SampleWindow()
        self._next_sample = time.monotonic() + settings.sample_interval_seconds
        self._next_housekeeping = time.monotonic()
        self._next_backlog = time.monotonic()

    @classmethod
    def from_services(cls, services: Any, **overrides: Any) -> Worker:
        """A worker over an app's services (the CLI command and the dev stack)."""
        from service import instance_id

        settings = WorkerSettings.from_config(services.config, **overrides)
        return cls(
            services.db,
            services.store,
            services.blink,
            services.forwarder,
            settings,
            metrics=services.metrics,
            worker_id=f"worker:{instance_id()}:{uuid.uuid4().hex[:6]}",
        )

    # -- the loop ---------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Cycles until stop is set; a cycle that found a full batch is followed at once."""
        log.info("worker_started", extra={"worker_id": self.worker_id})
        while not stop.is_set():
            self._alive()
            try:
                report = self.run_once(stop)
                self._metrics.worker_cycles.labels("ok").inc()
            except StoreUnavailable:
                self._metrics.worker_cycles.labels("error").inc()
                log.warning("worker_cycle_failed", extra={"worker_id": self.worker_id, "reason": "database"})
                report = CycleReport()
            except Exception:  # noqa: BLE001 - the loop outlives one bad cycle; a crash loop helps nobody
                self._metrics.worker_cycles.labels("error").inc()
                log.exception("worker_cycle_crashed", extra={"worker_id": self.worker_id})
                report = CycleReport()
            if report.claimed < self._settings.batch_size:
                stop.wait(self._settings.poll_seconds)
        log.info("worker_stopped", extra={"worker_id": self.worker_id})

    def run_once(self, stop: threading.Event | None = None) -> CycleReport:
        stop = stop or threading.Event()
        report = CycleReport()
        self._beat()
        answered_unpaid = self._check_pending(report, stop)
        self._expire(report, answered_unpaid)
        if not stop.is_set():
            self._forward_due(report, stop)
        self._observe_lag()
        self._observe_backlog()
        self._periodic()
        return report

    # -- steps ------------------------------------------------------------------------------

    def _check_pending(self, report: CycleReport, stop: threading.Event) -> list[str]:
        """Asks Blink about due pending splits; returns those Blink answered as not paid."""
        answered_unpaid: list[str] = []
        payment_hashes = self._store.claim_pending_checks(
            self._now(),
            min_age_seconds=self._settings.pending_poll_after_seconds,
            max_interval_seconds=self._settings.pending_max_interval_seconds,
            limit=self._settings.pending_batch_size,
        )
        for payment_hash in payment_hashes:
            if stop.is_set():
                return answered_unpaid
            report.checked += 1
            try:
                status = self._blink.invoice_status(payment_hash)
            except BlinkError as exc:
                self._metrics.pending_checks.labels("error").inc()
                extra = {"payment_hash": payment_hash, "error_code": exc.code}
                log.warning("pending_check_failed", extra=extra)
                continue
            self._metrics.pending_checks.labels(str(status).lower()).inc()
            if status != InvoiceStatus.PAID:
                answered_unpaid.append(payment_hash)
                continue
            try:
                self._store.mark_paid(payment_hash, source="worker_poll")
            except SplitNotFound:
                continue
            log.info("payment_detected_by_poll", extra={"payment_hash": payment_hash})
        return answered_unpaid

    def _expire(self, report: CycleReport, answered_unpaid: list[str]) -> None:
        # Only splits Blink has just answered for: a check that failed (Blink down) is stamped
        # all the same, and expiring on it could bury a payment whose webhook was lost.
        if not answered_unpaid:
            return
        report.expired = self._store.expire_checked_unpaid(self._now(), answered_unpaid)
        if report.expired:
            log.info("splits_expired", extra={"count": report.expired})

    def _forward_due(self, report: CycleReport, stop: threading.Event) -> None:
        splits = self._store.claim_due(
            self._now(), self.worker_id, self._settings.lease_seconds, self._settings.batch_size
        )
        report.claimed = len(splits)
        for index, split in enumerate(splits):
            if stop.is_set():
                self._release(splits[index:])
                return
            self._alive()
            try:
                forwarded = self._forward_one(split)
            except StoreUnavailable:
                self._release_quietly(splits[index + 1 :])
                raise
            except Exception:  # noqa: BLE001 - one split hitting a bug must not stall the others
                # Log it loudly, hand its claim back (a no-op if the Forwarder already did) and go
                # on with the batch instead of leaving every later split leased until it expires.
                self._metrics.worker_cycles.labels("error").inc()
                log.exception("worker_split_crashed", extra={"payment_hash": split.payment_hash})
                self._release_quietly([split])
                continue
            report.completed += int(forwarded)

    def _forward_one(self, split: Split) -> bool:
        # The batch was claimed at once: refresh this split's lease, and skip it if the lease
        # ran out meanwhile and another worker took it.
        if not self._store.renew_lease(self._now(), split.payment_hash, self.worker_id):
            return False
        retried = sum(1 for leg in split.legs if str(leg.status) == "failed")
        if retried:
            self._metrics.leg_retries.inc(retried)
        started = time.monotonic()
        try:
            self._forwarder.forward_claimed(split, self.worker_id)
        except StoreUnavailable:
            raise
        except (PaymentError, StoreError) as error:
            # Recorded on the legs already (or the lease was lost): the next cycle sees the state.
            log.info(
                "worker_forward_incomplete",
                extra={"payment_hash": split.payment_hash, "error_type": type(error).__name__},
            )
            return False
        finally:
            self._metrics.worker_forward_seconds.observe(time.monotonic() - started)
        log.info("worker_forwarded", extra={"payment_hash": split.payment_hash})
        return True

    def _release(self, splits: list[Split]) -> None:
        released = sum(1 for split in splits if self._store.release(split.payment_hash, self.worker_id, None))
        if released:
            log.info("worker_released_claims", extra={"worker_id": self.worker_id, "count": released})

    def _release_quietly(self, splits: list[Split]) -> None:
        try:
            self._release(splits)
        except StoreUnavailable:
            pass  # the leases run out by themselves; another worker takes the splits then

    def _beat(self) -> None:
        self._rows.beat(self.worker_id, self._now())

    def _observe_lag(self) -> None:
        lag = self._store.oldest_due_age_seconds(self._now(), self._settings.lease_seconds)
        self._metrics.worker_lag.set(lag)

    def _observe_backlog(self) -> None:
        if time.monotonic() < self._next_backlog:
            return
        self._next_backlog = time.monotonic() + self._settings.backlog_interval_seconds
        backlog = self._store.backlog(self._now())
        self._metrics.splits_failed.set(backlog.failed_splits)
        self._metrics.oldest_unforwarded_age.set(backlog.oldest_unforwarded_seconds)
        self._metrics.legs_retrying.set(backlog.legs_retrying)

    def _alive(self) -> None:
        self._metrics.worker_last_cycle.set(time.time())
        if self._settings.heartbeat_file:
            Path(self._settings.heartbeat_file).touch()

    def _periodic(self) -> None:
        now = time.monotonic()
        if now >= self._next_sample:
            self._next_sample = now + self._settings.sample_interval_seconds
            self.write_samples()
        if now >= self._next_housekeeping:
            self._next_housekeeping = now + self._settings.housekeeping_interval_seconds
            self.housekeeping()

    def write_samples(self) -> int:
        """Writes the samples of the window since the last call into system_metrics (one batch)."""
        self._metrics.sync_cache_counters(self._store.cache.counters.snapshot())
        samples = self._samples.take(self._metrics.collecting_registry())
        return self._rows.record_samples(samples, self._now())

    def housekeeping(self) -> None:
        """Prunes old system_metrics samples and heartbeats of workers long gone."""
        pruned = self._rows.prune(
            self._settings.metrics_retention_days, self._now() - self._settings.heartbeat_retention
        )
        if pruned:
            log.info("metrics_pruned", extra={"rows": pruned})


def heartbeat_age_seconds(db: Database) -> float | None:
    """Seconds since the freshest worker heartbeat (None: no worker ever ran); for /api/health."""
    return WorkerRows(db).heartbeat_age_seconds()
