"""Every kind of object through migrate, seed, status, backup, restore and reset.

The schema is tests/schemas/every_kind (migrations written from the PostgreSQL documentation);
the kinds are dbops.schema.catalog's; the one drop-everything is dbops.schema.drop. Each
transition has its test; then the drop program is tested kind by kind, and the issue's bugs
each have their repro.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import psycopg
import pytest

from backup_helpers import fingerprint, schema_dump
from conftest import REPO, Run
from dbops.backups.contents import MANIFEST_KINDS
from dbops.migrations.files import YOYO_TABLES, discover
from dbops.migrations.lint import lint
from dbops.migrations.scripts import load, order
from dbops.schema import catalog, drop

EVERY_KIND = REPO / "tests" / "schemas" / "every_kind"

# Kinds the every-kind schema does not make, and why: a base type and a procedural language
# need C code of their own (a shared library), which the test servers do not have.
NOT_IN_THE_TEST_SCHEMA = {"base_types", "languages"}

# The seeds, by file name: SQL statements, then data as pg_dump --data-only
# --load-via-partition-root writes it (its header, SET lines, COPY ... FROM stdin blocks ended by
# \., setval), then the materialized view made fresh again.
SEEDS = {
    "01_customers.sql": """
INSERT INTO app.customers (name, nickname, zip, feeling, position, secret) VALUES
  ('Ada', 'ADA', '12345', 'happy', ROW(1, 2), 's1'),
  ('Bob', 'bobby', '12345-6789', 'sad', NULL, NULL),
  ('Zoë 日本', NULL, NULL, 'ok', ROW(-1.5, 0), 'ü');
INSERT INTO app.orders (customer_id, quantity, price, validity)
  SELECT c.id, g, g * 1.5, app.float8_range(g, g + 1) FROM app.customers c, generate_series(1, 4) g;
INSERT INTO app.cache (key, value) VALUES ('a', '{"x": 1}'), ('b', NULL);
INSERT INTO app.measurements SELECT g % 7, date '2024-12-25' + g * 3, g, g * 2 FROM generate_series(1, 300) g;
INSERT INTO app.cities VALUES ('Lyon', 500000, 170), ('Oslo', 700000, 23);
INSERT INTO app.capitals VALUES ('Paris', 2100000, 35, 'FR');
INSERT INTO public.settings VALUES ('theme', 'dark');
SELECT setval('app.invoice_numbers', 4242);
REFRESH MATERIALIZED VIEW app.sales_by_city;
""",
    "02_dumped.sql": r"""--
-- PostgreSQL database dump
--

\restrict K3yFromPgDump

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET transaction_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Data for Name: customers; Type: TABLE DATA; Schema: app; Owner: postgres
--

COPY app.customers (id, name, nickname, zip, feeling, "position", secret) FROM stdin;
101	Cy	\N	54321	happy	(3,4)	\N
102	Di	di	54321-0000	sad	\N	tab\there
\.


--
-- Data for Name: orders; Type: TABLE DATA; Schema: app; Owner: postgres
--

COPY app.orders (id, customer_id, quantity, price, validity) FROM stdin;
1001	101	2	9.50	[1.5,2)
1002	102	7	0.25	empty
\.


--
-- Data for Name: measurements; Type: TABLE DATA; Schema: app; Owner: postgres
--

COPY app.measurements (city_id, logdate, peaktemp, unitsales) FROM stdin;
9	2025-06-01	30	5
9	2026-06-01	31	6
9	2031-06-01	32	7
\.


--
-- Data for Name: settings; Type: TABLE DATA; Schema: public; Owner: postgres
--

COPY public.settings (key, value) FROM stdin;
font	mono
\.


--
-- Name: customers_id_seq; Type: SEQUENCE SET; Schema: app; Owner: postgres
--

SELECT pg_catalog.setval('app.customers_id_seq', 102, true);


--
-- Name: orders_id_seq; Type: SEQUENCE SET; Schema: app; Owner: postgres
--

SELECT pg_catalog.setval('app.orders_id_seq', 1002, true);


--
-- PostgreSQL database dump complete
--

\unrestrict K3yFromPgDump

""",
    "03_refresh.sql": "REFRESH MATERIALIZED VIEW app.sales_by_city;\n",  # pg_dump --data-only leaves it
}


@pytest.fixture
def every_kind(project: Path) -> Path:
    """The sample project with the every-kind schema as its migrations, and its seeds."""
    shutil.rmtree(project / "migrations")
    shutil.copytree(EVERY_KIND, project / "migrations")
    (project / "seeds").mkdir()
    for name, body in SEEDS.items():
        (project / "seeds" / name).write_text(body)
    return project


def migrated(cli: Run, *, seed: bool = True) -> None:
    result = cli("migrate")
    assert result.code == 0, result.text
    if seed:
        result = cli("seed")
        assert result.code == 0, result.text


def state(url: str) -> tuple[str, dict[str, str], dict[str, int]]:
    """pg_dump --schema-only, a hash of every table's rows, and the catalog's counts."""
    with psycopg.connect(url, autocommit=True) as conn:
        return schema_dump(url), fingerprint(conn), catalog.counts(conn)


# ----------------------------------------------------------------------------- transitions


def test_migrate_seed_status_counts_agree_with_the_catalog(
    every_kind: Path, cli: Run, db: psycopg.Connection
) -> None:
    migrated(cli, seed=False)
    seeded = cli("seed", "--json")
    assert seeded.code == 0, seeded.text
    both = ["seeds/01_customers.sql", "seeds/02_dumped.sql"]
    assert {t["table"]: (t["created"], t["files"]) for t in json.loads(seeded.out)["report"]["tables"]} == {
        "app.customers": (3 + 2, both),
        "app.orders": (12 + 2, both),
        "app.cache": (2, both[:1]),
        "app.measurements": (300 + 3, both),
        "app.cities": (2, both[:1]),
        "app.capitals": (1, both[:1]),
        "settings": (1 + 1, both),
    }
    # the COPY rows: routed to the partitions, typed by the domain, the enum, the range, the composite
    routed = "SELECT tableoid::regclass::text, peaktemp FROM app.measurements WHERE city_id = 9 ORDER BY 2"
    assert db.execute(routed).fetchall() == [
        ("app.measurements_y2025", 30),
        ("app.measurements_y2026", 31),
        ("app.measurements_other", 32),
    ]
    typed = (
        "SELECT id, zip, feeling::text, position::text, secret FROM app.customers WHERE id > 100 ORDER BY id"
    )
    assert db.execute(typed).fetchall() == [
        (101, "54321", "happy", "(3,4)", None),
        (102, "54321-0000", "sad", None, "tab\there"),
    ]
    ranges = "SELECT validity::text, total::text FROM app.orders WHERE id > 1000 ORDER BY id"
    assert db.execute(ranges).fetchall() == [("[1.5,2)", "19.00"), ("empty", "1.75")]
    next_ids = "SELECT nextval('app.customers_id_seq'), nextval('app.orders_id_seq')"
    assert db.execute(next_ids).fetchone() == (103, 1003)  # pg_dump's setval
    # again, over the rows it loaded: --clear empties every table the seeds write, COPY's too
    again = cli("seed", "--clear", "--json")
    assert again.code == 0, again.text
    assert json.loads(again.out)["report"]["tables"] == json.loads(seeded.out)["report"]["tables"]
    counts = catalog.counts(db, bookkeeping=False)
    missing = {kind for kind, n in counts.items() if n == 0} - NOT_IN_THE_TEST_SCHEMA
    assert missing == set(), f"the every-kind schema makes no {missing}"
    result = cli("status", "--json")
    assert result.code == 0, result.text
    report = json.loads(result.out)["report"]["catalog"]
    assert report["objects"] == counts
    assert len(report["tables"]) == counts["tables"] + counts["partitioned_tables"]
    assert report["indexes"] == counts["indexes"] and report["constraints"] == counts["constraints"]
    assert report["views"] == counts["views"] + counts["materialized_views"]
    routines = ("functions", "procedures", "aggregates", "window_functions")
    assert report["functions"] == sum(counts[k] for k in routines)
    assert report["sequences"] == counts["sequences"] + counts["owned_sequences"]
    out = cli("status").out
    assert f"  Tables: {counts['tables'] + counts['partitioned_tables']}\n" in out
    for kind in ("collations", "event_triggers", "publications", "casts", "partitions", "policies"):
        assert f"  {catalog.TITLES[kind]}: {counts[kind]}\n" in out
    assert "  app.measurements: 303 records" in out  # a partitioned table: the sum of its partitions
    assert "_yoyo" not in out


@pytest.mark.parametrize("in_place", [False, True], ids=["scratch-swap", "in-place"])
@pytest.mark.parametrize("fmt", ["plain", "custom", "directory"])
def test_backup_then_restore_gives_the_same_schema_and_rows(
    every_kind: Path, cli: Run, database_url: str, db: psycopg.Connection, fmt: str, in_place: bool
) -> None:
    migrated(cli)
    before = state(database_url)
    result = cli("backup", "--json", f"--format={fmt}")
    assert result.code == 0, result.text
    path = json.loads(result.out)["report"]["path"]
    manifest_objects = json.loads(Path(f"{path}.json").read_text())["objects"]
    assert manifest_objects == {
        key: sum(before[2][k] for k in kinds) for key, kinds in MANIFEST_KINDS.items()
    }
    assert manifest_objects["collations"] == 2 and manifest_objects["event_triggers"] == 1
    # changes the restore must undo, of several kinds
    db.execute("""
        DELETE FROM app.measurements WHERE city_id = 1; UPDATE app.customers SET nickname = 'x';
        DROP COLLATION app.c_copy; CREATE COLLATION app.extra FROM "C"; DROP CAST (int4range AS int8range);
        CREATE TEXT SEARCH CONFIGURATION app.more (COPY = app.english_cfg); DROP AGGREGATE app.my_avg(float8);
        CREATE TABLE app.later (id int) PARTITION BY LIST (id); CREATE TABLE app.later_1 PARTITION OF app.later
        FOR VALUES IN (1); SELECT lo_unlink(424242);""")
    result = cli("restore", path, "--force", *(["--in-place"] if in_place else []))
    assert result.code == 0, result.text
    after = state(database_url)
    assert after[0] == before[0]
    assert after[1] == before[1]
    assert after[2] == before[2]
    with psycopg.connect(database_url) as conn:
        assert catalog.counts(conn)["partitions"] == 3


def test_reset_then_migrate_is_identical_again(every_kind: Path, cli: Run, database_url: str) -> None:
    migrated(cli, seed=False)
    before = state(database_url)
    migrated_seeded = cli("seed")
    assert migrated_seeded.code == 0, migrated_seeded.text
    result = cli("reset", "--force")
    assert result.code == 0, result.text
    out = result.out
    assert (
        "✓ Tables: 7 (app.cache, app.capitals, app.cities, app.customers, app.measurements, app.orders,"
        in out
    )
    assert "app.measurements_y2025" not in out  # the partitions go with their table
    assert "✓ Default privileges: 2 (postgres on functions, postgres on tables in schema app)" in out
    assert "✓ Collations: 2 (app.c_copy, app.ci_c)" in out
    assert "✓ Casts: 2 (app.mood AS integer, int4range AS int8range)" in out
    assert "✓ Event triggers: 1 (note_ddl)" in out and "✓ Publications: 1 (app_orders)" in out
    assert "Extensions" not in out  # reset keeps them
    after = state(database_url)
    assert after[0] == before[0]
    bookkeeping = {f"public.{name}" for name in YOYO_TABLES}  # when each migration ran differs
    assert {k: v for k, v in after[1].items() if before[1].get(k) != v and k not in bookkeeping} == {}
    assert after[2] == before[2]


def test_reset_keeps_public_and_the_extensions_as_they_were(
    every_kind: Path, cli: Run, db: psycopg.Connection
) -> None:
    db.execute("COMMENT ON SCHEMA public IS 'ours'; REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    db.execute("GRANT CREATE ON SCHEMA public TO pg_monitor")
    public = "SELECT obj_description(oid, 'pg_namespace'), nspacl::text, nspowner FROM pg_namespace WHERE nspname = 'public'"
    was = db.execute(public).fetchone()
    migrated(cli)
    assert cli("reset", "--force").code == 0
    assert db.execute(public).fetchone() == was
    assert db.execute("SELECT extname FROM pg_extension ORDER BY 1").fetchall() == [
        ("citext",),
        ("file_fdw",),
        ("plpgsql",),
    ]


# ----------------------------------------------------------------------------- kind by kind

# One object of each kind the drop program drops on its own, with what it needs.
ONE_OF_EACH = {
    "event_triggers": """CREATE FUNCTION f() RETURNS event_trigger LANGUAGE plpgsql AS 'BEGIN END';
        CREATE EVENT TRIGGER et ON ddl_command_start EXECUTE FUNCTION f()""",
    "publications": "CREATE TABLE t (id int PRIMARY KEY); CREATE PUBLICATION pub FOR TABLE t",
    "extensions": "CREATE EXTENSION citext; CREATE TABLE t (c citext)",
    "schemas": """CREATE SCHEMA s; CREATE TABLE s.t (id int); CREATE COLLATION s.c FROM "C";
        CREATE FUNCTION s.f(int, int) RETURNS bool LANGUAGE sql AS 'SELECT $1 = $2';
        CREATE OPERATOR s.=== (leftarg = int, rightarg = int, function = s.f);
        CREATE FOREIGN DATA WRAPPER w; CREATE SERVER srv FOREIGN DATA WRAPPER w;
        CREATE FOREIGN TABLE s.ft (x int) SERVER srv""",
    "materialized_views": "CREATE MATERIALIZED VIEW mv AS SELECT 1 AS x",
    "views": "CREATE TABLE t (x int); CREATE VIEW v AS SELECT x FROM t; CREATE VIEW v2 AS SELECT * FROM v",
    "foreign_tables": """CREATE FOREIGN DATA WRAPPER w; CREATE SERVER s FOREIGN DATA WRAPPER w;
        CREATE FOREIGN TABLE ft (x int) SERVER s""",
    "partitioned_tables": """CREATE TABLE p (id int, d date NOT NULL) PARTITION BY RANGE (d);
        CREATE TABLE p_2020 PARTITION OF p FOR VALUES FROM ('2020-01-01') TO ('2030-01-01');
        CREATE TABLE p_rest PARTITION OF p DEFAULT""",
    "tables": """CREATE TABLE a (id serial PRIMARY KEY, g int GENERATED ALWAYS AS IDENTITY);
        CREATE TABLE b (a int REFERENCES a); CREATE UNLOGGED TABLE u (x int); CREATE TABLE c () INHERITS (a)""",
    "sequences": "CREATE SEQUENCE s1; CREATE TABLE t (id int DEFAULT nextval('s1'))",
    "aggregates": """CREATE FUNCTION acc(int, int) RETURNS int LANGUAGE sql AS 'SELECT $1 + $2';
        CREATE AGGREGATE total(int) (sfunc = acc, stype = int, initcond = '0')""",
    "window_functions": "CREATE FUNCTION rn() RETURNS bigint LANGUAGE internal WINDOW AS 'window_row_number'",
    "procedures": "CREATE PROCEDURE p(x int) LANGUAGE sql AS 'SELECT x'",
    "functions": "CREATE FUNCTION f(x int) RETURNS int LANGUAGE sql AS 'SELECT x'; CREATE FUNCTION f(x text) RETURNS text LANGUAGE sql AS 'SELECT x'",
    "operators": """CREATE FUNCTION eq(int, text) RETURNS bool LANGUAGE sql AS 'SELECT $1::text = $2';
        CREATE OPERATOR === (leftarg = int, rightarg = text, function = eq)""",
    "operator_classes": """CREATE OPERATOR CLASS c FOR TYPE int4 USING btree AS OPERATOR 1 <, OPERATOR 2 <=,
        OPERATOR 3 =, OPERATOR 4 >=, OPERATOR 5 >, FUNCTION 1 btint4cmp(int4, int4)""",
    "operator_families": "CREATE OPERATOR FAMILY fam USING hash",
    "domains": "CREATE DOMAIN d AS int CHECK (VALUE > 0); CREATE TABLE t (x d)",
    "composite_types": "CREATE TYPE c AS (a int, b text)",
    "enum_types": "CREATE TYPE e AS ENUM ('a', 'b'); CREATE TABLE t (x e)",
    "range_types": "CREATE TYPE r AS RANGE (subtype = float8)",
    "collations": "CREATE COLLATION ci (provider = libc, locale = 'C'); CREATE TABLE t (x text COLLATE ci)",
    "text_search_configurations": "CREATE TEXT SEARCH CONFIGURATION cfg (COPY = english)",
    "text_search_dictionaries": "CREATE TEXT SEARCH DICTIONARY dict (template = simple)",
    "text_search_parsers": """CREATE TEXT SEARCH PARSER prs (start = prsd_start, gettoken = prsd_nexttoken,
        end = prsd_end, lextypes = prsd_lextype)""",
    "text_search_templates": "CREATE TEXT SEARCH TEMPLATE tmpl (lexize = dsimple_lexize)",
    "conversions": "CREATE CONVERSION conv FOR 'LATIN1' TO 'UTF8' FROM iso8859_1_to_utf8",
    "casts": "CREATE CAST (int4range AS int8range) WITH INOUT",
    "foreign_servers": "CREATE FOREIGN DATA WRAPPER w; CREATE SERVER s FOREIGN DATA WRAPPER w; CREATE USER MAPPING FOR PUBLIC SERVER s",
    "foreign_data_wrappers": "CREATE FOREIGN DATA WRAPPER w",
    "languages": "CREATE LANGUAGE plsample HANDLER plpgsql_call_handler",
    "access_methods": "CREATE ACCESS METHOD heap2 TYPE TABLE HANDLER heap_tableam_handler",
    "large_objects": "SELECT lo_from_bytea(0, 'x'); SELECT lo_from_bytea(0, 'y')",
    "default_privileges": """ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
        ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO pg_monitor;
        ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE ON SEQUENCES TO PUBLIC""",
}


def test_every_kind_outside_a_table_is_dropped_by_the_program() -> None:
    on_their_own = {k.name for k in catalog.KINDS if k.scope != "part"}
    assert set(drop.DROP_ORDER) == on_their_own == set(ONE_OF_EACH) | {"base_types"}  # base: C code


@pytest.mark.parametrize("keep_extensions", [False, True], ids=["restore", "reset"])
@pytest.mark.parametrize("kind", list(ONE_OF_EACH))
def test_the_drop_program_kind_by_kind(db: psycopg.Connection, kind: str, keep_extensions: bool) -> None:
    empty = catalog.counts(db)
    db.execute(ONE_OF_EACH[kind])
    made = catalog.counts(db)
    assert made[kind] >= 1
    planned = drop.plan(db, keep_extensions=keep_extensions)
    if not (kind == "extensions" and keep_extensions):
        assert kind in {o.kind for o in planned}
    db.execute(drop.program(keep_extensions=keep_extensions))
    left = catalog.counts(db)
    if kind == "extensions" and keep_extensions:
        assert left == empty | {"extensions": 1, "comments": empty["comments"] + 1}  # and its comment
    else:
        assert left == empty, {k: n for k, n in left.items() if n != empty[k]}
    if not (kind == "extensions" and keep_extensions):
        db.execute(ONE_OF_EACH[kind])  # nothing of it left in the way


# ----------------------------------------------------------------------------- the bugs


def write_migrations(project: Path, **files: str) -> None:
    shutil.rmtree(project / "migrations")
    (project / "migrations").mkdir()
    for name, body in files.items():
        (project / "migrations" / f"{name}.sql").write_text(body)


def test_reset_with_a_partitioned_table(project: Path, cli: Run, db: psycopg.Connection) -> None:
    write_migrations(
        project,
        **{
            "0001_part": "CREATE TABLE p (id int, d date NOT NULL) PARTITION BY RANGE (d); CREATE TABLE p_2020"
            " PARTITION OF p FOR VALUES FROM ('2020-01-01') TO ('2030-01-01');"
        },
    )
    assert cli("migrate").code == 0
    result = cli("reset", "--force")
    assert result.code == 0, result.text
    assert "✓ Tables: 1 (p)" in result.out
    assert db.execute("SELECT count(*) FROM pg_inherits").fetchone() == (1,)


@pytest.mark.parametrize("how", ["reset", "restore --in-place"])
def test_a_collation_and_a_text_search_configuration_do_not_survive(
    project: Path, cli: Run, db: psycopg.Connection, how: str
) -> None:
    write_migrations(
        project,
        **{
            "0001_text": "CREATE COLLATION ci_c (provider = libc, locale = 'C');"
            " CREATE TEXT SEARCH CONFIGURATION english_copy (COPY = english);"
            " CREATE TABLE t (name text COLLATE ci_c);"
        },
    )
    assert cli("migrate").code == 0
    if how == "reset":
        result = cli("reset", "--force")
    else:
        backup = cli("backup", "--json")
        result = cli("restore", json.loads(backup.out)["report"]["path"], "--force", "--in-place")
    assert result.code == 0, result.text
    assert db.execute("SELECT count(*) FROM pg_collation WHERE collname = 'ci_c'").fetchone() == (1,)


def test_restore_in_place_with_an_aggregate_over_a_function(
    project: Path, cli: Run, db: psycopg.Connection, database_url: str
) -> None:
    write_migrations(
        project,
        **{
            "0001_agg": "CREATE FUNCTION acc(int, int) RETURNS int LANGUAGE sql AS 'SELECT $1 + $2';"
            " CREATE AGGREGATE total(int) (sfunc = acc, stype = int, initcond = '0');"
            " CREATE TABLE p (id int, d date NOT NULL) PARTITION BY RANGE (d);"
            " CREATE TABLE p_2020 PARTITION OF p FOR VALUES FROM ('2020-01-01') TO ('2030-01-01');"
            " INSERT INTO p SELECT g, date '2021-01-01' + g FROM generate_series(1, 10) g;"
        },
    )
    assert cli("migrate").code == 0
    before = schema_dump(database_url)
    backup = cli("backup", "--json")
    result = cli("restore", json.loads(backup.out)["report"]["path"], "--force", "--in-place")
    assert result.code == 0, result.text
    assert schema_dump(database_url) == before
    assert db.execute("SELECT total(id) FROM p").fetchone() == (55,)


def test_the_every_kind_migrations_lint_clean() -> None:
    """Foreign keys and partitions of the tables they create themselves lock nobody out."""
    scripts = order(list(load(discover(EVERY_KIND)).values()))
    assert lint(scripts, lock_timeout_ms=None) == []
