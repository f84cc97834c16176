"""migrate-rollback: roll back the most recent migrations (--steps N, --to ID).

Undo (when it fails part-way, or a later step of the pipeline fails): restore the backup the
pipeline took before it (protected environments take one), schema and rows; without one,
apply again the migrations it rolled back, oldest first: the schema comes back, not the rows
the rolled back objects held.

Refuses a range with a migration that has no rollback script (yoyo would only unmark it and
leave its objects behind), or that an applied migration outside the range depends on.
"""

from __future__ import annotations

from contextlib import suppress

from dbops.engine import restore_point
from dbops.engine.context import RunContext
from dbops.engine.options import RollbackOptions
from dbops.engine.pipeline import StepOutcome, Undo
from dbops.errors import UsageError
from dbops.migrations.migrator import Outcome
from dbops.migrations.scripts import Script, load
from dbops.migrations.session import Session, check_integrity, migration_session
from dbops.output.reports.migration import MigrationItem, MigrationReport
from dbops.steps.migrate import migration_run, shown_live


def _rollback_sql(script: Script) -> str:
    if script.is_python:
        return "\n".join(f"-- Python step {i}: rollback" for i in range(len(script.python_steps), 0, -1))
    return "\n".join(f"{x.sql.rstrip(';')};" for x in script.rollback_statements)


class Rollback:
    name = "rollback"
    description = "roll back applied migrations"
    undo = (
        "restore the backup taken before it; without one, apply the migrations again "
        "(the schema comes back, not their rows)"
    )
    policy_action: str | None = "rollback"

    def __init__(self, options: RollbackOptions) -> None:
        self.steps = options.steps
        self.to = options.to
        self.dry_run = options.dry_run

    def run(self, ctx: RunContext) -> StepOutcome:
        kind = "rollback-plan" if self.dry_run else "rollback"
        with migration_run(ctx, kind, write=not self.dry_run) as (report, session):
            check_integrity(session.state, accept=False)
            scripts = self._choose(session)
            if self.dry_run:
                report.items = [MigrationItem(s.id, s.name, "planned", sql=_rollback_sql(s)) for s in scripts]
            else:
                self._roll_back(ctx, session, scripts, report)
        return StepOutcome(data=report)

    def confirmation_details(self, ctx: RunContext) -> list[str]:
        """For the confirmation: the migrations it will roll back (read now, without the lock;
        a range it would refuse is refused before asking)."""
        if self.dry_run:
            return []
        with migration_session(
            ctx.connection(), ctx.target(), ctx.env, ctx.config.migrations_dir, write=False
        ) as session:
            check_integrity(session.state, accept=False)
            scripts = self._choose(session)
        if not scripts:
            return ["Migrations to roll back: none (no migration is applied)"]
        return ["Migrations to roll back, newest first:", *(f"  ↩ {s.name}" for s in scripts)]

    def _roll_back(
        self, ctx: RunContext, session: Session, scripts: list[Script], report: MigrationReport
    ) -> None:
        done: list[Script] = []

        def rolled_back(outcome: Outcome) -> None:  # each one as the migrator commits it
            script = outcome.script
            if not done:
                ctx.add_undo(_undo(ctx, done))
            done.append(script)
            report.items.append(MigrationItem(script.id, script.name, "rolled back", outcome.duration_s))

        session.migrator.watch = shown_live(ctx, "rolling back", rolled_back)
        ctx.report_grew()  # the report's head, before the first one
        try:
            for script in scripts:
                try:
                    session.migrator.rollback(script)
                except BaseException:
                    report.items.append(MigrationItem(script.id, script.name, "failed"))
                    raise
        finally:
            with suppress(Exception):
                session.migrator.flush()

    def _choose(self, session: Session) -> list[Script]:
        state = session.state
        newest_first = [m.id for m in reversed(state.applied)]
        if self.to is not None:  # an id prefix counts as the ids it starts, as for migrate --to
            matching = [i for i in newest_first if i.startswith(self.to)]
            if not matching:
                raise UsageError(
                    f"--to {self.to}: no applied migration has that id", "dbops status lists them"
                )
            chosen = newest_first[: newest_first.index(matching[-1]) + 1]
        else:
            chosen = newest_first[: self.steps]
        files = state.by_id
        missing = [i for i in chosen if i not in files]
        if missing:
            raise UsageError(
                f"Cannot roll back {', '.join(missing)}: the file is gone", "Restore the file first"
            )
        scripts = load(state.files, chosen)
        irreversible = [scripts[i] for i in chosen if not scripts[i].reversible]
        empty = [s.file.rollback.name for s in irreversible if s.file.rollback is not None]
        if empty:
            raise UsageError(
                f"{', '.join(empty)}: the rollback script is empty (only comments): refusing to unmark "
                "the migration, objects and all",
                "Write the statements that reverse it in that file, or restore from a backup",
            )
        if irreversible:
            raise UsageError(
                f"No rollback script for {', '.join(s.name for s in irreversible)}: refusing to unmark it, "
                "objects and all",
                "Write <id>.rollback.sql (or step(apply, rollback) in Python), or restore from a backup",
            )
        self._check_dependents(session, chosen, set(newest_first))
        return [scripts[i] for i in chosen]

    def _check_dependents(self, session: Session, chosen: list[str], applied: set[str]) -> None:
        staying = [i for i in applied - set(chosen) if i in session.state.by_id]
        for script in load(session.state.files, staying).values():
            needs = sorted(set(script.depends) & set(chosen))
            if needs:
                raise UsageError(
                    f"{script.name} stays applied and depends on {', '.join(needs)}",
                    "Roll back further (--to), so that dependents go first",
                )


def _undo(ctx: RunContext, done: list[Script]) -> Undo:
    point = restore_point.taken(ctx, before=ctx.running_step)
    if point is not None:
        return Undo(
            "restore the backup taken before it (schema and rows)", lambda: restore_point.restore(ctx, point)
        )
    return Undo(REAPPLY, lambda: _reapply(ctx, done))


REAPPLY = "apply again the migrations it rolled back (the schema comes back, not their rows)"


def _reapply(ctx: RunContext, rolled_back: list[Script]) -> str:
    with migration_session(
        ctx.connection(), ctx.target(), ctx.env, ctx.config.migrations_dir, write=True
    ) as session:
        for script in reversed(rolled_back):
            session.migrator.apply(script)
        session.migrator.flush()
    return f"applied again {', '.join(s.id for s in reversed(rolled_back))}"
