"""The production packaging files: Dockerfile, docker-compose.yml, .env.example, gunicorn.conf.py.

No Docker engine is needed. `docker-compose config` (Debian's docker-compose, installed by
.ci/install-system-deps.sh) validates the compose file when it is on PATH; the structural checks
parse the files themselves, and gunicorn.conf.py is exercised by a real gunicorn process.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import os
import re
import runpy
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

# prometheus-client picks its value class (in-process or multi-process files) once, when first
# imported, from PROMETHEUS_MULTIPROC_DIR. Some tests here set that variable while the gunicorn
# config's hooks import the library; importing it now, with the variable unset, keeps the rest
# of the session's apps in ordinary in-process mode whatever order the tests run in.
import prometheus_client  # noqa: F401
import pytest
import yaml

from service import config as service_config
from service.devservers import free_port
from service.store.fingerprints import parse_key_setting

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
GUNICORN_CONF = ROOT / "gunicorn.conf.py"
README = ROOT / "README.md"

APP_SERVICES = ("app", "worker", "migrate")
RUNTIME_CODE = ("service/", "sql/", "migrate/", "wsgi.py", "gunicorn.conf.py")


# --- helpers ---------------------------------------------------------------------------------
def architecture_variables() -> dict[str, bool]:
    """Variable name -> required?, from the configuration table of README.md."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    variables: dict[str, bool] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not line.lstrip().startswith("|"):
            continue
        for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[0]):
            variables[name] = cells[1] == "required"
    return variables


def required_variables() -> set[str]:
    """What service/config.py refuses to start without, plus what README.md marks required."""
    names = getattr(service_config, "REQUIRED_VARIABLES", None)
    if names is None:
        # config.py exposes no list: ask it, with an empty environment, what is missing.
        with pytest.raises(service_config.ConfigError) as refused:
            service_config.Config.from_env({})
        missing = refused.value.problems[0]
        assert missing.startswith("missing "), refused.value.problems
        names = [name.strip() for name in missing.removeprefix("missing ").split(",")]
    documented = {name for name, required in architecture_variables().items() if required}
    return set(names) | documented


def env_example_entries() -> tuple[dict[str, str], set[str]]:
    """(variables set in .env.example, variables only mentioned in commented-out `# NAME=` lines)."""
    assigned: dict[str, str] = {}
    commented: set[str] = set()
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if match := re.match(r"^([A-Z][A-Z0-9_]*)=(.*)$", line):
            assigned[match.group(1)] = match.group(2)
        elif match := re.match(r"^#\s?([A-Z][A-Z0-9_]*)=", line):
            commented.add(match.group(1))
    return assigned, commented


def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


def environment_names(service: dict) -> set[str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        return {item.split("=", 1)[0] for item in environment}
    return set(environment)


def env_files(service: dict) -> list[str]:
    value = service.get("env_file") or []
    return [value] if isinstance(value, str) else list(value)


def dockerfile_stages() -> list[list[str]]:
    """Instructions (continuation lines joined, comments dropped) grouped by build stage."""
    lines: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    stages: list[list[str]] = []
    for line in lines:
        if line.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def dockerfile_healthcheck() -> list[str]:
    """The runtime stage's HEALTHCHECK command, exec form."""
    healthcheck = instructions(dockerfile_stages()[-1], "HEALTHCHECK")[-1]
    return json.loads(healthcheck[healthcheck.index("CMD") + 3 :].strip())


def instructions(stage: list[str], keyword: str) -> list[str]:
    return [line[len(keyword) + 1 :].strip() for line in stage if line.upper().startswith(keyword + " ")]


def dockerignored(path: str) -> bool:
    """Whether .dockerignore keeps `path` out of the build context (top-level patterns, last match wins)."""
    excluded = False
    for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        if fnmatch.fnmatch(path, pattern.lstrip("!").rstrip("/")):
            excluded = not negated
    return excluded


def load_gunicorn_conf(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict:
    for name in list(os.environ):
        if name.startswith("GUNICORN_") or name in ("PORT", "PROMETHEUS_MULTIPROC_DIR", "LOG_LEVEL"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(GUNICORN_CONF))


# --- docker-compose.yml, validated by docker-compose itself ----------------------------------
DOCKER_COMPOSE = shutil.which("docker-compose")
needs_docker_compose = pytest.mark.skipif(
    DOCKER_COMPOSE is None,
    reason="docker-compose is not installed (.ci/install-system-deps.sh installs Debian's package)",
)


@pytest.fixture
def compose_project(tmp_path: Path) -> Path:
    """A copy of the compose file with a .env made from .env.example, as an operator starts."""
    shutil.copy(COMPOSE_FILE, tmp_path / "docker-compose.yml")
    shutil.copy(ENV_EXAMPLE, tmp_path / ".env")
    return tmp_path


def run_compose(project: Path, *args: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("COMPOSE_", "DOCKER_"))}
    return subprocess.run(
        [DOCKER_COMPOSE, "--project-directory", str(project), "-f", str(project / "docker-compose.yml"),
         *args],
        cwd=project, env=env, capture_output=True, text=True, timeout=60,
    )


@needs_docker_compose
def test_docker_compose_accepts_the_compose_file_with_the_example_env(compose_project: Path) -> None:
    result = run_compose(compose_project, "--profile", "tools", "config", "-q")
    assert result.returncode == 0, result.stderr
    services = run_compose(compose_project, "--profile", "tools", "config", "--services")
    assert set(services.stdout.split()) == {
        "redis", "postgres", "migrate", "app", "worker", "redis-commander", "pgadmin",
    }, services.stderr


@needs_docker_compose
def test_docker_compose_gives_app_and_worker_urls_of_the_compose_services(compose_project: Path) -> None:
    result = run_compose(compose_project, "config")
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)["services"]
    for name in ("app", "worker", "migrate"):
        environment = resolved[name]["environment"]
        assert environment["DATABASE_URL"] == "postgresql://blinkpos:change-me-postgres@postgres:5432/blinkpos"
        assert environment["REDIS_URL"] == "redis://redis:6379/0"
        assert environment["REDIS_PASSWORD"] == "change-me-redis"


@needs_docker_compose
@pytest.mark.parametrize("secret", ["POSTGRES_PASSWORD", "REDIS_PASSWORD"])
def test_docker_compose_refuses_a_stack_without_its_passwords(compose_project: Path, secret: str) -> None:
    env_file = compose_project / ".env"
    kept = [line for line in env_file.read_text().splitlines() if not line.startswith(secret + "=")]
    env_file.write_text("\n".join(kept) + "\n")
    result = run_compose(compose_project, "config", "-q")
    assert result.returncode != 0
    assert f"set {secret} in .env" in result.stderr


# --- docker-compose.yml, structure -----------------------------------------------------------
def test_compose_defines_the_stack_and_keeps_admin_tools_behind_a_profile() -> None:
    services = compose()["services"]
    assert set(services) == {"redis", "postgres", "migrate", "app", "worker", "redis-commander", "pgadmin"}
    for tool in ("redis-commander", "pgadmin"):
        assert services[tool].get("profiles") == ["tools"]
    for core in ("redis", "postgres", "migrate", "app", "worker"):
        assert "profiles" not in services[core], core


def test_every_required_setting_reaches_app_worker_and_migrate() -> None:
    required = required_variables()
    assert {"DATABASE_URL", "REDIS_URL", "BLINKPOS_API_KEY", "API_KEY_ENCRYPTION_KEY"} <= required
    assigned, _ = env_example_entries()
    services = compose()["services"]
    # migrate runs `db upgrade` and `python -m migrate`: the store's settings are all it needs.
    needs = {"app": required, "worker": required, "migrate": set(service_config.NEEDS_STORE)}
    for name in APP_SERVICES:
        service = services[name]
        from_env_file = set(assigned) if ".env" in env_files(service) else set()
        provided = environment_names(service) | from_env_file
        assert needs[name] <= provided, f"{name} lacks {sorted(needs[name] - provided)}"
        # Computed from the compose services, so they win over any value in .env.
        assert {"DATABASE_URL", "REDIS_URL"} <= environment_names(service)


def test_every_service_has_a_restart_policy() -> None:
    for name, service in compose()["services"].items():
        assert service.get("restart") in {"no", "always", "on-failure", "unless-stopped"}, name
    services = compose()["services"]
    assert services["migrate"]["restart"] == "no"  # a one-shot job must not loop
    for long_running in ("app", "worker", "redis", "postgres"):
        assert services[long_running]["restart"] == "unless-stopped"


def test_app_redis_and_postgres_have_healthchecks() -> None:
    services = compose()["services"]
    assert "livez" in " ".join(services["app"]["healthcheck"]["test"])
    assert "PONG" in " ".join(services["redis"]["healthcheck"]["test"])
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    for name in ("app", "redis", "postgres"):
        assert not services[name]["healthcheck"].get("disable"), name
    # The worker serves no HTTP: the image's /livez probe would mark it unhealthy forever.
    assert services["worker"]["healthcheck"] == {"disable": True}


def test_app_and_worker_start_only_after_a_successful_migration_and_healthy_stores() -> None:
    services = compose()["services"]
    assert services["migrate"]["command"] == ["python", "-m", "service", "db", "upgrade"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["worker"]["command"] == ["python", "-m", "service", "worker"]
    assert "command" not in services["app"], "the app runs the image's gunicorn CMD"
    for name in ("app", "worker"):
        depends_on = services[name]["depends_on"]
        assert depends_on["migrate"]["condition"] == "service_completed_successfully"
        assert depends_on["redis"]["condition"] == "service_healthy"
        assert depends_on["postgres"]["condition"] == "service_healthy"


def test_app_publishes_a_port_range_so_it_can_be_scaled() -> None:
    app = compose()["services"]["app"]
    assert "container_name" not in app, "a fixed container name blocks --scale"
    for mapping in app.get("ports", []):
        host_part = str(mapping).rsplit(":", 1)[0]
        defaulted = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", host_part)
        assert re.search(r"\d+-\d+$", defaulted), f"{mapping} publishes one fixed host port"


def test_all_app_roles_run_the_same_image_with_only_their_settings() -> None:
    services = compose()["services"]
    images = {services[name]["image"] for name in APP_SERVICES}
    assert len(images) == 1
    for name in APP_SERVICES:
        assert services[name]["build"]["context"] == "."
        # Not the whole .env: that would hand the compose-only passwords to every role.
        assert env_files(services[name]) == []
        assert "PGADMIN_DEFAULT_PASSWORD" not in environment_names(services[name])


def test_redis_requires_a_password_and_persists_with_append_only_file() -> None:
    redis = compose()["services"]["redis"]
    command = redis["command"]
    assert command[command.index("--requirepass") + 1] == "${REDIS_PASSWORD:?set REDIS_PASSWORD in .env}"
    assert command[command.index("--appendonly") + 1] == "yes"
    assert redis["image"] == "redis:7-alpine"


def test_stateful_services_keep_their_data_in_named_volumes() -> None:
    document = compose()
    expected = {"redis": "/data", "postgres": "/var/lib/postgresql/data", "pgadmin": "/var/lib/pgadmin"}
    for name, path in expected.items():
        volume, mounted_at = document["services"][name]["volumes"][0].split(":")[:2]
        assert mounted_at == path
        assert volume in document["volumes"], f"{name} should use a named volume, not a bind mount"
    assert document["services"]["postgres"]["image"] == "postgres:15-alpine"


def test_app_is_given_longer_to_stop_than_gunicorn_takes_to_drain(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_gunicorn_conf(monkeypatch)
    grace = compose()["services"]["app"]["stop_grace_period"]
    assert grace.endswith("s")
    assert int(grace[:-1]) > settings["graceful_timeout"]


# --- Dockerfile ------------------------------------------------------------------------------
def test_dockerfile_is_multi_stage_and_the_runtime_has_no_compilers() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2
    builder, runtime = stages[0], stages[-1]
    builder_base = instructions(builder, "FROM")[0].split()[0]
    runtime_base = instructions(runtime, "FROM")[0].split()[0]
    assert builder_base == runtime_base, "both stages start from the same slim Python"
    arg_default = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE.read_text(), re.MULTILINE)
    assert arg_default and re.fullmatch(r"python:3\.11-slim(-\w+)?", arg_default.group(1))
    runtime_text = "\n".join(runtime)
    for compiler in ("build-essential", "gcc", "libpq-dev", "apt-get install"):
        assert compiler not in runtime_text
    assert any("--from=builder /opt/venv" in copy for copy in instructions(runtime, "COPY"))


def test_dockerfile_installs_runtime_requirements_only() -> None:
    builder = dockerfile_stages()[0]
    copied = " ".join(instructions(builder, "COPY"))
    assert "requirements.txt" in copied
    every_instruction = "\n".join(line for stage in dockerfile_stages() for line in stage)
    assert "requirements-dev" not in every_instruction
    assert any("pip install -r" in run for run in instructions(builder, "RUN"))


def test_dockerfile_runs_gunicorn_as_a_non_root_user_with_a_livez_healthcheck() -> None:
    runtime = dockerfile_stages()[-1]
    users = instructions(runtime, "USER")
    assert users and users[-1] not in {"root", "0", "0:0"}
    assert json.loads(instructions(runtime, "CMD")[-1]) == ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
    probe = dockerfile_healthcheck()
    assert probe[:2] == ["python", "-c"] and "/livez" in probe[2] and "timeout=" in probe[2]
    assert instructions(runtime, "EXPOSE") == ["8080"]
    env = " ".join(instructions(runtime, "ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env and "PYTHONUNBUFFERED=1" in env
    labels = " ".join(instructions(runtime, "LABEL"))
    for label in ("title", "description", "version", "revision"):
        assert f"org.opencontainers.image.{label}" in labels


def test_dockerfile_copies_the_runtime_code_and_dockerignore_keeps_it() -> None:
    runtime = dockerfile_stages()[-1]
    sources = [
        part
        for copy in instructions(runtime, "COPY")
        if not copy.startswith("--from")
        for part in shlex.split(copy)[:-1]
    ]
    assert sorted(sources) == sorted(RUNTIME_CODE)
    for source in sources:
        assert (ROOT / source).exists(), f"the Dockerfile copies {source}, which does not exist"
        assert not dockerignored(source.rstrip("/")), f".dockerignore excludes {source}"
    unwanted_in_context = (
        ".git", ".venv", ".venv-bench", ".dev", ".env", "tests", ".pytest_cache", "bench/results",
    )
    for unwanted in unwanted_in_context:
        assert dockerignored(unwanted), unwanted
    assert not dockerignored(".env.example")


# --- .env.example ----------------------------------------------------------------------------
def test_env_example_lists_every_configuration_variable() -> None:
    assigned, commented = env_example_entries()
    listed = set(assigned) | commented
    documented = set(architecture_variables())
    assert len(documented) >= 25, "the README.md table was not parsed"
    assert documented <= listed, sorted(documented - listed)
    assert set(service_config.VARIABLES) <= listed, sorted(set(service_config.VARIABLES) - listed)
    gunicorn_and_compose = {
        "PORT", "GUNICORN_WORKERS", "GUNICORN_THREADS", "POSTGRES_PASSWORD", "REDIS_PASSWORD",
    }
    assert gunicorn_and_compose <= listed
    assert required_variables() <= set(assigned), "required variables must not be commented out"


def test_env_example_explains_how_to_generate_the_encryption_key() -> None:
    text = ENV_EXAMPLE.read_text()
    command = 'python -c "import base64,os;print(base64.urlsafe_b64encode(os.urandom(32)).decode())"'
    assert command in text
    generated = subprocess.run(
        [sys.executable, "-c", command.split('"')[1]], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert parse_key_setting(generated).keys() == {1}


def test_env_example_is_a_valid_configuration_once_the_key_is_generated() -> None:
    assigned, _ = env_example_entries()
    settings = dict(assigned, API_KEY_ENCRYPTION_KEY=base64.urlsafe_b64encode(os.urandom(32)).decode())
    config = service_config.Config.from_env(settings)
    assert config.tip_ttl_seconds == 86400 and config.pg_pool_max_size == 10


def test_env_example_placeholder_key_stops_the_service_from_starting() -> None:
    assigned, _ = env_example_entries()
    with pytest.raises(service_config.ConfigError) as refused:
        service_config.Config.from_env(assigned)
    assert "API_KEY_ENCRYPTION_KEY" in str(refused.value)
    assert assigned["API_KEY_ENCRYPTION_KEY"] not in str(refused.value)


# --- gunicorn.conf.py ------------------------------------------------------------------------
def test_gunicorn_conf_loads_with_post_fork_app_loading_and_threaded_workers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from gunicorn.config import Config as GunicornConfig

    settings = load_gunicorn_conf(monkeypatch)
    assert settings["preload_app"] is False
    assert settings["worker_class"] == "gthread"
    assert settings["threads"] == 32
    assert 1 <= settings["workers"] <= 8
    assert settings["bind"] == "0.0.0.0:8080"
    assert settings["max_requests"] > 0 and settings["max_requests_jitter"] > 0
    # Every setting gunicorn knows must pass its own validation (a typo'd value fails here).
    gunicorn_config = GunicornConfig()
    known = [name for name in settings if name in gunicorn_config.settings]
    assert {"bind", "workers", "threads", "timeout", "logconfig_dict", "child_exit"} <= set(known)
    for name in known:
        gunicorn_config.set(name, settings[name])
    assert gunicorn_config.worker_class_str == "gthread"


def test_gunicorn_conf_reads_its_knobs_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    settings = load_gunicorn_conf(monkeypatch, PORT="9000", GUNICORN_WORKERS="3", GUNICORN_THREADS="4")
    assert (settings["bind"], settings["workers"], settings["threads"]) == ("0.0.0.0:9000", 3, 4)
    settings = load_gunicorn_conf(monkeypatch, PORT="9000", GUNICORN_BIND="127.0.0.1:7000")
    assert settings["bind"] == "127.0.0.1:7000"
    for name, value in (("GUNICORN_WORKERS", "many"), ("GUNICORN_THREADS", "0")):
        with pytest.raises(SystemExit) as refused:
            load_gunicorn_conf(monkeypatch, **{name: value})
        assert refused.value.code == 2
        stderr = capsys.readouterr().err
        assert len(stderr.strip().splitlines()) == 1 and name in stderr and value not in stderr


def test_gunicorn_conf_is_short_and_leaves_the_access_log_to_the_app(monkeypatch: pytest.MonkeyPatch) -> None:
    assert len(GUNICORN_CONF.read_text(encoding="utf-8").splitlines()) <= 60
    settings = load_gunicorn_conf(monkeypatch)
    access = settings["logconfig_dict"]["loggers"]["gunicorn.access"]
    assert access["handlers"] == [] and access["propagate"] is False and access["level"] == "CRITICAL"
    formatter = settings["logconfig_dict"]["formatters"]["service"]
    from service.logging import make_formatter

    assert formatter["()"] is make_formatter, "gunicorn logs with the app's formatter"


def test_the_log_formatter_module_imports_no_flask() -> None:
    probe = "import sys, service.logging, service.config; assert 'flask' not in sys.modules, 'flask'"
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_gunicorn_hooks_manage_the_prometheus_multiprocess_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    metrics_dir = tmp_path / "prometheus"
    settings = load_gunicorn_conf(monkeypatch, PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    settings["on_starting"](None)
    assert metrics_dir.is_dir()
    (metrics_dir / "counter_111.db").write_bytes(b"stale from the previous master")
    settings["on_starting"](None)
    assert not list(metrics_dir.iterdir()), "stale samples would be added to the new run's"

    (metrics_dir / "gauge_livesum_4242.db").write_bytes(b"")
    (metrics_dir / "counter_4242.db").write_bytes(b"")
    settings["child_exit"](None, SimpleNamespace(pid=4242))
    assert sorted(path.name for path in metrics_dir.iterdir()) == ["counter_4242.db"]


def test_gunicorn_serves_with_the_conf_and_logs_json_lines_without_secrets(tmp_path: Path) -> None:
    (tmp_path / "tiny_wsgi.py").write_text(textwrap.dedent("""
        def app(environ, start_response):
            start_response("200 OK", [("Content-Type", "text/plain"), ("X-Request-ID", "req-7")])
            return [b"ok"]
    """))
    port = free_port()
    env = dict(
        os.environ, GUNICORN_BIND=f"127.0.0.1:{port}", GUNICORN_WORKERS="2", GUNICORN_THREADS="2",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prometheus"), LOG_LEVEL="INFO",
        GUNICORN_GRACEFUL_TIMEOUT="5",  # a SIGTERM while a worker boots waits this long
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF), "--pythonpath", str(tmp_path),
         "tiny_wsgi:app"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/livez?apiKey=query-secret", headers={"X-API-KEY": "header-secret"}
        )
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(request, timeout=2) as response:
                    assert response.read() == b"ok"
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.1)
        # The image's and compose's health probes, run as Docker would run them.
        for probe in (dockerfile_healthcheck(), compose()["services"]["app"]["healthcheck"]["test"][1:]):
            subprocess.run(probe, env=dict(env, PORT=str(port)), check=True, timeout=10)
    finally:
        server.send_signal(signal.SIGTERM)
        stdout, stderr = server.communicate(timeout=30)
    assert server.returncode == 0, stderr
    entries = [json.loads(line) for line in stdout.splitlines()]  # every stdout line is JSON
    assert "secret" not in stdout + stderr
    # gunicorn's access log is off: the app writes the one line per request (tests/test_gunicorn_serving.py).
    assert not any("livez" in json.dumps(entry) for entry in entries)
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", entry["event"]) for entry in entries)
    assert any(entry.get("message", "").startswith("Listening at") for entry in entries)
    assert (tmp_path / "prometheus").is_dir()
