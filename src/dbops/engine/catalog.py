"""Every operation dbops runs, in one table: its options, its steps, its report, and whether a
pipeline in dbops.yaml may name it as a step (with which arguments).

An operation is a list of steps (dbops.steps), built from its options (dbops.engine.options).
A built-in operation connects first where it needs the database; a declared pipeline connects
once, then runs the steps of each operation it names. What a step's undo does, and which
policy action it counts as, each step class says itself (its ``undo`` and ``action``).

A new operation plugs in with one entry in OPERATIONS; config checks the pipelines of
dbops.yaml against PIPELINE_STEPS when it loads them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from dbops.config.model import PipelineRules
from dbops.engine import options as o
from dbops.engine.pipeline import Step

# a dbops.yaml argument -> (the option it sets, its type: bool, int or str)
Arguments = Mapping[str, tuple[str, type]]


Opts = TypeVar("Opts")


@dataclass(frozen=True)
class Operation(Generic[Opts]):
    name: str
    options: type[Opts]  # its frozen options dataclass (dbops.engine.options)
    build: Callable[[Opts], list[Step]]  # the steps after connecting
    report_step: str | None  # whose data is the report; None: the pipeline's own report, of every step
    connects: bool = True  # a Connect step first (the operations that need the database)
    pipeline: Arguments | None = None  # usable as a step of a declared pipeline, with these arguments
    summary: str = ""  # what it does, as a pipeline step
    force_is_own: bool = False  # its --force is its own option, not the one that skips the confirmation
    arguments: Mapping[str, type] = field(init=False)

    def __post_init__(self) -> None:
        args = {key: kind for key, (_, kind) in (self.pipeline or {}).items()}
        object.__setattr__(self, "arguments", args)

    def from_pipeline(self, args: Mapping[str, Any]) -> Opts:
        """Its options from a dbops.yaml step's arguments (already checked against their types)."""
        assert self.pipeline is not None
        return self.options(**{self.pipeline[key][0]: value for key, value in args.items()})


# Each builder imports its own steps (a lazy import, on purpose): an operation loads only what
# it runs, so dbops status does not pay for the backup, restore, seed and validate machinery.


def _status(opts: o.StatusOptions) -> list[Step]:
    from dbops.steps.inspect import Inspect  # lazy: only what this operation runs

    inspect = Inspect()
    if not opts.check:
        return [inspect]
    from dbops.steps.gate import HealthGate  # lazy: only status --check gates on the health checks

    return [inspect, HealthGate(inspect)]


def _server(opts: o.ServerOptions) -> list[Step]:
    from dbops.steps.server import ServerControl  # lazy: only what this operation runs

    return [ServerControl(opts.action)]


def _migrate(opts: o.MigrateOptions) -> list[Step]:
    from dbops.steps.migrate import Migrate  # lazy: only what this operation runs

    return [Migrate(opts)]


def _rollback(opts: o.RollbackOptions) -> list[Step]:
    from dbops.steps.rollback import Rollback  # lazy: only what this operation runs

    return [Rollback(opts)]


def _baseline(opts: o.BaselineOptions) -> list[Step]:
    from dbops.steps.baseline import Baseline  # lazy: only what this operation runs

    return [Baseline(opts.migration_id)]


def _repair(opts: o.RepairOptions) -> list[Step]:
    from dbops.steps.baseline import Repair  # lazy: only what this operation runs

    return [Repair(opts.all_deleted)]


def _create(opts: o.CreateOptions) -> list[Step]:
    from dbops.steps.create import CreateMigration  # lazy: only what this operation runs

    return [CreateMigration(opts.migration_name)]


def _seed(opts: o.SeedOptions) -> list[Step]:
    from dbops.steps.seed import Seed  # lazy: only what this operation runs

    return [Seed(opts)]


def _reset(opts: o.ResetOptions) -> list[Step]:
    from dbops.steps.drop import DropSchema  # lazy: only what this operation runs
    from dbops.steps.migrate import Migrate
    from dbops.steps.seed import Seed

    return [DropSchema(), Migrate(o.MigrateOptions()), *([Seed(o.SeedOptions())] if opts.seed else [])]


def _validate(opts: o.ValidateOptions) -> list[Step]:
    from dbops.steps.validate import Validate  # lazy: only what this operation runs

    return [Validate(strict=opts.strict)]


def _lint(opts: o.NoOptions) -> list[Step]:
    from dbops.steps.lint import Lint  # lazy: only what this operation runs

    return [Lint()]


def _backup(opts: o.BackupOptions) -> list[Step]:
    from dbops.steps.backup import Backup  # lazy: only what this operation runs

    return [Backup(opts)]


def _restore(opts: o.RestoreOptions) -> list[Step]:
    from dbops.steps.restore import CheckBackup, LoadRestore, LockRestore, Restore  # lazy: only what it runs

    # the lock (and the rights) before the safety backup the policy puts in front of restore;
    # through a scratch database, its load runs while that backup is taken
    check, lock = CheckBackup(opts.file), LockRestore(in_place=opts.in_place)
    if opts.in_place:
        return [check, lock, Restore(check, lock, in_place=True, jobs=opts.jobs)]
    loading = LoadRestore(check, lock, jobs=opts.jobs)
    return [check, lock, loading, Restore(check, lock, jobs=opts.jobs, loaded=loading)]


def _backup_list(opts: o.NoOptions) -> list[Step]:
    from dbops.steps.backup_list import ListBackups  # lazy: only what this operation runs

    return [ListBackups()]


def _backup_cleanup(opts: o.CleanupOptions) -> list[Step]:
    from dbops.steps.backup_cleanup import CleanupBackups  # lazy: only what this operation runs

    return [CleanupBackups(force=opts.delete)]


OPERATIONS: dict[str, Operation[Any]] = {
    op.name: op
    for op in (
        Operation("server", o.ServerOptions, _server, "server", connects=False),
        Operation(
            "migrate",
            o.MigrateOptions,
            _migrate,
            "migrate",
            pipeline={"from": ("start", str), "to": ("end", str), "accept_changes": ("accept_changes", bool)},
            summary="apply pending migrations",
        ),
        Operation(
            "migrate-rollback",
            o.RollbackOptions,
            _rollback,
            "rollback",
            pipeline={"steps": ("steps", int), "to": ("to", str)},
            summary="roll back the most recent migrations",
        ),
        Operation(
            "migrate-baseline",
            o.BaselineOptions,
            _baseline,
            "baseline",
        ),
        Operation("migrate-repair", o.RepairOptions, _repair, "repair"),
        Operation(
            "migrate-create",
            o.CreateOptions,
            _create,
            "create",
            connects=False,
        ),
        Operation(
            "seed",
            o.SeedOptions,
            _seed,
            "seed",
            pipeline={"clear": ("clear", bool)},
            summary="load the seed data",
        ),
        Operation(
            "reset",
            o.ResetOptions,
            _reset,
            None,
            pipeline={},
            summary="drop every object of the application's schemas, then migrate",
        ),
        Operation(
            "status",
            o.StatusOptions,
            _status,
            "inspect",
            pipeline={"check": ("check", bool)},
            summary="show migrations, schema, data and health",
        ),
        Operation(
            "validate",
            o.ValidateOptions,
            _validate,
            "validate",
            pipeline={"strict": ("strict", bool)},
            summary="compare the schema with the migrations",
        ),
        Operation(
            "lint",
            o.NoOptions,
            _lint,
            "lint",
            pipeline={},
            summary="check pending migrations for operations that lock or break production",
        ),
        Operation(
            "backup",
            o.BackupOptions,
            _backup,
            "backup",
            pipeline={"keep": ("keep", bool)},
            summary="back up the database (a verified pg_dump)",
        ),
        Operation("restore", o.RestoreOptions, _restore, "check-backup"),  # it makes the report
        Operation("backup-list", o.NoOptions, _backup_list, "backup-list", connects=False),
        Operation(
            "backup-cleanup",
            o.CleanupOptions,
            _backup_cleanup,
            "backup-cleanup",
            connects=False,
            force_is_own=True,
        ),
    )
}

# What a pipeline in dbops.yaml may name: step -> its arguments and their types (for dbops.config).
# A pipeline step goes by its operation's short name (rollback, not migrate-rollback).
PIPELINE_STEPS: dict[str, Mapping[str, type]] = {
    name.removeprefix("migrate-"): op.arguments for name, op in OPERATIONS.items() if op.pipeline is not None
}


# dbops.yaml's pipelines are checked against these when it loads (dbops.config.loader); the
# reserved names are the built-in tasks' (and run, which runs a pipeline by name).
RULES = PipelineRules(PIPELINE_STEPS, frozenset([*OPERATIONS, "run"]))


def pipeline_step(name: str) -> Operation[Any]:
    """The operation a dbops.yaml pipeline step names (config has checked that it exists)."""
    return OPERATIONS.get(name) or OPERATIONS[f"migrate-{name}"]
