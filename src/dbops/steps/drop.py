"""drop: drop every object of the application's schemas, the first half of ``reset``.

Order: views, tables (children before the tables they reference), sequences, functions and
procedures, types, then the schemas other than public, which migrations create again. yoyo's
and dbops' bookkeeping tables go too, so every migration is pending afterwards. Extensions and
their objects stay. All of it is one transaction, under the migration lock: a failure (an
object owned by another role, a lock not granted within lock_wait) leaves everything as it was.

Undo: restore the backup the pipeline took before it (reset takes one, unless --no-backup);
without one, none: what it dropped is gone.
"""

from __future__ import annotations

import contextlib
import time
from graphlib import CycleError, TopologicalSorter
from typing import TYPE_CHECKING, Any

from dbops.backups import contents
from dbops.engine import restore_point
from dbops.engine.pipeline import StepOutcome, Undo
from dbops.migrations.files import YOYO_TABLES
from dbops.output.reports.drop import DropReport
from dbops.postgres.locks import migration_lock

if TYPE_CHECKING:
    import psycopg

    from dbops.engine.context import RunContext

_USER_SCHEMA = """n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%%' AND n.nspname NOT LIKE 'pg\\_temp\\_%%'"""
_OWN = "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = {oid} AND d.deptype = 'e')"

# (kind, schema, name, the DROP statement quoted by PostgreSQL's own format('%I'))
_OBJECTS_SQL = f"""
SELECT CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'view' WHEN 'S' THEN 'sequence' ELSE 'table' END,
       n.nspname, c.relname,
       format('DROP %s IF EXISTS %I.%I CASCADE',
              CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                             WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END, n.nspname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S') AND NOT c.relispartition
  AND {_USER_SCHEMA} AND {_OWN.format(oid="c.oid")}
  AND NOT EXISTS (SELECT 1 FROM pg_depend d  -- a serial's or identity's sequence goes with its table
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                    AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i'))
UNION ALL
SELECT 'function', n.nspname, p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
       format('DROP ROUTINE IF EXISTS %s CASCADE', p.oid::regprocedure)
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE {_USER_SCHEMA} AND {_OWN.format(oid="p.oid")}
UNION ALL
SELECT 'type', n.nspname, t.typname,
       format('DROP %s IF EXISTS %I.%I CASCADE', CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END,
              n.nspname, t.typname)
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE (t.typtype IN ('e', 'd', 'r')
       OR (t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c'))
  AND {_USER_SCHEMA} AND {_OWN.format(oid="t.oid")}
UNION ALL
SELECT 'schema', n.nspname, n.nspname, format('DROP SCHEMA %I', n.nspname)
FROM pg_namespace n
WHERE {_USER_SCHEMA} AND n.nspname <> 'public' AND {_OWN.format(oid="n.oid")}
  AND NOT EXISTS (SELECT 1 FROM pg_depend d JOIN pg_extension e ON d.refobjid = e.oid
                  WHERE d.refclassid = 'pg_extension'::regclass AND e.extnamespace = n.oid)
"""

# child table -> the tables it references (self-references left out)
_REFERENCES_SQL = """
SELECT cn.nspname, c.relname, pn.nspname, p.relname
FROM pg_constraint k
JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace cn ON cn.oid = c.relnamespace
JOIN pg_class p ON p.oid = k.confrelid JOIN pg_namespace pn ON pn.oid = p.relnamespace
WHERE k.contype = 'f' AND k.conrelid <> k.confrelid
"""

_ORDER = ("view", "table", "sequence", "function", "type", "schema")


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
            for statement in _plan(conn, report):
                conn.execute(statement)
        report.duration_s = time.monotonic() - started
        report.finished = True
        return StepOutcome(undo=_undo(ctx), data=report)

    def confirmation_details(self, ctx: RunContext) -> list[str]:
        """For the confirmation: what it will drop, counted now (rows exactly)."""
        conn = ctx.connection()
        preview = DropReport(ctx.env.name, ctx.database())
        _plan(conn, preview)
        rows = sum(t.rows for t in contents.application(contents.read(conn).tables))
        counts = [
            f"{len(names)} {_NOUNS[kind]}"
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


def _plan(conn: psycopg.Connection[Any], report: DropReport) -> list[str]:
    """The DROP statements in order; fills the report's lists as it goes."""
    rows = conn.execute(_OBJECTS_SQL).fetchall()
    by_kind: dict[str, list[tuple[str, str, str]]] = {kind: [] for kind in _ORDER}
    for kind, schema, name, statement in rows:
        by_kind[kind].append((schema, name, statement))
    tables = _children_first(conn, by_kind["table"])
    by_kind["table"] = [t for t in tables if t[1] not in YOYO_TABLES]
    statements = []
    for kind in _ORDER:
        if kind == "table":
            bookkeeping = [t for t in tables if t[1] in YOYO_TABLES]
            statements += [s for _, _, s in by_kind["table"] + bookkeeping]
            report.dropped["table"] = [_shown(schema, name) for schema, name, _ in by_kind["table"]]
            report.dropped["bookkeeping"] = [name for _, name, _ in bookkeeping]
            continue
        objects = sorted(by_kind[kind])
        statements += [s for _, _, s in objects]
        report.dropped[kind] = [
            name if kind == "schema" else _shown(schema, name) for schema, name, _ in objects
        ]
    return statements


def _children_first(
    conn: psycopg.Connection[Any], tables: list[tuple[str, str, str]]
) -> list[tuple[str, str, str]]:
    """Reverse dependency order: a table goes only after every table that references it. Round by
    round, every table then free goes, in name order; where a cycle holds them all, the first by
    name goes (its CASCADE breaks the cycle)."""
    referenced_by: dict[tuple[str, str], set[tuple[str, str]]] = {(s, n): set() for s, n, _ in tables}
    for child_schema, child, parent_schema, parent in conn.execute(_REFERENCES_SQL).fetchall():
        if (parent_schema, parent) in referenced_by and (child_schema, child) in referenced_by:
            referenced_by[(parent_schema, parent)].add((child_schema, child))
    statements = {(s, n): stmt for s, n, stmt in tables}
    ordered: list[tuple[str, str]] = []
    done: set[tuple[str, str]] = set()
    while len(done) < len(referenced_by):
        left = {t: by - done for t, by in sorted(referenced_by.items()) if t not in done}
        rounds = TopologicalSorter(left)
        with contextlib.suppress(CycleError):  # the rounds still run up to the cycle
            rounds.prepare()
        while ready := sorted(rounds.get_ready()):
            ordered += ready
            done.update(ready)
            rounds.done(*ready)
        if len(done) < len(referenced_by):
            first = min(left.keys() - done)
            ordered.append(first)
            done.add(first)
    return [(*table, statements[table]) for table in ordered]


def _shown(schema: str, name: str) -> str:
    return name if schema == "public" else f"{schema}.{name}"
