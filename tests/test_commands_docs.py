"""README's Commands table names every command and every option `--help` offers, so a newcomer
reading it misses no flag (the table had lost `--simulator-port`, `--limit` and the worker's), and
its Layout names every package and module of service/ (it had lost domain/ and lnurl/)."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from migrate.cli import parse_args as migrate_parse_args
from service.cli import build_parser as service_parser

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def commands_table() -> dict[str, str]:
    """`python -m ...` command words (options left out) -> the command cell of its row."""
    section = README.read_text(encoding="utf-8").split("\n## Commands\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for cell in re.findall(r"^\| `(python -m [^`]+)` \|", section, flags=re.MULTILINE):
        words = re.match(r"python -m [a-z]+(?: [a-z]+)*", cell)
        assert words is not None
        rows[words.group(0)] = cell
    return rows


def leaf_commands(parser: argparse.ArgumentParser, words: str) -> Iterator[tuple[str, list[str]]]:
    """Every runnable command under parser, with its options (not -h)."""
    subparsers = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    if not subparsers:
        options = [
            option for action in parser._actions for option in action.option_strings
            if option.startswith("--") and option != "--help"
        ]
        yield words, options
        return
    for name, child in subparsers[0].choices.items():
        yield from leaf_commands(child, f"{words} {name}")


def migrate_options(capsys: pytest.CaptureFixture[str]) -> list[str]:
    with pytest.raises(SystemExit):
        migrate_parse_args(["--help"])
    usage = capsys.readouterr().out.split("\n\n", 1)[0]
    return sorted(set(re.findall(r"--[a-z][a-z-]*", usage)) - {"--help"})


def test_readme_names_every_command_and_each_of_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    table = commands_table()
    commands = [
        *leaf_commands(service_parser(), "python -m service"),
        ("python -m migrate", migrate_options(capsys)),
    ]
    assert "--no-backup" in dict(commands)["python -m migrate"]
    assert "--simulator-port" in dict(commands)["python -m service dev"]
    missing = []
    for words, options in commands:
        row = table.get(words)
        if row is None:
            missing.append(words)
            continue
        missing += [f"{words} {option}" for option in options if option not in row]
    assert missing == []


def test_readme_layout_names_every_package_and_module_of_the_service() -> None:
    layout = README.read_text(encoding="utf-8").split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    service = ROOT / "service"
    parts = [f"service/{path.name}/" for path in service.iterdir() if (path / "__init__.py").is_file()]
    parts += [f"{path.name}" for path in service.glob("*.py") if not path.name.startswith("__")]
    assert "service/lnurl/" in parts
    assert [part for part in parts if part not in layout] == []
