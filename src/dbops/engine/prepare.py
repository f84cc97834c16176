"""From an operation's name and options to the steps that run: built-in operations and declared
pipelines.

Both are lists of steps (dbops.engine.catalog). prepare() builds the list, applies the safety
policy to it (dbops.engine.policy), and turns --dry-run of reset or a pipeline into its plan:
the steps, and the undo each one would register, without touching anything.
"""

from __future__ import annotations

from dataclasses import dataclass

from dbops.engine.catalog import OPERATIONS, pipeline_step
from dbops.engine.context import RunContext
from dbops.engine.options import Options, Safety
from dbops.engine.pipeline import Step
from dbops.engine.policy import Policy, arm, lint_first
from dbops.engine.results import PipelineResult
from dbops.errors import UsageError
from dbops.output.render import Report
from dbops.steps.connect import Connect

RESET_TITLE = "🔄 Resetting Database"


@dataclass
class Prepared:
    steps: list[Step]
    report_step: str | None  # the step whose data is the report; None: the pipeline's own report
    title: str = ""
    description: str = ""

    def report(self, ctx: RunContext, result: PipelineResult) -> Report | None:
        """The operation's report of a run: of its end, or of its results so far (the live
        view's, result.running): the same objects either way."""
        if self.report_step is not None:
            report: Report | None = next((s.data for s in result.steps if s.name == self.report_step), None)
            _mention_safety_backup(report, result)
            return report
        from dbops.output.reports.pipeline import PipelineReport  # lazy: a built-in operation has its own

        return PipelineReport.of(
            self.title,
            result.name,
            self.description,
            ctx.env.name,
            ctx.database(),
            result.steps,
            result.duration_s,
            running=result.running,
        )


def _mention_safety_backup(report: Report | None, result: PipelineResult) -> None:
    """A built-in operation's report names the automatic backup the policy added before it."""
    notes = getattr(report, "notes", None)
    for step in result.steps:
        note = f"Safety backup: {getattr(step.data, 'file', '')}"
        if step.name == "backup" and step.status == "ok" and isinstance(notes, list) and note not in notes:
            notes.append(note)  # once, however often the live view asks for the report


def prepare(name: str, options: Options, safety: Safety, ctx: RunContext) -> Prepared:
    """The steps of a built-in operation (with its options) or of a pipeline declared in dbops.yaml."""
    operation = OPERATIONS.get(name)
    policy = Policy.of(ctx.env)
    force = safety.force and not (operation is not None and operation.force_is_own)
    if operation is None:
        prepared = _declared(name, ctx)
    else:
        steps = [*([Connect()] if operation.connects else []), *operation.build(options)]
        if operation.report_step is not None and getattr(options, "dry_run", False):
            # its own dry run (the exact SQL): nothing changes, so nothing to confirm or back up
            return Prepared([*lint_first(steps, policy)], operation.report_step)
        prepared = Prepared(steps, operation.report_step, RESET_TITLE)
    prepared.steps = arm(prepared.steps, policy, force=force, no_backup=safety.no_backup, dry_run=safety.plan)
    if safety.plan and prepared.report_step is None:
        from dbops.steps.plan import ShowPlan  # lazy: only a --dry-run of reset or a pipeline shows a plan

        return Prepared([ShowPlan(name, prepared.description, prepared.steps)], "plan")
    return prepared


def _declared(name: str, ctx: RunContext) -> Prepared:
    pipeline = ctx.config.pipelines.get(name)
    if pipeline is None:
        known = ", ".join(ctx.config.pipelines) or "none"
        raise UsageError(
            f"No pipeline named '{name}' in {ctx.config.shown(ctx.config.path)} (declared: {known})",
            "Declare it under pipelines: in dbops.yaml; dbops --list shows the tasks",
        )
    steps: list[Step] = [Connect()]
    for call in pipeline.steps:
        operation = pipeline_step(call.name)
        steps += operation.build(operation.from_pipeline(call.args))
    return Prepared(steps, None, f"🔗 Pipeline: {name}", pipeline.description)
