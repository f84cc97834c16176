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
from dbops.steps.backup import Backup
from dbops.steps.backup_cleanup import CleanupBackups
from dbops.steps.backup_list import ListBackups
from dbops.steps.baseline import Baseline, Repair
from dbops.steps.create import CreateMigration
from dbops.steps.drop import DropSchema
from dbops.steps.gate import HealthGate
from dbops.steps.inspect import Inspect
from dbops.steps.lint import Lint
from dbops.steps.migrate import Migrate
from dbops.steps.restore import CheckBackup, LockRestore, Restore
from dbops.steps.rollback import Rollback
from dbops.steps.seed import Seed
from dbops.steps.server import ServerControl
from dbops.steps.validate import Validate

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


def _status(opts: o.StatusOptions) -> list[Step]:
    inspect = Inspect()
    return [inspect, HealthGate(inspect)] if opts.check else [inspect]


def _reset(opts: o.ResetOptions) -> list[Step]:
    return [DropSchema(), Migrate(o.MigrateOptions()), *([Seed(o.SeedOptions())] if opts.seed else [])]


def _restore(opts: o.RestoreOptions) -> list[Step]:
    # the lock (and the rights) before the safety backup the policy puts in front of restore
    check, lock = CheckBackup(opts.file), LockRestore(in_place=opts.in_place)
    return [check, lock, Restore(check, lock, in_place=opts.in_place, jobs=opts.jobs)]


OPERATIONS: dict[str, Operation[Any]] = {
    op.name: op
    for op in (
        Operation(
            "server", o.ServerOptions, lambda opts: [ServerControl(opts.action)], "server", connects=False
        ),
        Operation(
            "migrate",
            o.MigrateOptions,
            lambda opts: [Migrate(opts)],
            "migrate",
            pipeline={"from": ("start", str), "to": ("end", str), "accept_changes": ("accept_changes", bool)},
            summary="apply pending migrations",
        ),
        Operation(
            "migrate-rollback",
            o.RollbackOptions,
            lambda opts: [Rollback(opts)],
            "rollback",
            pipeline={"steps": ("steps", int), "to": ("to", str)},
            summary="roll back the most recent migrations",
        ),
        Operation(
            "migrate-baseline",
            o.BaselineOptions,
            lambda opts: [Baseline(opts.migration_id)],
            "baseline",
        ),
        Operation("migrate-repair", o.RepairOptions, lambda opts: [Repair(opts.all_deleted)], "repair"),
        Operation(
            "migrate-create",
            o.CreateOptions,
            lambda opts: [CreateMigration(opts.migration_name)],
            "create",
            connects=False,
        ),
        Operation(
            "seed",
            o.SeedOptions,
            lambda opts: [Seed(opts)],
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
            lambda opts: [Validate(strict=opts.strict)],
            "validate",
            pipeline={"strict": ("strict", bool)},
            summary="compare the schema with the migrations",
        ),
        Operation(
            "lint",
            o.NoOptions,
            lambda opts: [Lint()],
            "lint",
            pipeline={},
            summary="check pending migrations for operations that lock or break production",
        ),
        Operation(
            "backup",
            o.BackupOptions,
            lambda opts: [Backup(opts)],
            "backup",
            pipeline={"keep": ("keep", bool)},
            summary="back up the database (a verified pg_dump)",
        ),
        Operation("restore", o.RestoreOptions, _restore, "check-backup"),  # it makes the report
        Operation("backup-list", o.NoOptions, lambda opts: [ListBackups()], "backup-list", connects=False),
        Operation(
            "backup-cleanup",
            o.CleanupOptions,
            lambda opts: [CleanupBackups(force=opts.delete)],
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
