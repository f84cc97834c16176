"""plan: --dry-run of reset or a pipeline: what would run and how each step would be undone,
after the checks a real run meets before its first change. Undo: none (it only reads)."""

from __future__ import annotations

from dbops.engine.context import RunContext
from dbops.engine.pipeline import READS_ONLY, Step, StepOutcome, reads_only
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
        report.checked = False
        ctx.report_so_far(report)  # shown above the error of a check that fails below
        # every check a real run meets before its first change: connecting (a URL that is not
        # set, a server that is down), and the steps that only read (lint) up to the first other
        for step in self.steps:
            if not reads_only(step):
                break
            step.run(ctx)
        report.database, report.checked = ctx.database(), True
        refusal = next((r for s in self.steps if (r := getattr(s, "refusal", None))), None)
        if refusal is not None:  # the plan is shown, and the exit code says a real run is refused
            raise refusal
        return StepOutcome(data=report)
