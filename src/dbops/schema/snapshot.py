"""A schema snapshot: the application's tables, columns, constraints, indexes, enums, sequences
and views, and every other object kind (``objects.py``), read from the catalog in one round
trip (the queries pipelined).

The same objects count as in status (user schemas, not owned by an extension, not yoyo's or
dbops' bookkeeping). Everything is read with ``search_path = public`` in one transaction, so
two databases print names, types and expressions the same way: objects in ``public`` bare,
others schema-qualified.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dbops.schema.introspect import USER_SCHEMA, YOYO_NAMES
from dbops.schema.objects import Thing, queries

if TYPE_CHECKING:
    import psycopg

# Objects an extension owns are not the application's (an index probe of pg_depend per object:
# a hashed scan of all of it costs a few milliseconds in every query).
_NOT_EXTENSION = (
    "NOT EXISTS (SELECT FROM pg_depend e_ WHERE e_.classid = '{catalog}'::regclass"
    " AND e_.objid = {oid} AND e_.deptype = 'e')"
)
_NOT_EXTENSION_C = _NOT_EXTENSION.format(catalog="pg_class", oid="c.oid")

_RELATIONS = f"""
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE {USER_SCHEMA} AND {_NOT_EXTENSION_C} AND c.relname NOT IN {YOYO_NAMES}
"""

# One row per table, then its columns in order (a table without columns still gets its row).
_TABLES_SQL = f"""
WITH owned AS (  -- sequences owned by a column (serial), as its default names them
  SELECT dep.refobjid AS table_oid, dep.refobjsubid AS attnum,
         format('nextval(%%L::regclass)', s.oid::regclass::text) AS nextval
    FROM pg_depend dep JOIN pg_class s ON s.oid = dep.objid AND s.relkind = 'S'
   WHERE dep.classid = 'pg_class'::regclass AND dep.refclassid = 'pg_class'::regclass AND dep.deptype = 'a'
)
SELECT n.nspname, c.relname, a.attname,
       format_type(a.atttypid, a.atttypmod)
         || CASE WHEN a.attcollation <> t.typcollation THEN ' COLLATE ' || quote_ident(co.collname)
                 ELSE '' END,
       a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated, o.nextval
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_type t ON t.oid = a.atttypid
  LEFT JOIN pg_collation co ON co.oid = a.attcollation
  LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
  LEFT JOIN owned o ON o.table_oid = c.oid AND o.attnum = a.attnum
 WHERE c.relkind IN ('r', 'p', 'f') AND {USER_SCHEMA} AND {_NOT_EXTENSION_C}
   AND c.relname NOT IN {YOYO_NAMES}
 ORDER BY n.nspname, c.relname, a.attnum
"""

# Primary keys, unique, check, foreign key and exclusion constraints (not PostgreSQL 18's
# NOT NULL constraints: nullability is compared on the column).
_CONSTRAINTS_SQL = f"""
SELECT n.nspname, c.relname, k.conname, k.contype,
       ARRAY(SELECT a.attname FROM unnest(k.conkey) WITH ORDINALITY u(attnum, ord)
               JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.attnum ORDER BY u.ord),
       pg_get_constraintdef(k.oid, true)
  FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE k.contype IN ('p', 'u', 'c', 'f', 'x') AND c.relkind IN ('r', 'p') AND {USER_SCHEMA}
   AND {_NOT_EXTENSION_C} AND c.relname NOT IN {YOYO_NAMES}
 ORDER BY 1, 2, 3
"""

# Indexes that no constraint owns (those are compared as their constraints).
_INDEXES_SQL = f"""
SELECT n.nspname, c.relname, i.relname, am.amname, x.indisunique,
       pg_get_indexdef(x.indexrelid), pg_get_expr(x.indpred, x.indrelid, true)
  FROM pg_index x
  JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_am am ON am.oid = i.relam
  JOIN pg_class c ON c.oid = x.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p') AND {USER_SCHEMA} AND {_NOT_EXTENSION_C}
   AND c.relname NOT IN {YOYO_NAMES}
   AND NOT EXISTS (SELECT 1 FROM pg_constraint k
                    WHERE k.conindid = x.indexrelid AND k.conrelid = x.indrelid
                      AND k.contype IN ('p', 'u', 'x'))
 ORDER BY 1, 2, 3
"""

# What a table is beyond its columns: partitioning, inheritance, persistence, row-level security,
# a foreign table's server; and how comments and grants describe it.
_TABLE_ASPECTS_SQL = f"""
SELECT n.nspname, c.relname, pg_describe_object('pg_class'::regclass, c.oid, 0),
       json_strip_nulls(json_build_object(
         'partition key', CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END,
         'partition bound', CASE WHEN c.relispartition THEN
             (SELECT 'of ' || i.inhparent::regclass::text FROM pg_inherits i WHERE i.inhrelid = c.oid)
             || ' ' || pg_get_expr(c.relpartbound, c.oid) END,
         'inherits', CASE WHEN NOT c.relispartition THEN
             (SELECT string_agg(i.inhparent::regclass::text, ', ' ORDER BY i.inhseqno)
                FROM pg_inherits i WHERE i.inhrelid = c.oid) END,
         'persistence', CASE c.relpersistence WHEN 'u' THEN 'UNLOGGED' ELSE 'LOGGED' END,
         'access method', CASE WHEN c.relkind = 'r' THEN
             (SELECT a.amname FROM pg_am a WHERE a.oid = c.relam) END,
         'row level security', CASE WHEN c.relrowsecurity THEN 'enabled' ELSE 'disabled' END,
         'forced row level security', CASE WHEN c.relforcerowsecurity THEN 'forced' ELSE 'not forced' END,
         'foreign server', (SELECT s.srvname FROM pg_foreign_table f
                              JOIN pg_foreign_server s ON s.oid = f.ftserver WHERE f.ftrelid = c.oid),
         'foreign options', (SELECT array_to_string(f.ftoptions, ', ') FROM pg_foreign_table f
                              WHERE f.ftrelid = c.oid)))
{_RELATIONS} AND c.relkind IN ('r', 'p', 'f')
"""

_ENUMS_SQL = f"""
SELECT n.nspname, t.typname, array_agg(e.enumlabel::text ORDER BY e.enumsortorder)
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace JOIN pg_enum e ON e.enumtypid = t.oid
 WHERE {USER_SCHEMA} AND {_NOT_EXTENSION.format(catalog="pg_type", oid="t.oid")}
 GROUP BY 1, 2 ORDER BY 1, 2
"""

# Sequences, except identity columns' own (the column's identity is compared instead).
_SEQUENCES_SQL = f"""
SELECT n.nspname, c.relname, format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement, s.seqmin,
       s.seqmax, s.seqcache, s.seqcycle,
       (SELECT ARRAY[tn.nspname::text, tc.relname::text]
          FROM pg_depend dep JOIN pg_class tc ON tc.oid = dep.refobjid
          JOIN pg_namespace tn ON tn.oid = tc.relnamespace
         WHERE dep.classid = 'pg_class'::regclass AND dep.objid = c.oid AND dep.deptype = 'a'
           AND dep.refclassid = 'pg_class'::regclass LIMIT 1)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_sequence s ON s.seqrelid = c.oid
 WHERE {USER_SCHEMA} AND {_NOT_EXTENSION_C}
  AND NOT EXISTS (SELECT 1 FROM pg_depend dep WHERE dep.classid = 'pg_class'::regclass
                   AND dep.objid = c.oid AND dep.deptype = 'i')
ORDER BY 1, 2
"""

_VIEWS_SQL = f"""
SELECT n.nspname, c.relname, c.relkind = 'm', pg_get_viewdef(c.oid, true)
{_RELATIONS} AND c.relkind IN ('v', 'm')
ORDER BY 1, 2
"""


def qualified(schema: str, name: str) -> str:
    """How messages name an object: bare in public, else schema.name."""
    return name if schema == "public" else f"{schema}.{name}"


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # format_type with modifiers (varchar(255), numeric(10,2), integer[]) and collation
    not_null: bool
    default: str | None  # as PostgreSQL prints it; None when there is none
    identity: str  # '' none, 'a' GENERATED ALWAYS, 'd' GENERATED BY DEFAULT
    generated: str | None  # a generated column's expression
    owned_sequence_default: str | None = None  # nextval() of the sequence this column owns (serial)

    @property
    def is_serial(self) -> bool:
        return self.default is not None and self.default == self.owned_sequence_default


@dataclass(frozen=True)
class Constraint:
    name: str
    kind: str  # p primary key, u unique, c check, f foreign key, x exclusion
    columns: tuple[str, ...]
    definition: str  # pg_get_constraintdef: what it enforces, without its name


@dataclass(frozen=True)
class Index:
    name: str
    method: str
    unique: bool
    definition: str  # pg_get_indexdef: CREATE [UNIQUE] INDEX name ON table USING ...
    predicate: str | None

    @property
    def body(self) -> str:
        """What the index is, without its name and table: btree (a, b) INCLUDE (c) WHERE ..."""
        unique = "UNIQUE " if self.unique else ""
        return unique + self.definition.split(" USING ", 1)[1]

    @property
    def columns(self) -> str:
        """The key columns and everything else but the method and the predicate."""
        text = self.definition.split(" USING ", 1)[1].removeprefix(self.method + " ")
        if self.predicate is not None:
            text = text.rpartition(" WHERE ")[0]
        return text


@dataclass(frozen=True)
class Table:
    schema: str
    name: str
    columns: dict[str, Column] = field(default_factory=dict)
    constraints: tuple[Constraint, ...] = ()
    indexes: dict[str, Index] = field(default_factory=dict)
    aspects: tuple[tuple[str, str], ...] = ()  # partitioning, persistence, RLS flags, ...
    description: str = ""  # pg_describe_object's: 'table users', 'foreign table audit.feed'

    @property
    def qualified(self) -> str:
        return qualified(self.schema, self.name)


@dataclass(frozen=True)
class Sequence:
    schema: str
    name: str
    type: str
    start: int
    increment: int
    minimum: int
    maximum: int
    cache: int
    cycle: bool
    owner: str | None  # the table whose column owns it (serial), as qualified() names it

    @property
    def settings(self) -> dict[str, Any]:
        return {
            "as": self.type,
            "start": self.start,
            "increment": self.increment,
            "minvalue": self.minimum,
            "maxvalue": self.maximum,
            "cache": self.cache,
            "cycle": self.cycle,
        }


@dataclass(frozen=True)
class View:
    schema: str
    name: str
    materialized: bool
    definition: str


@dataclass(frozen=True)
class Schema:
    tables: dict[str, Table]  # keyed by qualified name
    enums: dict[str, tuple[str, ...]]
    sequences: dict[str, Sequence]
    views: dict[str, View]
    objects: dict[tuple[str, str | None, str], Thing] = field(default_factory=dict)  # (kind, table, name)

    def present(self) -> set[str]:
        """What exists, as pg_describe_object names it: a grant or comment whose object exists
        on one side only is not reported (its object is)."""
        found = {thing.description for thing in self.objects.values() if thing.description}
        for table in self.tables.values():
            found.add(table.description)
            found.update(f"column {_ident(c)} of {table.description}" for c in table.columns)
            found.update(f"constraint {_ident(k.name)} on {table.description}" for k in table.constraints)
            found.update(f"index {_described(table.schema, i)}" for i in table.indexes)
        for view in self.views.values():
            kind = "materialized view" if view.materialized else "view"
            found.add(f"{kind} {_described(view.schema, view.name)}")
        found.update(f"sequence {_described(s.schema, s.name)}" for s in self.sequences.values())
        found.update(f"type {_described(*_split(name))}" for name in self.enums)
        return found


def _ident(name: str) -> str:
    return name if re.fullmatch(r"[a-z_][a-z0-9_$]*", name) else '"' + name.replace('"', '""') + '"'


def _described(schema: str, name: str) -> str:
    return _ident(name) if schema == "public" else f"{_ident(schema)}.{_ident(name)}"


def _split(name: str) -> tuple[str, str]:
    schema, _, bare = name.rpartition(".")
    return (schema or "public", bare)


def read_schema(conn: psycopg.Connection[Any]) -> Schema:
    """The whole application schema, in one read-only transaction and one round trip."""
    tables_queries = (
        _TABLES_SQL,
        _CONSTRAINTS_SQL,
        _INDEXES_SQL,
        _TABLE_ASPECTS_SQL,
        _ENUMS_SQL,
        _SEQUENCES_SQL,
        _VIEWS_SQL,
    )
    with conn.pipeline(), conn.transaction(force_rollback=True):
        conn.execute("SET LOCAL search_path = public")
        conn.execute("SET LOCAL jit = off")  # compiling the big union costs more than running it
        cursors = [conn.execute(query, {}) for query in tables_queries]
        others = [conn.execute(query) for query in queries(conn.info.server_version)]
    tables_, constraints, indexes, aspects, enums_, sequences_, views_ = (
        cursor.fetchall() for cursor in cursors
    )
    objects_ = [row for cursor in others for row in cursor.fetchall()]
    tables = _tables(tables_, constraints, indexes, aspects)
    enums = {qualified(s, n): tuple(labels) for s, n, labels in enums_}
    sequences = {}
    for schema, name, type_, start, step, low, high, cache, cycle, owner in sequences_:
        owned_by = qualified(*owner) if owner else None
        sequences[qualified(schema, name)] = Sequence(
            schema, name, type_, start, step, low, high, cache, cycle, owned_by
        )
    views = {qualified(row[0], row[1]): View(*row) for row in views_}
    objects = {}
    for kind, name, table, attributes, description, parent in objects_:
        aspects_of = tuple((k, str(v)) for k, v in (attributes or {}).items() if v is not None)
        objects[(kind, table, name)] = Thing(kind, name, table, aspects_of, description, parent)
    return Schema(tables, enums, sequences, views, objects)


def _tables(
    rows: list[Any], constraint_rows: list[Any], index_rows: list[Any], aspect_rows: list[Any]
) -> dict[str, Table]:
    columns: dict[str, dict[str, Column]] = {}
    names: dict[str, tuple[str, str]] = {}
    for schema, table, *col in rows:
        key = qualified(schema, table)
        names[key] = (schema, table)
        columns.setdefault(key, {})
        name, type_, not_null, default, identity, generated, owned = col
        if name is None:
            continue
        is_generated = bool(generated) and generated != "\x00"
        columns[key][name] = Column(
            name=name,
            type=type_,
            not_null=not_null,
            default=None if is_generated else default,
            identity=identity if identity not in ("", "\x00") else "",
            generated=default if is_generated else None,
            owned_sequence_default=owned,
        )
    constraints: dict[str, list[Constraint]] = {}
    for schema, table, name, kind, cols, definition in constraint_rows:
        constraints.setdefault(qualified(schema, table), []).append(
            Constraint(name, kind, tuple(cols), definition)
        )
    indexes: dict[str, dict[str, Index]] = {}
    for schema, table, name, method, unique, definition, predicate in index_rows:
        indexes.setdefault(qualified(schema, table), {})[name] = Index(
            name, method, unique, definition, predicate
        )
    aspects = {
        qualified(schema, table): (desc, tuple(values.items())) for schema, table, desc, values in aspect_rows
    }
    return {
        key: Table(
            schema,
            table,
            columns[key],
            tuple(constraints.get(key, ())),
            indexes.get(key, {}),
            aspects[key][1] if key in aspects else (),
            aspects[key][0] if key in aspects else f"table {_described(schema, table)}",
        )
        for key, (schema, table) in names.items()
    }
