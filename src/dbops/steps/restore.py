"""restore: check a backup file, then replace the database with it. Undo: none.

The steps of the restore operation live here: ``check-backup`` (before anything is touched:
the manifest, the file's size, an archive's table of contents; exit 2 for a bad file; the
sha256 and the full read come with the load, in the same pass, and before the question on a
terminal), ``restore-lock`` (the
restore lock of the database, and the rights a restore through a scratch database needs:
"Another restore is running" or "permission denied (CREATEDB)" come before anything is
written), ``restore-load`` (through a scratch database: it is loaded and checked on a thread of
its own while the safety backup the policy puts next is taken; its undo drops it) and
``restore`` (waits for that load, then the swap; or ``--in-place`` in one transaction). After
the lock the operation asks for confirmation; before ``restore`` it takes the safety backup."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path

from dbops.backups import restore as restorer
from dbops.backups import store as backups
from dbops.backups.store import BackupInvalid, Manifest
from dbops.engine.context import RunContext
from dbops.engine.pipeline import READS_ONLY, StepOutcome, Undo
from dbops.errors import DbopsError
from dbops.output import progress, units
from dbops.output.reports.restore import RestoreReport
from dbops.output.units import age
from dbops.postgres.locks import RestoreLock, take_restore_lock
from dbops.postgres.tools import toolbox

_DISCARD = "remove the safety backup this restore took: the database is as it was"


class CheckBackup:
    name = "check-backup"
    description = "check the backup file"
    undo = READS_ONLY
    policy_action: str | None = None

    def __init__(self, file: str) -> None:
        self.file = file
        # for the restore step: the checked manifest, and the report both steps fill in
        self.manifest: Manifest | None = None
        self.report: RestoreReport | None = None
        self.live = ""
        self.shown = ""  # the file, as messages name it
        self.step = 0  # its position: a safety backup after it is this restore's

    def run(self, ctx: RunContext) -> StepOutcome:
        path = backups.resolve(
            self.file, ctx.config.backup_dir, ctx.config.root, Path.cwd(), database=ctx.database()
        )
        report = RestoreReport(ctx.env.name, ctx.database(), ctx.config.shown(path), path)
        self.report = report
        ctx.report_so_far(report)  # the operation's report, from here on (the restore step adds to it)
        manifest = restorer.check_file(path, ctx.config)
        report.created = manifest.created_at.strftime("%Y-%m-%d %H:%M:%S UTC")
        report.size, report.format, report.kind = manifest.size, manifest.format, manifest.kind
        report.source_database = manifest.database
        self.manifest = manifest
        self.live = ctx.database()
        self.shown = ctx.config.shown(path)
        self.step = ctx.running_step
        return StepOutcome(
            messages=[
                f"{report.file} matches its manifest's size; its sha256 and a full read come with the load"
            ],
            data=report,
        )

    def confirmation_details(self, ctx: RunContext) -> list[str]:
        """For the confirmation: the file it resolved to (latest may be any automatic backup),
        checked in full first: a person is asked only about a file that checked out."""
        manifest = self.manifest
        if manifest is None or self.report is None:
            return []
        with progress.bar(ctx.interactive) as advance:
            restorer.check_file(self.report.path, ctx.config, advance, full=True)
        created = manifest.created_at
        why = f" ({manifest.reason})" if manifest.reason else ""
        return [
            f"Backup file: {self.report.file}",
            f"  {manifest.kind} {manifest.format} backup{why} of {manifest.database}, "
            f"taken {created.strftime('%Y-%m-%d %H:%M:%S UTC')} ({age(created, backups.utc_now())} ago), "
            f"{units.size(manifest.size)}",
            "  verified: its sha256 and a full read match the manifest",
        ]

    def confirmation_note(self) -> str | None:
        """For the confirmation: a backup of another database says so, and names it."""
        if self.manifest is None or self.manifest.database == self.live:
            return None
        return (
            f"this backup comes from another database: {self.manifest.database}, "
            f"not {self.live}; its contents will replace {self.live}'s"
        )


class LockRestore:
    name = "restore-lock"
    description = "take the restore lock, check the rights the restore needs"
    undo = READS_ONLY  # a lock, released when the run ends; rights read
    policy_action: str | None = None

    def __init__(self, *, in_place: bool = False) -> None:
        self.in_place = in_place
        self.lock: RestoreLock | None = None  # held for the restore step

    def run(self, ctx: RunContext) -> StepOutcome:
        lock = take_restore_lock(ctx.target(), ctx.env, ctx.connection(), in_place=self.in_place)
        ctx.hold(lock.release)  # until the restore is done, or the run ends before it
        self.lock = lock
        return StepOutcome(messages=[f"no other restore of {lock.live} is running"], data=lock)


class LoadRestore:
    name = "restore-load"
    description = "load the backup into a scratch database, while the safety backup is taken"
    undo = "drop the scratch database (the live database is not touched until the restore step)"
    policy_action: str | None = None

    def __init__(self, check: CheckBackup, lock: LockRestore, *, jobs: int | None = None) -> None:
        self.check = check
        self.lock = lock
        self.jobs = jobs
        self.loading: restorer.BackgroundLoad | None = None  # for the restore step, which swaps

    def run(self, ctx: RunContext) -> StepOutcome:
        manifest, report, lock = self.check.manifest, self.check.report, self.lock.lock
        assert manifest is not None and report is not None, "the load runs after the check"
        if lock is None or not lock.maintenance or lock.conn.closed:
            return StepOutcome(messages=["the restore step loads the backup itself"])
        loading = restorer.BackgroundLoad(
            ctx.target(),
            ctx.env,
            toolbox(ctx.config),
            report.path,
            manifest,
            lock.conn,
            jobs=self.jobs,
            shown=self.check.shown,
        )
        self.loading = loading
        ctx.hold(loading.abandon)  # whatever ends the run: the load stops, the scratch database goes
        return StepOutcome(
            messages=["loading into a scratch database in the background"],
            undo=Undo("drop the scratch database", _abandoned(loading)),
        )


def _abandoned(loading: restorer.BackgroundLoad) -> Callable[[], str]:
    def undo() -> str:
        loading.abandon()
        return "the scratch database was dropped; the live database was not touched"

    return undo


class Restore:
    name = "restore"
    description = "restore the database from the backup"
    undo = "none: the safety backup before it, and the database it replaced (kept, renamed), stay"
    policy_action: str | None = "restore"

    def __init__(
        self,
        check: CheckBackup,
        lock: LockRestore,
        *,
        in_place: bool = False,
        jobs: int | None = None,
        loaded: LoadRestore | None = None,
    ) -> None:
        self.check = check  # the steps before it: the checked backup, the restore lock, the load
        self.lock = lock
        self.in_place = in_place
        self.jobs = jobs
        self.loaded = loaded

    def run(self, ctx: RunContext) -> StepOutcome:
        started = time.monotonic()
        manifest, report, lock = self.check.manifest, self.check.report, self.lock.lock
        assert manifest is not None and report is not None, "the restore runs after its check"
        if ctx.restore_point is not None:
            report.safety_backup = ctx.restore_point.file
        try:
            with progress.bar(ctx.interactive) as advance:
                tools = toolbox(ctx.config)
                loading = self.loaded.loading if self.loaded is not None else None
                if loading is not None and lock is not None:
                    ctx.close()  # our own session on the live database would block the rename
                    loading.finish()  # the load's failure (the file's included) is this step's
                    report.result = loading.swap()
                elif self.in_place:
                    report.result = restorer.restore_in_place(
                        ctx.connection(),
                        ctx.target(),
                        ctx.env,
                        tools,
                        report.path,
                        manifest,
                        advance,
                        lock,
                        shown=self.check.shown,
                    )
                else:
                    target = ctx.target()
                    ctx.close()  # our own session on the live database would block the rename
                    report.result = restorer.replace_database(
                        target,
                        ctx.env,
                        tools,
                        report.path,
                        manifest,
                        jobs=self.jobs,
                        progress=advance,
                        lock=lock,
                        shown=self.check.shown,
                    )
                report.verified = True  # the load read the whole file: its sha256 matched
        except DbopsError as exc:
            # the live database is as it was: through a scratch database whatever failed (the
            # swap is one transaction), in place when the file failed its check (before the commit)
            point = ctx.restore_point
            ours = point is not None and point.step > self.check.step  # taken by this restore
            if ours and (isinstance(exc, BackupInvalid) or not self.in_place):
                ctx.add_undo(Undo(_DISCARD, lambda: self._discard_safety_backup(ctx, report)))
            raise
        finally:
            if lock is not None:
                lock.release()
        report.duration_s = time.monotonic() - started
        return StepOutcome(data=report)

    def _discard_safety_backup(self, ctx: RunContext, report: RestoreReport) -> str | None:
        """The restore failed, the live database is as it was: the safety backup this restore took
        is removed, so that it never stands in for the backup it was to load (as the newest
        automatic backup, `dbops restore latest` would pick it). Returns the undo's note."""
        point = ctx.restore_point
        assert point is not None, "registered only when this restore took one"
        manifest = backups.manifest_path(point.path)
        with contextlib.suppress(OSError, ValueError):
            if Manifest.from_json(manifest.read_text(encoding="utf-8")).kind != "automatic":
                return f"kept {point.file} (not an automatic backup)"
            backups.remove(point.path)
            manifest.unlink(missing_ok=True)
            ctx.restore_point = None
            report.safety_backup = None
            return f"removed {point.file}"
        return f"kept {point.file} (it could not be read)"
