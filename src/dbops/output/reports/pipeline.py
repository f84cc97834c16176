"""The report of a pipeline (each step's own report, then the steps' outcomes) and of its plan."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dbops.engine.results import StepResult, StepStatus
from dbops.output import units
from dbops.output.render import Line, Style, heading

_MARKS: dict[StepStatus, tuple[Style, str]] = {
    "ok": ("ok", "✓"),
    "failed": ("fail", "✗"),
    "interrupted": ("fail", "✗"),
    "not run": ("dim", "·"),
    "running": ("dim", "…"),
}


@dataclass
class StepReport:
    number: int
    step: str
    status: StepStatus
    duration_s: float
    messages: list[str]
    report: Any  # the step's own report (a dataclass), if it has one


@dataclass
class PipelineReport:
    title: str
    pipeline: str
    description: str
    environment: str
    database: str
    steps: list[StepReport] = field(default_factory=list)
    duration_s: float = 0.0
    ok: bool = False
    running: bool = field(default=False, repr=False)  # the live view's: the steps' list comes at the end

    @classmethod
    def of(cls, title: str, pipeline: str, description: str, environment: str, database: str,
           results: list[StepResult], duration_s: float, *,
           running: bool = False) -> PipelineReport:  # fmt: skip
        steps = [
            StepReport(n, r.name, r.status, r.duration_s, r.messages, r.data if _reports(r.data) else None)
            for n, r in enumerate(results, 1)
        ]
        ok = all(r.status == "ok" for r in results)
        return cls(title, pipeline, description, environment, database, steps, duration_s, ok, running)

    def warnings(self) -> list[str]:
        return [w for s in self.steps if s.report is not None for w in s.report.warnings()]

    def lines(self) -> list[Line]:
        lines = heading(self.title)
        if self.description:
            lines.append(("dim", self.description))
        lines += [("", f"Environment: {self.environment}"), ("", f"Database: {self.database}")]
        for step in self.steps:
            if step.report is not None:
                lines += [("", ""), *step.report.lines()]
        if self.running:
            return lines
        lines += [("", ""), ("", "Steps:")]
        for step in self.steps:
            style, mark = _MARKS[step.status]
            timing = f" ({units.step_duration(step.duration_s)})" if step.status != "not run" else ""
            status = "" if step.status == "ok" else f" {step.status}"
            said = f": {'; '.join(step.messages)}" if step.messages else ""
            lines.append((style, f"{mark} {step.number}. {step.step}{status}{timing}{said}"))
        if self.ok:
            took = units.duration(self.duration_s)
            lines.append(("ok", f"Pipeline {self.pipeline} completed successfully! ({took})"))
        return lines


def _reports(data: Any) -> bool:
    return callable(getattr(data, "lines", None)) and callable(getattr(data, "warnings", None))


@dataclass
class PlannedStep:
    number: int
    step: str
    does: str
    undo: str


@dataclass
class PlanReport:
    pipeline: str
    description: str
    environment: str
    database: str
    steps: list[PlannedStep]

    def warnings(self) -> list[str]:
        return []

    def lines(self) -> list[Line]:
        lines = heading(f"🧭 Pipeline Plan: {self.pipeline} (dry run: nothing is changed)")
        if self.description:
            lines.append(("dim", self.description))
        lines += [("", f"Environment: {self.environment}"), ("", f"Database: {self.database}")]
        lines.append(("", "Steps, and the undo each one registers:"))
        for step in self.steps:
            style: Style = "fail" if step.does.startswith("refuse:") else ""
            lines.append((style, f"{step.number}. {step.step}: {step.does}"))
            lines.append(("dim", f"   undo: {step.undo}"))
        lines.append(("ok", "Dry run complete: nothing was changed."))
        return lines
