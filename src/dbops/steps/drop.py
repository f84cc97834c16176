"""drop: drop every object of the application's schemas, the first half of ``reset``.

What goes, and in what order, is dbops.schema.drop's program (the same one ``restore
--in-place`` runs): every object of every kind in dbops.schema.catalog, the schemas other than
public (which migrations create again) with what is in them, public's contents (public itself
stays, with its owner, grants and comment), and the objects outside schemas (casts, event
triggers, publications, large objects, default privileges ...). yoyo's and dbops' bookkeeping
tables go too, so every migration is pending afterwards. Extensions, their members and the
schemas they live in stay: a migration's CREATE EXTENSION IF NOT EXISTS finds them. All of it
is one transaction, under the migration lock: a failure (an object owned by another role, a
lock not granted within lock_wait) leaves everything as it was.

Undo: restore the backup the pipeline took before it (reset takes one, unless --no-backup);
without one, none: what it dropped is gone.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from dbops.backups import contents
from dbops.engine import restore_point
from dbops.engine.pipeline import StepOutcome, Undo
from dbops.output.reports.drop import DropReport
from dbops.postgres.locks import migration_lock
from dbops.schema import drop
from dbops.schema.catalog import TITLES

if TYPE_CHECKING:
    from dbops.engine.context import RunContext
    from dbops.schema.catalog import AppObject

# The report's groups: these kinds shown together, the others each under their own title.
_GROUPS = {
    "views": "view",
    "materialized_views": "view",
    "tables": "table",
    "partitioned_tables": "table",
    "sequences": "sequence",
    "functions": "function",
    "procedures": "function",
    "aggregates": "function",
    "window_functions": "function",
    "enum_types": "type",
    "range_types": "type",
    "domains": "type",
    "composite_types": "type",
    "base_types": "type",
    "schemas": "schema",
}
_FIRST = ("view", "table", "bookkeeping", "sequence", "function", "type", "schema")


class DropSchema:
    name = "drop"
    description = "drop every object of the application's schemas"
    undo = "restore the backup taken before it (reset takes one unless --no-backup); else none"
    policy_action: str | None = "reset"

    def run(self, ctx: RunContext) -> StepOutcome:
        started = time.monotonic()
        report = DropReport(ctx.env.name, ctx.database())
        ctx.report_so_far(report)
        conn = ctx.connection()
        lock = migration_lock(ctx.target(), ctx.env, ctx.env.lock_wait_ms / 1000, yoyo_row=False)
        with lock, conn.transaction():
            conn.execute(f"SET LOCAL lock_timeout = {int(ctx.env.lock_wait_ms)}")
            _report(drop.plan(conn, keep_extensions=True), report)
            conn.execute(drop.program(keep_extensions=True))
        report.duration_s = time.monotonic() - started
        report.finished = True
        return StepOutcome(undo=_undo(ctx), data=report)

    def confirmation_details(self, ctx: RunContext) -> list[str]:
        """For the confirmation: what it will drop, counted now (rows exactly)."""
        conn = ctx.connection()
        preview = DropReport(ctx.env.name, ctx.database())
        _report(drop.plan(conn, keep_extensions=True), preview)
        rows = sum(t.rows for t in contents.application(contents.read(conn).tables))
        counts = [
            f"{len(names)} {_NOUNS.get(kind) or TITLES[kind].lower()}"
            + (f" ({rows:,} row{'' if rows == 1 else 's'})" if kind == "table" else "")
            for kind, names in preview.dropped.items()
            if names and kind != "bookkeeping"
        ]
        if preview.dropped.get("bookkeeping"):
            counts.append("the records of every applied migration")
        return [f"To drop: {', '.join(counts) or 'nothing (the database holds no application object)'}"]


_NOUNS = {
    "view": "view(s)",
    "table": "table(s)",
    "sequence": "sequence(s)",
    "function": "function(s) and procedure(s)",
    "type": "type(s)",
    "schema": "schema(s)",
}


def _undo(ctx: RunContext) -> Undo | None:
    point = restore_point.taken(ctx, before=ctx.running_step)
    if point is None:
        return None
    return Undo("restore the backup taken before it", lambda: restore_point.restore(ctx, point))


def _report(objects: list[AppObject], report: DropReport) -> None:
    """The report's lists, kind by kind, names in order."""
    groups: dict[str, list[str]] = {group: [] for group in _FIRST}
    for o in objects:
        group = "bookkeeping" if o.bookkeeping else _GROUPS.get(o.kind, o.kind)
        groups.setdefault(group, []).append(o.shown)
    report.dropped = {group: sorted(names) for group, names in groups.items()}
