"""Each operation's options: one frozen dataclass per operation, built once from the task's flags.

A task (dbops.cli.tasks) builds its operation's options from its flags; the checks that
need no database run here, when the boundary builds them, so a bad flag is a usage error
(exit 2) reported like any other failure (text or JSON, and the operation log). The engine's
catalog turns them into steps. The flags that the safety policy reads (--force, --no-backup,
the --dry-run of a plan) are not an operation's own: they travel as Safety.

Light on purpose: every task imports this module; what a check needs beyond it (pg_dump's
compression methods, dbops.postgres.tools) is imported when that check runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dbops.backups.formats import FORMATS, Format
from dbops.errors import UsageError

ServerAction = Literal["show", "start", "stop"]
Verify = Literal["file", "restore"]


@dataclass(frozen=True)
class Safety:
    """The flags the policy reads (dbops.engine.policy), whatever the operation."""

    force: bool = False  # confirmation given (where the policy accepts --force)
    no_backup: bool = False  # skip the automatic backup (refused where the policy requires it)
    plan: bool = False  # --dry-run of reset or a pipeline: show the steps and their undos


@dataclass(frozen=True)
class NoOptions:
    """An operation without options of its own (migrate-repair, lint, backup-list, a pipeline)."""


@dataclass(frozen=True)
class StatusOptions:
    check: bool = False  # fail when a health check fails or migrations are pending


@dataclass(frozen=True)
class ServerOptions:
    start: bool = False
    stop: bool = False

    def __post_init__(self) -> None:
        if self.start and self.stop:
            raise UsageError("Choose one of --start and --stop", "dbops server --help")

    @property
    def action(self) -> ServerAction:
        return "stop" if self.stop else "start" if self.start else "show"


@dataclass(frozen=True)
class MigrateOptions:
    dry_run: bool = False  # its own dry run: the plan and the exact SQL, nothing changed
    start: str | None = None  # --from
    end: str | None = None  # --to
    accept_changes: bool = False


@dataclass(frozen=True)
class RepairOptions:
    all_deleted: bool = False  # accept that every applied migration's file is gone


@dataclass(frozen=True)
class RollbackOptions:
    steps: int = 1
    to: str | None = None
    dry_run: bool = False

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise UsageError("--steps must be at least 1", "dbops migrate-rollback --steps 2")


@dataclass(frozen=True)
class BaselineOptions:
    migration_id: str


@dataclass(frozen=True)
class CreateOptions:
    migration_name: str


@dataclass(frozen=True)
class SeedOptions:
    clear: bool = False


@dataclass(frozen=True)
class ResetOptions:
    seed: bool = False


@dataclass(frozen=True)
class ValidateOptions:
    strict: bool = False


@dataclass(frozen=True)
class BackupOptions:
    format: Format = "plain"
    compress: str = "gzip"
    jobs: int | None = None  # None: not given, pg_dump's one at a time
    verify: Verify = "file"
    keep: bool = False

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise UsageError(
                f"--format {self.format}: expected plain, custom or directory", "dbops backup --help"
            )
        if self.jobs is not None and (self.format != "directory" or self.jobs < 1):
            raise UsageError(
                "--jobs needs --format=directory and a count of 1 or more", "dbops backup --help"
            )
        # a bad --compress is a usage error now, before connecting, not a failure inside pg_dump
        # lazy: only backup's options need pg_dump's side (dbops validate and status do not)
        from dbops.postgres.tools import parse_compression, plain_compression

        method, _ = parse_compression(self.compress)
        if self.format == "plain":
            plain_compression(self.compress, method)
        if self.verify not in ("file", "restore"):
            raise UsageError(f"--verify {self.verify}: expected file or restore", "dbops backup --help")


@dataclass(frozen=True)
class RestoreOptions:
    file: str
    in_place: bool = False
    jobs: int | None = None  # None: not given, pg_restore's one at a time

    def __post_init__(self) -> None:
        if self.jobs is not None and (self.jobs < 1 or self.in_place):
            raise UsageError(
                "--jobs takes a count of 1 or more, and not with --in-place", "dbops restore --help"
            )


@dataclass(frozen=True)
class CleanupOptions:
    delete: bool = False  # backup-cleanup --force: delete (without it, only list what would go)


Options = (
    NoOptions
    | StatusOptions
    | ServerOptions
    | MigrateOptions
    | RollbackOptions
    | RepairOptions
    | BaselineOptions
    | CreateOptions
    | SeedOptions
    | ResetOptions
    | ValidateOptions
    | BackupOptions
    | RestoreOptions
    | CleanupOptions
)
