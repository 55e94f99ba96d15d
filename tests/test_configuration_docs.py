"""README's configuration table, .env.example and service/config.py agree, and docker-compose.yml
publishes no overlapping host ports and hands each container only the settings it uses."""

from __future__ import annotations

import dataclasses
import re
from decimal import Decimal
from pathlib import Path

import yaml

from service import config as service_config

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
ENV_EXAMPLE = ROOT / ".env.example"
COMPOSE_FILE = ROOT / "docker-compose.yml"
# Read by the Blink client through the requests library, not by service/config.py.
LIBRARY_VARIABLES = {"REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"}
# Read by docker compose only (docs/deploy.md documents them).
COMPOSE_ONLY = {
    "BLINKPOS_VERSION", "POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "POSTGRES_MAX_CONNECTIONS",
    "APP_BIND_ADDRESS", "APP_PORT_RANGE", "PGADMIN_DEFAULT_EMAIL", "PGADMIN_DEFAULT_PASSWORD",
}
# Defaults README states in words rather than as the value config.py holds.
DESCRIBED_DEFAULTS = {"GUNICORN_BIND", "GUNICORN_WORKERS"}


def readme_table() -> dict[str, str]:
    """Variable -> its default cell; `A` / `B` rows with `x` / `y` defaults are split."""
    section = README.read_text(encoding="utf-8").split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    table: dict[str, str] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) < 3:
            continue
        names = re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[0])
        if not names:  # the header and its rule
            continue
        defaults = [part.strip() for part in cells[1].split(" / ")] if len(names) > 1 else [cells[1]]
        assert len(defaults) == len(names), line
        table.update(zip(names, defaults, strict=True))
    return table


def env_example() -> tuple[dict[str, str], set[str], str]:
    """(assigned variables, commented-out `# NAME=` variables, the whole text)."""
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    assigned = dict(re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", text, re.MULTILINE))
    commented = set(re.findall(r"^#\s?([A-Z][A-Z0-9_]*)=", text, re.MULTILINE))
    return assigned, commented, text


def config_defaults() -> dict[str, object]:
    fields = [*dataclasses.fields(service_config.Config), *dataclasses.fields(service_config.ServerConfig)]
    return {item.name.upper(): item.default for item in fields}


def as_documented(value: object) -> str:
    if value in (None, "", ()):
        return "unset"
    if isinstance(value, tuple):
        value = ",".join(value)
    if isinstance(value, float | Decimal) and value == int(value):
        value = int(value)
    return f"`{value}`"


def test_readme_documents_every_variable_with_config_py_s_default() -> None:
    table = readme_table()
    defaults = config_defaults()
    assert set(defaults) | LIBRARY_VARIABLES == set(table), sorted(set(defaults) ^ set(table))
    for name, default in defaults.items():
        cell = table[name]
        if name in service_config.REQUIRED_VARIABLES:
            assert cell == "required", name
        elif name in DESCRIBED_DEFAULTS:
            continue
        elif as_documented(default) == "unset":
            assert cell in ("unset", "empty"), (name, cell)
        else:
            assert cell == as_documented(default), (name, cell, default)


def test_env_example_lists_every_variable_and_names_the_same_defaults() -> None:
    assigned, commented, text = env_example()
    listed = set(assigned) | commented
    table = readme_table()
    assert set(table) <= listed, sorted(set(table) - listed)
    assert listed <= set(table) | COMPOSE_ONLY, sorted(listed - set(table) - COMPOSE_ONLY)
    # "Default N" (or "Defaults N / M") in a block's comments is config.py's default of the
    # block's variables, in order.
    defaults = config_defaults()
    for block in env_blocks(text):
        match = re.search(r"Defaults? ([0-9]+(?:\.[0-9]+)?)(?: / ([0-9]+(?:\.[0-9]+)?))?", block)
        if match is None:
            continue
        names = re.findall(r"^#?\s?([A-Z][A-Z0-9_]+)=", block, re.MULTILINE)
        for name, documented in zip(names, [value for value in match.groups() if value], strict=False):
            if isinstance(defaults.get(name), int | float | Decimal) and name not in DESCRIBED_DEFAULTS:
                assert float(documented) == float(defaults[name]), (name, documented)


def env_blocks(text: str) -> list[str]:
    """Comment lines with the variable lines that follow them."""
    blocks: list[str] = []
    current: list[str] = []
    after_variable = False
    for line in text.splitlines():
        is_variable = bool(re.match(r"^#?\s?[A-Z][A-Z0-9_]*=", line))
        if not line.strip() or (not is_variable and after_variable):
            blocks.append("\n".join(current))
            current = []
        if line.strip():
            current.append(line)
        after_variable = is_variable
    return [*blocks, "\n".join(current)]


def test_log_level_choices_are_the_same_everywhere() -> None:
    _, _, text = env_example()
    readme_cell = readme_table()
    readme = README.read_text(encoding="utf-8")
    for level in service_config.LOG_LEVELS:
        assert level in text.split("LOG_LEVEL=")[0].rsplit("\n\n", 1)[-1], level
        assert f"`{level}`" in readme
    for log_format in service_config.LOG_FORMATS:
        assert log_format in text and f"`{log_format}`" in readme
    assert readme_cell["LOG_FORMAT"] == "`auto`"


def test_trusted_proxy_count_difference_is_explained() -> None:
    assigned, _, text = env_example()
    readme_default = readme_table()["TRUSTED_PROXY_COUNT"]
    if assigned.get("TRUSTED_PROXY_COUNT") != readme_default.strip("`"):
        row = next(line for line in README.read_text().splitlines() if "`TRUSTED_PROXY_COUNT`" in line)
        assert ".env.example" in row and "load balancer" in row
        block = text.split("TRUSTED_PROXY_COUNT=")[0].rsplit("\n\n", 1)[-1]
        assert "default, 0" in block.lower() or "default 0" in block.lower()


# --- docker-compose.yml -------------------------------------------------------------------------
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


def interpolate(text: str) -> str:
    """${NAME:-default} and ${NAME} as compose fills them from .env.example."""
    assigned, _, _ = env_example()

    def value(match: re.Match[str]) -> str:
        return assigned.get(match.group(1)) or match.group(2) or ""

    return re.sub(r"\$\{([A-Z_]+)(?::?[-?]([^}]*))?\}", value, text)


def published_host_ports() -> dict[str, set[int]]:
    """service -> every host port it publishes (a range counts each port)."""
    published: dict[str, set[int]] = {}
    for name, service in compose()["services"].items():
        for mapping in service.get("ports", []):
            parts = interpolate(str(mapping)).split(":")
            host = parts[-2] if len(parts) >= 2 else parts[-1]
            low, _, high = host.partition("-")
            published.setdefault(name, set()).update(range(int(low), int(high or low) + 1))
    return published


def test_no_two_services_publish_overlapping_host_ports() -> None:
    published = published_host_ports()
    assert {"app", "redis-commander", "pgadmin"} <= set(published)
    assert published["app"] == set(range(8080, 8090))
    names = sorted(published)
    for index, first in enumerate(names):
        for second in names[index + 1 :]:
            assert not published[first] & published[second], (first, second)


def test_docs_name_no_app_port_for_an_admin_tool() -> None:
    deploy = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    admin = next(iter(published_host_ports()["redis-commander"]))
    assert f"127.0.0.1:{admin}" in deploy
    for line in deploy.splitlines():
        if "redis-commander" in line and "127.0.0.1:" in line:
            ports = {int(port) for port in re.findall(r"127\.0\.0\.1:(\d+)", line)}
            assert not ports & published_host_ports()["app"], line


def test_each_container_gets_only_the_settings_it_uses() -> None:
    services = compose()["services"]
    secrets_of_others = {"POSTGRES_PASSWORD", "PGADMIN_DEFAULT_PASSWORD", "PGADMIN_DEFAULT_EMAIL"}
    for name in ("app", "worker", "migrate"):
        assert "env_file" not in services[name], f"{name} would receive every variable of .env"
        environment = set(services[name]["environment"])
        assert not environment & secrets_of_others, name
        assert set(service_config.NEEDS_STORE) <= environment, name
    app, worker = set(services["app"]["environment"]), set(services["worker"]["environment"])
    assert set(service_config.VARIABLES) <= app and set(service_config.VARIABLES) <= worker
    assert {"PORT", "GUNICORN_WORKERS", "GUNICORN_THREADS"} <= app
    assert not any(name.startswith("GUNICORN_") for name in worker), "the worker runs no gunicorn"
    assert not {"BLINKPOS_API_KEY", "BLINKPOS_BTC_WALLET_ID"} & set(services["migrate"]["environment"])
    for tool in ("redis-commander", "pgadmin"):
        assert "env_file" not in services[tool]


def test_the_documented_tip_store_path_is_mounted() -> None:
    assigned, commented, text = env_example()
    path = re.search(r"^#?\s?TIP_STORE_FILE=(\S+)$", text, re.MULTILINE).group(1)
    directory = str(Path(path).parent)
    services = compose()["services"]
    for name in ("app", "worker", "migrate"):
        mounts = [str(volume).split(":")[1] for volume in services[name].get("volumes", [])]
        assert directory in mounts, name
