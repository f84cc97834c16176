"""backup-cleanup: delete automatic backups past retention_days; sweep leftovers; drop the
databases restores kept (``<db>__pre_restore_<ts>``) past retention_days. Undo: none.

Never deletes a manual backup, the newest automatic backup of each database, or a backup
whose manifest says ``"keep": true``; never drops the newest database a restore kept. Without
--force it only lists what it would delete or drop.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from dbops import atomic
from dbops.backups import store as backups
from dbops.backups.store import BackupEntry
from dbops.engine.context import RunContext
from dbops.engine.pipeline import StepOutcome
from dbops.errors import DbopsError
from dbops.output.reports.cleanup import CleanupItem, CleanupReport
from dbops.output.units import age
from dbops.postgres import databases
from dbops.postgres.locks import locked_maintenance


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
        self._kept_databases(ctx, report, now - timedelta(days=days))
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

    def _kept_databases(self, ctx: RunContext, report: CleanupReport, limit: datetime) -> None:
        """The databases restores of this environment's database kept: the newest stays, and those
        within retention; the others go with --force, dropped under that database's restore lock
        (no restore is swapping meanwhile). Where the server cannot be reached, the report says so."""
        try:
            target = ctx.target()
            with locked_maintenance(target, ctx.env) as admin:
                kept = databases.kept_databases(admin, target.dbname)
                expired = [k for k in kept[:-1] if k.kept_at < limit]
                if kept:
                    report.kept["newest kept database"] = 1
                if len(kept) - 1 - len(expired) > 0:
                    report.kept["kept database within retention"] = len(kept) - 1 - len(expired)
                now = backups.utc_now()
                for k in expired:
                    why = f"kept by a restore, older than {report.retention_days} days"
                    report.databases.append(CleanupItem(k.name, age(k.kept_at, now), k.size or 0, why))
                    if self.force:
                        databases.drop_database(admin, k.name)
                        report.freed += k.size or 0
        except DbopsError as exc:
            report.databases_unchecked = exc.message
