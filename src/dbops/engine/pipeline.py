"""The pipeline runner (its results: dbops.engine.results).

A step does one thing and may return its undo. The runner executes steps in order; when one
fails (or Ctrl-C arrives) it runs the undos registered so far in reverse order and reports
each of them. A step registers an undo either by returning it (StepOutcome.undo) or, as soon
as it has changed something, with ctx.add_undo(): then a step that fails part-way also takes
back its own partial work (a migrate that applied two of three migrations rolls back those two).
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from dbops.engine.results import ErrorInfo, PipelineResult, StepResult, UndoResult
from dbops.errors import DbopsError
from dbops.postgres.connection import database_error

if TYPE_CHECKING:
    from dbops.engine.context import RunContext


@dataclass(frozen=True)
class Undo:
    """How to take back what a step did. The action may return a note on what it did."""

    description: str
    action: Callable[[], str | None]


@dataclass
class StepOutcome:
    """What a step returns: its undo (if any), lines for the report, and data for the operation."""

    undo: Undo | None = None
    messages: list[str] = field(default_factory=list)
    data: Any = None


READS_ONLY = "none: it only reads"  # a step's undo, when it changes nothing


class Step(Protocol):
    """One thing a pipeline does. It says what its undo does (a plan shows it) and which policy
    action it counts as (reset, rollback, restore, seed, migrate; dbops.engine.policy)."""

    name: str
    description: str
    undo: str
    policy_action: str | None

    def run(self, ctx: RunContext) -> StepOutcome: ...


def reads_only(step: Step) -> bool:
    """Whether a step only reads: a confirmation may come after it."""
    return step.undo == READS_ONLY


def run_pipeline(name: str, steps: Sequence[Step], ctx: RunContext) -> PipelineResult:
    try:
        return _run(name, steps, ctx)
    finally:
        ctx.release_held()  # what steps held for the steps after them (the restore lock)


def _run(name: str, steps: Sequence[Step], ctx: RunContext) -> PipelineResult:
    started = time.monotonic()
    results: list[StepResult] = []
    running: list[Step] = []
    ctx.undos.clear()
    ctx.restored_to = None

    def so_far() -> PipelineResult:
        """The results as they stand, the running step's report so far included (the live view's)."""
        now = [StepResult(s.name, s.description, "running", data=ctx.partial) for s in running]
        took = time.monotonic() - started
        return PipelineResult(name, [*results, *now], [], None, False, took, running=True)

    ctx.follow(so_far)
    try:
        for number, step in enumerate(steps, 1):
            ctx.begin_step(step.name, number, of=(len(steps), step.description))
            running[:] = [step]
            results.append(_run_step(step, ctx))
            running.clear()
            ctx.report_grew()
            if results[-1].status != "ok":
                break
    except KeyboardInterrupt:  # between two steps: as if during the next one, before it began
        if len(results) < len(steps):
            upcoming = steps[len(results)]
            results.append(StepResult(upcoming.name, upcoming.description, "interrupted"))
    last = results[-1] if results else None
    interrupted = last is not None and last.status == "interrupted"
    error = last.error if last is not None else None
    results += [StepResult(s.name, s.description, "not run") for s in steps[len(results) :]]
    undos = _undo(ctx) if (error is not None or interrupted) else []
    return PipelineResult(name, results, undos, error, interrupted, time.monotonic() - started)


def _run_step(step: Step, ctx: RunContext) -> StepResult:
    t0 = time.monotonic()
    try:
        outcome = step.run(ctx)
    except KeyboardInterrupt:
        took = time.monotonic() - t0
        return StepResult(step.name, step.description, "interrupted", took, data=ctx.partial)
    except Exception as exc:  # every failure, expected or not, must still run the undos
        error = ErrorInfo.of(as_dbops_error(exc, ctx))
        took = time.monotonic() - t0
        # with what it reported before failing
        return StepResult(step.name, step.description, "failed", took, error=error, data=ctx.partial)
    if outcome.undo is not None:
        ctx.add_undo(outcome.undo)
    took = time.monotonic() - t0
    return StepResult(step.name, step.description, "ok", took, outcome.messages, data=outcome.data)


def _undo(ctx: RunContext) -> list[UndoResult]:
    """Reverse order; a failing undo is reported and the others still run. Once an undo has
    restored a backup of the pipeline, the undos of the steps after that backup are moot."""
    results = []
    for step_name, number, undo in reversed(ctx.undos):
        if ctx.restored_to is not None and number > ctx.restored_to:
            moot = f"nothing left to do: the backup of step {ctx.restored_to} was restored"
            results.append(UndoResult(step_name, number, undo.description, True, 0.0, note=moot))
            continue
        t0 = time.monotonic()
        ctx.undoing(step_name, number, undo.description)
        try:
            note = undo.action()
        except (Exception, KeyboardInterrupt) as exc:
            failure = as_dbops_error(exc, ctx) if isinstance(exc, Exception) else DbopsError("interrupted")
            took = time.monotonic() - t0
            results.append(
                UndoResult(step_name, number, undo.description, False, took, ErrorInfo.of(failure))
            )
            continue
        results.append(
            UndoResult(step_name, number, undo.description, True, time.monotonic() - t0, note=note)
        )
    return results


def as_dbops_error(exc: Exception, ctx: RunContext | None = None) -> DbopsError:
    """Expected failures pass through; a database error keeps its message; anything else is a bug."""
    if isinstance(exc, DbopsError):
        return exc
    if type(exc).__module__.startswith("psycopg"):
        return database_error(exc, ctx.target_if_known() if ctx else None)
    if ctx is not None:
        ctx.debug(traceback.format_exc())
    message = f"Unexpected error: {type(exc).__name__}: {exc}"
    if ctx is not None:
        message = ctx.scrub(message)
    return DbopsError(message, "This is a bug in dbops; DBOPS_DEBUG=1 prints the traceback")
