"""The fleet tasks' entry: an environment with ``fleet:`` runs the operation on each of its
targets (dbops.fleet.operation) and reports them in one fleet report; any other environment
runs it as usual (dbops.boundary), and refuses the fleet flags. Light on purpose: a run on one
database (dbops validate, status, migrate) imports none of the fleet's machinery."""

from __future__ import annotations

from dataclasses import dataclass

from dbops import oplog
from dbops.boundary import MakeOptions, run_operation
from dbops.config.loader import load_config
from dbops.config.model import Config
from dbops.engine.catalog import RULES
from dbops.engine.options import Safety
from dbops.engine.results import ErrorInfo
from dbops.errors import DbopsError, UsageError
from dbops.output.render import OperationResult, Output


@dataclass(frozen=True)
class FleetFlags:
    targets: str | None = None  # --targets: names or glob patterns, comma-separated
    jobs: int | None = None  # --jobs: sessions per server at once (default: the fleet's jobs:)
    shard: str | None = None  # --shard K/N, or auto (auto/N): the CI job's position
    retry_failed: bool = False

    def given(self) -> list[str]:
        flags = {"--targets": self.targets, "--jobs": self.jobs, "--shard": self.shard}
        return [f for f, v in flags.items() if v is not None] + (
            ["--retry-failed"] if self.retry_failed else []
        )


def run(
    name: str,
    options: MakeOptions,
    *,
    safety: Safety,
    env: str | None,
    config: str | None,
    json: bool,
    flags: FleetFlags,
) -> int:
    """The operation on the environment: a fleet run, or the usual single run."""
    try:
        cfg = load_config(RULES, config)
        environment = cfg.environment(env)
    except DbopsError:  # the usual run reports it, as it always has
        return run_operation(name, options, safety=safety, env=env, config=config, json=json)
    if environment.fleet is None:
        if flags.given():
            failure = UsageError(
                f"{' and '.join(flags.given())}: {environment.name} is not a fleet (it names one database)",
                f"Declare fleet: under environments.{environment.name} in dbops.yaml, or drop the flag",
            )
            return _refused(name, environment.name, failure, cfg, Output(json_mode=json))
        return run_operation(name, options, safety=safety, env=env, config=config, json=json, loaded=cfg)
    from dbops.fleet.operation import run_fleet  # lazy: only a fleet loads its machinery

    return run_fleet(name, options, safety=safety, cfg=cfg, environment=environment, json=json, flags=flags)


def _refused(name: str, environment: str, failure: DbopsError, cfg: Config, output: Output) -> int:
    result = OperationResult(name, environment, error=ErrorInfo.of(failure), exit_code=failure.exit_code)
    output.emit(result)
    oplog.append(cfg.state_dir, result, 0.0)
    return result.exit_code
