"""backup: a verified pg_dump of the environment's database, with its manifest. Undo: none.

Manual backups go to backups/db/, automatic ones (taken by other operations before a
destructive step, with the reason in the manifest) to backups/db/automated/.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

from dbops.backups import contents
from dbops.backups import dump as dumper
from dbops.backups import restore as restorer
from dbops.backups import store as backups
from dbops.backups.store import Manifest
from dbops.engine.context import RunContext
from dbops.engine.options import BackupOptions
from dbops.engine.pipeline import StepOutcome
from dbops.engine.restore_point import RestorePoint
from dbops.output import progress
from dbops.output.reports.backup import BackupReport
from dbops.postgres.tools import Toolbox, toolbox

Verify = Literal["file", "restore"]
When = Literal["always", "protected"]


class Backup:
    name = "backup"
    description = "back up the database"
    undo = "none: it is what the undos of later steps restore when they cannot take their step back"
    policy_action: str | None = None

    def __init__(
        self,
        options: BackupOptions,
        *,
        automatic: bool = False,
        reason: str | None = None,
        when: When = "always",
    ) -> None:
        self.automatic = automatic
        self.reason = reason
        self.format = options.format
        self.compress = options.compress
        self.jobs = options.jobs
        self.verify = options.verify
        self.keep = options.keep
        self.when = when
        if automatic:
            self.description = f"take a safety backup ({reason})" if reason else "take a safety backup"

    def run(self, ctx: RunContext) -> StepOutcome:
        if self.when == "protected" and not ctx.env.protected:
            return StepOutcome(messages=["not a protected environment: no safety backup"])
        conn = ctx.connection()  # connect (and start the embedded server) before naming the file
        options = dumper.DumpOptions(self.format, self.compress, self.jobs)
        tools = toolbox(ctx.config)
        dumper.preflight(conn, tools, options)  # a refusal comes before the file is announced
        folder = ctx.config.backup_dir / (backups.AUTOMATED if self.automatic else "")
        method = self.compress.partition(":")[0].strip().lower()
        final = backups.new_path(folder, ctx.database(), self.format, method, backups.utc_now())
        kind: dumper.Kind = "automatic" if self.automatic else "manual"
        report = BackupReport(ctx.env.name, ctx.database(), final, ctx.config.shown(final), kind, self.reason)
        ctx.report_so_far(report)
        with progress.bar(ctx.interactive) as advance:
            check = _trial_restore(ctx, tools) if self.verify == "restore" else None
            manifest, timings = dumper.take(
                ctx.connection(),
                ctx.target(),
                ctx.env,
                tools,
                final,
                options,
                shown=ctx.config.shown(final),
                kind=kind,
                reason=self.reason,
                keep=self.keep,
                progress=advance,
                check=check,
            )
        if manifest.file != final.name:  # another backup took that name in the same second
            final = final.with_name(manifest.file)
            report.path, report.file = final, ctx.config.shown(final)
        report.format, report.compression = manifest.format, manifest.compression
        report.size, report.sha256 = manifest.size, manifest.sha256
        report.rows, report.tables = contents.counted(manifest.tables)
        report.verified = ["sha256", "full read" + (", dump trailer" if manifest.format == "plain" else "")]
        if check is not None:
            report.verified.append("test restore (row counts match)")
        report.dump_s, report.verify_s = timings.dump_s, timings.verify_s
        report.finished = True
        ctx.restore_point = RestorePoint(final, report.file, ctx.running_step)  # for the undos after it
        return StepOutcome(messages=[f"Backup written to {report.file}"], data=report)


def _trial_restore(ctx: RunContext, tools: Toolbox) -> Callable[[Path, Manifest], None]:
    def check(path: Path, manifest: Manifest) -> None:
        restorer.trial_restore(ctx.target(), ctx.env, tools, path, manifest)

    return check
