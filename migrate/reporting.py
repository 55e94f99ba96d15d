"""What the operator sees: progress while writing, then the lists and the summary table.

On a terminal the progress is a tqdm bar; otherwise (a log file, CI, a pipe) one plain line
per batch, which stays readable when captured.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TextIO

from tqdm import tqdm


@dataclass
class Summary:
    read: int = 0
    migrated: int = 0  # pending: Postgres + Redis hot copy
    expired: int = 0  # Postgres only, as expired
    skipped_present: int = 0
    invalid: int = 0
    failed: int = 0
    verified: int | None = None  # None: --verify not asked
    mismatched: int = 0
    dry_run: bool = False
    invalid_records: list[tuple[str, str, str]] = field(default_factory=list)  # key, code, reason
    failed_records: list[tuple[str, str]] = field(default_factory=list)  # hash, reason
    mismatches: list[tuple[str, str]] = field(default_factory=list)  # hash, reason

    @property
    def succeeded(self) -> bool:
        return self.failed == 0 and self.mismatched == 0


class Progress:
    """progress.advance(n) after each batch; close() at the end."""

    def __init__(self, total: int, stream: TextIO, *, use_bar: bool | None = None) -> None:
        self._total = total
        self._done = 0
        self._stream = stream
        interactive = stream.isatty() if use_bar is None else use_bar
        self._bar = tqdm(total=total, unit="rec", file=stream, desc="migrating") if interactive else None

    def advance(self, count: int) -> None:
        self._done += count
        if self._bar is not None:
            self._bar.update(count)
        else:
            self._stream.write(f"migrating: {self._done}/{self._total} records\n")
            self._stream.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def render_table(rows: Iterable[Sequence[str]], headers: Sequence[str]) -> str:
    """A plain text table: the first column left-aligned, the others (numbers) right-aligned."""
    rows = list(rows)
    widths = [max(len(header), *(len(row[i]) for row in rows)) for i, header in enumerate(headers)]
    rule = "+" + "+".join("-" * (width + 2) for width in widths) + "+"

    def line(cells: Sequence[str]) -> str:
        first = f" {cells[0]:<{widths[0]}} "
        rest = [f" {cell:>{width}} " for cell, width in zip(cells[1:], widths[1:], strict=True)]
        return "|" + "|".join([first, *rest]) + "|"

    return "\n".join([rule, line(headers), rule, *(line(row) for row in rows), rule])


def summary_rows(summary: Summary) -> list[tuple[str, str]]:
    would = "would be " if summary.dry_run else ""
    rows = [
        ("read", summary.read),
        (f"{would}migrated (pending: Postgres + Redis)", summary.migrated),
        (f"{would}expired (Postgres only)", summary.expired),
        ("skipped-present", summary.skipped_present),
        ("invalid", summary.invalid),
        ("failed", summary.failed),
    ]
    if summary.verified is not None:
        rows += [("verified", summary.verified), ("mismatched", summary.mismatched)]
    return [(name, str(value)) for name, value in rows]


def write_report(summary: Summary, out: TextIO) -> None:
    if summary.invalid_records:
        out.write(f"\ninvalid records (skipped): {len(summary.invalid_records)}\n")
        for key, code, reason in summary.invalid_records:
            out.write(f"  {key}  {code}: {reason}\n")
    if summary.failed_records:
        out.write(f"\nfailed records: {len(summary.failed_records)}\n")
        for payment_hash, reason in summary.failed_records:
            out.write(f"  {payment_hash}  {reason}\n")
    if summary.mismatches:
        out.write(f"\nverification mismatches: {len(summary.mismatches)}\n")
        for payment_hash, reason in summary.mismatches:
            out.write(f"  {payment_hash}  {reason}\n")
    title = "dry run: nothing was written" if summary.dry_run else "migration summary"
    out.write(f"\n{title}\n{render_table(summary_rows(summary), ('records', 'count'))}\n")
