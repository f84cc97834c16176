"""The built-in operations, each a pipeline of steps plus the step whose data is its report.

dbops.engine.prepare.prepare() puts the safety guard in front of the steps that need it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dbops.engine.pipeline import Step
from dbops.errors import UsageError

if TYPE_CHECKING:
    from dbops.steps.server import Action


@dataclass(frozen=True)
class Operation:
    name: str
    build: Callable[..., list[Step]]
    report_step: str | None  # None: the pipeline's own report, of every step
    own_force: bool = False  # its --force is its own flag, not the one that skips the confirmation


def _status(check: bool = False) -> list[Step]:
    from dbops.steps.connect import Connect
    from dbops.steps.gate import HealthGate
    from dbops.steps.inspect import Inspect

    steps: list[Step] = [Connect(), Inspect()]
    if check:
        steps.append(HealthGate("inspect"))
    return steps


def _server(start: bool = False, stop: bool = False) -> list[Step]:
    from dbops.steps.server import ServerControl

    if start and stop:
        raise UsageError("Choose one of --start and --stop", "dbops server --help")
    action: Action = "stop" if stop else "start" if start else "show"
    return [ServerControl(action)]


def _migrate(
    dry_run: bool = False, start: str | None = None, end: str | None = None, accept_changes: bool = False
) -> list[Step]:
    from dbops.steps.connect import Connect
    from dbops.steps.migrate import Migrate

    return [Connect(), Migrate(dry_run=dry_run, start=start, end=end, accept=accept_changes)]


def _rollback(steps: int = 1, to: str | None = None, dry_run: bool = False) -> list[Step]:
    from dbops.steps.connect import Connect
    from dbops.steps.rollback import Rollback

    return [Connect(), Rollback(steps=steps, to=to, dry_run=dry_run)]


def _baseline(migration_id: str) -> list[Step]:
    from dbops.steps.baseline import Baseline
    from dbops.steps.connect import Connect

    return [Connect(), Baseline(migration_id)]


def _repair() -> list[Step]:
    from dbops.steps.baseline import Repair
    from dbops.steps.connect import Connect

    return [Connect(), Repair()]


def _seed(clear: bool = False) -> list[Step]:
    from dbops.steps.connect import Connect
    from dbops.steps.seed import Seed

    return [Connect(), Seed(clear=clear)]


def _reset(seed: bool = False) -> list[Step]:
    from dbops.steps.connect import Connect
    from dbops.steps.drop import DropSchema
    from dbops.steps.migrate import Migrate
    from dbops.steps.seed import Seed

    return [Connect(), DropSchema(), Migrate(), *([Seed()] if seed else [])]


def _validate(strict: bool = False) -> list[Step]:
    from dbops.steps.connect import Connect
    from dbops.steps.validate import Validate

    return [Connect(), Validate(strict=strict)]


def _lint() -> list[Step]:
    from dbops.steps.connect import Connect
    from dbops.steps.lint import Lint

    return [Connect(), Lint()]


def _create(migration_name: str) -> list[Step]:
    from dbops.steps.create import CreateMigration

    return [CreateMigration(migration_name)]


def _backup(
    format: str = "plain",
    compress: str = "gzip",
    jobs: int | None = None,
    verify: str = "file",
    keep: bool = False,
) -> list[Step]:
    from dbops.steps.backup import Backup
    from dbops.steps.connect import Connect

    return [Connect(), Backup(format=format, compress=compress, jobs=jobs, verify=verify, keep=keep)]


def _restore(file: str, in_place: bool = False, jobs: int | None = None) -> list[Step]:
    from dbops.steps.connect import Connect
    from dbops.steps.restore import CheckBackup, LockRestore, Restore

    # None: not given (the tasks pass --jobs 0, its default, as None): pg_restore's one at a time
    if jobs is not None and (jobs < 1 or in_place):
        raise UsageError("--jobs takes a count of 1 or more, and not with --in-place", "dbops restore --help")
    # the lock (and the rights) before the safety backup the policy puts in front of restore
    return [
        Connect(),
        CheckBackup(file),
        LockRestore(in_place=in_place),
        Restore(in_place=in_place, jobs=jobs),
    ]


def _backup_list() -> list[Step]:
    from dbops.steps.backup_list import ListBackups

    return [ListBackups()]


def _backup_cleanup(force: bool = False) -> list[Step]:
    from dbops.steps.backup_cleanup import CleanupBackups

    return [CleanupBackups(force=force)]


OPERATIONS: dict[str, Operation] = {
    "status": Operation("status", _status, "inspect"),
    "server": Operation("server", _server, "server"),
    "migrate": Operation("migrate", _migrate, "migrate"),
    "migrate-rollback": Operation("migrate-rollback", _rollback, "rollback"),
    "migrate-baseline": Operation("migrate-baseline", _baseline, "baseline"),
    "migrate-repair": Operation("migrate-repair", _repair, "repair"),
    "migrate-create": Operation("migrate-create", _create, "create"),
    "seed": Operation("seed", _seed, "seed"),
    "reset": Operation("reset", _reset, None),
    "validate": Operation("validate", _validate, "validate"),
    "lint": Operation("lint", _lint, "lint"),
    "backup": Operation("backup", _backup, "backup"),
    "restore": Operation("restore", _restore, "restore"),
    "backup-list": Operation("backup-list", _backup_list, "backup-list"),
    "backup-cleanup": Operation("backup-cleanup", _backup_cleanup, "backup-cleanup", own_force=True),
}
