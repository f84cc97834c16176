"""The test template database: migrated and seeded once, cloned for every test.

The template lives next to the environment's database, on its server (the embedded one for an
environment without a URL), as ``<database>__dbops_template``. It is built by dbops's own
engine (the migrate and seed steps, in-process, on a RunContext aimed at the template), and
carries a comment with the sha256 of ``migrations/`` and ``seeds/`` (and the environment's
name): a run whose files hash the same reuses it; any change rebuilds it. Builders take a
session advisory lock named after the template on the server, so pytest-xdist workers (or two
test runs) build it once and the others wait, then clone it.

A failed build leaves the template marked failed for that test run (its run id and the error in
the comment): the other workers of the run report it without building again; the next run
builds afresh. A build killed part way leaves no valid comment, so the next run rebuilds.

Clones are made with ``CREATE DATABASE ... TEMPLATE`` (which needs nobody connected to the
template: the build closes every connection it opened) and dropped ``WITH (FORCE)``: a few
tests ahead and behind, on threads of their own (dbops.testing.ahead). They are named
``<database>__dbops_t_<token><6 hex>``, the token being the process's, whose advisory lock it
holds while it runs: ensuring the template first drops the clones of processes that are gone (a
killed run's), and keeps those of runs still going.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from dbops import __version__
from dbops.config.model import Config, Environment
from dbops.engine.catalog import OPERATIONS
from dbops.engine.context import RunContext
from dbops.engine.options import MigrateOptions, SeedOptions
from dbops.engine.pipeline import Step, run_pipeline
from dbops.errors import DbopsError, UsageError
from dbops.postgres.connection import Target, connect, database_error
from dbops.postgres.databases import derived_name, drop_database
from dbops.steps.connect import Connect
from dbops.testing.ahead import NAME_HEX, DatabasesAhead, drop_orphans

if TYPE_CHECKING:
    import psycopg

TEMPLATE_SUFFIX = "__dbops_template"
CLONE_INFIX = "__dbops_t_"
_MARK = "dbops test template"


class TemplateFailed(DbopsError):
    """Migrating or seeding the template failed: dbops's own error for it."""


@dataclass(frozen=True)
class Clone:
    """A database cloned from the template: its name, and a URL to connect to it (with the
    environment's password, if its URL has one)."""

    name: str
    url: str = field(repr=False)
    target: Target = field(repr=False)


def content_hash(config: Config, env: Environment) -> str:
    """sha256 of every file under migrations/ and seeds/ (names and bytes), the environment's
    name (seeds/<env>/ differs) and dbops's version."""
    digest = hashlib.sha256(f"dbops {__version__}\0env {env.name}\0".encode())
    for label, folder in (("migrations", config.migrations_dir), ("seeds", config.seeds_dir)):
        files = sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        for path in files if folder.is_dir() else []:
            digest.update(f"{label}/{path.relative_to(folder).as_posix()}\0".encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def url_of(target: Target) -> str:
    """A libpq URL for a target (its password included: it is the caller's own)."""
    return "postgresql://" + target.yoyo_uri().removeprefix("postgresql+psycopg://")


class _TemplateContext(RunContext):
    """A run of dbops's engine aimed at the template database instead of the environment's."""

    def __init__(self, config: Config, env: Environment, target: Target) -> None:
        super().__init__(config, env)
        self._target = target


class Template:
    """The environment's template database, and the clones made from it by this process."""

    def __init__(self, config: Config, env: Environment, run_id: str, *, clones_ahead: int = 3) -> None:
        """clones_ahead: how many clones to keep made or being made for the next tests."""
        if env.protected:
            raise UsageError(
                f"{env.where()}: is protected; tests never build a template from its server",
                "Run the tests with a test environment (--dbops-env=test)",
            )
        self.config = config
        self.env = replace(env, lock_timeout_ms=None, statement_timeout_ms=None)
        self.run_id = run_id
        ctx = RunContext(config, self.env)
        try:
            server = ctx.target()  # starts the embedded server when it is the environment's
        finally:
            ctx.close()
        self.name = derived_name(server.dbname, TEMPLATE_SUFFIX)
        self.target = server.with_dbname(self.name)
        self.maintenance = server.with_dbname("postgres")
        self._admin: psycopg.Connection[Any] | None = None
        self._ahead: DatabasesAhead | None = None
        self.attempted = False  # whether this process tried to (re)build it
        self.built = False  # whether this process (re)built it
        self.hash = content_hash(config, env)
        self.clones_ahead = clones_ahead
        base = self.name.removesuffix(TEMPLATE_SUFFIX)
        self.clone_prefix = derived_name(base, CLONE_INFIX + "0" * NAME_HEX)[:-NAME_HEX]
        self.orphans_dropped: list[str] = []  # by ensure(): clones of processes that are gone

    # ------------------------------------------------------------------ the template

    def ensure(self, *, rebuild: bool = False) -> None:
        """Build the template unless a current one exists (or this run already rebuilt it);
        raise TemplateFailed with dbops's own error when migrate or seed fails, and a
        DbopsError when the server refuses (no CREATEDB, say)."""
        import psycopg  # lazy: psycopg's errors, as connect() imports psycopg itself

        try:
            self.orphans_dropped = drop_orphans(self.admin(), self.clone_prefix)
            self._ensure(rebuild)
        except psycopg.Error as exc:
            raise database_error(exc, self.target) from None

    def _ensure(self, rebuild: bool) -> None:
        admin = self.admin()
        key = f"dbops-template:{self.name}"
        admin.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (key,))
        try:
            mark = self._mark()
            if mark.get("failed") and mark.get("run") == self.run_id:
                raise TemplateFailed(mark.get("error", "the template build failed"), mark.get("hint", ""))
            current = mark.get("sha256") == self.hash and not mark.get("failed")
            if current and (not rebuild or mark.get("run") == self.run_id):
                return
            self.attempted = True
            self._build()
        finally:
            admin.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (key,))

    def _mark(self) -> dict[str, str]:
        row = (
            self.admin()
            .execute(
                "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
                (self.name,),
            )
            .fetchone()
        )
        if row is None or not row[0] or not str(row[0]).startswith(_MARK):
            return {}
        fields = str(row[0]).split("\n")[1:]
        return dict(line.split("=", 1) for line in fields if "=" in line)

    def _comment(self, **fields: str) -> None:
        from psycopg import sql  # lazy: as in _build

        text = "\n".join([_MARK, *(f"{k}={v.replace(chr(10), ' ')}" for k, v in fields.items())])
        self.admin().execute(
            sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(self.name), sql.Literal(text))
        )

    def _build(self) -> None:
        from psycopg import errors, sql  # lazy: psycopg is imported when the template is built

        admin = self.admin()
        drop_database(admin, self.name)
        try:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))
        except errors.InsufficientPrivilege:
            user = self.target.user or "the role"
            raise DbopsError(
                f"Cannot create the test template {self.name} at {self.target.location()}: permission denied",
                f"Tests clone databases: grant CREATEDB (ALTER ROLE {user} CREATEDB), or give "
                f"the {self.env.name} environment a server where it may create them",
            ) from None
        ctx = _TemplateContext(self.config, self.env, self.target)
        steps: list[Step] = [Connect()]
        steps += OPERATIONS["migrate"].build(MigrateOptions())
        steps += OPERATIONS["seed"].build(SeedOptions())
        try:
            result = run_pipeline("test-template", steps, ctx)
        finally:
            ctx.close()  # CREATE DATABASE ... TEMPLATE needs nobody connected to it
        if result.interrupted:
            drop_database(admin, self.name)
            raise KeyboardInterrupt
        if result.error is not None:
            self._comment(failed="1", run=self.run_id, error=result.error.message, hint=result.error.hint)
            raise TemplateFailed(result.error.message, result.error.hint)
        self._comment(sha256=self.hash, run=self.run_id)
        self.built = True

    # ------------------------------------------------------------------ clones

    def clone(self) -> Clone:
        """A new database, a copy of the template (made while the previous tests ran). A
        DbopsError if it, or the drop of a previous test's, failed."""
        if self._ahead is None:
            self._ahead = DatabasesAhead(
                lambda: connect(self.maintenance, self.env), self.clone_prefix, self.clones_ahead
            )
        name = self._ahead.take(self.name)
        target = self.target.with_dbname(name)
        return Clone(name, url_of(target), target)

    def drop(self, clone: Clone) -> None:
        """Drop it, on the clones' dropping thread: the test does not wait."""
        if self._ahead is not None:
            self._ahead.give_back(clone.name)

    @contextmanager
    def cloned(self) -> Iterator[Clone]:
        clone = self.clone()
        try:
            yield clone
        finally:
            self.drop(clone)

    # ------------------------------------------------------------------ the maintenance connection

    def admin(self) -> psycopg.Connection[Any]:
        """This process's connection to the server's maintenance database (never the template)."""
        if self._admin is None or self._admin.closed:
            self._admin = connect(self.maintenance, self.env)
        return self._admin

    def close(self) -> None:
        """Drop the clones still there (and the one made ahead); close the connections."""
        try:
            if self._ahead is not None:
                self._ahead.close()
                self._ahead = None
        finally:
            self.close_admin()

    def close_admin(self) -> None:
        if self._admin is not None:
            self._admin.close()
            self._admin = None
