"""migrate: apply pending migrations in dependency order, one connection, one lock.

Undo (when it fails part-way, or a later step of the pipeline fails): roll back exactly the
migrations this run applied, newest first. When one of them has no rollback script, restore
the backup the pipeline took before this step instead (dbops.engine.restore_point); without one,
the undo fails and says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

from dbops.engine import restore_point
from dbops.engine.context import RunContext
from dbops.engine.options import MigrateOptions
from dbops.engine.pipeline import StepOutcome, Undo
from dbops.errors import ConfigError, DbopsError
from dbops.migrations.files import orphan_warnings
from dbops.migrations.migrator import Outcome
from dbops.migrations.scripts import Script
from dbops.migrations.session import Session, check_integrity, migration_session, plan, record_checksums
from dbops.output.reports.migration import MigrationItem, MigrationReport


@contextmanager
def migration_run(ctx: RunContext, kind: str, *, write: bool) -> Iterator[tuple[MigrationReport, Session]]:
    """A migration step's report (kept for the run even if the step fails) and its session."""
    require_folder(ctx)
    started = time.monotonic()
    report = MigrationReport(kind, ctx.env.name, ctx.database())
    ctx.report_so_far(report)  # a failure part-way still reports what was done
    try:
        with migration_session(
            ctx.connection(), ctx.target(), ctx.env, ctx.config.migrations_dir, write=write
        ) as session:
            report.notes += orphan_warnings(session.state)
            yield report, session
    finally:
        report.duration_s = time.monotonic() - started
    report.finished = True


def require_folder(ctx: RunContext) -> None:
    """A migrations folder that does not exist is a configuration error (a typo in migrations:),
    never "every applied migration was deleted"."""
    folder = ctx.config.migrations_dir
    if not folder.is_dir():
        raise ConfigError(
            f"Migrations folder {ctx.config.shown(folder)} does not exist",
            "Check migrations: in dbops.yaml (or create the folder: dbops migrate-create NAME)",
        )


class Migrate:
    name = "migrate"
    description = "apply pending migrations"
    undo = (
        "roll back the migrations it applied, newest first (also when it fails part-way); "
        "one without rollback script: restore the backup taken before it"
    )
    policy_action: str | None = "migrate"

    def __init__(self, options: MigrateOptions) -> None:
        self.options = options  # validate_before_migrate: the policy puts a Lint of the same range first
        self.dry_run = options.dry_run
        self.start = options.start
        self.end = options.end
        self.accept = options.accept_changes

    def run(self, ctx: RunContext) -> StepOutcome:
        applied: list[Script] = []

        number = ctx.running_step

        def committed(script: Script) -> None:
            if not applied:  # from the first one on, a failure (even of this step) rolls them back
                undo = Undo("roll back the migrations this run applied", lambda: _undo(ctx, applied, number))
                ctx.add_undo(undo)
            applied.append(script)

        kind = "plan" if self.dry_run else "migrate"
        with migration_run(ctx, kind, write=not self.dry_run) as (report, session):
            check_integrity(session.state, accept=self.accept)
            scripts = plan(session, self.start, self.end, cache=ctx.config.state_dir)  # refusals first
            if self.dry_run:
                report.items = [MigrationItem(s.id, s.name, "planned", sql=_sql_of(s)) for s in scripts]
            else:
                accepted = record_checksums(session, report.adopted)
                report.notes += [f"⚠ Accepted the changed migration {i}" for i in accepted]
                _apply_all(ctx, session, scripts, report, committed)
        return StepOutcome(data=report)


def _apply_all(
    ctx: RunContext,
    session: Session,
    scripts: list[Script],
    report: MigrationReport,
    committed: Callable[[Script], None],
) -> None:
    def applied(outcome: Outcome) -> None:  # each one as the migrator commits it
        committed(outcome.script)
        note = None
        if outcome.dropped_invalid:
            note = f"dropped the INVALID index an earlier attempt left: {', '.join(outcome.dropped_invalid)}"
        script = outcome.script
        report.items.append(MigrationItem(script.id, script.name, "applied", outcome.duration_s, note=note))

    session.migrator.watch = shown_live(ctx, "applying", applied)
    ctx.report_grew()  # the report's head, before the first migration
    try:
        for script in scripts:
            try:
                session.migrator.apply(script)
            except BaseException as exc:
                interrupted = isinstance(exc, KeyboardInterrupt)
                report.items.append(
                    MigrationItem(script.id, script.name, "interrupted" if interrupted else "failed")
                )
                raise
    except BaseException:
        with suppress(Exception):  # durability of what did commit; never hide the failure itself
            session.migrator.flush()
        raise
    session.migrator.flush()


def shown_live(
    ctx: RunContext, doing: str, done: Callable[[Outcome], None]
) -> Callable[[Script, Outcome | None], None]:
    """The migrator's watch: the live view names the migration running, and shows its line in
    the report once `done` has added it."""

    def watch(script: Script, outcome: Outcome | None) -> None:
        if outcome is None:
            ctx.working(f"{doing} {script.name}")
            return
        done(outcome)
        ctx.working(None)
        ctx.report_grew()

    return watch


def _undo(ctx: RunContext, applied: list[Script], number: int) -> str:
    missing = [s.name for s in applied if not s.reversible]
    point = restore_point.taken(ctx, before=number) if missing else None
    if point is not None:
        return f"{', '.join(missing)}: no rollback script, so {restore_point.restore(ctx, point)}"
    if missing:
        raise DbopsError(
            f"Cannot roll back {', '.join(missing)}: no rollback script, so the {len(applied)} "
            f"migration(s) this run applied stay applied",
            "Restore the database from a backup, or write the rollback script and run "
            f"dbops migrate-rollback --steps {len(applied)}",
        )
    with migration_session(
        ctx.connection(), ctx.target(), ctx.env, ctx.config.migrations_dir, write=True
    ) as session:
        for script in reversed(applied):
            session.migrator.rollback(script)
        session.migrator.flush()
    return f"rolled back {', '.join(s.id for s in reversed(applied))}"


def _sql_of(script: Script) -> str:
    if script.is_python:
        steps = [
            s.apply
            if isinstance(s.apply, str)
            else f"-- Python step: {getattr(s.apply, '__name__', 'callable')}"
            for s in script.python_steps
        ]
        return "\n".join(f"{step};" if not step.startswith("--") else step for step in steps if step)
    mode = "" if script.transactional else "-- transactional: false (each statement in autocommit)\n"
    return mode + "\n".join(f"{s.sql.rstrip(';')};" for s in script.statements)
