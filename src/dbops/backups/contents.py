"""What a database holds, as a backup records it and a restore checks it.

Row counts of every table pg_dump copies (exact, ``count(*)``), and counts of each kind of
object. Both sides are read with the same queries, so a restore compares like with like, across
server versions too (NOT NULL constraints, which PostgreSQL 18 catalogues, are not counted).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dbops.backups.store import TableCount
from dbops.migrations.files import YOYO_TABLES

if TYPE_CHECKING:
    import psycopg

_USER = "{ns} NOT IN ('pg_catalog', 'information_schema') AND {ns} !~ '^pg_(toast|temp_)'"
_NOT_EXT = "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = {oid} AND d.deptype = 'e')"
# range types' constructor functions depend internally on their type: made, not restored
_NOT_IMPLICIT = "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = {oid} AND d.deptype IN ('e', 'i'))"

_TABLES_SQL = f"""
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND c.relpersistence <> 't' AND {_USER.format(ns="n.nspname")}
  AND {_NOT_EXT.format(oid="c.oid")}
ORDER BY 1, 2
"""

_OBJECTS_SQL = f"""
WITH rel AS (
  SELECT c.oid, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE {_USER.format(ns="n.nspname")} AND {_NOT_EXT.format(oid="c.oid")}
)
SELECT
  (SELECT count(*) FROM pg_namespace n WHERE {_USER.format(ns="n.nspname")}
     AND {_NOT_EXT.format(oid="n.oid")}),
  (SELECT count(*) FROM rel WHERE relkind IN ('r', 'p')),
  (SELECT count(*) FROM rel WHERE relkind = 'v'),
  (SELECT count(*) FROM rel WHERE relkind = 'm'),
  (SELECT count(*) FROM rel WHERE relkind = 'S'),
  (SELECT count(*) FROM rel WHERE relkind IN ('i', 'I')),
  (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
     WHERE {_USER.format(ns="n.nspname")} AND {_NOT_IMPLICIT.format(oid="p.oid")}),
  (SELECT count(*) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
     WHERE {_USER.format(ns="n.nspname")} AND {_NOT_EXT.format(oid="t.oid")}
       AND (t.typtype IN ('e', 'd', 'r')
            OR (t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c'))),
  (SELECT count(*) FROM pg_trigger g WHERE NOT g.tgisinternal AND g.tgrelid IN (SELECT oid FROM rel)),
  (SELECT count(*) FROM pg_constraint k WHERE k.contype IN ('p', 'u', 'f', 'c', 'x')
     AND k.conrelid IN (SELECT oid FROM rel)),
  (SELECT count(*) FROM pg_largeobject_metadata),
  (SELECT count(*) FROM pg_extension WHERE extname <> 'plpgsql')
"""
OBJECT_KINDS = (
    "schemas",
    "tables",
    "views",
    "materialized_views",
    "sequences",
    "indexes",
    "functions",
    "types",
    "triggers",
    "constraints",
    "large_objects",
    "extensions",
)


@dataclass
class Contents:
    tables: list[TableCount]
    objects: dict[str, int]
    encoding: str
    last_migration: str | None

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)


def application(tables: list[TableCount]) -> list[TableCount]:
    """The application's tables: without yoyo's and dbops' bookkeeping (as status counts them)."""
    return [t for t in tables if not (t.schema == "public" and t.name in YOYO_TABLES)]


def counted(tables: list[TableCount]) -> tuple[int, int]:
    """(rows, tables) of the application's tables: the one count every report and manifest gives
    (the bookkeeping tables are in the manifest's table list, which a restore checks, but not here)."""
    mine = application(tables)
    return sum(t.rows for t in mine), len(mine)


def read(conn: psycopg.Connection[Any], *, count_rows: bool = True) -> Contents:
    """Everything in one transaction's snapshot (the caller's, when it has one open). Without
    count_rows the tables are listed with 0 rows, for a caller that counts them otherwise."""

    tables = [TableCount(schema, name, 0) for schema, name in conn.execute(_TABLES_SQL).fetchall()]
    if count_rows:
        count_rows_of(conn, tables)
    row = conn.execute(_OBJECTS_SQL).fetchone()
    assert row is not None
    encoding = conn.execute(
        "SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = current_database()"
    ).fetchone()
    return Contents(
        tables=tables,
        objects=dict(zip(OBJECT_KINDS, row, strict=True)),
        encoding=encoding[0] if encoding else "UTF8",
        last_migration=_last_migration(conn),
    )


def count_rows_of(conn: psycopg.Connection[Any], tables: list[TableCount]) -> None:
    """Fill in exact row counts, in one statement."""
    from psycopg import sql

    if not tables:
        return
    parts = [
        sql.SQL("SELECT {}::int, count(*) FROM {}").format(sql.Literal(i), sql.Identifier(t.schema, t.name))
        for i, t in enumerate(tables)
    ]
    for i, count in conn.execute(sql.SQL(" UNION ALL ").join(parts)).fetchall():
        tables[i].rows = count


def _last_migration(conn: psycopg.Connection[Any]) -> str | None:
    found = conn.execute("SELECT to_regclass('public._yoyo_migration') IS NOT NULL").fetchone()
    if not found or not found[0]:
        return None
    row = conn.execute(
        "SELECT migration_id FROM public._yoyo_migration"
        " ORDER BY applied_at_utc DESC, migration_id DESC LIMIT 1"
    ).fetchone()
    return row[0] if row else None


def differences(
    expected_tables: list[TableCount], expected_objects: dict[str, int], found: Contents
) -> list[str]:
    """What a restored database lacks or has too much of, compared with the manifest."""
    problems = []
    have = {(t.schema, t.name): t.rows for t in found.tables}
    for table in expected_tables:
        key = (table.schema, table.name)
        if key not in have:
            problems.append(f"table {table.schema}.{table.name} is missing")
        elif have[key] != table.rows:
            problems.append(f"{table.schema}.{table.name}: {have[key]:,} rows, expected {table.rows:,}")
    for kind, count in expected_objects.items():
        if found.objects.get(kind, 0) != count:
            problems.append(f"{kind.replace('_', ' ')}: {found.objects.get(kind, 0)}, expected {count}")
    return problems
