"""One markdown table for the terminal, the same rows (plus raw figures) saved as JSON."""

from __future__ import annotations

import json
import math
import platform
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Row:
    section: str
    measurement: str
    measured: str
    target: str = ""
    reference: str = ""  # the original Node implementation's figure, where the issue quotes one
    verdict: str = ""  # "ok", "MISSED" or "" when there is no target


def verdict(value: float, *, at_most: float | None = None, at_least: float | None = None) -> str:
    if math.isnan(value):
        return "MISSED"
    if at_most is not None and value > at_most:
        return "MISSED"
    if at_least is not None and value < at_least:
        return "MISSED"
    return "ok"


def fmt(value: float, digits: int = 2, unit: str = "") -> str:
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    return f"{value:,.{digits}f}{unit}"


@dataclass
class Report:
    title: str
    rows: list[Row] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, *args: Any, **kwargs: Any) -> None:
        self.rows.append(Row(*args, **kwargs))

    def markdown(self) -> str:
        lines = [
            f"### {self.title}",
            "",
            "| section | measurement | measured | target | Node original | |",
            "|---|---|---:|---:|---:|---|",
        ]
        lines += [
            f"| {r.section} | {r.measurement} | {r.measured} | {r.target} | {r.reference} | {r.verdict} |"
            for r in self.rows
        ]
        lines += [""] + [f"- {note}" for note in self.notes]
        return "\n".join(lines).rstrip() + "\n"

    def save(self, directory: Path = RESULTS_DIR) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        path = directory / f"{stamp}.json"
        document = {
            "title": self.title,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {"python": platform.python_version(), "platform": platform.platform()},
            "rows": [asdict(row) for row in self.rows],
            "raw": self.raw,
            "notes": self.notes,
        }
        path.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
        return path
