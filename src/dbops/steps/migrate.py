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
from dataclasses import dataclass

from dbops.engine.context import RunContext
from dbops.engine.options import MigrateOptions
from dbops.engine.pipeline import StepOutcome, Undo
from dbops.errors import DbopsError, UsageError
from dbops.migrations.files import MigrationFile, MigrationState
from dbops.migrations.migrator import Migrator
from dbops.migrations.scripts import Script
from dbops.output.reports.migration import MigrationItem, MigrationReport


class ChecksumMismatch(DbopsError):
    """Applied migrations were edited or deleted since: refuse until the change is accepted."""

    exit_code = 2


@dataclass
class Session:
    migrator: Migrator
    state: MigrationState


@contextmanager
def migration_session(ctx: RunContext, *, write: bool) -> Iterator[Session]:
    """The run's connection, the migration lock (when writing) and the state read under it."""
    from dbops.migrations import files as migrations
    from dbops.postgres.locks import migration_lock

    conn = ctx.connection()
    target = ctx.target()
    migrator = Migrator(conn, target)
    if not write:
        yield Session(migrator, migrations.state(conn, ctx.config.migrations_dir))
        return
    with migration_lock(target, ctx.env, ctx.env.lock_wait_ms / 1000):
        migrator.ensure_bookkeeping()
        yield Session(migrator, migrations.state(conn, ctx.config.migrations_dir))


@contextmanager
def migration_run(
    ctx: RunContext, step: str, kind: str, *, write: bool
) -> Iterator[tuple[MigrationReport, Session]]:
    """A migration step's report (kept for the run even if the step fails) and its session."""
    started = time.monotonic()
    report = MigrationReport(kind, ctx.env.name, ctx.database())
    ctx.report_so_far(report)  # a failure part-way still reports what was done
    try:
        with migration_session(ctx, write=write) as session:
            yield report, session
    finally:
        report.duration_s = time.monotonic() - started
    report.finished = True


def check_integrity(state: MigrationState, *, accept: bool) -> None:
    """Edited or deleted applied migrations stop everything, unless accepted explicitly."""
    changed = [
        *(f"{i} (edited)" for i in state.edited),
        *(f"{i} (deleted)" for i in state.unaccepted_missing),
    ]
    if changed and not accept:
        raise ChecksumMismatch(
            f"Applied migrations changed since they were applied: {', '.join(changed)}",
            "Restore the files, or accept them: dbops migrate-repair (or migrate --accept-changes)",
        )


def record_checksums(session: Session, report: MigrationReport) -> list[str]:
    """Accept changed files (when asked) and adopt migrations yoyo applied; returns the accepted."""
    state = session.state
    files = state.by_id
    accepted = [*state.edited, *state.unaccepted_missing]
    for migration_id in accepted:
        session.migrator.accept(migration_id, files.get(migration_id))
    for applied in state.applied:  # applied by plain yoyo: take the files as they are now
        if applied.checksum is None and applied.id in files:
            session.migrator.accept(applied.id, files[applied.id])
            report.adopted.append(applied.id)
    return accepted


def select_range(
    pending: tuple[MigrationFile, ...], known: set[str], start: str | None, end: str | None
) -> list[MigrationFile]:
    """--from/--to: ids in that range; an id prefix (--to=005) counts as the ids it starts."""
    for flag, bound in (("--from", start), ("--to", end)):
        if bound is not None and not any(i == bound or i.startswith(bound) for i in known):
            raise UsageError(
                f"{flag} {bound}: no migration has that id or starts with it", "dbops status lists them"
            )
    return [
        f
        for f in pending
        if (start is None or f.id >= start) and (end is None or f.id <= end or f.id.startswith(end))
    ]


def plan(session: Session, start: str | None, end: str | None) -> list[Script]:
    from dbops.migrations.scripts import load, order

    state = session.state
    chosen = select_range(state.pending, set(state.by_id), start, end)
    scripts = order(list(load(state.files, [f.id for f in chosen]).values()))
    if start is not None or end is not None:
        left_out = {f.id for f in state.pending} - {s.id for s in scripts}
        for script in scripts:
            skipped = sorted(set(script.depends) & left_out)
            if skipped:
                raise UsageError(
                    f"{script.name} depends on {', '.join(skipped)}, which --from/--to leave out",
                    "Widen the range to include the dependency",
                )
    return scripts


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
        with migration_run(ctx, self.name, kind, write=not self.dry_run) as (report, session):
            check_integrity(session.state, accept=self.accept)
            scripts = plan(session, self.start, self.end)  # refusals come before any write
            if self.dry_run:
                report.items = [MigrationItem(s.id, s.name, "planned", sql=_sql_of(s)) for s in scripts]
            else:
                accepted = record_checksums(session, report)
                report.notes += [f"⚠ Accepted the changed migration {i}" for i in accepted]
                _apply_all(session, scripts, report, committed)
        return StepOutcome(data=report)


def _apply_all(
    session: Session, scripts: list[Script], report: MigrationReport, committed: Callable[[Script], None]
) -> None:
    try:
        for script in scripts:
            try:
                outcome = session.migrator.apply(script)
            except BaseException:
                report.items.append(MigrationItem(script.id, script.name, "failed"))
                raise
            committed(script)
            note = None
            if outcome.dropped_invalid:
                note = (
                    f"dropped the INVALID index an earlier attempt left: {', '.join(outcome.dropped_invalid)}"
                )
            report.items.append(
                MigrationItem(script.id, script.name, "applied", outcome.duration_s, note=note)
            )
    except BaseException:
        with suppress(Exception):  # durability of what did commit; never hide the failure itself
            session.migrator.flush()
        raise
    session.migrator.flush()


def _undo(ctx: RunContext, applied: list[Script], number: int) -> str:
    from dbops.engine import restore_point

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
    with migration_session(ctx, write=True) as session:
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
