"""SQL seeds in psql's data format (issue 13.5): pg_dump --data-only output (COPY ... FROM stdin
blocks, and --inserts) loads in the seed's transaction and is counted; psql commands are
refused by file and line before anything loads."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from conftest import REPO, Run
from pg_dump_tool import pg_dump
from test_seed import count, write_seeds

EXTRAS = '''\
-- depends: 20251001090600_add_workflow_permissions
CREATE TABLE extras (
  id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  grid int[][],
  note text,
  doc jsonb
);
CREATE TABLE "Odd ""Name""" ("Key" int PRIMARY KEY, "ü" text);
'''
# what a template would read as its own, a COPY's escapes, a tab, a newline, unicode
EXTRA_ROWS = '''\
INSERT INTO extras (grid, note, doc) VALUES
  ('{{1,2},{3,4}}', '{# not a comment #} {% raw %} \\. tab	here', '{"a": {"b": [1, {"c": "}}"}]}}'),
  (NULL, E'line one\\nline two \\\\ back', NULL),
  ('{}', 'Zoë 日本 ☃', '[]');
INSERT INTO "Odd ""Name""" VALUES (1, 'ü'), (2, NULL);
'''


def tables(db: psycopg.Connection) -> list[str]:
    rows = db.execute(
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid ="
        " c.relnamespace WHERE c.relkind = 'r' AND n.nspname = 'public' AND c.relname NOT LIKE '%yoyo%'"
        " ORDER BY 1"
    ).fetchall()
    return [r[0] for r in rows]


def contents(db: psycopg.Connection) -> dict[str, list[str]]:
    """Every application table's rows, as text, sorted."""
    return {
        table: sorted(
            str(r[0])
            for r in db.execute(sql.SQL("SELECT t::text FROM {} t").format(sql.SQL(table))).fetchall()
        )
        for table in tables(db)
    }


@pytest.fixture
def migrated(project: Path, cli: Run) -> Path:
    """The sample project, migrated, without seeds."""
    assert cli("migrate").code == 0
    return project


@pytest.fixture
def dumped(project: Path, cli: Run, db: psycopg.Connection) -> Path:
    """The sample project migrated (with tables of awkward data) and seeded."""
    (project / "migrations" / "20251001090700_extras.sql").write_text(EXTRAS)
    shutil.copytree(REPO / "seeds", project / "seeds")
    assert cli("migrate").code == 0
    seeded = cli("seed")
    assert seeded.code == 0, seeded.text
    db.execute(EXTRA_ROWS)
    return project


@pytest.mark.parametrize("inserts", [False, True], ids=["copy", "inserts"])
def test_pg_dump_data_only_output_is_a_seed(
    dumped: Path, cli: Run, db: psycopg.Connection, database_url: str, inserts: bool
) -> None:
    before = contents(db)
    data = pg_dump(database_url, "--data-only", "--exclude-table=*yoyo*", *(["--inserts"] if inserts else []))
    assert ("INSERT INTO public.users" if inserts else "COPY public.users (") in data
    assert "SELECT pg_catalog.set_config('search_path', '', false);" in data
    assert "SELECT pg_catalog.setval(" in data and "SET statement_timeout = 0;" in data
    assert "{{1,2},{3,4}}" in data
    db.execute(
        sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(sql.SQL(", ").join(map(sql.SQL, tables(db))))
    )
    # after it, a Python seed on the same session names tables without their schema
    after = "def seed(db):\n    db.execute(\"INSERT INTO organizations (name, slug) VALUES ('After', 'after')\")\n"
    write_seeds(dumped / "seeds", {"01_data.sql": data, "02_after.py": after})
    result = cli("seed")
    assert result.code == 0, result.text
    lines = result.out.splitlines()
    for line in (
        "✓ Users: 10 records created",
        "✓ Organizations: 4 records created",  # 3 of the dump's, 1 of the Python seed's
        "✓ Workflow Permissions: 69 records created",
        "✓ Dbops Migration Checksum: 8 records created",  # the table's name has a leading _
        "✓ Extras: 3 records created",
        '✓ Odd "Name": 2 records created',
    ):
        assert line in lines, (line, result.out)
    assert db.execute("DELETE FROM organizations WHERE slug = 'after'").rowcount == 1
    assert contents(db) == before
    # the sequences are past the loaded ids, as pg_dump's setval left them
    assert db.execute("SELECT nextval('users_id_seq') > max(id) FROM users").fetchone() == (True,)
    assert db.execute("SHOW search_path").fetchone() == ('"$user", public',)


def test_copy_data_reads_as_psql_reads_it(migrated: Path, cli: Run, db: psycopg.Connection) -> None:
    """Jinja in the statements, not in the data; an empty COPY; \\. as data inside a quoted value
    is not its end; pg_dump's SET transaction_timeout on any server; statements sharing a line."""
    seed = (
        "SET transaction_timeout = 0;\n"
        "-- {{ env }}\n"
        "COPY organizations (id, name, slug) FROM stdin;\n"
        "1\t{{ env }}\tone\n"
        "2\tB \\\\.\ttwo\n"
        "\\.\n"
        "copy users (id, email, password) from STDIN;\n"
        "\\.\n"
        "SELECT 1; INSERT INTO organizations (id, name, slug)\n"
        "  VALUES (3, {{ 'C' | literal }}, 'three');\n"
    )
    write_seeds(migrated / "seeds", {"01.sql": seed})
    result = cli("seed")
    assert result.code == 0, result.text
    assert "✓ Organizations: 3 records created" in result.out.splitlines()
    assert "✓ Users: 0 records created" in result.out.splitlines()
    names = db.execute("SELECT name FROM organizations ORDER BY id").fetchall()
    assert names == [("{{ env }}",), ("B \\.",), ("C",)]


def refused(result_err: str) -> list[str]:
    return [x for x in result_err.splitlines() if x.startswith(("Error:", "Hint:"))]


ORGS = "organizations:\n  - {id: 1, name: A, slug: a}\n"


@pytest.mark.parametrize(
    ("text", "line", "command"),
    [
        ("SELECT 1;\n\\connect postgres\n", 2, "\\connect postgres"),
        ("\\i /etc/passwd\n", 1, "\\i /etc/passwd"),
        ("SELECT 1;\n\n\\set x 1\n", 3, "\\set x 1"),
        ("SELECT '\\! not a command'; \\gexec\n", 1, "\\gexec"),
        (
            "COPY organizations (id, name, slug) FROM stdin;\n9\tX\tx\n\\.\n\\unrestrict abc\nSELECT 1 \\g\n",
            5,
            "\\g",
        ),
    ],
)
def test_a_psql_command_is_refused_by_file_and_line(
    migrated: Path, cli: Run, db: psycopg.Connection, text: str, line: int, command: str
) -> None:
    write_seeds(migrated / "seeds", {"01_orgs.yaml": ORGS, "02.sql": text})
    result = cli("seed")
    assert result.code == 2, result.text
    assert refused(result.err) == [
        f"Error: seeds/02.sql:{line}: {command}: a psql command, which a seed cannot run",
        "Hint: Remove it: dbops loads a .sql seed itself, in one transaction; it holds SQL statements and"
        " COPY ... FROM stdin data, as pg_dump --data-only writes them",
    ]
    assert count(db, "organizations") == 0


def test_a_shell_command_never_runs(migrated: Path, cli: Run, db: psycopg.Connection, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "kept").write_text("x")
    seed = f"COPY organizations (id, name, slug) FROM stdin;\n5\tE\te\n\\.\n\\! rm -rf {victim}\n"
    write_seeds(migrated / "seeds", {"01_orgs.yaml": ORGS, "02.sql": seed})
    result = cli("seed")
    assert result.code == 2, result.text
    error = refused(result.err)[0]
    assert error.startswith("Error: seeds/02.sql:4: \\! rm -rf /"), error
    assert error.endswith(": a psql command, which a seed cannot run"), error
    assert (victim / "kept").exists()
    assert count(db, "organizations") == 0
    assert "Traceback" not in result.text


def test_copy_failures_name_the_file_and_line(migrated: Path, cli: Run, db: psycopg.Connection) -> None:
    unended = "SELECT 1;\nCOPY public.organizations (id, name, slug) FROM stdin;\n1\tA\ta\n2\tB\tb\n"
    write_seeds(migrated / "seeds", {"01_orgs.yaml": ORGS.replace("1", "7"), "02.sql": unended})
    result = cli("seed")
    assert result.code == 2, result.text
    assert refused(result.err) == [
        "Error: seeds/02.sql:2: COPY public.organizations (id, name, slug) FROM stdin: COPY ... FROM stdin"
        " has no end: no line \\. after its data, before the end of the file",
        "Hint: Write it as pg_dump --data-only does: COPY ... FROM stdin; on a line, the rows, then a line \\.",
    ]
    assert count(db, "organizations") == 0

    missing = "-- data\n\nCOPY public.nope (id) FROM stdin;\n1\n\\.\n"
    write_seeds(migrated / "seeds", {"01_orgs.yaml": ORGS, "02.sql": missing})
    result = cli("seed")
    assert result.code == 1, result.text
    assert refused(result.err)[0] == 'Error: seeds/02.sql:3: relation "public.nope" does not exist'
    assert count(db, "organizations") == 0

    duplicate = "COPY organizations (id, name, slug) FROM stdin;\n2\tB\tb\n3\tC\ta\n\\.\n"
    write_seeds(migrated / "seeds", {"01_orgs.yaml": ORGS, "02.sql": duplicate})
    result = cli("seed")
    assert result.code == 1, result.text
    assert refused(result.err)[0] == (
        'Error: seeds/02.sql:3: duplicate key value violates unique constraint "organizations_slug_key": slug=a'
    )
    assert count(db, "organizations") == 0

    mid_line = "COPY organizations (id, name, slug) FROM stdin; SELECT 1;\n\\.\n"
    write_seeds(migrated / "seeds", {"02.sql": mid_line})
    result = cli("seed")
    assert result.code == 2, result.text
    assert "COPY ... FROM stdin ends its line: its data are the lines after it" in refused(result.err)[0]


def test_a_failing_statement_among_many_is_named(migrated: Path, cli: Run, db: psycopg.Connection) -> None:
    """Statements run in pipelined batches: the one that fails is still named by its line."""
    rows = "".join(
        f"INSERT INTO organizations (id, name, slug) VALUES ({i}, 'O{i}', 'o{i}');\n" for i in range(1, 1100)
    )
    bad = "INSERT INTO organizations (id, name, slug)\n  VALUES (9999, 'Dup', 'o1000');\n"
    write_seeds(migrated / "seeds", {"02.sql": "SELECT 1;\n" + rows + bad + "SELECT 2;\n"})
    result = cli("seed")
    assert result.code == 1, result.text
    assert refused(result.err)[0] == (
        'Error: seeds/02.sql:1101: duplicate key value violates unique constraint "organizations_slug_key":'
        " slug=o1000"
    )
    assert count(db, "organizations") == 0
    write_seeds(migrated / "seeds", {"02.sql": "SELECT 1;\n" + rows})
    result = cli("seed")
    assert result.code == 0, result.text
    assert "✓ Organizations: 1,099 records created" in result.out.splitlines()


def test_the_same_pg_dump_data_seeds_again_with_clear(
    dumped: Path, cli: Run, db: psycopg.Connection, database_url: str
) -> None:
    """A SQL seed inserts (it does not upsert): loading pg_dump's data onto itself stops at the
    first row that is there already, names it by file and line, and the hint's --clear, which
    empties every table the COPY blocks write (children first), makes it load."""
    before = contents(db)
    data = pg_dump(database_url, "--data-only", "--exclude-table=*yoyo*")
    write_seeds(dumped / "seeds", {"01_data.sql": data})
    result = cli("seed")
    assert result.code == 1, result.text
    error, hint = refused(result.err)
    found = re.match(
        r"Error: seeds/01_data\.sql:(\d+): duplicate key value violates unique constraint .+: (.+)=(\S+)$",
        error,
    )
    assert found is not None, error
    row = data.splitlines()[int(found.group(1)) - 1]
    assert row.split("\t")[0] == found.group(3)  # the named line is the row with that key
    assert hint == (
        "Hint: If an earlier seed loaded these rows, run dbops seed --clear: it empties the tables the seed"
        " files write first; else remove the duplicate row"
    )
    assert contents(db) == before
    db.execute("DELETE FROM users WHERE id > 5; UPDATE extras SET note = 'changed'")
    for _ in range(2):
        result = cli("seed", "--clear")
        assert result.code == 0, result.text
        assert "Cleared the seeded tables first (--clear)" in result.out
        assert "✓ Users: 10 records created" in result.out.splitlines()
        assert contents(db) == before
