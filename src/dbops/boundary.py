"""The task boundary: config -> environment -> RunContext -> pipeline -> report -> exit code.

Every task calls run_operation(). An expected failure becomes one line and a hint on stderr
(or the JSON document) and an exit code; no traceback reaches the user.
"""

from __future__ import annotations

import time
from typing import Any

from dbops.errors import EXIT_INTERRUPTED, DbopsError


def run_operation(
    name: str,
    *,
    env: str | None = None,
    config: str | None = None,
    json: bool = False,
    force: bool = False,
    **options: Any,
) -> int:
    """Run a built-in operation and render its report; returns the exit code."""
    from dbops.config import load_config
    from dbops.context import RunContext
    from dbops.operations import build
    from dbops.output import OperationResult, Output
    from dbops.pipeline import ErrorInfo, run_pipeline

    started = time.monotonic()
    output = Output(json_mode=json)
    result = OperationResult(name, environment=env)
    state_dir = None
    ctx: RunContext | None = None
    try:
        cfg = load_config(config)
        state_dir = cfg.state_dir
        environment = cfg.environment(env)
        result.environment = environment.name
        ctx = RunContext(cfg, environment, force=force)
        operation, steps = build(name, options)
        pipeline = run_pipeline(name, steps, ctx)
        result.pipeline = pipeline
        result.report = pipeline.data(operation.report_step)
        result.error = pipeline.error
        result.exit_code = pipeline.exit_code
        result.database = ctx.database_name() if ctx.target_if_known() is None else ctx.target().dbname
    except DbopsError as exc:
        result.error = ErrorInfo.of(exc)
        result.exit_code = exc.exit_code
    except KeyboardInterrupt:
        result.error = ErrorInfo("Interrupted", "Nothing was left half-done", EXIT_INTERRUPTED, "Interrupted")
        result.exit_code = EXIT_INTERRUPTED
    finally:
        if ctx is not None:
            ctx.close()
    output.emit(result)
    if state_dir is not None:
        from dbops import oplog

        oplog.append(state_dir, result, time.monotonic() - started)
    return result.exit_code
