"""migrate-baseline and migrate-repair: records only, no schema change. Undo: none."""

from __future__ import annotations

from dbops.engine.context import RunContext
from dbops.engine.pipeline import StepOutcome
from dbops.errors import UsageError
from dbops.migrations.scripts import load, order
from dbops.migrations.session import record_checksums
from dbops.output.reports.migration import MigrationItem
from dbops.steps.migrate import migration_run


class Baseline:
    """Adopt an existing database: mark every migration up to ID as applied without running it."""

    name = "baseline"
    description = "mark migrations as applied without running them"
    undo = "none"
    policy_action: str | None = None

    def __init__(self, up_to: str) -> None:
        self.up_to = up_to

    def run(self, ctx: RunContext) -> StepOutcome:
        with migration_run(ctx, "baseline", write=True) as (report, session):
            state = session.state
            if self.up_to not in state.by_id:
                raise UsageError(f"No migration with id {self.up_to}", "dbops status lists them")
            # Up to ID in the order migrate would apply them: dependencies first, then file order.
            ordered = [s.id for s in order(list(load(state.files, [f.id for f in state.pending]).values()))]
            pending = {f.id: f for f in state.pending}
            chosen = ordered[: ordered.index(self.up_to) + 1] if self.up_to in pending else []
            for migration_id in chosen:
                session.migrator.mark(pending[migration_id])
                report.items.append(MigrationItem(migration_id, pending[migration_id].path.name, "marked"))
        return StepOutcome(data=report)


class Repair:
    """Accept edited or deleted applied migrations as they are now."""

    name = "repair"
    description = "accept changed migration files"
    undo = "none"
    policy_action: str | None = None

    def __init__(self, all_deleted: bool = False) -> None:
        self.all_deleted = all_deleted

    def run(self, ctx: RunContext) -> StepOutcome:
        with migration_run(ctx, "repair", write=True) as (report, session):
            state = session.state
            changed = record_checksums(session, report.adopted, all_deleted=self.all_deleted)
            for migration_id in changed:
                file = state.by_id.get(migration_id)
                name = file.path.name if file else f"{migration_id} (deleted)"
                report.items.append(MigrationItem(migration_id, name, "accepted"))
        return StepOutcome(data=report)
