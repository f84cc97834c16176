"""Test fixtures: a real PostgreSQL for every test that touches a database.

By default the session starts an embedded server (the one users get). When
DBOPS_TEST_DATABASE_URL is set, the same tests run against that server instead. Either way
each test gets a fresh database of its own, dropped afterwards.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest
from psycopg import sql

from dbops.postgres.embedded import EmbeddedServer
from dbops.testing.ahead import DatabasesAhead

if TYPE_CHECKING:
    from dbops.testing.plugin import Project

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


@pytest.fixture(scope="session")
def databases(admin_url: str) -> Iterator[DatabasesAhead]:
    """The tests' databases, made one test ahead and dropped one behind (dbops.testing.ahead):
    CREATE and DROP DATABASE (an fsync each on a durable server) overlap the tests."""
    made = DatabasesAhead(lambda: psycopg.connect(admin_url, autocommit=True), "dbops_t_")
    yield made
    made.close()


def sample_database() -> str:
    """The suite's sample database, whose template the plugin makes: named after this checkout
    and its code, so that a template a run of other code left on a shared server is never taken
    for this one's."""
    code = hashlib.sha256(str(REPO).encode())
    for source in sorted((REPO / "src" / "dbops").rglob("*.py")):
        code.update(source.read_bytes())
    return f"dbops_sample_{code.hexdigest()[:8]}"


def pytest_sessionfinish(session: pytest.Session) -> None:
    """The run leaves nothing on a shared server: its template and test roles go once every
    worker is done (in the controlling process; an embedded server goes with its folder)."""
    configured = os.environ.get("DBOPS_TEST_DATABASE_URL")
    if not configured or hasattr(session.config, "workerinput"):
        return
    from dbops.testing.template import TEMPLATE_SUFFIX

    with psycopg.connect(configured, autocommit=True) as conn:
        name = sample_database() + TEMPLATE_SUFFIX
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        # validate's reusable scratch databases (dbops.postgres.reusable), the tests' roles' too
        kept = conn.execute(
            "SELECT datname FROM pg_database WHERE starts_with(datname, 'dbops_validate_scratch_')"
        ).fetchall()
        for (kept_name,) in kept:
            with contextlib.suppress(psycopg.Error):  # one a concurrent run still uses stays
                conn.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(kept_name)))
        # roles are the server's, not a database's: those the test schemas make (dbops_t_...)
        roles = conn.execute("SELECT rolname FROM pg_roles WHERE starts_with(rolname, 'dbops_t_')").fetchall()
        for (role,) in roles:
            with contextlib.suppress(psycopg.Error):  # one a concurrent run still uses stays
                conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


@pytest.fixture(scope="session")
def dbops_project(admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Project:
    """The plugin's template (dbops.testing) for this suite: the sample's migrations, applied by
    dbops migrate, no seeds, on the test server."""
    from dbops.config.loader import load_config
    from dbops.engine.catalog import RULES
    from dbops.testing.plugin import Project  # once pytest has loaded it as a plugin (assertion rewriting)

    folder = tmp_path_factory.mktemp("sample-template")
    (folder / "no-seeds").mkdir()
    url = url_for(admin_url, sample_database())
    body = f'project: sample\nmigrations: "{REPO / "migrations"}"\nseeds: no-seeds\n'
    write_config(folder, body + f'environments:\n  test:\n    url: "{url}"\n')
    config = load_config(RULES, str(folder / "dbops.yaml"))
    return Project(config, config.environment("test"))


@pytest.fixture
def database_url(admin_url: str, databases: DatabasesAhead, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh database for this test: empty; or, for a test that takes the fixture `migrated`
    in a module that sets MIGRATED_SAMPLE = True, a clone of the sample migrated by dbops (the
    plugin's template), which that fixture's migrate then finds up to date."""
    template = None
    if "migrated" in request.fixturenames and getattr(request.module, "MIGRATED_SAMPLE", False):
        template = request.getfixturevalue("dbops_template").name
    name = databases.take(template)
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
