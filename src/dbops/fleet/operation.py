"""One operation on a fleet: the targets chosen (--targets, --shard, --retry-failed), what the
policy refuses refused once before any target starts, the waves run (dbops.fleet.runner), and
the fleet report with a line of the operation log per target."""

from __future__ import annotations

import threading
import time
import uuid
from typing import TYPE_CHECKING

from dbops import oplog, redact
from dbops.boundary import MakeOptions, sigterm_as_interrupt
from dbops.config.model import Config, Environment
from dbops.engine.context import RunContext
from dbops.engine.options import Safety
from dbops.engine.pipeline import as_dbops_error
from dbops.engine.prepare import prepare
from dbops.engine.results import ErrorInfo
from dbops.errors import EXIT_INTERRUPTED, PolicyRefused, UsageError
from dbops.fleet import retry, rollout, shard
from dbops.fleet.live import live
from dbops.fleet.runner import FleetRun, Progress, sessions_per_target
from dbops.fleet.summary import one_line
from dbops.fleet.targets import FleetMember, resolve, select
from dbops.output.render import OperationResult, Output, Style
from dbops.output.reports.fleet import NOT_STARTED, FleetReport
from dbops.steps.confirm import Guard

if TYPE_CHECKING:
    from dbops.fleet.command import FleetFlags


def run_fleet(
    name: str,
    options: MakeOptions,
    *,
    safety: Safety,
    cfg: Config,
    environment: Environment,
    json: bool,
    flags: FleetFlags,
) -> int:
    started = time.monotonic()
    redact.remember_environment()
    output = Output(json_mode=json)
    result = OperationResult(name, environment.name)
    with sigterm_as_interrupt():
        try:
            _run(result, name, options, safety, cfg, environment, flags, output, started)
        except Exception as exc:  # expected failures (and any bug): one line, no traceback
            failure = as_dbops_error(exc)
            result.error = ErrorInfo.of(failure)
            result.exit_code = failure.exit_code
            oplog.append(cfg.state_dir, result, time.monotonic() - started)
        except KeyboardInterrupt:  # outside the waves (the runner handles it within them)
            hint = "Each target that ran is whole; the operation log has a line for each"
            result.error = ErrorInfo("Interrupted", hint, EXIT_INTERRUPTED, "Interrupted")
            result.exit_code = EXIT_INTERRUPTED
            result.report = None
    output.emit(result)
    return result.exit_code


def _run(
    result: OperationResult,
    name: str,
    options: MakeOptions,
    safety: Safety,
    cfg: Config,
    environment: Environment,
    flags: FleetFlags,
    output: Output,
    started: float,
) -> None:
    fleet = environment.fleet
    assert fleet is not None
    chosen = shard.parse(flags.shard) if flags.shard else None
    sharded = f"{chosen[0]}/{chosen[1]}" if chosen else None  # --shard auto as the slice it took
    members = select(resolve(environment, fleet), flags.targets)
    if chosen is not None:
        names = set(shard.pick([m.name for m in members], chosen))
        members = [m for m in members if m.name in names]
    if flags.retry_failed:
        members = _to_retry(members, cfg, name, environment)
    jobs = flags.jobs or fleet.jobs
    waves = rollout.plan([m.name for m in members], members, fleet.rollout, jobs)
    _refuse_small_budget(name, environment, waves, jobs, sessions_per_target(name, options()))
    report = FleetReport(
        name, environment.name, fleet.source(), jobs, sharded, flags.targets, flags.retry_failed
    )
    result.report = report
    if not members:
        report.duration_s = time.monotonic() - started
        return
    _refuse_questions(cfg, environment, members[0], name, options, safety)
    run_id = uuid.uuid4().hex[:12]

    lines = not output.json_mode and not output.animated  # a CI log: a line per target as it ends
    writing = threading.Lock()

    def log(member: FleetMember, wave: str, target_result: OperationResult, took: float) -> None:
        target_result.database = member.name
        extra = {"fleet_run": run_id, "target": member.name, "wave": wave, "shard": sharded}
        oplog.append(cfg.state_dir, target_result, took, extra)
        if lines:
            mark: tuple[Style, str] = ("ok", "✓") if target_result.ok else ("fail", "✗")
            line = f"{mark[1]} {member.name}: {one_line(target_result)} ({took:.1f}s)"
            with writing:
                output.write([(mark[0], line)], output.stdout)

    progress = Progress(len(members))
    runner = FleetRun(cfg, environment, name, options, safety, progress, log)
    with live(output.animated, f"{name} on {environment.name}", progress, output.stdout):
        report.targets, report.waves = runner.run(waves)
    for outcome in report.targets:
        if outcome.state == NOT_STARTED:
            skipped = OperationResult(name, environment.name, database=outcome.name)
            extra = {
                "fleet_run": run_id,
                "target": outcome.name,
                "wave": outcome.wave,
                "outcome": NOT_STARTED,
            }
            oplog.append(cfg.state_dir, skipped, 0.0, {**extra, "shard": sharded})
    report.duration_s = time.monotonic() - started
    failed = report.failed()
    never = report.not_started()
    if runner.stop.is_set():
        result.exit_code = EXIT_INTERRUPTED
        result.error = ErrorInfo(
            f"Interrupted: {len(never)} target(s) never started",
            f"The targets that ran are whole; dbops {name} --env {environment.name} --retry-failed "
            "runs the rest",
            EXIT_INTERRUPTED,
            "Interrupted",
        )
    elif failed or never:
        result.exit_code = max([t.exit_code for t in failed] or [1])
        what = f"{len(failed)} of {len(report.targets)} target(s) failed"
        if never:
            what += f", {len(never)} never started (a wave failed)"
        result.error = ErrorInfo(
            what,
            f"dbops {name} --env {environment.name} --retry-failed reruns only those, once fixed",
            result.exit_code,
            "FleetFailed",
        )


def _refuse_small_budget(
    name: str, environment: Environment, waves: list[rollout.Planned[FleetMember]], jobs: int, need: int
) -> None:
    """--jobs is a budget of sessions per server: one that cannot hold a target's need runs none
    (refused before the report: nothing ran)."""
    small = next((w for w in waves if w.members and w.budget < need), None)
    if small is None:
        return
    where = f"the wave {small.wave.name}'s jobs: {small.budget}" if small.budget < jobs else f"--jobs {jobs}"
    hint = (
        f"Give --jobs {need} or more (and jobs: {need} or more to each wave of {environment.name} "
        "that sets it)"
    )
    if name == "backup":  # its --jobs is pg_dump's
        where = f"jobs: {small.budget}"
        hint = (
            f"Set jobs: {need} or more in the fleet of {environment.name} in dbops.yaml, "
            "or give pg_dump fewer --jobs"
        )
    raise UsageError(
        f"{where}: a target of {name} holds up to {need} sessions at once, and --jobs is a budget of "
        "sessions per server",
        hint,
    )


def _to_retry(
    members: list[FleetMember], cfg: Config, name: str, environment: Environment
) -> list[FleetMember]:
    failed = retry.last_failed(cfg.state_dir, name, environment.name)
    if failed is None:
        raise UsageError(
            f"--retry-failed: the operation log holds no fleet run of {name} on {environment.name}",
            f"Run it first: dbops {name} --env {environment.name}",
        )
    wanted = set(failed)
    return [m for m in members if m.name in wanted]


def _refuse_questions(
    cfg: Config,
    environment: Environment,
    member: FleetMember,
    name: str,
    options: MakeOptions,
    safety: Safety,
) -> None:
    """What the policy refuses is refused once for the fleet, before any target starts; and
    a fleet run asks no question per target: what needs a confirmation needs --force."""
    ctx = RunContext(cfg, member.environment(environment))
    try:
        steps = prepare(name, options(), safety, ctx).steps
    finally:
        ctx.close()
    asking = [a for s in steps if isinstance(s, Guard) and not s.force for a in s.to_confirm]
    if asking:
        raise PolicyRefused(
            f"{' and '.join(dict.fromkeys(asking)).capitalize()} on the fleet {environment.name} needs "
            "confirmation, and a fleet run asks no question per target",
            "Pass --force if you mean it (where the environment's policy accepts it)",
        )
