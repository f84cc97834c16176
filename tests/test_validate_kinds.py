"""validate on a schema with every object kind (tests/schemas/validate_kinds): a clean migrate
compares equal, and a drift planted in each kind is named, with its severity, exactly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import psycopg
import pytest

from conftest import Run

KINDS_SCHEMA = Path(__file__).parent / "schemas" / "validate_kinds"


@pytest.fixture
def kinds(project: Path, cli: Run, db: psycopg.Connection) -> psycopg.Connection:
    """The every-kind schema instead of the sample's migrations, migrated."""
    shutil.rmtree(project / "migrations")
    shutil.copytree(KINDS_SCHEMA, project / "migrations")
    result = cli("migrate")
    assert result.code == 0, result.text
    return db


def problems(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith(("⚠ Warning: ", "✗ Error: "))]


def test_every_kind_validates_clean(kinds: psycopg.Connection, cli: Run) -> None:
    result = cli("validate", "--json", "--strict")
    assert result.code == 0, result.text
    report = json.loads(result.out)["report"]
    assert report["differences"] == []
    assert report["expected"]["objects"] == 5


@pytest.mark.parametrize("schema", ["every_kind"])
def test_the_catalogs_every_kind_schema_validates_clean(
    schema: str, project: Path, cli: Run, db: psycopg.Connection
) -> None:
    shutil.rmtree(project / "migrations")
    shutil.copytree(KINDS_SCHEMA.parent / schema, project / "migrations")
    assert cli("migrate").code == 0
    result = cli("validate", "--json", "--strict")
    assert result.code == 0, result.text
    assert json.loads(result.out)["report"]["differences"] == []


def test_every_kind_is_read(kinds: psycopg.Connection) -> None:
    """The snapshot holds an object of each kind the schema has (so a clean compare means something)."""
    from dbops.schema.objects import KINDS
    from dbops.schema.snapshot import read_schema

    schema = read_schema(kinds)
    present = {kind for kind, _, _ in schema.objects}
    assert present == {kind.name for kind in KINDS} - {"base type"}  # that needs C functions
    assert {"customers", "events", "events_2020s", "events_other", "archived_events"} <= set(schema.tables)
    assert schema.enums == {"mood": ("sad", "ok", "happy")}
    assert {"happy_customers", "events_per_day"} <= set(schema.views)


DRIFTS = [
    # functions and procedures: volatility, security, settings, definition; missing, unexpected
    (
        "ALTER FUNCTION add_one(integer) VOLATILE",
        ["⚠ Warning: Function 'add_one(integer)' volatility mismatch (expected: IMMUTABLE, found: VOLATILE)"],
    ),
    (
        "ALTER FUNCTION app.touch() SECURITY INVOKER",
        [
            "⚠ Warning: Function 'app.touch()' security mismatch"
            " (expected: SECURITY DEFINER, found: SECURITY INVOKER)"
        ],
    ),
    (
        "ALTER FUNCTION app.touch() SET search_path = app, public",
        [
            "⚠ Warning: Function 'app.touch()' settings mismatch"
            " (expected: search_path=public, found: search_path=app, public)"
        ],
    ),
    (
        "CREATE OR REPLACE FUNCTION add_one(i integer) RETURNS integer LANGUAGE sql IMMUTABLE STRICT"
        " AS $$ SELECT i + 2 $$",
        [
            "⚠ Warning: Function 'add_one(integer)' definition mismatch (expected: SELECT i + 1, found: SELECT i + 2)"
        ],
    ),
    (
        "CREATE OR REPLACE FUNCTION add_one(i integer) RETURNS integer LANGUAGE sql IMMUTABLE STRICT"
        " AS $$ select   I+1 $$",
        [],  # the same SQL, spelt otherwise
    ),
    ("DROP PROCEDURE reset_scratchpad()", ["✗ Error: Procedure 'reset_scratchpad()' missing"]),
    (
        "CREATE FUNCTION stray(n int) RETURNS int LANGUAGE sql AS 'SELECT n'",
        ["⚠ Warning: Unexpected function 'stray(integer)'"],
    ),
    ("DROP FUNCTION rank_of()", ["✗ Error: Window function 'rank_of()' missing"]),
    (
        "ALTER TABLE heap_alias_table SET ACCESS METHOD heap",
        ["⚠ Warning: Table 'heap_alias_table' access method mismatch (expected: heap_alias, found: heap)"],
    ),
    ("DROP LANGUAGE plpgsql_alias", ["✗ Error: Language 'plpgsql_alias' missing"]),
    # aggregates, operators, operator classes, casts
    ("DROP AGGREGATE sum_of_squares(numeric)", ["✗ Error: Aggregate 'sum_of_squares(numeric)' missing"]),
    ("DROP OPERATOR === (mood, mood)", ["✗ Error: Operator '===(mood, mood)' missing"]),
    (
        "DROP OPERATOR CLASS int4_reverse_ops USING btree",
        ["⚠ Warning: Operator class 'int4_reverse_ops USING btree' missing"],
    ),
    ("DROP CAST (money_pair AS text)", ["✗ Error: Cast '(money_pair AS text)' missing"]),
    # types: domains, composite types, ranges; collations
    (
        "ALTER DOMAIN positive_int DROP CONSTRAINT positive",
        [
            "⚠ Warning: Domain 'positive_int' checks mismatch (expected: positive CHECK (VALUE > 0), found: none)"
        ],
    ),
    (
        "ALTER DOMAIN positive_int SET DEFAULT 2",
        ["⚠ Warning: Domain 'positive_int' default mismatch (expected: 1, found: 2)"],
    ),
    (
        "ALTER TYPE money_pair ADD ATTRIBUTE note text",
        [
            "⚠ Warning: Composite type 'money_pair' attributes mismatch"
            " (expected: amount numeric(12,2), currency character(3),"
            " found: amount numeric(12,2), currency character(3), note text)"
        ],
    ),
    ("CREATE COLLATION stray_c (locale = 'C')", ["⚠ Warning: Unexpected collation 'stray_c'"]),
    # text search
    (
        "ALTER TEXT SEARCH CONFIGURATION app.notes_search ALTER MAPPING FOR asciiword WITH simple",
        [
            "⚠ Warning: Text search configuration 'app.notes_search' mappings mismatch"
            " (expected: asciiword simple_english, word simple, ..., found: asciiword simple, word simple, ...)"
        ],
    ),
    (
        "DROP TEXT SEARCH CONFIGURATION app.notes_search",
        ["✗ Error: Text search configuration 'app.notes_search' missing"],
    ),
    # tables: partition bounds, persistence, RLS flags; statistics
    (
        "ALTER TABLE events DETACH PARTITION events_2030s;"
        " ALTER TABLE events ATTACH PARTITION events_2030s FOR VALUES FROM ('2030-01-01') TO ('2050-01-01')",
        [
            "⚠ Warning: Table 'events_2030s' partition bound mismatch"
            " (expected: of events FOR VALUES FROM ('2030-01-01') TO ('2040-01-01'),"
            " found: of events FOR VALUES FROM ('2030-01-01') TO ('2050-01-01'))"
        ],
    ),
    (
        "ALTER TABLE scratchpad SET LOGGED",
        ["⚠ Warning: Table 'scratchpad' persistence mismatch (expected: UNLOGGED, found: LOGGED)"],
    ),
    (
        "ALTER TABLE customers DISABLE ROW LEVEL SECURITY",
        ["⚠ Warning: Table 'customers' row level security mismatch (expected: enabled, found: disabled)"],
    ),
    (
        "ALTER TABLE customers NO FORCE ROW LEVEL SECURITY",
        [
            "⚠ Warning: Table 'customers' forced row level security mismatch"
            " (expected: forced, found: not forced)"
        ],
    ),
    (
        "DROP STATISTICS customers_mood_qty",
        ["⚠ Warning: Statistics object 'customers_mood_qty' missing on customers table"],
    ),
    # triggers (and their state), rules, policies
    (
        "ALTER TABLE events_2020s DISABLE TRIGGER events_touch",
        [
            "⚠ Warning: Trigger 'events_touch' enabled state mismatch on events_2020s table"
            " (expected: enabled, found: disabled)"
        ],
    ),
    (
        "DROP TRIGGER notes_touch ON notes",  # its comment goes with it: not reported twice
        ["⚠ Warning: Trigger 'notes_touch' missing on notes table"],
    ),
    (
        "DROP RULE scratchpad_no_delete ON scratchpad",
        ["⚠ Warning: Rule 'scratchpad_no_delete' missing on scratchpad table"],
    ),
    (
        "DROP POLICY customers_happy ON customers",
        ["⚠ Warning: Policy 'customers_happy' missing on customers table"],
    ),
    (
        "ALTER POLICY customers_insert ON customers WITH CHECK (name <> 'nobody')",
        [
            "⚠ Warning: Policy 'customers_insert' with check mismatch on customers table"
            " (expected: name <> ''::text, found: name <> 'nobody'::text)"
        ],
    ),
    (
        "ALTER POLICY customers_happy ON customers TO dbops_t_reader",
        [
            "⚠ Warning: Policy 'customers_happy' roles mismatch on customers table (expected: PUBLIC, found: dbops_t_reader)"
        ],
    ),
    # grants (the owner's own, whoever owns it, only when not the default), default privileges
    (
        "REVOKE SELECT ON customers FROM dbops_t_reader",
        ["⚠ Warning: Grant on table customers to dbops_t_reader missing (expected: SELECT)"],
    ),
    (
        "GRANT INSERT, UPDATE ON customers TO dbops_t_reader",
        [
            "⚠ Warning: Grant on table customers to dbops_t_reader mismatch"
            " (expected: SELECT, found: INSERT, SELECT, UPDATE)"
        ],
    ),
    ("GRANT SELECT ON notes TO PUBLIC", ["⚠ Warning: Unexpected grant on table notes to PUBLIC (SELECT)"]),
    (
        "REVOKE SELECT (body) ON notes FROM dbops_t_reader",
        ["⚠ Warning: Grant on column body of table notes to dbops_t_reader missing (expected: SELECT)"],
    ),
    (
        "GRANT EXECUTE ON FUNCTION app.touch() TO PUBLIC",
        ["⚠ Warning: Unexpected grant on function app.touch() to PUBLIC (EXECUTE)"],
    ),
    (
        "REVOKE USAGE ON SCHEMA app FROM dbops_t_reader",
        ["⚠ Warning: Grant on schema app to dbops_t_reader missing (expected: USAGE)"],
    ),
    (
        "ALTER DEFAULT PRIVILEGES IN SCHEMA app REVOKE SELECT ON TABLES FROM dbops_t_reader",
        [
            "⚠ Warning: Default privileges on new tables in schema app to dbops_t_reader missing"
            " (expected: SELECT)"
        ],
    ),
    # comments
    (
        "COMMENT ON TABLE customers IS 'Buyers'",
        ["⚠ Warning: Comment on table customers mismatch (expected: People who buy, found: Buyers)"],
    ),
    (
        "COMMENT ON COLUMN customers.email IS NULL",
        ["⚠ Warning: Comment on column email of table customers missing (expected: Where invoices go)"],
    ),
    (
        "COMMENT ON FUNCTION app.touch() IS 'Sets the payload'",
        ["⚠ Warning: Unexpected comment on function app.touch() (Sets the payload)"],
    ),
    # extensions and versions, schemas
    (
        "ALTER EXTENSION hstore UPDATE TO '1.8'",
        ["⚠ Warning: Extension 'hstore' version mismatch (expected: 1.7, found: 1.8)"],
    ),
    ("CREATE SCHEMA stray", ["⚠ Warning: Unexpected schema 'stray'"]),
    # foreign data, publications, event triggers
    (
        "ALTER SERVER archive OPTIONS (SET host 'elsewhere.invalid')",
        [
            "⚠ Warning: Foreign server 'archive' options mismatch"
            " (expected: host=archive.invalid, found: host=elsewhere.invalid)"
        ],
    ),
    (
        "ALTER PUBLICATION customer_changes DROP TABLE notes",
        [
            "⚠ Warning: Publication 'customer_changes' tables mismatch"
            " (expected: customers, notes, pinned_notes, found: customers)"
        ],
    ),
    (
        "ALTER PUBLICATION customer_changes SET (publish = 'insert')",
        [
            "⚠ Warning: Publication 'customer_changes' operations mismatch"
            " (expected: insert, update, found: insert)"
        ],
    ),
    (
        "ALTER EVENT TRIGGER no_drops DISABLE",
        ["⚠ Warning: Event trigger 'no_drops' enabled state mismatch (expected: enabled, found: disabled)"],
    ),
    # materialized views
    (
        "DROP MATERIALIZED VIEW events_per_day",
        ["✗ Error: Materialized view 'events_per_day' missing"],
    ),
]


@pytest.mark.parametrize(("drift", "expected"), DRIFTS, ids=[d for d, _ in DRIFTS])
def test_drift_in_each_kind_is_named(
    kinds: psycopg.Connection, cli: Run, drift: str, expected: list[str]
) -> None:
    kinds.execute(drift)
    result = cli("validate")
    assert problems(result.out) == expected, result.text
    errors = [p for p in expected if p.startswith("✗")]
    assert result.code == (1 if errors else 0), result.text
    if expected and not errors:
        assert cli("validate", "--strict").code == 1


def test_a_difference_as_json(kinds: psycopg.Connection, cli: Run) -> None:
    kinds.execute("ALTER TABLE events_2020s DISABLE TRIGGER events_touch")
    result = cli("validate", "--json")
    assert result.code == 0, result.text
    assert json.loads(result.out)["report"]["differences"] == [
        {
            "severity": "warning",
            "kind": "trigger",
            "name": "events_touch",
            "table": "events_2020s",
            "problem": "enabled state",
            "expected": "enabled",
            "found": "disabled",
            "message": "Trigger 'events_touch' enabled state mismatch on events_2020s table"
            " (expected: enabled, found: disabled)",
        }
    ]


def test_the_hint_names_a_migration_that_can_be_created(kinds: psycopg.Connection, cli: Run) -> None:
    kinds.execute("DROP PROCEDURE reset_scratchpad()")
    result = cli("validate")
    assert result.code == 1
    hint = result.err.splitlines()[1]
    assert hint == "Hint: Create a corrective migration: dbops migrate-create fix_reset_scratchpad_schema"
    created = cli(*hint.split("dbops ", 1)[1].split())
    assert created.code == 0, created.text


# Where validate compares each kind of the one catalog of the application's objects
# (schema/catalog.py), by validate's own kind names (objects.KINDS, and compare's built-in ones).
COMPARED_AS = {
    "tables": "table",
    "partitioned_tables": "table",  # its partition key
    "partitions": "table",  # its partition bound
    "foreign_tables": "table",  # its server and options
    "views": "view",
    "materialized_views": "view",
    "sequences": "sequence",
    "owned_sequences": "column",  # a serial column's default, an identity column's identity
    "indexes": "index",
    "constraints": "constraint",
    "triggers": "trigger",
    "rules": "rule",
    "policies": "policy",
    "row_security": "table",  # the tables' RLS flags
    "statistics": "statistics object",
    "functions": "function",
    "procedures": "procedure",
    "aggregates": "aggregate",
    "window_functions": "window function",
    "operators": "operator",
    "operator_classes": "operator class",
    "operator_families": "operator family",
    "enum_types": "enum",
    "range_types": "range type",
    "multirange_types": "range type",  # its multirange
    "domains": "domain",
    "composite_types": "composite type",
    "base_types": "base type",
    "collations": "collation",
    "text_search_configurations": "text search configuration",
    "text_search_dictionaries": "text search dictionary",
    "text_search_parsers": "text search parser",
    "text_search_templates": "text search template",
    "conversions": "conversion",
    "schemas": "schema",
    "extensions": "extension",
    "casts": "cast",
    "event_triggers": "event trigger",
    "publications": "publication",
    "foreign_data_wrappers": "foreign-data wrapper",
    "foreign_servers": "foreign server",
    "languages": "language",
    "access_methods": "access method",
    "default_privileges": "default privileges",
    "grants": "grant",
    "comments": "comment",
}
NOT_COMPARED = {"large_objects"}  # data, not schema (README: Validate)
BUILT_IN = {"table", "column", "index", "constraint", "enum", "sequence", "view"}  # compare.py's own


def test_validate_compares_every_kind_of_the_catalog() -> None:
    from dbops.schema.objects import KIND

    catalog = pytest.importorskip("dbops.schema.catalog")  # the one catalog, once it has landed
    names = {kind.name for kind in catalog.KINDS} | {name for name, _ in getattr(catalog, "DERIVED", ())}
    assert names - NOT_COMPARED == set(COMPARED_AS)
    assert set(COMPARED_AS.values()) <= BUILT_IN | set(KIND)
