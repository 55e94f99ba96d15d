"""Postgres access: the connection pool and the Database facade over it.

Connections are autocommit: a single statement (every store write is one statement built
from data-modifying CTEs) is its own transaction and costs one round trip. Several
statements that must commit together go through ``Database.transaction()``.
psycopg errors are translated at this boundary into service.store.errors types.
"""

from __future__ import annotations

import math
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool, PoolTimeout

from service.store import migrations
from service.store.errors import ConstraintViolation, DuplicateSplit, StoreUnavailable
from service.store.sql import Queries, queries

_DUPLICATE_SPLIT_CONSTRAINT = "payment_splits_payment_hash_key"


def open_pool(
    conninfo: str,
    min_size: int,
    max_size: int,
    timeout: float,
    *,
    statement_timeout_ms: int = 15_000,
    wait: bool = True,
) -> ConnectionPool:
    """Opens a pool; with wait, until min_size connections exist (StoreUnavailable otherwise).

    Without wait the pool connects in the background: an app process can then start while
    Postgres is still down and answer /readyz 503 (and money requests 503) until it is back,
    instead of crash-looping under its orchestrator.

    timeout bounds connecting and waiting for a free connection; statement_timeout_ms bounds
    every statement server-side, so a stuck query cannot hold a request forever.
    Call it after gunicorn forks (in create_app), never at import time.
    """
    connection_settings = {
        "autocommit": True,
        "connect_timeout": max(2, math.ceil(timeout)),
        "options": f"-c statement_timeout={int(statement_timeout_ms)}",
    }
    idle_check = IdleConnectionCheck()
    pool = ConnectionPool(
        conninfo,
        min_size=min_size,
        max_size=max_size,
        timeout=timeout,
        open=False,
        # No `reset` hook: with one, psycopg_pool returns every connection through its worker
        # thread (a task, a queue and a thread switch per statement: about 5% of a sale's CPU).
        check=idle_check.check,
        kwargs=connection_settings,
        name="blinkpos",
    )
    try:
        pool.open(wait=wait, timeout=timeout)
    except PoolTimeout as exc:
        pool.close()
        raise StoreUnavailable("Postgres is unreachable: the connection pool could not open") from exc
    return pool


class IdleConnectionCheck:
    """Pings a pooled connection at checkout only when it has not been checked out for a while.

    A connection that was in use a moment ago is almost surely alive, and pinging it would add
    a round trip to every statement (about a fifth of a save). One that idled may have been cut
    by a Postgres restart or a proxy; that one is pinged and, if dead, replaced by the pool.
    """

    def __init__(self, idle_seconds: float = 2.0) -> None:
        self._idle_seconds = idle_seconds
        self._checked_out_at: weakref.WeakKeyDictionary[psycopg.Connection, float] = (
            weakref.WeakKeyDictionary()
        )

    def check(self, conn: psycopg.Connection) -> None:
        now = time.monotonic()
        previous = self._checked_out_at.get(conn)
        self._checked_out_at[conn] = now
        if previous is None or now - previous > self._idle_seconds:
            ConnectionPool.check_connection(conn)


def translate_error(exc: psycopg.Error) -> Exception:
    """The store error for a psycopg error (messages carry constraint names, never values)."""
    if isinstance(exc, pg_errors.UniqueViolation) and exc.diag.constraint_name == _DUPLICATE_SPLIT_CONSTRAINT:
        return DuplicateSplit(exc.diag.constraint_name)
    if isinstance(exc, psycopg.IntegrityError):
        return ConstraintViolation(exc.diag.constraint_name)
    if isinstance(exc, psycopg.OperationalError):
        return StoreUnavailable("Postgres is unavailable")
    return exc


class Database:
    """The pool plus the named statements; hands out connections with errors translated."""

    def __init__(self, pool: ConnectionPool, statements: Queries | None = None) -> None:
        self.pool = pool
        self.q = statements if statements is not None else queries()

    @contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[psycopg.Connection]:
        """An autocommit connection: each statement commits on its own."""
        try:
            with self.pool.connection(timeout=timeout) as conn:
                yield conn
        except PoolTimeout as exc:
            raise StoreUnavailable("Postgres is unavailable: no connection within the timeout") from exc
        except (psycopg.IntegrityError, psycopg.OperationalError) as exc:
            raise translate_error(exc) from exc

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection]:
        """A connection inside BEGIN ... COMMIT (ROLLBACK if the block raises)."""
        with self.connection() as conn, conn.transaction():
            yield conn

    def ping(self, timeout_seconds: float) -> None:
        """Raises StoreUnavailable unless Postgres answers within timeout_seconds."""
        with self.connection(timeout=timeout_seconds) as conn:
            conn.execute("SELECT 1")

    def schema_version(self) -> int:
        with self.connection() as conn:
            return migrations.current_version(conn)

    def schema_is_current(self) -> bool:
        """True when the database has at least every migration this code ships (readiness)."""
        return self.schema_version() >= migrations.expected_version()

    def close(self) -> None:
        self.pool.close()
