"""The backup a pipeline took, as a way back for the undos of the steps after it.

A backup step undoes nothing itself, but once it has run, an undo that cannot take its own
step back (a migration without a rollback script, a drop) restores that backup instead.
Restoring it takes back everything after it at once, so the runner then skips the undos of
the steps between the backup and that undo (dbops.engine.pipeline).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dbops.engine.context import RunContext


def taken(ctx: RunContext, before: int) -> tuple[Path, int] | None:
    """The file and step number of the last backup this pipeline completed, if that was before
    step `before` (whose undo it would be)."""
    report = ctx.step_data("backup")
    path = getattr(report, "path", None)
    number = ctx.step_number("backup")
    if not isinstance(path, Path) or not getattr(report, "finished", False) or number >= before:
        return None
    return path, number


def restore(ctx: RunContext, point: tuple[Path, int]) -> str:
    """Restore the pipeline's backup, as taken() found it (an undo action); a note on it, which
    names the database it replaced: kept under another name, never dropped silently."""
    # import cost: the policy imports steps.migrate (and so this module) on every run, dbops
    # status included, and only an undo needs the backups package
    from dbops.backups.restore import restore_file

    path, number = point
    ctx.close()  # the restore replaces the database under this connection
    result = restore_file(ctx.target(), ctx.env, ctx.config, path)
    ctx.restored_to = number
    note = f"restored {ctx.config.shown(path)}, taken by step {number}"
    if result.kept_as:
        note += f"; the database it replaced is kept as {result.kept_as}: drop it once no longer needed"
    return note
