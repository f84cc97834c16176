"""The task boundary: config -> environment -> RunContext -> pipeline -> report -> exit code.

Every task calls run_operation(). An expected failure becomes one line and a hint on stderr
(or the JSON document) and an exit code; no traceback reaches the user.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from dbops import oplog, redact
from dbops.config.loader import load_config
from dbops.config.model import Config, Environment
from dbops.engine.catalog import RULES
from dbops.engine.context import RunContext
from dbops.engine.options import Options, Safety
from dbops.engine.pipeline import as_dbops_error, run_pipeline
from dbops.engine.prepare import prepare
from dbops.engine.results import ErrorInfo, PipelineResult
from dbops.errors import EXIT_INTERRUPTED, UsageError
from dbops.output import live
from dbops.output.render import OperationResult, Output

# An operation's options, built by the boundary from the task's flags (dbops.engine.options):
# a flag that its checks refuse is then reported like any other failure.
MakeOptions = Callable[[], Options]


def run_operation(
    name: str,
    options: MakeOptions,
    *,
    safety: Safety,
    env: str | None = None,
    config: str | None = None,
    json: bool = False,
    loaded: Config | None = None,
) -> int:
    """Run an operation (built-in, or a pipeline of dbops.yaml) and render its report; returns
    the exit code. `loaded`: dbops.yaml as the caller has already read it (else it is read here)."""
    started = time.monotonic()
    redact.remember_environment()
    result = OperationResult(name, environment=env)
    output = Output(json_mode=json)
    with sigterm_as_interrupt():
        state_dir = _execute(result, options, safety, env=env, config=config, output=output, loaded=loaded)
    output.emit(result)
    if state_dir is not None:
        oplog.append(state_dir, result, time.monotonic() - started)
    return result.exit_code


def run_across_environments(
    name: str,
    options: MakeOptions,
    *,
    safety: Safety,
    config: str | None = None,
    json: bool = False,
    include_protected: bool = False,
) -> int:
    """--all-environments: one report per environment; non-zero if any of them failed."""
    output = Output(json_mode=json)
    try:
        cfg = load_config(RULES, config)
    except Exception as exc:
        failure = as_dbops_error(exc)
        result = OperationResult(name, None, error=ErrorInfo.of(failure), exit_code=failure.exit_code)
        output.emit(result)
        return result.exit_code
    fleets = [e.name for e in cfg.environments.values() if e.fleet is not None]  # dbops.fleet runs those
    chosen = [
        e.name
        for e in cfg.environments.values()
        if (include_protected or not e.protected) and e.name not in fleets
    ]
    results = []
    for env_name in chosen:
        started = time.monotonic()
        result = OperationResult(name, environment=env_name)
        with sigterm_as_interrupt():
            state_dir = _execute(result, options, safety, env=env_name, config=config, output=output)
        if not json:
            output.emit(result)
        if state_dir is not None:
            oplog.append(state_dir, result, time.monotonic() - started)
        results.append(result)
        if result.exit_code == EXIT_INTERRUPTED:
            break
    skipped = [e.name for e in cfg.environments.values() if e.name not in chosen and e.name not in fleets]
    code = max((r.exit_code for r in results), default=0)
    if json:
        output.emit_many(name, results, skipped)
    elif skipped:
        output.note(f"Skipped protected environment(s): {', '.join(skipped)} (add --include-protected)")
    if fleets and not json:
        output.note(f"Skipped fleet environment(s): {', '.join(fleets)} (run each with --env)")
    return code


def _execute(
    result: OperationResult,
    options: MakeOptions,
    safety: Safety,
    *,
    env: str | None,
    config: str | None,
    output: Output,
    loaded: Config | None = None,
) -> Path | None:
    """Fill result in; returns the project's state folder once the config is known. `output`
    shows the run as it goes (dbops.output.live), then the final report."""
    state_dir = None
    try:
        cfg = loaded or load_config(RULES, config)
        state_dir = cfg.state_dir
        environment = cfg.environment(env)
        if environment.fleet is not None:  # the fleet operations go to dbops.fleet instead
            raise _not_on_a_fleet(result.operation, environment.name)
        execute_in(result, cfg, environment, options, safety, output)
    except Exception as exc:  # expected failures, and any bug: one line, no traceback
        failure = as_dbops_error(exc)
        result.error = ErrorInfo.of(failure)
        result.exit_code = failure.exit_code
    return state_dir


def _not_on_a_fleet(operation: str, environment: str) -> UsageError:
    return UsageError(
        f"{operation} runs on one database; {environment} is a fleet of many",
        "Run it through an environment whose url names that one database; on a fleet dbops runs "
        "migrate, migrate-rollback, status, validate, lint, seed, backup, backup-list and pipelines",
    )


def execute_in(
    result: OperationResult,
    cfg: Config,
    environment: Environment,
    options: MakeOptions,
    safety: Safety,
    output: Output,
) -> None:
    """Run the operation on one environment of a loaded config and fill result in (a fleet
    runs each target through it, with the target's environment and an output that shows
    nothing as it goes: the fleet report says it all)."""
    ctx: RunContext | None = None
    try:
        result.environment = environment.name
        ctx = RunContext(cfg, environment, interactive=output.animated)
        result.database = ctx.database()  # as far as known now, for a refusal's log line
        prepared = prepare(result.operation, options(), safety, ctx)
        run = ctx
        with live.follow(output, lambda so_far: prepared.report(run, so_far)) as ctx.watch:
            pipeline = run_pipeline(result.operation, prepared.steps, ctx)
        result.pipeline = pipeline
        result.report = prepared.report(ctx, pipeline)
        result.error = _interrupted(pipeline) if pipeline.interrupted else _failed(pipeline)
        result.exit_code = pipeline.exit_code
        result.database = ctx.database()
    except Exception as exc:  # expected failures, and any bug outside the pipeline: one line, no traceback
        failure = as_dbops_error(exc, ctx)
        result.error = ErrorInfo.of(failure)
        result.exit_code = failure.exit_code
    except KeyboardInterrupt:
        result.error = ErrorInfo(
            "Interrupted", "Nothing had been changed yet", EXIT_INTERRUPTED, "Interrupted"
        )
        result.exit_code = EXIT_INTERRUPTED
    finally:
        if ctx is not None:
            ctx.close()


def _interrupted(pipeline: PipelineResult) -> ErrorInfo:
    if not pipeline.undos and not any(s.status == "ok" or s.data is not None for s in pipeline.steps):
        stopped = next((s for s in pipeline.steps if s.status == "interrupted"), None)
        hint = f"It stopped during {stopped.name if stopped else 'the run'}, before any step had finished"
    elif not pipeline.undos:
        hint = "The report above shows what was done before the interruption"
    elif all(undo.ok for undo in pipeline.undos):
        hint = "What the steps had changed was undone"
    else:
        hint = _undo_failed(pipeline)
    return ErrorInfo("Interrupted", hint, pipeline.exit_code, "Interrupted")


def _failed(pipeline: PipelineResult) -> ErrorInfo | None:
    """The failing step's error; when an undo failed too, its hint says what to do next."""
    error = pipeline.error
    if error is None or all(undo.ok for undo in pipeline.undos):
        return error
    hint = f"{error.hint.rstrip('.')}. {_undo_failed(pipeline)}" if error.hint else _undo_failed(pipeline)
    return ErrorInfo(error.message, hint, pipeline.exit_code, error.kind)


def _undo_failed(pipeline: PipelineResult) -> str:
    failed = next(undo for undo in pipeline.undos if not undo.ok)
    advice = failed.error.hint if failed.error and failed.error.hint else "read the report above"
    return f"Undo of step {failed.number} ({failed.step}) did not complete, attention needed: {advice}"


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """A CI job cancelled with SIGTERM gets the same treatment as Ctrl-C: undo, then exit 130."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
