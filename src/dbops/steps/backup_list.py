"""backup-list: every backup on disk, manual and automatic, with its database and its checksum
checked. Undo: none. Exit 1 when a listed backup fails its checksum (changed or corrupted)."""

from __future__ import annotations

from dbops.backups import contents
from dbops.backups import store as backups
from dbops.engine.context import RunContext
from dbops.engine.pipeline import READS_ONLY, StepOutcome
from dbops.errors import DbopsError
from dbops.output.reports.backup_list import BackupListReport, ListedBackup
from dbops.output.units import age
from dbops.postgres.connection import Target


def environment_database(ctx: RunContext) -> str | None:
    """The environment's database name, without connecting (or starting the embedded server)."""
    try:
        url = ctx.env.resolved_url()
        return Target.of_environment(url, ctx.env).dbname if url else ctx.database_name()
    except DbopsError:
        return ctx.env.database


class ListBackups:
    name = "backup-list"
    description = "list the backups"
    undo = READS_ONLY
    policy_action: str | None = None

    def run(self, ctx: RunContext) -> StepOutcome:
        root = ctx.config.backup_dir
        now = backups.utc_now()
        report = BackupListReport(ctx.config.shown(root), ctx.env.name, environment_database(ctx))
        for entry in backups.discover(root):
            m = entry.manifest
            if not entry.exists:
                checksum = "missing file"
            elif m is None:
                checksum = "no manifest"
            else:
                checksum = "ok" if backups.checksum_matches(entry.path, m) else "mismatch"
            size = backups.size_of(entry.path) if entry.exists else 0
            report.backups.append(
                ListedBackup(
                    file=ctx.config.shown(entry.path),
                    kind=entry.kind,
                    created=backups.iso(entry.created),
                    age=age(entry.created, now),
                    size=size,
                    database=m.database if m else None,
                    format=m.format if m else None,
                    checksum=checksum,
                    reason=m.reason if m else None,
                    keep=m.keep if m else False,
                    rows=contents.counted(m.tables)[0] if m else None,  # old manifests counted all
                    tables=contents.counted(m.tables)[1] if m else None,
                )
            )
        ctx.report_so_far(report)  # the report, also when the listing fails below
        corrupt = [b.file for b in report.backups if b.checksum == "mismatch"]
        if corrupt:
            raise DbopsError(
                f"{len(corrupt)} backup(s) fail their checksum: {', '.join(corrupt)}",
                "They were changed or damaged since they were written: do not restore them; "
                "take a new backup (dbops backup), then delete them",
            )
        return StepOutcome(data=report)
