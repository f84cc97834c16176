"""The pytest plugin (entry point ``pytest11: dbops``): a migrated, seeded database per test.

Fixtures:
  dbops_database     a fresh database per test, cloned from the template, dropped after
                     (``.name``, ``.url``)
  dbops_connection   a psycopg connection to it
  dbops_transaction  the cheaper mode: a connection to one clone shared by this process's
                     tests, inside a transaction rolled back after each test (nested
                     ``conn.transaction()`` blocks are savepoints)
  dbops_template     the session's template (dbops.testing.template), built on first use
  dbops_project      the dbops.yaml and environment it is built from: override it in a
                     conftest.py to build from another project

Options: ``--dbops-env NAME`` (default: the ini value ``dbops_env``, else ``test``),
``--dbops-rebuild`` (build it again even if migrations/ and seeds/ did not change),
``--dbops-config PATH`` (else DBOPS_CONFIG, else the dbops.yaml found from the rootdir up).
The ini value ``dbops_clones_ahead`` is how many clones each process keeps made or being made
for its next tests (default 3; with pytest-xdist 4 split among the workers, at least 1 each; 0:
each made when the test asks for it).

A clone that could not be made fails the test that asked for it, and a previous test's that
could not be dropped the next test to ask for one once the drop has failed (else the session's
end), with a one-line ``Error:``. Every clone is dropped at the end of the session (after Ctrl-C
too); those of a killed run are dropped by the next run on that server.

A template that cannot be built fails the first test that needs it with dbops's own
``Error:``/``Hint:`` lines, and stops the session (with pytest-xdist: every worker).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from dbops.errors import DbopsError

if TYPE_CHECKING:  # the fixtures import them when first used: a run without them pays nothing
    import psycopg

    from dbops.config.model import Config, Environment
    from dbops.testing.template import Clone, Template

_RUN_ID = pytest.StashKey[str]()
_AHEAD = pytest.StashKey[int]()


@dataclass(frozen=True)
class Project:
    config: Config
    env: Environment


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dbops", "dbops test databases")
    group.addoption("--dbops-env", default=None, help="environment of dbops.yaml to build the template for")
    group.addoption(
        "--dbops-rebuild",
        action="store_true",
        help="rebuild the template even if migrations/ and seeds/ did not change",
    )
    group.addoption(
        "--dbops-config", default=None, help="the project's dbops.yaml (default: found from the rootdir)"
    )
    parser.addini("dbops_env", "environment of dbops.yaml the test template is built for", default="test")
    parser.addini(
        "dbops_clones_ahead",
        "clones of the test template each process keeps made ahead (default 3; xdist: 4 split among workers)",
        default=None,
    )


def pytest_configure(config: pytest.Config) -> None:
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    run_id = workerinput.get("testrunuid") if workerinput else None  # the same in every xdist worker
    config.stash[_RUN_ID] = str(run_id or uuid.uuid4().hex)
    config.stash[_AHEAD] = clones_ahead(config)  # a bad value stops the run before any test


def clones_ahead(config: pytest.Config) -> int:
    """The ini value dbops_clones_ahead; by default 3 (bench/testdb: 2 cuts what 1 gives by a
    third, 3 is mostly a little better again), and with pytest-xdist 4 split among the
    workers, at least 1 each, so that what a run makes at once stays modest."""
    value = config.getini("dbops_clones_ahead")
    if value not in (None, ""):
        try:
            return max(0, int(str(value)))
        except ValueError:
            raise pytest.UsageError(
                f"dbops_clones_ahead: not a number: {value!r} (how many clones to make ahead, e.g. 3)"
            ) from None
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    workers = int(workerinput.get("workercount", 1)) if workerinput else 1
    return 3 if workers == 1 else max(1, 4 // workers)


def _lines(error: DbopsError) -> str:
    return f"Error: {error.message}" + (f"\nHint: {error.hint}" if error.hint else "")


def _fail(request: pytest.FixtureRequest, error: DbopsError) -> NoReturn:
    request.session.shouldfail = f"dbops: the test template could not be built: {error.message}"
    pytest.fail(_lines(error), pytrace=False)


@pytest.fixture(scope="session")
def dbops_project(request: pytest.FixtureRequest) -> Project:
    from dbops.config.loader import load_config  # lazy: a test run that uses no fixture pays nothing
    from dbops.engine.catalog import RULES

    options = request.config.option
    try:
        config = load_config(RULES, options.dbops_config, start=request.config.rootpath)
        return Project(config, config.environment(options.dbops_env or request.config.getini("dbops_env")))
    except DbopsError as exc:
        failure = exc
    _fail(request, failure)  # outside the except block: no "during handling" chain in the report


@pytest.fixture(scope="session")
def dbops_template(request: pytest.FixtureRequest, dbops_project: Project) -> Iterator[Template]:
    from dbops.testing.template import Template, TemplateFailed  # lazy: only for a test that needs it

    template: Template | None = None
    try:
        stash = request.config.stash
        template = Template(
            dbops_project.config, dbops_project.env, stash[_RUN_ID], clones_ahead=stash[_AHEAD]
        )
        template.ensure(rebuild=request.config.option.dbops_rebuild)
        failure = None
    except DbopsError as exc:
        failure = exc
    if failure is not None:
        if template is not None:
            template.close()
        if isinstance(failure, TemplateFailed) and template is not None and not template.attempted:
            # another worker of this run built it and failed: that worker reports why
            request.session.shouldfail = f"dbops: the test template could not be built: {failure.message}"
            pytest.skip(
                f"the test template could not be built (another worker reported it): {failure.message}"
            )
        _fail(request, failure)
    assert template is not None
    yield template
    try:
        template.close()  # every clone dropped; a failed drop fails the session's last teardown
        failure = None
    except DbopsError as exc:
        failure = exc
    if failure is not None:
        pytest.fail(_lines(failure), pytrace=False)


@pytest.fixture
def dbops_database(dbops_template: Template) -> Iterator[Clone]:
    try:
        clone = dbops_template.clone()
        failure = None
    except DbopsError as exc:  # this test's clone, or the drop of a previous test's
        failure = exc
    if failure is not None:
        pytest.fail(_lines(failure), pytrace=False)
    try:
        yield clone
    finally:
        dbops_template.drop(clone)


@pytest.fixture
def dbops_connection(dbops_database: Clone) -> Iterator[psycopg.Connection[Any]]:
    import psycopg  # lazy: only for a test that needs it

    with psycopg.connect(dbops_database.url) as conn:
        yield conn


class _Shared:
    """One clone for this process's transaction-mode tests, and a connection to it."""

    def __init__(self, template: Template, clone: Clone) -> None:
        self.template = template
        self.clone = clone
        self.conn: psycopg.Connection[Any] | None = None

    def connection(self) -> psycopg.Connection[Any]:
        import psycopg  # lazy: only for a test that needs it

        if self.conn is None or self.conn.closed:
            self.conn = psycopg.connect(self.clone.url, autocommit=True)
        return self.conn

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.template.drop(self.clone)


@pytest.fixture(scope="session")
def _dbops_shared(dbops_template: Template) -> Iterator[_Shared]:
    try:
        shared = _Shared(dbops_template, dbops_template.clone())
        failure = None
    except DbopsError as exc:
        failure = exc
    if failure is not None:
        pytest.fail(_lines(failure), pytrace=False)
    yield shared
    shared.close()


@pytest.fixture
def dbops_transaction(_dbops_shared: _Shared) -> Iterator[psycopg.Connection[Any]]:
    conn = _dbops_shared.connection()
    with conn.transaction(force_rollback=True):
        yield conn
