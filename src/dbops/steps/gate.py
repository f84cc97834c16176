"""gate: fail the run when the status report is not healthy (status --check). Undo: none."""

from __future__ import annotations

from dbops.engine.context import RunContext
from dbops.engine.pipeline import READS_ONLY, StepOutcome
from dbops.errors import CheckFailed
from dbops.output.reports.status import StatusReport
from dbops.steps.inspect import Inspect


class HealthGate:
    name = "check"
    description = "fail when a health check fails or migrations are pending"
    undo = READS_ONLY
    policy_action: str | None = None

    def __init__(self, inspect: Inspect) -> None:
        self.inspect = inspect  # the step whose status report it checks

    def run(self, ctx: RunContext) -> StepOutcome:
        report = self.inspect.report
        assert report is not None, "the gate runs after its inspect step"
        failing = report.warnings()
        if failing:
            raise CheckFailed(
                f"status --check: {len(failing)} check(s) not passing: {'; '.join(failing)}",
                _remedy(report),
            )
        return StepOutcome(messages=["all checks passed"])


def _remedy(report: StatusReport) -> str:
    """The specific step first, in validate's words: changed files, then pending migrations."""
    m = report.migrations
    if m.edited_files or m.missing_files:
        return "Restore the changed migration files, or accept them: dbops migrate-repair"
    if m.pending:
        return f"Apply the {m.pending} pending migration(s): dbops migrate"
    return "Fix what the Health section lists"
