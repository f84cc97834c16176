"""What a database holds, as a backup records it and a restore checks it.

Row counts of every table pg_dump copies (exact, ``count(*)``), and counts of each kind of
object of dbops.schema.catalog. Both sides are read with the same queries, so a restore
compares like with like, across server versions too (NOT NULL constraints, which PostgreSQL 18
catalogues, are not counted). The first twelve keys are those of earlier manifests, with the
same meaning (a sum of the catalog's finer kinds); every other kind has its own key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dbops.backups.store import TableCount
from dbops.migrations.files import YOYO_TABLES
from dbops.schema import catalog

if TYPE_CHECKING:
    import psycopg

# The tables whose rows pg_dump copies: ordinary ones and partitions that hold rows.
_TABLES_SQL = f"""
SELECT a.schema, c.relname
FROM ({catalog.objects_sql((catalog.BY_NAME["tables"], catalog.BY_NAME["partitions"]))}) a
JOIN pg_class c ON c.oid = a.objid
WHERE c.relkind = 'r'
ORDER BY 1, 2
"""

_SUMS = {
    "schemas": ("schemas",),
    "tables": ("tables", "partitioned_tables", "partitions"),
    "views": ("views",),
    "materialized_views": ("materialized_views",),
    "sequences": ("sequences", "owned_sequences"),
    "indexes": ("indexes",),
    "functions": ("functions", "procedures", "aggregates", "window_functions"),
    "types": ("enum_types", "domains", "range_types", "composite_types"),
    "triggers": ("triggers",),
    "constraints": ("constraints",),
    "large_objects": ("large_objects",),
    "extensions": ("extensions",),
}
_SUMMED = {kind for kinds in _SUMS.values() for kind in kinds}
# manifest key -> the catalog's kinds it counts
MANIFEST_KINDS: dict[str, tuple[str, ...]] = _SUMS | {
    kind: (kind,) for kind in catalog.TITLES if kind not in _SUMMED
}


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

    tables = [TableCount(schema, name, 0) for schema, name in catalog.fetch(conn, _TABLES_SQL)]
    if count_rows:
        count_rows_of(conn, tables)
    found = catalog.counts(conn)
    encoding = conn.execute(
        "SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = current_database()"
    ).fetchone()
    return Contents(
        tables=tables,
        objects={key: sum(found[kind] for kind in kinds) for key, kinds in MANIFEST_KINDS.items()},
        encoding=encoding[0] if encoding else "UTF8",
        last_migration=_last_migration(conn),
    )


def count_rows_of(conn: psycopg.Connection[Any], tables: list[TableCount]) -> None:
    """Fill in exact row counts, in one statement."""
    from psycopg import sql

    if not tables:
        return
    parts = [
        # ONLY: an inheritance parent's own rows, as pg_dump copies them
        sql.SQL("SELECT {}::int, count(*) FROM ONLY {}").format(
            sql.Literal(i), sql.Identifier(t.schema, t.name)
        )
        for i, t in enumerate(tables)
    ]
    for i, count in conn.execute(sql.SQL(" UNION ALL ").join(parts)).fetchall():
        tables[i].rows = count


def inserted_by_load(conn: psycopg.Connection[Any]) -> dict[tuple[str, str], int]:
    """The rows a load (pg_restore) just inserted into each table of `conn`'s new database, from
    the server's statistics, without counting them: where a table's counters say exactly this
    (inserted = live, nothing deleted or updated), the caller takes them as its row count, and
    counts the tables with count(*) only when they differ from the manifest. The loaders'
    sessions must be gone (PostgreSQL 15 and later write a session's counters when it ends;
    earlier servers' arrive late, and then differ)."""
    rows = conn.execute(
        "SELECT schemaname, relname, n_tup_ins FROM pg_stat_user_tables"
        " WHERE n_tup_ins = n_live_tup AND n_tup_del = 0 AND n_tup_upd = 0 AND n_tup_ins > 0"
    ).fetchall()
    return {(schema, name): int(count) for schema, name, count in rows}


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
