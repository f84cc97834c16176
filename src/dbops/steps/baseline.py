"""migrate-baseline and migrate-repair: records only, no schema change. Undo: none."""

from __future__ import annotations

import time

from dbops.context import RunContext
from dbops.errors import UsageError
from dbops.migration_report import MigrationItem
from dbops.pipeline import StepOutcome
from dbops.steps.migrate import check_integrity, migration_session, new_report


class Baseline:
    """Adopt an existing database: mark every migration up to ID as applied without running it."""

    name = "baseline"
    description = "mark migrations as applied without running them"

    def __init__(self, up_to: str) -> None:
        self.up_to = up_to

    def run(self, ctx: RunContext) -> StepOutcome:
        started = time.monotonic()
        report = new_report(ctx, "baseline")
        ctx.record(self.name, report)
        with migration_session(ctx, write=True) as session:
            files = session.state.files
            if self.up_to not in {f.id for f in files}:
                raise UsageError(f"No migration with id {self.up_to}", "dbops status lists the pending ones")
            for file in session.state.pending:
                if file.id <= self.up_to:
                    session.migrator.mark(file)
                    report.items.append(MigrationItem(file.id, file.path.name, "marked"))
        report.duration_s = time.monotonic() - started
        report.complete = bool(report.items)
        return StepOutcome(data=report)


class Repair:
    """Accept edited or deleted applied migrations as they are now."""

    name = "repair"
    description = "accept changed migration files"

    def run(self, ctx: RunContext) -> StepOutcome:
        started = time.monotonic()
        report = new_report(ctx, "repair")
        ctx.record(self.name, report)
        with migration_session(ctx, write=True) as session:
            state = session.state
            changed = [*state.edited, *state.unaccepted_missing]
            check_integrity(session, report, accept=True, write=True)
            report.notes = [n for n in report.notes if not n.startswith("⚠ Accepted")]
            for migration_id in changed:
                file = state.by_id.get(migration_id)
                name = file.path.name if file else f"{migration_id} (deleted)"
                report.items.append(MigrationItem(migration_id, name, "accepted"))
        report.duration_s = time.monotonic() - started
        report.complete = bool(report.items)
        return StepOutcome(data=report)
