"""The layers import downwards only: api -> payments -> store -> domain, and blink -> domain."""

import ast
from pathlib import Path

import pytest

SERVICE = Path(__file__).resolve().parents[1] / "service"

# Packages a layer must never import (directly or by a deferred import inside a function).
FORBIDDEN = {
    "domain": ("service.api", "service.payments", "service.store", "service.blink", "flask"),
    "store": ("service.api", "service.payments", "flask"),
    "payments": ("service.api", "service.store", "flask"),
    "blink": ("service.api", "service.payments", "service.store", "flask"),
}


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_point_down(layer):
    offending = [
        f"{path.relative_to(SERVICE.parent)} imports {name}"
        for path in sorted((SERVICE / layer).rglob("*.py"))
        for name in sorted(imported_modules(path))
        if any(name == banned or name.startswith(banned + ".") for banned in FORBIDDEN[layer])
    ]
    assert offending == []
