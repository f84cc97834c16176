"""gate: fail the run when the status report is not healthy (status --check). Undo: none."""

from __future__ import annotations

from dbops.engine.context import RunContext
from dbops.engine.pipeline import StepOutcome
from dbops.errors import CheckFailed
from dbops.output.reports.status import StatusReport


class HealthGate:
    name = "check"
    description = "fail when a health check fails or migrations are pending"

    def __init__(self, report_of: str = "inspect") -> None:
        self.report_of = report_of

    def run(self, ctx: RunContext) -> StepOutcome:
        report = ctx.step_data(self.report_of)
        assert isinstance(report, StatusReport)
        failing = report.warnings()
        if failing:
            raise CheckFailed(
                f"status --check: {len(failing)} check(s) not passing: {'; '.join(failing)}",
                "Apply pending migrations (dbops migrate) and fix what the Health section lists",
            )
        return StepOutcome(messages=["all checks passed"])
