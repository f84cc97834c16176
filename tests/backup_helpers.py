"""A database with one of everything, and fingerprints to compare two databases by."""

from __future__ import annotations

import hashlib
import re
import subprocess

import psycopg
from psycopg import sql

from dbops.postgres.embedded import bin_dir

RICH_SCHEMA = """
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN email AS text CHECK (VALUE LIKE '%@%');
CREATE SCHEMA app;
CREATE TABLE app.people (
  id serial PRIMARY KEY,
  name text NOT NULL,
  mail email UNIQUE,
  feeling mood DEFAULT 'ok',
  updated timestamptz
);
COMMENT ON TABLE app.people IS 'Les gens: ünïcode ☃ 日本';
COMMENT ON COLUMN app.people.name IS 'le nom';
CREATE FUNCTION app.touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.updated := now(); RETURN NEW; END $$;
CREATE TRIGGER people_touch BEFORE UPDATE ON app.people FOR EACH ROW EXECUTE FUNCTION app.touch();
CREATE FUNCTION app.shout(t text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT upper(t) || '!' $$;
CREATE VIEW app.happy AS SELECT id, app.shout(name) AS name FROM app.people WHERE feeling = 'happy';
CREATE MATERIALIZED VIEW app.mood_counts AS SELECT feeling, count(*) AS n FROM app.people GROUP BY feeling;
CREATE SEQUENCE app.ticket START 1000 INCREMENT 7;
CREATE TABLE app.events (
  id bigint GENERATED ALWAYS AS IDENTITY,
  at date NOT NULL,
  payload jsonb,
  person int REFERENCES app.people (id)
) PARTITION BY RANGE (at);
CREATE TABLE app.events_2025 PARTITION OF app.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE app.events_2026 PARTITION OF app.events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE INDEX events_payload ON app.events USING gin (payload);
CREATE TABLE public.notes (id int PRIMARY KEY, body text, tags text[]);
COMMENT ON SCHEMA app IS 'the application';
CREATE TABLE app."Odd ""name"".x ü" ("Col 1" int, "ü" text);
INSERT INTO app."Odd ""name"".x ü" VALUES (1, 'a'), (2, E'b\\.'), (3, NULL);
CREATE TABLE app.no_columns ();
INSERT INTO app.no_columns DEFAULT VALUES;
INSERT INTO app.no_columns DEFAULT VALUES;
INSERT INTO app.people (name, mail, feeling)
  SELECT 'Zoë ' || g || ' 日本 ☃', 'p' || g || '@x.org', (ARRAY['sad', 'ok', 'happy'])[1 + g % 3]::mood
  FROM generate_series(1, 500) g;
INSERT INTO app.events (at, payload, person)
  SELECT date '2025-06-01' + g, jsonb_build_object('n', g, 'text', 'ñandú "quoted" \\ tab	x'), 1 + g % 500
  FROM generate_series(1, 400) g;
INSERT INTO public.notes SELECT g, E'line one\\nline two\\ttab \\\\ back', ARRAY['a', 'b c']
  FROM generate_series(1, 50) g;
REFRESH MATERIALIZED VIEW app.mood_counts;
SELECT setval('app.ticket', 4242);
SELECT setval('app.people_id_seq', 9000);
SELECT lo_from_bytea(0, convert_to('large object: ünïcode', 'UTF8'));
SELECT lo_from_bytea(0, decode(repeat('00ff', 5000), 'hex'));
"""


def build_rich(conn: psycopg.Connection) -> None:
    conn.execute(RICH_SCHEMA)
    name = conn.execute("SELECT current_database()").fetchone()[0]  # type: ignore[index]
    ident = sql.Identifier(name)
    conn.execute(sql.SQL("ALTER DATABASE {} SET work_mem = '8MB'").format(ident))
    conn.execute(sql.SQL("ALTER DATABASE {} SET search_path = public, app").format(ident))
    conn.execute(sql.SQL("COMMENT ON DATABASE {} IS 'döcumented'").format(ident))


def fingerprint(conn: psycopg.Connection) -> dict[str, str]:
    """A hash of every table's and materialized view's rows, every sequence, every large object,
    and the database's own settings and comment."""
    found: dict[str, str] = {}
    relations = conn.execute(
        "SELECT n.nspname, c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind IN ('r', 'm', 'S') AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
        " AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1, 2"
    ).fetchall()
    for schema, name, kind in relations:
        table = sql.Identifier(schema, name)
        if kind == "S":
            query = sql.SQL("SELECT last_value::text || ' ' || is_called::text FROM {}").format(table)
        else:
            query = sql.SQL(
                "SELECT count(*) || ' ' || md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) FROM {} t"
            ).format(table)
        found[f"{schema}.{name}"] = conn.execute(query).fetchone()[0]  # type: ignore[index]
    objects = conn.execute(
        "SELECT coalesce(string_agg(md5(lo_get(oid)), ',' ORDER BY oid), '') FROM pg_largeobject_metadata"
    ).fetchone()
    found["large objects"] = objects[0]  # type: ignore[index]
    settings = conn.execute(
        "SELECT coalesce(array_to_string(s.setconfig, ';'), ''), coalesce(shobj_description(d.oid, 'pg_database'), '')"
        " FROM pg_database d LEFT JOIN pg_db_role_setting s ON s.setdatabase = d.oid AND s.setrole = 0"
        " WHERE d.datname = current_database()"
    ).fetchone()
    found["database settings"] = f"{settings[0]} | {settings[1]}"  # type: ignore[index]
    return found


def schema_dump(url: str) -> str:
    """pg_dump --schema-only, without the random \\restrict keys."""
    done = subprocess.run(
        [str(bin_dir() / "pg_dump"), "--schema-only", "--dbname", url],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = [line for line in done.stdout.splitlines() if not line.startswith(("\\restrict", "\\unrestrict"))]
    # This machine's PostgreSQL 15 stamps every new column with a pg_attver option of its own
    # making (a new value on each CREATE, whatever the dump says): not part of what is compared.
    return re.sub(r"pg_attver=\d+", "pg_attver=N", "\n".join(lines))


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
