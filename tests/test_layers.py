"""The layers point down: api -> payments -> store -> domain, payments -> lnurl -> blink -> domain,
api -> reports -> store.

payments is handed the store and reaches it through its ports (service/payments/ports.py), so
it imports no store module; the port test checks the store still matches them.
"""

import ast
import inspect
from pathlib import Path

import pytest

SERVICE = Path(__file__).resolve().parents[1] / "service"

# The only service packages each layer may import (directly or by a deferred import), and
# Flask nowhere below the API.
ALLOWED = {
    "domain": ("service.domain",),
    "store": ("service.store", "service.domain"),
    "payments": ("service.payments", "service.lnurl", "service.blink", "service.domain"),
    "blink": ("service.blink", "service.domain"),
    "lnurl": ("service.lnurl", "service.blink", "service.domain"),
    "reports": ("service.reports", "service.store", "service.domain"),
}


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _within(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == package or name.startswith(package + ".") for package in packages)


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layer_imports_point_down(layer):
    offending = [
        f"{path.relative_to(SERVICE.parent)} imports {name}"
        for path in sorted((SERVICE / layer).rglob("*.py"))
        for name in sorted(imported_modules(path))
        if _within(name, ("service", "flask")) and not _within(name, ALLOWED[layer])
    ]
    assert offending == []


def port_cases():
    from service.payments.ports import ForwardingLocks, ForwardingStore, SplitSaver, WalletLookups
    from service.store.locks import PaymentLocks
    from service.store.lookups import LookupCache
    from service.store.splits import SplitStore
    from service.worker import WorkerStore

    return [
        (ForwardingStore, SplitStore),
        (SplitSaver, SplitStore),
        (WorkerStore, SplitStore),
        (ForwardingLocks, PaymentLocks),
        (WalletLookups, LookupCache),
    ]


@pytest.mark.parametrize(("port", "implementation"), port_cases(), ids=lambda cls: cls.__name__)
def test_the_store_satisfies_each_port(port, implementation):
    methods = [name for name, member in vars(port).items() if inspect.isfunction(member) and name[0] != "_"]
    assert methods
    for name in methods:
        expected = list(inspect.signature(getattr(port, name)).parameters)
        assert list(inspect.signature(getattr(implementation, name)).parameters) == expected, name
