"""Blink's public GraphQL schema, loaded from the shared reference file (never copied into the repo)."""

from __future__ import annotations

import os
from pathlib import Path

from graphql import GraphQLSchema, build_schema

SCHEMA_PATH_ENV = "BLINK_SCHEMA_PATH"


def schema_path() -> Path:
    """`BLINK_SCHEMA_PATH`, else `<repo>/../shared/blink/public-schema.graphql`."""
    override = os.environ.get(SCHEMA_PATH_ENV)
    if override:
        return Path(override)
    repo = Path(__file__).resolve().parent.parent
    return repo.parent / "shared" / "blink" / "public-schema.graphql"


def load_schema(path: Path | None = None) -> GraphQLSchema:
    return build_schema((path or schema_path()).read_text(encoding="utf-8"))
