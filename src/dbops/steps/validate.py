"""validate: the live schema against the one the migrations (or models) define, migration
integrity, and a lint of pending migrations. Undo: none (it only reads, and its scratch
database is always dropped).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from dbops.engine.context import RunContext
from dbops.engine.pipeline import READS_ONLY, StepOutcome
from dbops.errors import ConfigError, DbopsError
from dbops.migrations import files as migrations
from dbops.migrations.files import MigrationFile
from dbops.migrations.scripts import Script, load, order, refuse_empty
from dbops.output.reports.validate import ValidateReport
from dbops.postgres.databases import scratch_database
from dbops.postgres.reusable import claimed
from dbops.schema import expected
from dbops.schema.compare import compare
from dbops.schema.snapshot import read_schema

if TYPE_CHECKING:
    from dbops.migrations.lint import Finding

T = TypeVar("T")


class InBackground(Generic[T]):
    """A function run in a thread: result() waits for it and returns or raises what it did."""

    def __init__(self, function: Callable[..., T], *args: Any) -> None:
        self._value: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(function, *args), daemon=True)
        self._thread.start()

    def _run(self, function: Callable[..., T], *args: Any) -> None:
        try:
            self._value = function(*args)
        except BaseException as exc:  # handed to the caller of result()
            self._error = exc

    def result(self) -> T:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]


class ValidationFailed(DbopsError):
    """The live schema differs from the expected one (errors, or warnings with --strict)."""


class Validate:
    name = "validate"
    description = "compare the schema with the migrations"
    undo = READS_ONLY
    policy_action: str | None = None

    def __init__(self, *, strict: bool = False) -> None:
        self.strict = strict

    def run(self, ctx: RunContext) -> StepOutcome:
        started = time.monotonic()
        report = ValidateReport(ctx.env.name, ctx.database(), strict=self.strict)
        ctx.report_so_far(report)
        conn = ctx.connection()
        state = migrations.state(conn, ctx.config.migrations_dir)
        if not state.folder_exists and not ctx.config.models:
            raise ConfigError(
                f"Migrations folder {ctx.config.shown(state.folder)} does not exist",
                "Check migrations: in dbops.yaml",
            )
        report.applied = len(state.applied)
        report.pending = [f.id for f in state.pending]
        report.edited = list(state.edited)
        report.deleted = list(state.unaccepted_missing)
        # Things at once: the migration files are parsed and linted in a thread (while a fresh
        # scratch database is created); the live schema is read on this connection while the
        # expected one is built on its own; the two are compared while a fresh one is dropped.
        parsed = InBackground(_scripts, state.files, set(report.pending), ctx)
        models = ctx.config.models
        if ctx.env.reuses_scratch and not models and expected.in_one_transaction(parsed.result()[0]):
            with claimed(conn, ctx.target(), ctx.env) as claim:
                scripts, report.lint = parsed.result()
                if claim is not None:
                    live = InBackground(read_schema, conn)
                    try:
                        built = expected.build_reused(claim, scripts)
                    finally:
                        actual = live.result()  # before the claim ends: it may drop on that connection
                    if built is not None:
                        wanted, report.expected = built
                        report.differences = compare(wanted, actual)
        if report.expected is None:  # a fresh scratch database: the first way, and the fallback
            with scratch_database(conn, ctx.target(), ctx.env, ctx.embedded_server()) as scratch:
                live = InBackground(read_schema, conn)
                try:
                    scripts, report.lint = parsed.result()
                    wanted, report.expected = expected.build(
                        scratch, ctx.env, scripts, models=models, root=ctx.config.root
                    )
                finally:
                    actual = live.result()  # before the scratch database is dropped on that connection
                compared = InBackground(compare, wanted, actual)  # while the scratch database is dropped
            report.differences = compared.result()
        report.duration_s = time.monotonic() - started
        report.finished = True
        if report.failed:
            raise _failure(report)
        return StepOutcome(data=report)


def _scripts(
    files: Sequence[MigrationFile], pending: set[str], ctx: RunContext
) -> tuple[list[Script], list[Finding]]:
    """Every migration parsed, in the order migrate applies them; the pending ones linted."""
    scripts = order(list(load(files, cache=ctx.config.state_dir).values()))
    to_lint = [s for s in scripts if s.id in pending]
    refuse_empty(to_lint)
    if not to_lint:
        return scripts, []
    from dbops.migrations.lint import lint, session_lock_timeout_ms  # lazy: only pending ones need it

    findings = lint(to_lint, lock_timeout_ms=session_lock_timeout_ms(ctx.env), shown=ctx.config.shown)
    return scripts, findings


def _failure(report: ValidateReport) -> ValidationFailed:
    errors, warnings = len(report.errors()), len(report.warnings())
    source = report.expected.source if report.expected else "migrations"
    what = f"{errors} error(s), {warnings} warning(s)" + ("" if errors else " (--strict)")
    return ValidationFailed(f"Schema does not match the {source}: {what}", _remedy(report))


def _remedy(report: ValidateReport) -> str:
    """What to do: the spec's corrective migration, named after the first table that differs."""
    if report.edited or report.deleted:
        return "Restore the changed migration files, or accept them: dbops migrate-repair"
    pending = f"Apply the {len(report.pending)} pending migration(s): dbops migrate"
    if not report.differences:
        return pending if report.pending else "Fix the lint findings, or accept each: -- dbops:ignore <rule>"
    first = sorted(report.differences, key=lambda d: d.severity != "error")[0]
    corrective = f"dbops migrate-create fix_{_slug(first.table or first.name)}_schema"
    if report.pending:
        return f"{pending}; then, if differences remain: {corrective}"
    return f"Create a corrective migration: {corrective}"


def _slug(name: str) -> str:
    """A name migrate-create takes: 'add_one(integer)' -> add_one_integer, 'app.t' -> app_t."""
    words = re.findall(r"[a-z0-9]+", name.lower())
    return "_".join(words)[:40].strip("_") or "schema"
