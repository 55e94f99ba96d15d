"""`python -m migrate`: the legacy .tip-store.json into the hybrid store, against real servers.

Every test generates its legacy file, runs the tool in-process through migrate.cli.main (one
test runs `python -m migrate` as a subprocess), and checks Postgres and Redis directly.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from migrate.cli import Streams, main
from migrate.reporting import Progress
from service import create_app
from service.config import Config
from service.domain.model import LegKind, NewSplit, PlannedLeg, SplitStatus, TipRecipient
from service.store import keys
from service.store.cache import SplitCache
from service.store.errors import ConstraintViolation
from service.store.fingerprints import Fingerprints
from service.store.legacy import LegacyFileStore
from service.store.postgres import Database, open_pool
from service.store.records import split_from_document, split_to_document
from service.store.splits import SplitStore
from service.store.sql import load_queries
from tests.fixtures.audit import split_events
from tests.fixtures.servers import REPO_ROOT, TEST_ENCRYPTION_KEY, build_test_config

TTL_SECONDS = 86_400
SQL = load_queries(REPO_ROOT / "sql" / "testing")
UNICODE_MEMO = "Café ☕ – 日本語のメモ 🎉 «ünïcødé»"


def payment_hash(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()


def millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


# --- generated legacy files -----------------------------------------------------------------------


@dataclass
class LegacyFile:
    path: Path
    entries: dict[str, Any]
    fresh: list[str]  # valid, younger than the TTL: pending + Redis
    old: list[str]  # valid, older than the TTL: expired, Postgres only
    invalid: dict[str, str]  # key -> expected reason code

    @property
    def valid(self) -> list[str]:
        return self.fresh + self.old


def valid_entry(index: int, created: datetime) -> dict[str, Any]:
    """Varied valid records: numbers as strings, one or several recipients, unicode memos."""
    base = 1_000 + index * 7
    entry: dict[str, Any] = {
        "baseAmount": base,
        "tipAmount": base // 10,
        "tipPercent": 10,
        "userApiKey": f"blink_legacy_key_{index:05d}",
        "userWalletId": f"merchant-wallet-{index % 13}",
        "displayCurrency": "USD" if index % 2 else "BTC",
        "baseAmountDisplay": f"{base / 1000:.2f}",
        "tipAmountDisplay": round(base / 10_000, 2),
        "timestamp": millis(created),
    }
    match index % 4:
        case 0:
            entry["tipRecipient"] = f"staff_{index % 5}"
        case 1:
            entry["tipRecipients"] = [
                {"username": "alice_tips", "share": 2},
                {"username": "Bob_Tips", "share": "1"},
            ]
            entry["memo"] = UNICODE_MEMO
        case 2:  # everything as strings, as the old POS sometimes wrote them
            entry.update({k: str(entry[k]) for k in ("baseAmount", "tipAmount", "tipPercent", "timestamp")})
            entry["tipRecipients"] = [
                {"username": "carol_tips", "share": "1/3"},
                {"username": "dave_tips", "share": 1},
                {"username": "erin@blink.sv", "share": 0.5},
            ]
            entry["memo"] = f"Table {index} – merci ✓"
        case 3:  # no tip at all
            entry.update({"tipAmount": 0, "tipPercent": 0})
    return entry


def invalid_entries(now: datetime) -> dict[str, tuple[Any, str]]:
    """One record of every invalid kind: key -> (entry, expected reason code)."""
    good = valid_entry(0, now - timedelta(minutes=5))
    cases: dict[str, tuple[Any, str]] = {
        "not-a-hash": (good, "bad_hash"),
        payment_hash("upper").upper(): (good, "bad_hash"),
        payment_hash("negative"): ({**good, "baseAmount": -5}, "bad_amount"),
        payment_hash("fraction"): ({**good, "baseAmount": "10.5"}, "bad_amount"),
        payment_hash("words"): ({**good, "tipAmount": "lots"}, "bad_amount"),
        payment_hash("no-base"): ({k: v for k, v in good.items() if k != "baseAmount"}, "bad_amount"),
        payment_hash("tip-no-recipient"): (
            {k: v for k, v in good.items() if k != "tipRecipient"},
            "inconsistent_amounts",
        ),
        payment_hash("tip-vs-percent"): ({**good, "tipAmount": 900}, "inconsistent_amounts"),
        payment_hash("zero-sale"): (
            {**good, "baseAmount": 0, "tipAmount": 0, "tipPercent": 0},
            "inconsistent_amounts",
        ),
        payment_hash("no-key"): ({k: v for k, v in good.items() if k != "userApiKey"}, "missing_credentials"),
        payment_hash("blank-wallet"): ({**good, "userWalletId": "  "}, "missing_credentials"),
        payment_hash("onchain-username"): ({**good, "tipRecipient": "bc1qxyz"}, "bad_username"),
        payment_hash("punctuated-username"): (
            {**good, "tipRecipient": None, "tipRecipients": [{"username": "al!ce", "share": 1}]},
            "bad_username",
        ),
        payment_hash("twice"): (
            {**good, "tipRecipient": None, "tipRecipients": [{"username": "amy_x"}, {"username": "AMY_X"}]},
            "bad_username",
        ),
        payment_hash("bad-share"): (
            {**good, "tipRecipient": None, "tipRecipients": [{"username": "amy_x", "share": -1}]},
            "bad_share",
        ),
        payment_hash("bad-time"): ({**good, "timestamp": "yesterday"}, "bad_timestamp"),
        payment_hash("array"): (["not", "an", "object"], "not_an_object"),
        payment_hash("nul-memo"): ({**good, "memo": "a\x00b"}, "bad_memo"),
    }
    return cases


def write_legacy_file(
    path: Path, *, fresh: int = 120, old: int = 80, invalid: bool = True, now: datetime | None = None
) -> LegacyFile:
    now = now or datetime.now(UTC)
    entries: dict[str, Any] = {}
    fresh_hashes, old_hashes = [], []
    for index in range(fresh + old):
        is_fresh = index < fresh
        age = timedelta(minutes=1 + index) if is_fresh else timedelta(seconds=TTL_SECONDS, hours=1 + index)
        key = payment_hash(f"sale-{index}")
        entries[key] = valid_entry(index, now - age)
        (fresh_hashes if is_fresh else old_hashes).append(key)
    expected_invalid: dict[str, str] = {}
    if invalid:
        for key, (entry, code) in invalid_entries(now).items():
            entries[key] = entry
            expected_invalid[key] = code
    path.write_text(json.dumps(entries, ensure_ascii=False, indent=2), encoding="utf-8")
    return LegacyFile(path, entries, fresh_hashes, old_hashes, expected_invalid)


# --- running the tool ---------------------------------------------------------------------------


@dataclass
class Run:
    code: int
    out: str
    err: str


class FakeStdin(io.StringIO):
    def __init__(self, text: str = "", tty: bool = False) -> None:
        super().__init__(text)
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def environment(pg_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": pg_url,
        "REDIS_URL": redis_url,
        "BLINKPOS_API_KEY": "blink_test_pos_key",
        "BLINKPOS_BTC_WALLET_ID": "test-pos-wallet",
        "API_KEY_ENCRYPTION_KEY": TEST_ENCRYPTION_KEY,
        "TIP_TTL_SECONDS": str(TTL_SECONDS),
        "PG_CONNECT_TIMEOUT_SECONDS": "3",
        **extra,
    }


@pytest.fixture
def run_migrate(clean_db: str, clean_redis: str) -> Callable[..., Run]:
    def run(*args: str, stdin: FakeStdin | None = None, env: dict[str, str] | None = None) -> Run:
        out, err = io.StringIO(), io.StringIO()
        streams = Streams(stdin or FakeStdin(), out, err)
        code = main(list(args), environ=env or environment(clean_db, clean_redis), streams=streams)
        return Run(code, out.getvalue(), err.getvalue())

    return run


@pytest.fixture
def redis_client(clean_redis: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(clean_redis, socket_timeout=5)
    yield client
    client.close()


@pytest.fixture
def database(clean_db: str) -> Iterator[Database]:
    db = Database(open_pool(clean_db, min_size=1, max_size=2, timeout=5))
    yield db
    db.close()


@pytest.fixture
def store(database: Database, redis_client: redis.Redis) -> SplitStore:
    return SplitStore(database, SplitCache(redis_client), Fingerprints.from_setting(TEST_ENCRYPTION_KEY))


def row_counts(url: str) -> dict[str, int]:
    with psycopg.connect(url, autocommit=True) as conn:
        row = SQL.count_migration_rows.one(conn)
    assert row is not None
    return row


def tip_keys(client: redis.Redis) -> set[str]:
    return {key.decode() for key in client.scan_iter("tip:*", count=1000)}


def summary_count(output: str, label: str) -> int:
    """The number in the summary table's row that starts with label."""
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) == 2 and cells[0].startswith(label):
            return int(cells[1])
    raise AssertionError(f"no summary row {label!r} in:\n{output}")


# --- the tests ------------------------------------------------------------------------------------


def test_migration_writes_fresh_records_to_postgres_and_redis_and_old_ones_as_expired(
    tmp_path: Path,
    run_migrate: Callable[..., Run],
    clean_db: str,
    redis_client: redis.Redis,
    store: SplitStore,
) -> None:
    legacy = write_legacy_file(tmp_path / ".tip-store.json")

    run = run_migrate("--file", str(legacy.path), "--yes", "--backup", str(tmp_path / "backups"))

    assert run.code == 0, run.err + run.out
    assert summary_count(run.out, "read") == len(legacy.entries)
    assert summary_count(run.out, "migrated") == len(legacy.fresh)
    assert summary_count(run.out, "expired") == len(legacy.old)
    assert summary_count(run.out, "skipped-present") == 0
    assert summary_count(run.out, "invalid") == len(legacy.invalid)
    assert summary_count(run.out, "failed") == 0
    counts = row_counts(clean_db)
    assert (counts["pending"], counts["expired"]) == (len(legacy.fresh), len(legacy.old))
    assert counts["events"] == counts["migrated_events"] == len(legacy.valid)
    assert tip_keys(redis_client) == {f"tip:{h}" for h in legacy.fresh}
    for payment_hash_ in legacy.fresh[:10]:
        ttl = redis_client.ttl(f"tip:{payment_hash_}")
        created = datetime.fromtimestamp(int(legacy.entries[payment_hash_]["timestamp"]) / 1000, tz=UTC)
        remaining = (created + timedelta(seconds=TTL_SECONDS) - datetime.now(UTC)).total_seconds()
        assert remaining - 60 < ttl <= remaining + 1  # the time it has left, not a fresh day

    for index, payment_hash_ in enumerate(legacy.valid):
        split = store.get_fresh(payment_hash_)
        entry = legacy.entries[payment_hash_]
        assert split is not None and split.payment_request is None
        assert split.status is (SplitStatus.PENDING if payment_hash_ in legacy.fresh else SplitStatus.EXPIRED)
        assert (split.base_sats, split.tip_sats) == (int(entry["baseAmount"]), int(entry["tipAmount"]))
        assert sum(leg.sats for leg in split.legs) == split.invoice_sats
        # Only the key's fingerprint is kept: the merchant is still known, the key is not stored.
        assert split.merchant_key_fingerprint == store.fingerprints.fingerprint(entry["userApiKey"])
        assert entry["userApiKey"] not in repr(split)
        assert split.memo == entry.get("memo")
        assert [e["event_type"] for e in split_events(store, payment_hash_)] == ["migrated"]
        if index == 1:  # several recipients, usernames as Blink canonicalises them, the unicode memo
            assert split.memo == UNICODE_MEMO
            assert split.tip_recipients == (TipRecipient("alice_tips", Fraction(2)), TipRecipient("bob_tips"))
            assert [(leg.kind, leg.recipient, leg.sats) for leg in split.legs] == [
                (LegKind.BASE, entry["userWalletId"], 1_007),
                (LegKind.TIP, "alice_tips", 67),
                (LegKind.TIP, "bob_tips", 33),
            ]
        if index == 2:  # numbers as strings; a Lightning address names its Blink user
            assert split.tip_percent == Decimal(10) and split.tip_sats == 101
            assert [r.username for r in split.tip_recipients] == ["carol_tips", "dave_tips", "erin"]
    cached = split_from_document(redis_client.get(f"tip:{legacy.fresh[1]}"))
    assert cached is not None and cached.memo == UNICODE_MEMO and cached.legs


def test_invalid_records_are_skipped_and_listed_with_their_reason(
    tmp_path: Path, run_migrate: Callable[..., Run], clean_db: str
) -> None:
    legacy = write_legacy_file(tmp_path / ".tip-store.json", fresh=3, old=0)

    run = run_migrate("--file", str(legacy.path), "--yes", "--no-backup")

    assert run.code == 0
    listed = {
        line.split()[0]: line.split()[1].rstrip(":") for line in run.out.splitlines() if line.startswith("  ")
    }
    expected = {(key if len(key) <= 64 else key[:24] + "..."): code for key, code in legacy.invalid.items()}
    assert listed == expected
    assert row_counts(clean_db)["splits"] == 3
    assert "blink_legacy_key" not in run.out + run.err  # no credential is ever printed


def test_dry_run_writes_nothing_anywhere(
    tmp_path: Path, run_migrate: Callable[..., Run], clean_db: str, redis_client: redis.Redis
) -> None:
    legacy = write_legacy_file(tmp_path / ".tip-store.json")
    before = legacy.path.read_bytes()

    run = run_migrate("--file", str(legacy.path), "--dry-run", "--backup", str(tmp_path / "backups"))

    assert run.code == 0
    assert "dry run: nothing was written" in run.out
    assert summary_count(run.out, "would be migrated") == len(legacy.fresh)
    assert summary_count(run.out, "would be expired") == len(legacy.old)
    assert summary_count(run.out, "invalid") == len(legacy.invalid)
    assert row_counts(clean_db) == dict.fromkeys(row_counts(clean_db), 0)
    assert redis_client.dbsize() == 0
    assert not (tmp_path / "backups").exists()
    assert legacy.path.read_bytes() == before


def test_second_run_is_a_no_op(
    tmp_path: Path, run_migrate: Callable[..., Run], clean_db: str, redis_client: redis.Redis
) -> None:
    legacy = write_legacy_file(tmp_path / ".tip-store.json", fresh=40, old=20)
    backups = tmp_path / "backups"
    assert run_migrate("--file", str(legacy.path), "--yes", "--backup", str(backups)).code == 0
    counts = row_counts(clean_db)
    documents = {key: redis_client.get(key) for key in tip_keys(redis_client)}

    again = run_migrate("--file", str(legacy.path), "--yes", "--backup", str(backups))

    assert again.code == 0
    assert summary_count(again.out, "skipped-present") == len(legacy.valid)
    assert summary_count(again.out, "migrated") == summary_count(again.out, "expired") == 0
    assert row_counts(clean_db) == counts
    assert {key: redis_client.get(key) for key in tip_keys(redis_client)} == documents
    assert len(list(backups.iterdir())) == 1  # nothing to write, so no second backup


def test_backup_is_a_byte_identical_copy_and_the_source_is_untouched(
    tmp_path: Path, run_migrate: Callable[..., Run]
) -> None:
    legacy = write_legacy_file(tmp_path / ".tip-store.json", fresh=30, old=10)
    before = legacy.path.read_bytes()
    mtime = legacy.path.stat().st_mtime_ns

    run = run_migrate("--file", str(legacy.path), "--yes", "--backup", str(tmp_path / "backups"))

    assert run.code == 0
    (backup,) = (tmp_path / "backups").iterdir()
    assert backup.name.startswith(".tip-store.json.") and backup.name.endswith(".bak")
    assert backup.read_bytes() == before
    assert legacy.path.read_bytes() == before and legacy.path.stat().st_mtime_ns == mtime


def test_backup_is_taken_next_to_the_file_by_default(tmp_path: Path, run_migrate: Callable[..., Run]) -> None:
    legacy = write_legacy_file(tmp_path / ".tip-store.json", fresh=2, old=0, invalid=False)

    assert run_migrate("--file", str(legacy.path), "--yes").code == 0

    backups = [p for p in tmp_path.iterdir() if p.name.endswith(".bak")]
    assert len(backups) == 1 and backups[0].read_bytes() == legacy.path.read_bytes()


def test_truncated_file_exits_2_naming_line_and_column_and_writes_nothing(
    tmp_path: Path, clean_db: str, clean_redis: str, redis_client: redis.Redis
) -> None:
    legacy = write_legacy_file(tmp_path / ".tip-store.json", fresh=50, old=0)
    raw = legacy.path.read_bytes()
    legacy.path.write_bytes(raw[: len(raw) // 2])

    result = subprocess.run(
        [sys.executable, "-m", "migrate", "--file", str(legacy.path), "--yes"],
        cwd=REPO_ROOT,
        env={**os.environ, **environment(clean_db, clean_redis)},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    assert "line" in result.stderr and "column" in result.stderr and "nothing was written" in result.stderr
    assert row_counts(clean_db)["splits"] == 0
    assert redis_client.dbsize() == 0
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".bak")]


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"[1, 2]", "JSON object"), (b'{\n  "a": 1,\n}', "line 3, column 1"), (b"\xff\xfe{}", "not UTF-8")],
)
def test_unusable_file_exits_2(
    tmp_path: Path, run_migrate: Callable[..., Run], clean_db: str, content: bytes, message: str
) -> None:
    path = tmp_path / ".tip-store.json"
    path.write_bytes(content)

    run = run_migrate("--file", str(path), "--yes")

    assert run.code == 2 and message in run.err
    assert row_counts(clean_db)["splits"] == 0


def test_missing_file_exits_2(tmp_path: Path, run_migrate: Callable[..., Run]) -> None:
    run = run_migrate("--file", str(tmp_path / "absent.json"), "--yes")
    assert run.code == 2 and "cannot read" in run.err


def test_without_yes_a_non_terminal_run_is_refused_and_a_declined_prompt_writes_nothing(
    tmp_path: Path, run_migrate: Callable[..., Run], clean_db: str
) -> None:
    legacy = write_legacy_file(tmp_path / ".tip-store.json", fresh=5, old=0, invalid=False)

    refused = run_migrate("--file", str(legacy.path))
    declined = run_migrate("--file", str(legacy.path), stdin=FakeStdin("n\n", tty=True))
    accepted = run_migrate("--file", str(legacy.path), "--no-backup", stdin=FakeStdin("y\n", tty=True))

    assert refused.code == 2 and "--yes" in refused.err
    assert declined.code == 2 and "Migrate 5 records" in declined.err
    assert clean_db not in declined.err  # the prompt names the database, never its URL
    assert accepted.code == 0
    assert row_counts(clean_db)["splits"] == 5


def test_verify_passes_after_migration_and_catches_records_altered_afterwards(
    tmp_path: Path, run_migrate: Callable[..., Run], clean_db: str, redis_client: redis.Redis
) -> None:
    legacy = write_legacy_file(tmp_path / ".tip-store.json", fresh=20, old=20)
    first = run_migrate("--file", str(legacy.path), "--yes", "--no-backup", "--verify")
    assert first.code == 0, first.out
    assert summary_count(first.out, "verified") == len(legacy.valid)
    assert summary_count(first.out, "mismatched") == 0

    altered_in_postgres = legacy.old[3]
    with psycopg.connect(clean_db, autocommit=True) as conn:
        SQL.alter_split_memo.run(conn, payment_hash=altered_in_postgres, memo="changed afterwards")
    altered_in_redis = legacy.fresh[4]
    key = f"tip:{altered_in_redis}"
    cached = split_from_document(redis_client.get(key))
    assert cached is not None
    tampered = split_to_document(dataclasses.replace(cached, base_sats=cached.base_sats - 1))
    redis_client.set(key, tampered, keepttl=True)

    second = run_migrate("--file", str(legacy.path), "--yes", "--no-backup", "--verify")

    assert second.code == 1
    assert summary_count(second.out, "mismatched") == 2
    mismatch_lines = second.out.split("verification mismatches")[1].split("migration summary")[0]
    assert f"{altered_in_postgres}  store: memo differ; postgres: memo differ" in mismatch_lines
    assert f"{altered_in_redis}  store: base_sats differ" in mismatch_lines


def test_redis_down_fails_the_pending_records_with_exit_1_and_keeps_them_in_postgres(
    tmp_path: Path, run_migrate: Callable[..., Run], clean_db: str, private_valkey: Any
) -> None:
    legacy = write_legacy_file(tmp_path / ".tip-store.json", fresh=6, old=4, invalid=False)
    private_valkey.stop()

    run = run_migrate(
        "--file",
        str(legacy.path),
        "--yes",
        "--no-backup",
        env=environment(clean_db, private_valkey.url, REDIS_SOCKET_TIMEOUT_SECONDS="0.5"),
    )

    assert run.code == 1
    assert summary_count(run.out, "failed") == len(legacy.fresh)
    assert summary_count(run.out, "expired") == len(legacy.old)
    assert "Redis hot copy was not" in run.out
    assert row_counts(clean_db)["splits"] == len(legacy.valid)  # Postgres, the truth, has them all


def test_store_fallback_reads_the_legacy_file_as_the_migration_does(
    tmp_path: Path, run_migrate: Callable[..., Run], database: Database, redis_client: redis.Redis
) -> None:
    legacy = write_legacy_file(tmp_path / ".tip-store.json", fresh=8, old=0)
    fallback = SplitStore(
        database,
        SplitCache(redis_client),
        Fingerprints.from_setting(TEST_ENCRYPTION_KEY),
        LegacyFileStore(legacy.path, timedelta(seconds=TTL_SECONDS)),
    )
    before = {h: fallback.get(h) for h in legacy.fresh}
    assert all(split is not None and split.id is None for split in before.values())
    assert all(fallback.get(key) is None for key in legacy.invalid)

    assert run_migrate("--file", str(legacy.path), "--yes", "--no-backup").code == 0

    compared = (
        "invoice_sats",
        "base_sats",
        "tip_sats",
        "tip_percent",
        "merchant_wallet_id",
        "tip_recipients",
        "display_currency",
        "base_amount_display",
        "tip_amount_display",
        "memo",
        "created_at",
        "expires_at",
        "merchant_key_fingerprint",
    )
    for payment_hash_, from_file in before.items():
        migrated = fallback.get(payment_hash_)
        assert migrated is not None and migrated.id is not None
        assert {f: getattr(migrated, f) for f in compared} == {f: getattr(from_file, f) for f in compared}


def test_migrated_paid_split_is_forwarded_by_the_endpoints(
    tmp_path: Path, clean_db: str, clean_redis: str, sim_clean: Any, pos_account: dict
) -> None:
    sim = sim_clean
    merchant = sim.create_account()
    alice = sim.create_account()
    bob = sim.create_account()
    base, tip = 2_000, 300
    invoice = sim.create_invoice(
        pos_account["apiKey"], pos_account["btcWalletId"], base + tip, memo="legacy sale"
    )
    assert not invoice["errors"]
    paid_hash = invoice["invoice"]["paymentHash"]
    legacy_file = tmp_path / ".tip-store.json"
    legacy_file.write_text(
        json.dumps(
            {
                paid_hash: {
                    "baseAmount": str(base),
                    "tipAmount": tip,
                    "tipPercent": "15",
                    "tipRecipients": [
                        {"username": alice["username"], "share": 2},
                        {"username": bob["username"], "share": 1},
                    ],
                    "userApiKey": merchant["apiKey"],
                    "userWalletId": merchant["btcWalletId"],
                    "displayCurrency": "BTC",
                    "baseAmountDisplay": base,
                    "tipAmountDisplay": tip,
                    "memo": "Legacy sale ☕",
                    "timestamp": millis(datetime.now(UTC) - timedelta(minutes=3)),
                }
            }
        )
    )
    env = environment(
        clean_db,
        clean_redis,
        BLINK_API_URL=sim.graphql_url,
        BLINKPOS_API_KEY=pos_account["apiKey"],
        BLINKPOS_BTC_WALLET_ID=pos_account["btcWalletId"],
    )
    out, err = io.StringIO(), io.StringIO()
    assert (
        main(
            ["--file", str(legacy_file), "--yes", "--no-backup"],
            environ=env,
            streams=Streams(FakeStdin(), out, err),
        )
        == 0
    ), out.getvalue() + err.getvalue()
    config: Config = build_test_config(
        database_url=clean_db,
        redis_url=clean_redis,
        blink_api_url=sim.graphql_url,
        blinkpos_api_key=pos_account["apiKey"],
        blinkpos_btc_wallet_id=pos_account["btcWalletId"],
        tip_ttl_seconds=TTL_SECONDS,
    )
    app = create_app(config)
    try:
        client = app.test_client()
        unpaid = client.post("/api/blink/forward-with-tips", json={"paymentHash": paid_hash})
        assert unpaid.status_code == 409 and unpaid.get_json()["code"] == "invoice_not_paid"
        time.sleep(keys.SHARED_ANSWER_TTL_MS / 1000)  # callers share Blink's "not paid" for this long

        sim.pay(paid_hash)
        response = client.post("/api/blink/forward-with-tips", json={"paymentHash": paid_hash})

        assert response.status_code == 200, response.get_json()
        assert response.get_json()["success"] is True
        assert sim.balance(merchant["btcWalletId"]) == base
        assert sim.balance(alice["btcWalletId"]) == 200
        assert sim.balance(bob["btcWalletId"]) == 100
        repeat = client.post("/api/blink/forward-with-tips", json={"paymentHash": paid_hash})
        assert repeat.status_code == 200 and repeat.get_json()["details"]["alreadyProcessed"] is True
    finally:
        app.extensions["blinkpos"].close()


def test_cli_reports_missing_settings_with_exit_2(tmp_path: Path) -> None:
    legacy = write_legacy_file(tmp_path / ".tip-store.json", fresh=1, old=0, invalid=False)
    err = io.StringIO()

    code = main(
        ["--file", str(legacy.path), "--yes"], environ={}, streams=Streams(FakeStdin(), io.StringIO(), err)
    )

    assert code == 2 and "DATABASE_URL" in err.getvalue()


def test_a_record_the_database_refuses_fails_alone_and_the_rest_of_its_batch_is_written(
    tmp_path: Path, run_migrate: Callable[..., Run], clean_db: str
) -> None:
    legacy = write_legacy_file(tmp_path / ".tip-store.json", fresh=30, old=10, invalid=False)
    refused = legacy.fresh[7]
    legacy.entries[refused]["userWalletId"] = "wallet\x00id"  # Postgres text cannot hold a NUL
    legacy.path.write_text(json.dumps(legacy.entries), encoding="utf-8")

    run = run_migrate("--file", str(legacy.path), "--yes", "--no-backup", "--verify")

    assert run.code == 1
    assert f"{refused}  refused by the database: DataError" in run.out
    assert summary_count(run.out, "failed") == 1
    assert summary_count(run.out, "migrated") == len(legacy.fresh) - 1
    assert summary_count(run.out, "verified") == len(legacy.valid) - 1
    assert summary_count(run.out, "mismatched") == 0
    assert row_counts(clean_db)["splits"] == len(legacy.valid) - 1
    again = run_migrate("--file", str(legacy.path), "--yes", "--no-backup")
    assert again.code == 1 and summary_count(again.out, "skipped-present") == len(legacy.valid) - 1


def test_only_migrated_legacy_splits_may_lack_a_payment_request(store: SplitStore) -> None:
    new = NewSplit(
        payment_hash=payment_hash("service-sale"),
        payment_request=None,  # type: ignore[arg-type]  # what the schema must refuse
        invoice_sats=1_000,
        base_sats=1_000,
        tip_sats=0,
        tip_percent=None,
        merchant_wallet_id="merchant-wallet",
        merchant_key_fingerprint="f" * 64,
        tip_recipients=(),
        legs=(PlannedLeg(LegKind.BASE, "merchant-wallet", 1_000, 0),),
        display_currency="BTC",
        base_amount_display=None,
        tip_amount_display=None,
        memo=None,
        environment="production",
        expires_at=datetime.now(UTC) + timedelta(hours=1),
    )

    with pytest.raises(ConstraintViolation) as refused:
        store.save(new)

    assert refused.value.constraint == "payment_splits_payment_request_known"


def test_progress_is_a_bar_on_a_terminal_and_plain_lines_otherwise() -> None:
    plain, terminal = io.StringIO(), io.StringIO()
    for stream, use_bar in ((plain, False), (terminal, True)):
        progress = Progress(1_000, stream, use_bar=use_bar)
        progress.advance(500)
        progress.advance(500)
        progress.close()

    assert plain.getvalue() == "migrating: 500/1000 records\nmigrating: 1000/1000 records\n"
    assert (
        "100%" in terminal.getvalue() and "1000/1000" in terminal.getvalue() and "\r" in terminal.getvalue()
    )
