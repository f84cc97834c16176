"""plan: --dry-run of reset or a pipeline: what would run and how each step would be undone.
Undo: none (it only reads)."""

from __future__ import annotations

from dbops.engine.context import RunContext
from dbops.engine.pipeline import READS_ONLY, Step, StepOutcome
from dbops.output.reports.pipeline import PlannedStep, PlanReport


class ShowPlan:
    name = "plan"
    description = "show the plan"
    undo = READS_ONLY
    policy_action: str | None = None

    def __init__(self, pipeline: str, description: str, steps: list[Step]) -> None:
        self.pipeline = pipeline
        self.pipeline_description = description
        self.steps = steps  # as a real run would run them, with the policy applied

    def run(self, ctx: RunContext) -> StepOutcome:
        planned = [
            PlannedStep(n, step.name, step.description, step.undo) for n, step in enumerate(self.steps, 1)
        ]
        report = PlanReport(self.pipeline, self.pipeline_description, ctx.env.name, ctx.database(), planned)
        refusal = next((r for s in self.steps if (r := getattr(s, "refusal", None))), None)
        if refusal is not None:  # the plan is shown, and the exit code says a real run is refused
            ctx.report_so_far(report)
            raise refusal
        return StepOutcome(data=report)
