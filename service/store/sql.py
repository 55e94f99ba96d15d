"""Named SQL statements loaded once from sql/queries/*.sql (aiosql style: SQL is code).

A file holds statements introduced by a header comment:

    -- name: insert_split
    -- Inserts a split, its planned legs and its 'created' event in one round trip.
    WITH ...

Parameters use psycopg's named style, %(name)s. Statements are called with the connection
first: ``queries.insert_split.one(conn, payment_hash=..., ...)``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

QUERIES_DIR = Path(__file__).resolve().parents[2] / "sql" / "queries"

_NAME_HEADER = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Statement:
    name: str
    sql: str
    doc: str
    source: str

    def run(self, conn: psycopg.Connection, **params: Any) -> int:
        """Executes and returns the affected row count."""
        with conn.cursor() as cur:
            cur.execute(self.sql, params or None)
            return cur.rowcount

    def many(self, conn: psycopg.Connection, params_seq: Iterable[dict[str, Any]]) -> None:
        """Executes once per parameter set (psycopg pipelines executemany: one round trip)."""
        with conn.cursor() as cur:
            cur.executemany(self.sql, params_seq)

    def one(self, conn: psycopg.Connection, **params: Any) -> dict[str, Any] | None:
        """The first row as a dict, or None."""
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(self.sql, params or None)
            return cur.fetchone()

    def all(self, conn: psycopg.Connection, **params: Any) -> list[dict[str, Any]]:
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(self.sql, params or None)
            return cur.fetchall()

    def scalar(self, conn: psycopg.Connection, **params: Any) -> Any:
        """The first column of the first row, or None."""
        with conn.cursor() as cur:
            cur.execute(self.sql, params or None)
            row = cur.fetchone()
            return None if row is None else row[0]


class Queries:
    """Attribute access to every named statement: ``queries.select_split``."""

    def __init__(self, statements: dict[str, Statement]) -> None:
        self._statements = dict(statements)

    def __getattr__(self, name: str) -> Statement:
        try:
            return self._statements[name]
        except KeyError:
            raise AttributeError(f"no SQL statement named {name!r} in {QUERIES_DIR}") from None


def parse_statements(text: str, source: str) -> dict[str, Statement]:
    """Splits one .sql file into its named statements."""
    headers = list(_NAME_HEADER.finditer(text))
    statements: dict[str, Statement] = {}
    for index, header in enumerate(headers):
        end = headers[index + 1].start() if index + 1 < len(headers) else len(text)
        body = text[header.end():end].strip("\n")
        doc_lines: list[str] = []
        sql_lines: list[str] = []
        for line in body.splitlines():
            if not sql_lines and line.lstrip().startswith("--"):
                doc_lines.append(line.lstrip()[2:].strip())
            else:
                sql_lines.append(line)
        sql = "\n".join(sql_lines).strip().rstrip(";").strip()
        name = header.group(1)
        if not sql:
            raise ValueError(f"{source}: statement {name!r} is empty")
        if name in statements:
            raise ValueError(f"{source}: statement {name!r} is defined twice")
        statements[name] = Statement(name=name, sql=sql, doc=" ".join(doc_lines), source=source)
    return statements


def load_queries(directory: Path = QUERIES_DIR) -> Queries:
    statements: dict[str, Statement] = {}
    for path in sorted(directory.glob("*.sql")):
        for name, statement in parse_statements(path.read_text(encoding="utf-8"), path.name).items():
            if name in statements:
                first = statements[name].source
                raise ValueError(f"SQL statement {name!r} is defined in {first} and {path.name}")
            statements[name] = statement
    return Queries(statements)


@cache
def queries() -> Queries:
    """The statements of sql/queries, read from disk on first use only."""
    return load_queries()
