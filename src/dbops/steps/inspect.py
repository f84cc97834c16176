"""inspect: read migrations, catalog and health into a StatusReport. Undo: none (read-only)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from dbops.engine.context import RunContext
from dbops.engine.pipeline import READS_ONLY, StepOutcome
from dbops.migrations import files as migrations
from dbops.output.reports.status import KeptByRestore, MigrationSummary, StatusReport, health_checks
from dbops.output.units import age
from dbops.postgres import databases
from dbops.schema import introspect


class Inspect:
    name = "inspect"
    description = "read migrations, schema, data and health"
    undo = READS_ONLY
    policy_action: str | None = None

    def __init__(self) -> None:
        self.report: StatusReport | None = None  # for the steps after it (the gate of status --check)

    def run(self, ctx: RunContext) -> StepOutcome:
        conn = ctx.connection()
        state = migrations.state(conn, ctx.config.migrations_dir)
        catalog = introspect.summarize(conn)
        last = state.last_applied
        summary = MigrationSummary(
            folder=ctx.config.shown(state.folder),
            folder_exists=state.folder_exists,
            applied=len(state.applied),
            pending=len(state.pending),
            last_applied=last.id if last else None,
            last_applied_at=last.applied_at.replace(tzinfo=UTC).isoformat() if last else None,
            pending_ids=tuple(f.id for f in state.pending),
            missing_files=state.unaccepted_missing,  # an accepted deletion is no longer a problem
            edited_files=state.edited,
        )
        report = StatusReport.build(
            ctx.env.name, ctx.facts(), summary, catalog, health_checks(summary, catalog)
        )
        kept = databases.kept_databases(conn, ctx.database())
        if kept:
            now = datetime.now(UTC)
            report = replace(
                report,
                kept_by_restore=tuple(
                    KeptByRestore(k.name, k.kept_at.isoformat(), age(k.kept_at, now), k.size) for k in kept
                ),
            )
        self.report = report
        return StepOutcome(data=report)
