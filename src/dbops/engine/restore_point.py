"""The backup a pipeline took, as a way back for the undos of the steps after it.

A backup step undoes nothing itself, but once it has run, an undo that cannot take its own
step back (a migration without a rollback script, a drop) restores that backup instead.
Restoring it takes back everything after it at once, so the runner then skips the undos of
the steps between the backup and that undo (dbops.engine.pipeline).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dbops.engine.context import RunContext


@dataclass(frozen=True)
class RestorePoint:
    """A backup the pipeline completed: the backup step sets it on the run (ctx.restore_point)."""

    path: Path
    file: str  # as shown: relative to the project
    step: int  # the backup step's position in the pipeline, from 1


def taken(ctx: RunContext, before: int) -> RestorePoint | None:
    """The last backup this pipeline completed, if that was before step `before` (whose undo it
    would be)."""
    point = ctx.restore_point
    return point if point is not None and point.step < before else None


def restore(ctx: RunContext, point: RestorePoint) -> str:
    """Restore the pipeline's backup, as taken() found it (an undo action); a note on it, which
    names the database it replaced: kept under another name, never dropped silently."""
    # import cost: the policy imports steps.migrate (and so this module) on every run, dbops
    # status included, and only an undo needs the backups package
    from dbops.backups.restore import restore_file

    ctx.close()  # the restore replaces the database under this connection
    result = restore_file(ctx.target(), ctx.env, ctx.config, point.path)
    ctx.restored_to = point.step
    note = f"restored {ctx.config.shown(point.path)}, taken by step {point.step}"
    if result.kept_as:
        note += f"; the database it replaced is kept as {result.kept_as}: drop it once no longer needed"
    return note
