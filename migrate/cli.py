"""`python -m migrate`: move the original POS's .tip-store.json into the hybrid store.

Exit codes: 0 nothing failed; 1 some records failed (or --verify found a mismatch);
2 nothing was attempted (unreadable or corrupt file, bad configuration, database unreachable
or not upgraded, backup impossible, confirmation refused).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TextIO

import psycopg

from migrate.backup import BackupFailed, write_backup
from migrate.planning import Plan, PlannedSplit, make_plan
from migrate.reporting import Progress, Summary, write_report
from migrate.source import SourceFile, SourceUnreadable, Validated, read_source, validate
from migrate.verifying import verify
from migrate.writing import Outcome, SplitWriter
from service.config import NEEDS_DATABASE, NEEDS_STORE, Config, ConfigError
from service.domain.clock import Clock, utc_now
from service.domain.model import SplitStatus
from service.store.cache import SplitCache, make_redis
from service.store.errors import StoreUnavailable
from service.store.fingerprints import Fingerprints
from service.store.postgres import Database, open_pool
from service.store.splits import SplitStore

DEFAULT_FILE = Path(".tip-store.json")
BATCH_SIZE = 500
EXIT_OK, EXIT_FAILED, EXIT_NOT_ATTEMPTED = 0, 1, 2


@dataclass(frozen=True)
class Streams:
    stdin: TextIO
    stdout: TextIO  # the report
    stderr: TextIO  # progress and errors


class NotAttempted(Exception):
    """Stops the run before anything was written (exit 2)."""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m migrate",
        description="Migrate open tip splits from the original POS's .tip-store.json into the "
        "hybrid store (Postgres + Redis). Settings come from the environment (DATABASE_URL, "
        "REDIS_URL, API_KEY_ENCRYPTION_KEY, TIP_TTL_SECONDS, ...). The file is never modified.",
        epilog="Exit codes: 0 nothing failed, 1 some records failed, 2 nothing was attempted.",
    )
    parser.add_argument(
        "--file", type=Path, default=DEFAULT_FILE, help="the legacy file (default: %(default)s)"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="read, validate and report what would happen; write nothing"
    )
    parser.add_argument(
        "--backup",
        type=Path,
        metavar="DIR",
        help="directory for a timestamped byte-identical copy of the file, taken before writing "
        "(default: the file's own directory; always on for a real run unless --no-backup)",
    )
    parser.add_argument("--no-backup", action="store_true", help="skip the backup copy")
    parser.add_argument("--verify", action="store_true", help="read every migrated record back and compare")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    args = parser.parse_args(argv)
    if args.backup is not None and args.no_backup:
        parser.error("--backup and --no-backup exclude each other")
    return args


def main(
    argv: Sequence[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    streams: Streams | None = None,
    clock: Clock = utc_now,
) -> int:
    args = parse_args(argv)
    io = streams or Streams(sys.stdin, sys.stdout, sys.stderr)
    try:
        source = read_source(args.file)
        # A dry run reads Postgres (and fingerprints with the key); writing needs Redis too, never Blink.
        dry_run_needs = (*NEEDS_DATABASE, "API_KEY_ENCRYPTION_KEY")
        config = Config.from_env(environ, require=dry_run_needs if args.dry_run else NEEDS_STORE)
        return _run(args, config, source, io, clock)
    except (SourceUnreadable, ConfigError, NotAttempted) as exc:
        io.stderr.write(f"migrate: {exc}; nothing was written\n")
        return EXIT_NOT_ATTEMPTED


def _run(args: argparse.Namespace, config: Config, source: SourceFile, io: Streams, clock: Clock) -> int:
    fingerprints = Fingerprints.from_setting(config.api_key_encryption_key)
    validated = validate(source, timedelta(seconds=config.tip_ttl_seconds))
    db = _open_database(config)
    try:
        plan = make_plan(validated.records, _present_hashes(db, validated), clock())
        summary = _planned_summary(source, validated, plan, dry_run=args.dry_run)
        if args.dry_run:
            if args.verify:
                io.stderr.write("migrate: --verify is skipped in a dry run (reading back re-warms Redis)\n")
            write_report(summary, io.stdout)
            return EXIT_OK
        if plan.to_write and not args.yes:
            _confirm(plan, config, io)
        if plan.to_write and not args.no_backup:
            backup = write_backup(source, args.backup or source.path.resolve().parent, clock())
            io.stderr.write(f"migrate: backup written to {backup}\n")
        redis_client = make_redis(
            config.redis_url, config.redis_password, config.redis_socket_timeout_seconds
        )
        try:
            failed_in_postgres = _write(plan, SplitWriter(db, redis_client, fingerprints, clock), summary, io)
            if args.verify:
                store = SplitStore(db, SplitCache(redis_client), fingerprints, legacy=None, clock=clock)
                to_check = [r for r in validated.records if r.split.payment_hash not in failed_in_postgres]
                summary.verified, mismatches = verify(store, to_check)
                summary.mismatched = len(mismatches)
                summary.mismatches = [(m.payment_hash, m.reason) for m in mismatches]
        finally:
            redis_client.close()
    except BackupFailed as exc:
        raise NotAttempted(str(exc)) from None
    finally:
        db.close()
    write_report(summary, io.stdout)
    return EXIT_OK if summary.succeeded else EXIT_FAILED


def _open_database(config: Config) -> Database:
    try:
        pool = open_pool(
            config.database_url, min_size=1, max_size=2, timeout=config.pg_connect_timeout_seconds
        )
    except StoreUnavailable:
        raise NotAttempted("Postgres is unreachable (DATABASE_URL)") from None
    db = Database(pool)
    try:
        current = db.schema_is_current()
    except (StoreUnavailable, psycopg.Error):
        current = False
    if not current:
        db.close()
        raise NotAttempted("the database schema is not current: run `python -m service db upgrade` first")
    return db


def _present_hashes(db: Database, validated: Validated) -> set[str]:
    hashes = [record.split.payment_hash for record in validated.records]
    try:
        with db.connection() as conn:
            rows = db.q.select_present_hashes.all(conn, payment_hashes=hashes)
    except StoreUnavailable:
        raise NotAttempted("Postgres is unavailable") from None
    return {row["payment_hash"] for row in rows}


def _planned_summary(source: SourceFile, validated: Validated, plan: Plan, *, dry_run: bool) -> Summary:
    invalid = validated.invalid + plan.invalid
    summary = Summary(
        read=len(source.entries),
        skipped_present=len(plan.present),
        invalid=len(invalid),
        dry_run=dry_run,
        invalid_records=[(item.key, item.code, item.reason) for item in invalid],
    )
    if dry_run:
        summary.migrated = plan.count(SplitStatus.PENDING)
        summary.expired = plan.count(SplitStatus.EXPIRED)
    return summary


def _confirm(plan: Plan, config: Config, io: Streams) -> None:
    if not io.stdin.isatty():
        raise NotAttempted("not a terminal: pass --yes to migrate without confirmation")
    target = _database_label(config.database_url)
    io.stderr.write(
        f"Migrate {len(plan.to_write)} records ({plan.count(SplitStatus.EXPIRED)} as expired) "
        f"into {target}? [y/N] "
    )
    io.stderr.flush()
    if io.stdin.readline().strip().lower() not in ("y", "yes"):
        raise NotAttempted("not confirmed")


def _database_label(url: str) -> str:
    # Host and database name only: the URL may carry a password.
    try:
        parts = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "the database at DATABASE_URL"
    return f"database {parts.get('dbname', '?')} on {parts.get('host', 'localhost')}"


def _write(plan: Plan, writer: SplitWriter, summary: Summary, io: Streams) -> set[str]:
    """Writes every planned split in batches; returns the hashes that never reached Postgres."""
    failed_in_postgres: set[str] = set()
    progress = Progress(len(plan.to_write), io.stderr)
    try:
        for start in range(0, len(plan.to_write), BATCH_SIZE):
            batch: list[PlannedSplit] = plan.to_write[start : start + BATCH_SIZE]
            for result in writer.write(batch):
                payment_hash = result.planned.payment_hash
                if result.outcome is Outcome.ALREADY_PRESENT:
                    summary.skipped_present += 1
                elif result.outcome is Outcome.FAILED:
                    summary.failed += 1
                    summary.failed_records.append((payment_hash, result.reason))
                    if result.split is None:
                        failed_in_postgres.add(payment_hash)
                elif result.planned.status is SplitStatus.PENDING:
                    summary.migrated += 1
                else:
                    summary.expired += 1
            progress.advance(len(batch))
    finally:
        progress.close()
    return failed_in_postgres
