"""Test fixtures: a real PostgreSQL for every test that touches a database.

By default the session starts an embedded server (the one users get). When
DBOPS_TEST_DATABASE_URL is set, the same tests run against that server instead. Either way
each test gets a fresh database of its own, dropped afterwards.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from dbops.postgres.embedded import EmbeddedServer

REPO = Path(__file__).resolve().parent.parent


def plugin_installed() -> bool:
    """Whether dbops's pytest plugin comes with the install (its pytest11 entry point); an
    editable install made before the plugin existed lacks it, and then -p names it."""
    from importlib.metadata import entry_points

    return any(ep.value == "dbops.testing.plugin" for ep in entry_points(group="pytest11"))


PLUGIN_ARGS = () if plugin_installed() else ("-p", "dbops.testing.plugin")
pytest_plugins = ["pytester", *PLUGIN_ARGS[1:]]


@dataclass
class Cli:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


Run = Callable[..., Cli]


@pytest.fixture(scope="session")
def admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A superuser URL of the server the tests use."""
    configured = os.environ.get("DBOPS_TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    server = EmbeddedServer(tmp_path_factory.mktemp("server") / "pg", durable=False)
    state = server.ensure_running()
    yield f"postgresql://postgres@/postgres?host={state.socket_dir}"
    server.stop()


def url_for(admin_url: str, dbname: str) -> str:
    params = psycopg.conninfo.conninfo_to_dict(admin_url)
    params["dbname"] = dbname
    host = str(params.pop("host", ""))
    user = params.pop("user", "postgres")
    password = params.pop("password", None)
    port = params.pop("port", None)
    auth = f"{user}:{password}@" if password else f"{user}@"
    if host.startswith("/"):
        return f"postgresql://{auth}/{dbname}?host={host}" + (f"&port={port}" if port else "")
    return f"postgresql://{auth}{host}{':' + str(port) if port else ''}/{dbname}"


class Databases:
    """Empty test databases, each made before a test asks for it and dropped after it, on a
    thread of its own: CREATE and DROP DATABASE wait for the disk (fsync) on a durable server,
    and that wait overlaps the tests instead of adding to each. Errors surface in the test."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="test-databases")
        self._conn: psycopg.Connection | None = None  # the thread's own
        self._dropped: list[Future[None]] = []
        self._next = self._thread.submit(self._create)

    def _admin(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.admin_url, autocommit=True)
        return self._conn

    def _create(self) -> str:
        name = f"dbops_t_{uuid.uuid4().hex[:12]}"
        self._admin().execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return name

    def _drop(self, name: str) -> None:
        conn = self._admin()
        kept = conn.execute(  # and those a restore kept (<name>__pre_restore_...)
            "SELECT datname FROM pg_database WHERE starts_with(datname, %s)", (f"{name}__",)
        ).fetchall()
        for other in [name, *(row[0] for row in kept)]:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(other)))

    def take(self) -> str:
        for done in [f for f in self._dropped if f.done()]:
            self._dropped.remove(done)
            done.result()  # a failed drop fails the next test, not silently
        name = self._next.result()
        self._next = self._thread.submit(self._create)
        return name

    def give_back(self, name: str) -> None:
        self._dropped.append(self._thread.submit(self._drop, name))

    def close(self) -> None:
        self.give_back(self._next.result())
        self._thread.shutdown(wait=True)
        if self._conn is not None:
            self._conn.close()
        for dropped in self._dropped:
            dropped.result()


@pytest.fixture(scope="session")
def databases(admin_url: str) -> Iterator[Databases]:
    made = Databases(admin_url)
    yield made
    made.close()


@pytest.fixture
def database_url(admin_url: str, databases: Databases) -> Iterator[str]:
    """A fresh, empty database for this test."""
    name = databases.take()
    yield url_for(admin_url, name)
    databases.give_back(name)


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn


def write_config(folder: Path, body: str) -> Path:
    path = folder / "dbops.yaml"
    path.write_text(body)
    return path


@pytest.fixture
def project(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the sample project whose development environment is this test's database."""
    shutil.copytree(REPO / "migrations", tmp_path / "migrations")
    write_config(
        tmp_path,
        f"""\
project: sample
environments:
  development:
    aliases: [dev]
    url: "{database_url}"
  test:
    url: "{database_url}"
  production:
    protected: true
    url: ${{DBOPS_TEST_PROD_URL}}
""",
    )
    monkeypatch.chdir(tmp_path)
    for name in ("DBOPS_ENV", "DBOPS_CONFIG", "TF_BUILD", "GITHUB_ACTIONS", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Run:
    """Run `dbops ARGS` in-process through the Invoke Program users get."""
    from dbops.cli.program import make_program

    def run(*args: str) -> Cli:
        try:
            make_program().run(["dbops", *args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = capsys.readouterr()
        return Cli(code, out, err)

    return run


def apply_migrations(url: str, folder: Path) -> None:
    """Apply migrations with plain yoyo, as a user of yoyo would."""
    from yoyo import get_backend, read_migrations

    backend = get_backend(url.replace("postgresql://", "postgresql+psycopg://", 1))
    migrations = read_migrations(str(folder))
    with backend.lock():
        backend.apply_migrations(backend.to_apply(migrations))
    backend.connection.close()


def dbops_bin() -> str:
    found = shutil.which("dbops", path=str(Path(sys.executable).parent))
    assert found, "the dbops console script is not installed next to this Python"
    return found


def sigint_default() -> None:
    """preexec_fn of a child process that a test sends SIGINT. A background job of a
    non-interactive shell starts with SIGINT ignored, and its children inherit that; with the
    default disposition back, Python turns SIGINT into KeyboardInterrupt as at a terminal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
