"""From an operation's name to the steps that run: built-in operations and declared pipelines.

Both are lists of steps. prepare() builds the list, puts the safety guard in front of
anything that changes the database (dbops.engine.policy), and turns --dry-run of a pipeline into
its plan: the steps, and the undo each one would register, without touching anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dbops.engine.pipeline import PipelineResult, StepOutcome
from dbops.errors import UsageError

if TYPE_CHECKING:
    from dbops.engine.context import RunContext
    from dbops.engine.pipeline import Step
    from dbops.output.render import Report

RESET_TITLE = "🔄 Resetting Database"


@dataclass
class Prepared:
    steps: list[Step]
    report_step: str | None  # whose data is the report; None: the pipeline's own report
    title: str = ""
    description: str = ""

    def report(self, ctx: RunContext, result: PipelineResult) -> Report | None:
        if self.report_step is not None:
            report: Report | None = ctx.step_data(self.report_step)
            _mention_safety_backup(report, result)
            return report
        from dbops.output.reports.pipeline import PipelineReport

        return PipelineReport.of(
            self.title,
            result.name,
            self.description,
            ctx.env.name,
            ctx.database(),
            result.steps,
            result.duration_s,
        )


def _mention_safety_backup(report: Report | None, result: PipelineResult) -> None:
    """A built-in operation's report names the automatic backup the policy added before it."""
    notes = getattr(report, "notes", None)
    for step in result.steps:
        if step.name == "backup" and step.status == "ok" and isinstance(notes, list):
            notes.append(f"Safety backup: {getattr(step.data, 'file', '')}")


def prepare(name: str, options: dict[str, Any], ctx: RunContext) -> Prepared:
    from dbops.engine.operations import OPERATIONS
    from dbops.engine.policy import Policy, arm

    options = dict(options)
    operation = OPERATIONS.get(name)
    force = False if operation is not None and operation.own_force else bool(options.pop("force", False))
    no_backup = bool(options.pop("no_backup", False))
    policy = Policy.of(ctx.env)
    if operation is not None and operation.report_step is not None:  # reports like the spec's
        steps = operation.build(**options)
        if options.get("dry_run"):  # its own dry run: the exact SQL, nothing changed
            return Prepared(steps, operation.report_step)
        return Prepared(arm(steps, policy, force=force, no_backup=no_backup), operation.report_step)
    dry_run = bool(options.pop("dry_run", False))
    if operation is not None:
        prepared = Prepared(operation.build(**options), None, RESET_TITLE)
    else:
        prepared = _declared(name, ctx)
    prepared.steps = arm(prepared.steps, policy, force=force, no_backup=no_backup, dry_run=dry_run)
    if dry_run:
        return Prepared([ShowPlan(name, prepared)], "plan")
    return prepared


def _declared(name: str, ctx: RunContext) -> Prepared:
    from dbops.engine.catalog import STEPS
    from dbops.steps.connect import Connect

    pipeline = ctx.config.pipelines.get(name)
    if pipeline is None:
        known = ", ".join(ctx.config.pipelines) or "none"
        raise UsageError(
            f"No pipeline named '{name}' in {ctx.config.shown(ctx.config.path)} (declared: {known})",
            "Declare it under pipelines: in dbops.yaml; dbops --list shows the tasks",
        )
    steps: list[Step] = [Connect()]
    for call in pipeline.steps:
        steps += STEPS[call.name].build(call.args)
    return Prepared(steps, None, f"🔗 Pipeline: {name}", pipeline.description)


class ShowPlan:
    """--dry-run of a pipeline: what would run and how each step would be undone."""

    name = "plan"
    description = "show the plan"

    def __init__(self, pipeline: str, prepared: Prepared) -> None:
        self.pipeline = pipeline
        self.prepared = prepared

    def run(self, ctx: RunContext) -> StepOutcome:
        from dbops.engine.catalog import UNDO_OF
        from dbops.output.reports.pipeline import PlannedStep, PlanReport

        planned = [
            PlannedStep(n, step.name, step.description, UNDO_OF.get(step.name, "none"))
            for n, step in enumerate(self.prepared.steps, 1)
        ]
        report = PlanReport(self.pipeline, self.prepared.description, ctx.env.name, ctx.database(), planned)
        refusal = next((r for s in self.prepared.steps if (r := getattr(s, "refusal", None))), None)
        if refusal is not None:  # the plan is shown, and the exit code says a real run is refused
            ctx.record(self.name, report)
            raise refusal
        return StepOutcome(data=report)
