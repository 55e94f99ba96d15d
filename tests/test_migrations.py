"""The migration runner: ordered, recorded, idempotent, serialised across real OS processes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from service.store import migrations
from service.store.errors import MigrationError
from service.store.sql import queries
from tests.test_split_store import sql_for_tests

REPO_ROOT = Path(__file__).resolve().parents[1]
RUNNER = (
    "import json, sys\n"
    "from pathlib import Path\n"
    "from service.store.migrations import upgrade\n"
    "directory = Path(sys.argv[2]) if len(sys.argv) > 2 else None\n"
    "print(json.dumps(upgrade(sys.argv[1], directory=directory)))\n"
)


@pytest.fixture
def fresh_db_url(pg_url: str) -> Iterator[str]:
    """An empty database (no migrations applied) on the shared server."""
    statements = sql_for_tests()
    with psycopg.connect(pg_url, autocommit=True, connect_timeout=5) as admin:
        statements.drop_migration_test_database.run(admin)
        statements.create_migration_test_database.run(admin)
    yield make_conninfo(pg_url, dbname="blinkpos_migration_test")
    with psycopg.connect(pg_url, autocommit=True, connect_timeout=5) as admin:
        statements.drop_migration_test_database.run(admin)


def run_in_processes(url: str, count: int, directory: Path | None = None) -> list[list[str]]:
    """Starts `count` runner processes at once and returns what each applied."""
    args = [sys.executable, "-c", RUNNER, url] + ([str(directory)] if directory else [])
    processes = [
        subprocess.Popen(args, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(count)
    ]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def recorded(url: str) -> list[tuple[int, str]]:
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        return [(row["version"], row["name"]) for row in sql_for_tests().schema_migration_rows.all(conn)]


def test_upgrade_applies_every_file_once_and_a_second_run_does_nothing(fresh_db_url: str) -> None:
    bundled = migrations.discover()
    assert bundled and [m.version for m in bundled] == sorted(m.version for m in bundled)

    with psycopg.connect(fresh_db_url, autocommit=True, connect_timeout=5) as conn:
        assert migrations.current_version(conn) == 0

    assert migrations.upgrade(fresh_db_url) == [m.label for m in bundled]
    assert migrations.upgrade(fresh_db_url) == []

    assert recorded(fresh_db_url) == [(m.version, m.name) for m in bundled]
    with psycopg.connect(fresh_db_url, autocommit=True, connect_timeout=5) as conn:
        assert migrations.current_version(conn) == migrations.expected_version() == bundled[-1].version


def test_two_processes_upgrading_at_once_apply_the_schema_once(fresh_db_url: str) -> None:
    results = run_in_processes(fresh_db_url, 2)
    applied = [label for result in results for label in result]
    assert sorted(applied) == [m.label for m in migrations.discover()]
    assert recorded(fresh_db_url) == [(m.version, m.name) for m in migrations.discover()]


def test_a_runner_waits_for_one_holding_the_lock_then_finds_nothing_to_do(
    fresh_db_url: str, tmp_path: Path
) -> None:
    # The slow file keeps the first runner inside the lock while the second arrives; without
    # the lock the second would fail on the existing table or the duplicate version row.
    slow = "CREATE TABLE migration_probe (id integer);\nSELECT pg_sleep(1.5);\n"
    (tmp_path / "001_probe.sql").write_text(slow)
    results = run_in_processes(fresh_db_url, 2, tmp_path)
    assert sorted(results) == [[], ["001_probe"]]
    assert recorded(fresh_db_url) == [(1, "probe")]


def test_a_failing_migration_leaves_nothing_behind(fresh_db_url: str, tmp_path: Path) -> None:
    (tmp_path / "001_probe.sql").write_text("CREATE TABLE migration_probe (id integer);\n")
    broken = "CREATE TABLE half_done (id integer);\nSELECT no_such_function();\n"
    (tmp_path / "002_broken.sql").write_text(broken)
    with pytest.raises(psycopg.errors.UndefinedFunction):
        migrations.upgrade(fresh_db_url, directory=tmp_path)
    assert recorded(fresh_db_url) == [(1, "probe")]
    (tmp_path / "002_broken.sql").write_text("CREATE TABLE half_done (id integer);\n")
    assert migrations.upgrade(fresh_db_url, directory=tmp_path) == ["002_broken"]


def test_an_applied_migration_that_was_edited_is_refused(fresh_db_url: str, tmp_path: Path) -> None:
    migration = tmp_path / "001_probe.sql"
    migration.write_text("CREATE TABLE migration_probe (id integer);\n")
    migrations.upgrade(fresh_db_url, directory=tmp_path)
    migration.write_text("CREATE TABLE migration_probe (id bigint);\n")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        migrations.upgrade(fresh_db_url, directory=tmp_path)


def test_stray_file_names_are_refused(tmp_path: Path) -> None:
    (tmp_path / "initial.sql").write_text("SELECT 1;\n")
    with pytest.raises(MigrationError):
        migrations.discover(tmp_path)


def test_waiting_for_the_lock_is_bounded(fresh_db_url: str) -> None:
    with psycopg.connect(fresh_db_url, autocommit=True, connect_timeout=5) as holder:
        assert queries().try_migration_lock.scalar(holder, lock_key=migrations.MIGRATION_LOCK_KEY)
        with pytest.raises(MigrationError, match="held the lock"):
            migrations.upgrade(fresh_db_url, lock_wait_seconds=0.3)
    assert migrations.upgrade(fresh_db_url) != []


def test_migration_005_erases_stored_key_ciphertexts_and_drops_their_column(
    fresh_db_url: str, tmp_path: Path
) -> None:
    for migration in migrations.discover():
        if migration.version < 5:
            (tmp_path / f"{migration.label}.sql").write_text(migration.sql)
    migrations.upgrade(fresh_db_url, directory=tmp_path)
    ciphertext = "v1:1:" + "Q" * 80  # the shape earlier versions stored
    statements = sql_for_tests()
    with psycopg.connect(fresh_db_url, autocommit=True, connect_timeout=5) as conn:
        statements.insert_split_with_key_ciphertext.run(
            conn, payment_hash="ab" * 32, ciphertext=ciphertext, fingerprint="f" * 64
        )

    assert "005_drop_merchant_key_ciphertext" in migrations.upgrade(fresh_db_url)

    with psycopg.connect(fresh_db_url, autocommit=True, connect_timeout=5) as conn:
        columns = {row["column_name"] for row in statements.payment_split_columns.all(conn)}
        statements.create_text_dump_function.run(conn)
        dump = "\n".join(row["row_text"] for row in statements.database_text_dump.all(conn))
    assert "merchant_key_ciphertext" not in columns
    assert "merchant_key_fingerprint" in columns
    assert "f" * 64 in dump  # the split is still there, known by its fingerprint
    assert ciphertext not in dump and "v1:1:" not in dump
