"""A real Modoboa (Django REST API) for tests: installed once, deployed once, served throwaway on loopback.

The slow parts are cached between runs under ``cache_dir("modoboa-<version>")``, keyed by the
Modoboa version, the Python version and the pinned dependency set:

- a virtualenv of its own with ``modoboa[postgresql]`` (the gateway never imports Modoboa);
- the project ``modoboa-admin.py deploy`` generates, plus a settings module for tests;
- a plain SQL dump of the database right after deploy (188 migrations and the initial data,
  superuser ``admin`` and its API token), so a test session restores it in about half a
  second instead of deploying again for about fifteen.

Each test session restores the dump into a database of its own, serves it with
``manage.py runserver`` on a free loopback port and drops the database at the end. Two
throttle modes share that database: Modoboa's defaults (about 5 writes/s per endpoint and
300 requests/min per user) and rates raised far out of reach, for tests that need throughput.
They run as two processes, each with a Redis database of its own for its throttle counters.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from tests.realservers.support import apt_install, cache_dir, free_port, stop_process, unavailable, wait_for_port

MODOBOA_VERSION = "2.12.0"
WHAT = f"Modoboa {MODOBOA_VERSION}"
CONSTRAINTS = Path(__file__).with_name("modoboa-constraints.txt")
# Part of the cache key: change it whenever the way the cached install is built changes.
CACHE_LAYOUT = "1"

POSTGRES_DSN = os.environ.get("SCIM_GATEWAY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("SCIM_GATEWAY_TEST_REDIS", "redis://127.0.0.1:6379")
# Redis databases of these tests' own (flushed when a server starts): one per throttle mode,
# because each server counts requests there and the counts must not add up across modes.
REDIS_DB_HIGH_THROTTLE = 12
REDIS_DB_DEFAULT_THROTTLE = 13

ADMIN_USERNAME = "admin"
PIP_TIMEOUT_S = 900
DEPLOY_TIMEOUT_S = 600
START_TIMEOUT_S = 60.0
REQUEST_TIMEOUT_S = 30.0
URL_SAFE = "/:?&=%@+,;!$'()*~#"

# rrdtool-bindings (a Modoboa dependency) compiles against rrd.h; pg_dump/psql handle the cached database.
APT_PACKAGES = ["librrd-dev", "pkg-config", "gcc", "postgresql-client"]

TEST_SETTINGS = '''\
"""Settings for a throwaway test instance: loopback only, console logging, database and Redis from the environment."""

import os

from instance.settings import *  # noqa: F403

DATABASES["default"].update(
    NAME=os.environ["MODOBOA_TEST_DB_NAME"],
    HOST=os.environ["MODOBOA_TEST_DB_HOST"],
    PORT=os.environ["MODOBOA_TEST_DB_PORT"],
    USER=os.environ["MODOBOA_TEST_DB_USER"],
    PASSWORD=os.environ.get("MODOBOA_TEST_DB_PASSWORD", ""),
)
REDIS_URL = os.environ["MODOBOA_TEST_REDIS_URL"]
CACHES["default"]["LOCATION"] = REDIS_URL
for queue in RQ_QUEUES.values():
    queue["URL"] = REDIS_URL

ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
DISABLE_DASHBOARD_EXTERNAL_QUERIES = True

# The deployed logging goes to syslog (/dev/log) and to e-mail: send it to stderr instead,
# keeping the SQL handler that feeds Modoboa's own audit log.
for _name in ("mail-admins", "syslog-auth", "syslog-mail", "syslog"):
    LOGGING["handlers"][_name] = {"class": "logging.StreamHandler", "formatter": "syslog"}

if os.environ.get("MODOBOA_TEST_THROTTLE") == "high":
    REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"].update(
        {"user": "1000000/minute", "ddos": "100000/second", "ddos_lesser": "1000000/minute"}
    )
'''


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    user: str
    password: str

    @classmethod
    def from_dsn(cls, dsn: str) -> Postgres:
        parts = urlsplit(dsn)
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 5432,
            user=unquote(parts.username or "postgres"),
            password=unquote(parts.password or ""),
        )

    def url(self, database: str) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def client_env(self) -> dict[str, str]:
        env = {**os.environ, "PGHOST": self.host, "PGPORT": str(self.port), "PGUSER": self.user}
        if self.password:
            env["PGPASSWORD"] = self.password
        return env

    def run(self, *command: str, timeout: float = 120) -> str:
        result = subprocess.run(command, env=self.client_env(), capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command[:3])}… failed: {result.stderr.strip()[-800:]}")
        return result.stdout

    def execute(self, sql: str) -> None:
        self.run("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "postgres", "-c", sql)

    def create_database(self, name: str) -> None:
        self.execute(f'CREATE DATABASE "{name}"')

    def drop_database(self, name: str) -> None:
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass(frozen=True)
class Redis:
    host: str
    port: int

    @classmethod
    def from_url(cls, url: str) -> Redis:
        parts = urlsplit(url)
        return cls(host=parts.hostname or "127.0.0.1", port=parts.port or 6379)

    def url(self, db: int) -> str:
        return f"redis://{self.host}:{self.port}/{db}"

    def command(self, db: int, *args: str) -> None:
        """Send one command to database ``db`` and insist on a non-error reply (no client library needed)."""

        def encode(parts: tuple[str, ...]) -> bytes:
            chunks = [f"*{len(parts)}\r\n".encode()]
            for part in parts:
                data = part.encode()
                chunks.append(b"$%d\r\n%s\r\n" % (len(data), data))
            return b"".join(chunks)

        with socket.create_connection((self.host, self.port), timeout=5) as sock:
            sock.sendall(encode(("SELECT", str(db))) + encode(args))
            replies = sock.makefile("rb")
            for _ in range(2):
                line = replies.readline()
                if not line or line.startswith(b"-"):
                    raise RuntimeError(f"Redis answered {line!r} to {args[0]}")

    def flush(self, db: int) -> None:
        self.command(db, "FLUSHDB")


@dataclass(frozen=True)
class ModoboaInstall:
    """What the cached install provides: the venv's Python, the deployed project, its database dump, the token."""

    python: Path
    project: Path
    dump: Path
    token: str


def _cache_key() -> str:
    digest = hashlib.sha256(CONSTRAINTS.read_bytes() + CACHE_LAYOUT.encode()).hexdigest()[:12]
    return f"python{sys.version_info.major}.{sys.version_info.minor}-{digest}"


def _apt_packages() -> list[str]:
    packages = list(APT_PACKAGES)
    # A Debian interpreter needs its development headers for the compiled dependency.
    if not (Path(sysconfig.get_paths()["include"]) / "Python.h").exists():
        packages.append("python3-dev")
    return packages


def _run(command: list[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None, timeout: float) -> None:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()[-1500:]
        raise RuntimeError(f"{' '.join(command[:4])}… exited with {result.returncode}:\n{output}")


def _django_env(install_python: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{install_python.parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra or {})
    return env


def _create_venv(venv: Path) -> None:
    shutil.rmtree(venv, ignore_errors=True)
    _run([sys.executable, "-m", "venv", str(venv)], timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    _run([*pip, "-c", str(CONSTRAINTS), f"modoboa[postgresql]=={MODOBOA_VERSION}"], timeout=PIP_TIMEOUT_S)


def _deploy(root: Path, python: Path, postgres: Postgres, redis: Redis) -> str:
    """Deploy a project into ``root/instance`` against a scratch database, dump that database, return the token."""
    project = root / "instance"
    shutil.rmtree(project, ignore_errors=True)
    database = f"modoboa_build_{uuid.uuid4().hex[:12]}"
    postgres.create_database(database)
    try:
        redis.flush(REDIS_DB_HIGH_THROTTLE)
        env = _django_env(python)
        deploy = [str(python.parent / "modoboa-admin.py"), "deploy", "instance", "--dont-install-extensions"]
        deploy += ["--dburl", f"default:{postgres.url(database)}", "--domain", "localhost"]
        deploy += ["--redisurl", redis.url(REDIS_DB_HIGH_THROTTLE), "--admin-username", ADMIN_USERNAME]
        _run(deploy, cwd=root, env=env, timeout=DEPLOY_TIMEOUT_S)
        _write_test_settings(project)
        # deploy exits 0 even when a migration failed: check that none is left unapplied.
        settings_env = _django_env(python, _settings_env(postgres, database, redis.url(REDIS_DB_HIGH_THROTTLE)))
        manage = [str(python), "manage.py"]
        _run([*manage, "migrate", "--check"], cwd=project, env=settings_env, timeout=120)
        _run([*manage, "drf_create_token", ADMIN_USERNAME], cwd=project, env=settings_env, timeout=120)
        token = postgres.run(
            "psql", "-X", "-At", "-d", database, "-c",
            "SELECT t.key FROM authtoken_token t JOIN core_user u ON u.id = t.user_id "
            f"WHERE u.username = '{ADMIN_USERNAME}'",
        ).strip()  # fmt: skip
        if not token:
            raise RuntimeError("drf_create_token left no token for the superuser")
        dump = root / "database.sql"
        postgres.run("pg_dump", "--no-owner", "--no-privileges", "-f", str(dump), database, timeout=300)
        return token
    finally:
        postgres.drop_database(database)
        redis.flush(REDIS_DB_HIGH_THROTTLE)


def _write_test_settings(project: Path) -> None:
    target = project / "instance" / "test_settings.py"
    if not target.exists() or target.read_text() != TEST_SETTINGS:
        target.write_text(TEST_SETTINGS)


def _settings_env(postgres: Postgres, database: str, redis_url: str, throttle: str = "default") -> dict[str, str]:
    return {
        "DJANGO_SETTINGS_MODULE": "instance.test_settings",
        "MODOBOA_TEST_DB_NAME": database,
        "MODOBOA_TEST_DB_HOST": postgres.host,
        "MODOBOA_TEST_DB_PORT": str(postgres.port),
        "MODOBOA_TEST_DB_USER": postgres.user,
        "MODOBOA_TEST_DB_PASSWORD": postgres.password,
        "MODOBOA_TEST_REDIS_URL": redis_url,
        "MODOBOA_TEST_THROTTLE": throttle,
        "PYTHONUNBUFFERED": "1",
    }


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialise the install between concurrent test sessions on one machine."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _reachable(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError:
        return False
    return True


def _prune_other_builds(current: Path) -> None:
    """Remove builds of this Modoboa version made for other Python versions or dependency pins (~300 MB each)."""
    for sibling in current.parent.iterdir():
        if sibling != current and sibling.is_dir():
            shutil.rmtree(sibling, ignore_errors=True)


def ensure_installed(postgres: Postgres, redis: Redis) -> ModoboaInstall:
    """The cached install, built first if missing (skips, or fails in CI, when that is impossible)."""
    if not _reachable(postgres.host, postgres.port):
        unavailable(WHAT, f"PostgreSQL is not reachable at {postgres.host}:{postgres.port}")
    if not _reachable(redis.host, redis.port):
        unavailable(WHAT, f"Redis is not reachable at {redis.host}:{redis.port}")
    apt_install(WHAT, _apt_packages())
    root = cache_dir(f"modoboa-{MODOBOA_VERSION}", _cache_key())
    venv, project, dump, ready = root / "venv", root / "instance", root / "database.sql", root / "ready.json"
    python = venv / "bin" / "python"
    with _locked(root / ".lock"):
        if not all(path.exists() for path in (ready, python, dump, project / "manage.py")):
            ready.unlink(missing_ok=True)
            try:
                if not ((root / "venv.ok").exists() and python.exists()):
                    _create_venv(venv)
                    (root / "venv.ok").touch()
                token = _deploy(root, python, postgres, redis)
            except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
                unavailable(WHAT, f"install or deploy failed: {exc}")
            ready.write_text(json.dumps({"version": MODOBOA_VERSION, "token": token}))
            _prune_other_builds(root)
        _write_test_settings(project)
    token = json.loads(ready.read_text())["token"]
    return ModoboaInstall(python=python, project=project, dump=dump, token=token)


@dataclass(frozen=True)
class ApiResponse:
    status: int
    headers: Message
    body: Any
    """Parsed JSON, the text of a non-JSON answer (e.g. an HTML error page), or None when empty."""
    elapsed: float


@dataclass
class ModoboaServer:
    """A running ``manage.py runserver`` of the test instance, with a synchronous API client."""

    url: str
    token: str
    log: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def request(self, method: str, path: str, json_body: Any = None) -> ApiResponse:
        """Send one API request; ``path`` is relative to ``url`` (e.g. ``/api/v2/accounts/``) or absolute."""
        # Non-ASCII in a query (e.g. ``?search=山田``) must go out percent-encoded; what is encoded already stays.
        target = quote(path if path.startswith("http") else f"{self.url}{path}", safe=URL_SAFE)
        if not target.startswith(f"{self.url}/"):
            raise ValueError(f"{target} is not on the test server")
        data = None if json_body is None else json.dumps(json_body).encode()
        request = urllib.request.Request(target, data=data, method=method.upper())
        request.add_header("Authorization", f"Token {self.token}")
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as answer:
                status, headers, raw = answer.status, answer.headers, answer.read()
        except urllib.error.HTTPError as error:
            status, headers, raw = error.code, error.headers, error.read()
        elapsed = time.perf_counter() - started
        body: Any = None
        if raw:
            text = raw.decode("utf-8", "replace")
            body = json.loads(text) if headers.get_content_type() == "application/json" else text
        return ApiResponse(status=status, headers=headers, body=body, elapsed=elapsed)

    def api(self, method: str, path: str, json: Any = None) -> tuple[int, Any]:
        answer = self.request(method, path, json)
        return answer.status, answer.body

    def expect(self, status: int, method: str, path: str, json: Any = None) -> Any:
        """The body of a request that must answer ``status`` (raises with the answer otherwise)."""
        answer = self.request(method, path, json)
        if answer.status != status:
            raise AssertionError(f"{method} {path} answered {answer.status}, not {status}: {answer.body!r:.1000}")
        return answer.body

    def create_domain(self, name: str, quota: int = 0, default_mailbox_quota: int = 0) -> int:
        body = {"name": name, "quota": quota, "default_mailbox_quota": default_mailbox_quota}
        return int(self.expect(201, "POST", "/api/v2/domains/", body)["pk"])

    def list_all(self, path: str) -> list[dict[str, Any]]:
        """Every item of a paginated v2 list (the page size has no upper bound in Modoboa)."""
        separator = "&" if "?" in path else "?"
        return list(self.expect(200, "GET", f"{path}{separator}page_size=100000")["results"])

    def reset(self) -> None:
        """Back to the freshly deployed state: no domain, alias or account but the superuser.

        Goes through the API, so Modoboa's own clean-up runs: accounts first (a deleted
        domain leaves its accounts behind, without their mailbox), then the domains, which
        take their aliases with them.
        """
        accounts = [a["pk"] for a in self.list_all("/api/v2/accounts/") if a["username"] != ADMIN_USERNAME]
        if accounts:
            self.expect(204, "POST", "/api/v2/accounts/bulk_delete/", {"ids": accounts})
        domains = [d["pk"] for d in self.list_all("/api/v2/domains/")]
        if domains:
            self.expect(204, "POST", "/api/v2/domains/bulk_delete/", {"ids": domains, "keep_folder": False})

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class ModoboaInstance:
    """One test session's database, restored from the cached dump, and the servers started on it."""

    install: ModoboaInstall
    postgres: Postgres
    redis: Redis
    database: str
    workdir: Path
    servers: list[ModoboaServer] = field(default_factory=list)

    @classmethod
    def create(cls, install: ModoboaInstall, postgres: Postgres, redis: Redis, workdir: Path) -> ModoboaInstance:
        database = f"modoboa_test_{uuid.uuid4().hex[:12]}"
        postgres.create_database(database)
        try:
            restore = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-d", database]
            postgres.run(*restore, "-f", str(install.dump))
        except RuntimeError:
            postgres.drop_database(database)
            raise
        return cls(install=install, postgres=postgres, redis=redis, database=database, workdir=workdir)

    def start_server(self, *, high_throttle: bool) -> ModoboaServer:
        """``manage.py runserver`` on a free loopback port, answering the API once this returns."""
        redis_db = REDIS_DB_HIGH_THROTTLE if high_throttle else REDIS_DB_DEFAULT_THROTTLE
        self.redis.flush(redis_db)
        port = free_port()
        mode = "high" if high_throttle else "default"
        env = _django_env(
            self.install.python,
            _settings_env(self.postgres, self.database, self.redis.url(redis_db), throttle=mode),
        )
        log = self.workdir / f"runserver-{mode}-throttle.log"
        # The system checks ran when the instance was deployed; skipping them saves about half a second per start.
        command = [str(self.install.python), "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"]
        command.append("--skip-checks")
        with log.open("wb") as output:
            process = subprocess.Popen(
                command, cwd=self.install.project, env=env, stdout=output, stderr=subprocess.STDOUT
            )
        server = ModoboaServer(url=f"http://127.0.0.1:{port}", token=self.install.token, log=log, process=process)
        self.servers.append(server)
        try:
            wait_for_port(port, START_TIMEOUT_S, process)
            server.expect(200, "GET", "/api/v2/domains/")
        except (RuntimeError, AssertionError, OSError) as exc:
            server.stop()
            raise RuntimeError(f"Modoboa's runserver did not come up: {exc}\n{server.log_tail()}") from exc
        # Startup requests count against the throttle too: hand the server over with clean counters.
        self.redis.flush(redis_db)
        return server

    def manage(self, *args: str, timeout: float = 120) -> None:
        """Run one ``manage.py`` command on this session's database (e.g. ``generate_postfix_maps``)."""
        env = _django_env(self.install.python,
                          _settings_env(self.postgres, self.database, self.redis.url(REDIS_DB_HIGH_THROTTLE)))
        _run([str(self.install.python), "manage.py", *args], cwd=self.install.project, env=env, timeout=timeout)

    def flush_default_throttle(self) -> None:
        """Forget every request counted so far by the default-throttle server (and anything it cached)."""
        self.redis.flush(REDIS_DB_DEFAULT_THROTTLE)

    def close(self) -> None:
        for server in self.servers:
            server.stop()
        self.servers.clear()
        self.postgres.drop_database(self.database)
        for db in (REDIS_DB_HIGH_THROTTLE, REDIS_DB_DEFAULT_THROTTLE):
            with contextlib.suppress(OSError, RuntimeError):
                self.redis.flush(db)
