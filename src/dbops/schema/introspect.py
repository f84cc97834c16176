"""Reading the live catalog in a handful of queries, never one per table.

"Application objects" are dbops.schema.catalog's, without yoyo's and dbops' bookkeeping tables;
the counts are its counts. Reading never waits long for a lock: a migration holding or queueing
for an exclusive lock turns sizes and counts into estimates instead of a hang.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dbops.migrations.files import YOYO_TABLES
from dbops.schema import catalog

if TYPE_CHECKING:
    import psycopg

EXACT_COUNT_MAX_BYTES = 8 * 1024 * 1024  # tables up to 8 MB are counted exactly
LONG_TRANSACTION = "5 minutes"
LOCK_WAIT = "1s"  # at most this long behind another session's lock, then estimates

_USER_SCHEMA = """
    n.nspname NOT IN ('pg_catalog', 'information_schema')
    AND n.nspname NOT LIKE 'pg\\_toast%%' AND n.nspname NOT LIKE 'pg\\_temp\\_%%'
"""
_YOYO = "(" + ", ".join(f"'{t}'" for t in YOYO_TABLES) + ")"
# The tables status lists: ordinary and partitioned (a partition is part of its parent's figures).
_LISTED = (catalog.BY_NAME["tables"], catalog.BY_NAME["partitioned_tables"])
_APP_TABLES = f"""
  c.oid IN (SELECT objid FROM ({catalog.objects_sql(_LISTED)}) a WHERE NOT a.bookkeeping)
"""
# Shared with the schema snapshot of validate (queries run with parameters: % is doubled).
USER_SCHEMA, YOYO_NAMES = _USER_SCHEMA, _YOYO

# Sizes take a lock on each table: ones held exclusively by another session are skipped.
# A table's relations are itself, or a partitioned one's whole tree (an index probe each).
_TABLES_SQL = f"""
WITH locked AS MATERIALIZED (
  SELECT DISTINCT relation FROM pg_locks
  WHERE locktype = 'relation' AND mode = 'AccessExclusiveLock' AND granted AND pid <> pg_backend_pid()
    AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
)
SELECT n.nspname, c.relname, t.reltuples, t.unanalyzed, t.locked,
       has_table_privilege(c.oid, 'SELECT'), t.heap_bytes, t.total_bytes
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL (  -- a partitioned table is the sum of its partitions
  SELECT sum(greatest(p.reltuples, 0))::bigint AS reltuples, bool_or(p.reltuples < 0) AS unanalyzed,
         bool_or(k.locked) AS locked,
         sum(CASE WHEN k.locked OR NOT %(sizes)s THEN p.relpages::bigint * 8192
                  ELSE pg_relation_size(p.oid) END)::bigint AS heap_bytes,
         sum(CASE WHEN k.locked OR NOT %(sizes)s THEN p.relpages::bigint * 8192
                  ELSE pg_total_relation_size(p.oid) END)::bigint AS total_bytes
  FROM (SELECT c.oid WHERE c.relkind <> 'p'
        UNION ALL SELECT relid FROM pg_partition_tree(c.oid) WHERE c.relkind = 'p') m(oid)
  JOIN pg_class p ON p.oid = m.oid
  CROSS JOIN LATERAL (SELECT p.oid IN (SELECT relation FROM locked) AS locked) k
) t
WHERE {_APP_TABLES}
ORDER BY n.nspname, c.relname
"""

_PARTS = (catalog.BY_NAME["indexes"], catalog.BY_NAME["constraints"])
_SUMMARY_SQL = f"""
WITH part AS MATERIALIZED (SELECT * FROM ({catalog.objects_sql(_PARTS)}) a WHERE NOT a.bookkeeping)
SELECT
  pg_database_size(current_database()),
  (SELECT coalesce(array_agg(format('%%I.%%I', n.nspname, c.relname) ORDER BY 1), '{{}}')
     FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE NOT i.indisvalid AND i.indexrelid IN (SELECT objid FROM part WHERE kind = 'indexes')),
  (SELECT coalesce(array_agg(format('%%s on %%s', k.conname, k.conrelid::regclass) ORDER BY 1), '{{}}')
     FROM pg_constraint k WHERE NOT k.convalidated
       AND k.oid IN (SELECT objid FROM part WHERE kind = 'constraints')),
  (SELECT coalesce(array_agg(format('pid %%s (%%s, since %%s)', a.pid,
          coalesce(nullif(a.application_name, ''), a.usename::text),
          to_char(a.xact_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS "UTC"'))
          ORDER BY a.xact_start), '{{}}')
     FROM pg_stat_activity a
     WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
       AND a.xact_start < now() - %(long)s::interval)
"""


# Status's lines that sum several kinds of the catalog (Tables counts the tables it lists).
STATUS_GROUPS = {
    "tables": ("tables", "partitioned_tables"),
    "indexes": ("indexes",),
    "constraints": ("constraints",),
    "views": ("views", "materialized_views"),
    "functions": ("functions", "procedures", "aggregates", "window_functions"),
    "sequences": ("sequences", "owned_sequences"),
}


@dataclass(frozen=True)
class TableInfo:
    schema: str
    name: str
    rows: int | None  # None: never analyzed and too large to count
    exact: bool
    total_bytes: int
    locked: bool = False  # held exclusively by another session: estimates only

    @property
    def qualified(self) -> str:
        return self.name if self.schema == "public" else f"{self.schema}.{self.name}"


@dataclass(frozen=True)
class CatalogSummary:
    tables: tuple[TableInfo, ...]
    indexes: int
    constraints: int
    views: int
    functions: int
    sequences: int
    database_bytes: int
    objects: dict[str, int]  # every kind of dbops.schema.catalog (grants and comments too)
    invalid_indexes: tuple[str, ...]
    not_valid_constraints: tuple[str, ...]
    long_transactions: tuple[str, ...]
    estimates_only: bool = False  # a lock was queued: sizes and counts are pg_class's estimates


def summarize(conn: psycopg.Connection[Any]) -> CatalogSummary:
    raw_tables, row, objects, estimates_only = _read(conn)
    # An empty heap holds no row at all: 0 is exact without asking. Small readable ones are counted.
    to_count = [
        (schema, name)
        for schema, name, _, _, locked, readable, heap, _ in raw_tables
        if not estimates_only and not locked and readable and 0 < heap <= EXACT_COUNT_MAX_BYTES
    ]
    counts = _exact_counts(conn, to_count)
    tables = []
    for schema, name, reltuples, unanalyzed, locked, _, heap, total in raw_tables:
        if (heap == 0 and not estimates_only and not locked) or (schema, name) in counts:
            tables.append(TableInfo(schema, name, counts.get((schema, name), 0), True, total))
        else:
            tables.append(TableInfo(schema, name, None if unanalyzed else reltuples, False, total, locked))
    return CatalogSummary(
        tables=tuple(tables),
        indexes=objects["indexes"],
        constraints=objects["constraints"],
        views=sum(objects[k] for k in STATUS_GROUPS["views"]),
        functions=sum(objects[k] for k in STATUS_GROUPS["functions"]),
        sequences=sum(objects[k] for k in STATUS_GROUPS["sequences"]),
        database_bytes=row[0],
        objects=objects,
        invalid_indexes=tuple(row[1]),
        not_valid_constraints=tuple(row[2]),
        long_transactions=tuple(row[3]),
        estimates_only=estimates_only,
    )


def _read(
    conn: psycopg.Connection[Any],
) -> tuple[list[tuple[Any, ...]], tuple[Any, ...], dict[str, int], bool]:
    """Every application table with its sizes, the summary row and the counts of every kind, in
    one round trip; pg_class's estimates for the tables if a lock would make us wait."""
    from psycopg import errors

    params = {"long": LONG_TRANSACTION}
    try:
        with conn.pipeline(), conn.transaction():
            conn.execute(f"SET LOCAL lock_timeout = '{LOCK_WAIT}'")
            conn.execute("SET LOCAL jit = off")  # the union of every kind looks costly enough to compile
            tables = conn.execute(_TABLES_SQL, {"sizes": True})
            summary = conn.execute(_SUMMARY_SQL, params)
            counts = conn.execute(catalog.counts_sql(bookkeeping=False))
        return tables.fetchall(), _one(summary.fetchone()), catalog.all_kinds(counts.fetchall()), False
    except errors.LockNotAvailable:
        raw_tables = conn.execute(_TABLES_SQL, {"sizes": False}).fetchall()
        row = _one(conn.execute(_SUMMARY_SQL, params).fetchone())
        return raw_tables, row, catalog.counts(conn, bookkeeping=False), True


def _one(row: tuple[Any, ...] | None) -> tuple[Any, ...]:
    assert row is not None
    return row


def _exact_counts(conn: psycopg.Connection[Any], tables: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """count(*) of many small tables in one statement; estimates instead if one gets locked meanwhile."""
    if not tables:
        return {}
    from psycopg import errors, sql

    parts = [
        sql.SQL("SELECT {}::int, count(*) FROM {}").format(sql.Literal(i), sql.Identifier(schema, name))
        for i, (schema, name) in enumerate(tables)
    ]
    try:
        with conn.pipeline(), conn.transaction():
            conn.execute(f"SET LOCAL lock_timeout = '{LOCK_WAIT}'")
            cursor = conn.execute(sql.SQL(" UNION ALL ").join(parts))
        rows = cursor.fetchall()
    except errors.LockNotAvailable:
        return {}
    return {tables[i]: count for i, count in rows}
