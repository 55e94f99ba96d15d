"""The byte-identical, timestamped copy of the source file taken before anything is written."""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path

from migrate.source import SourceFile


class BackupFailed(Exception):
    """The copy could not be written or does not match the source: nothing was migrated."""


def write_backup(source: SourceFile, directory: Path, now: datetime) -> Path:
    """Writes the bytes that were read (not a re-read of the file) and checks them on disk."""
    stamp = now.strftime("%Y%m%dT%H%M%S.%fZ")
    target = directory / f"{source.path.name}.{stamp}.bak"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with target.open("xb") as handle:  # never overwrite an earlier backup
            handle.write(source.raw)
        written = hashlib.sha256(target.read_bytes()).hexdigest()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise BackupFailed(f"cannot write the backup {target}: {reason}") from None
    if written != source.sha256:
        raise BackupFailed(f"the backup {target} does not match the source file")
    return target
