"""gate: fail the run when the status report is not healthy (status --check). Undo: none."""

from __future__ import annotations

from dbops.engine.context import RunContext
from dbops.engine.pipeline import READS_ONLY, StepOutcome
from dbops.errors import CheckFailed
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
                "Apply pending migrations (dbops migrate) and fix what the Health section lists",
            )
        return StepOutcome(messages=["all checks passed"])
