"""backup-cleanup: delete automatic backups past retention_days; sweep leftovers. Undo: none.

Never deletes a manual backup, the newest automatic backup of each database, or a backup
whose manifest says ``"keep": true``. Without --force it only lists what it would delete.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from dbops import atomic
from dbops.backups import store as backups
from dbops.backups.store import BackupEntry
from dbops.engine.context import RunContext
from dbops.engine.pipeline import StepOutcome
from dbops.output.reports.cleanup import CleanupItem, CleanupReport
from dbops.steps.backup_list import age


def plan(
    entries: list[BackupEntry], retention_days: int, now: datetime
) -> tuple[list[tuple[BackupEntry, str]], dict[str, int]]:
    """Which backups go (with why), and how many stay for each reason."""
    newest: dict[str | None, BackupEntry] = {}
    for entry in entries:  # oldest first: the last one seen per database is the newest
        if entry.exists and entry.kind == "automatic":
            newest[entry.manifest.database if entry.manifest else None] = entry
    limit = now - timedelta(days=retention_days)
    delete: list[tuple[BackupEntry, str]] = []
    kept: dict[str, int] = {}

    def keep(why: str) -> None:
        kept[why] = kept.get(why, 0) + 1

    for entry in entries:
        if not entry.exists:
            delete.append((entry, "manifest without its backup"))
        elif entry.kind == "manual":
            keep("manual")
        elif entry.manifest is not None and entry.manifest.keep:
            keep("marked keep")
        elif entry in newest.values():
            keep("newest automatic")
        elif entry.created < limit:
            delete.append((entry, f"automatic, older than {retention_days} days"))
        else:
            keep("automatic within retention")
    return delete, kept


class CleanupBackups:
    name = "backup-cleanup"
    description = "delete expired automatic backups"
    undo = "none: deleted backups stay deleted"
    policy_action: str | None = None

    def __init__(self, *, force: bool = False) -> None:
        self.force = force

    def run(self, ctx: RunContext) -> StepOutcome:
        root = ctx.config.backup_dir
        now = backups.utc_now()
        days = ctx.config.backups.retention_days
        report = CleanupReport(ctx.config.shown(root), days, dry_run=not self.force)
        ctx.report_so_far(report)
        delete, report.kept = plan(backups.discover(root), days, now)
        leftovers = backups.leftovers(root)
        report.leftovers = [ctx.config.shown(p) for p in leftovers]
        for entry, why in delete:
            size = backups.size_of(entry.path) if entry.exists else 0
            report.delete.append(
                CleanupItem(ctx.config.shown(entry.path), age(entry.created, now), size, why)
            )
        if self.force:
            for entry, _ in delete:
                report.freed += backups.size_of(entry.path) if entry.exists else 0
                backups.remove(entry.path)  # the backup first: never a backup without its manifest
                backups.remove(backups.manifest_path(entry.path))
            for path in leftovers:
                backups.remove(path)
            if delete or leftovers:
                for folder in {root, root / backups.AUTOMATED}:
                    if folder.is_dir():
                        atomic.fsync_path(folder)
        return StepOutcome(data=report)
