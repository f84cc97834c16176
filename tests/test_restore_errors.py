"""A statement of a backup that fails is named: its line in the backup, its first line, and
PostgreSQL's message with its own DETAIL and HINT, never an earlier notice's (issue 13.6)."""

from __future__ import annotations

import gzip
from pathlib import Path

import psycopg
import pytest

from backup_helpers import build_rich
from conftest import Run
from test_backup import backup, refresh_manifest, side_databases
from test_crafted_backups import insert_after, state_of

# notices first: a DROP ... CASCADE whose NOTICE carries a DETAIL of its own
NOTICES = """\
SET client_min_messages = notice;
CREATE TABLE public.zz_a (id int PRIMARY KEY);
CREATE VIEW public.zz_v1 AS SELECT * FROM public.zz_a;
CREATE VIEW public.zz_v2 AS SELECT * FROM public.zz_a;
DROP TABLE public.zz_a CASCADE;
"""
FAILURES = {
    "unique": (
        "CREATE TABLE public.zz_b (id int PRIMARY KEY);\nINSERT INTO public.zz_b\n  VALUES (1), (1);\n",
        "INSERT INTO public.zz_b",
        'duplicate key value violates unique constraint "zz_b_pkey" DETAIL: Key (id)=(1) already exists.',
    ),
    "raise": (
        "DO $$\nBEGIN\n  RAISE EXCEPTION 'boom' USING DETAIL = 'its own detail', HINT = 'its own hint';\nEND\n$$;\n",
        "DO $$",
        "boom DETAIL: its own detail HINT: its own hint",
    ),
    "copy row": (
        "CREATE TABLE public.zz_c (id int PRIMARY KEY);\nCOPY public.zz_c (id) FROM stdin;\n1\n2\n1\n\\.\n",
        "row 3 of COPY public.zz_c (id) FROM stdin;",
        'duplicate key value violates unique constraint "zz_c_pkey" DETAIL: Key (id)=(1) already exists.',
    ),
}


@pytest.mark.parametrize("in_place", [False, True], ids=["scratch", "in-place"])
@pytest.mark.parametrize("failure", list(FAILURES))
def test_the_failing_statement_is_named_with_its_own_detail(
    project: Path,
    cli: Run,
    admin_url: str,
    database_url: str,
    db: psycopg.Connection,
    failure: str,
    in_place: bool,
) -> None:
    build_rich(db)
    # views on a table: the in-place emptying drops them with a NOTICE and DETAIL of its own
    db.execute("CREATE VIEW public.notes_v1 AS SELECT * FROM public.notes")
    db.execute("CREATE VIEW public.notes_v2 AS SELECT * FROM public.notes")
    path = backup(cli)
    db.execute("DELETE FROM public.notes WHERE id > 3")
    before = state_of(database_url)
    failing, first, message = FAILURES[failure]
    text = gzip.decompress(path.read_bytes()).decode()
    crafted = insert_after(text, "CREATE TABLE public.notes", NOTICES + failing)
    path.write_bytes(gzip.compress(crafted.encode()))
    refresh_manifest(path)
    start = crafted.index(failing) + (failing.index("COPY") if failure == "copy row" else 0)
    line = crafted[:start].count("\n") + 1 + (3 if failure == "copy row" else 0)
    if failure == "unique":
        line += 1  # the INSERT, after the CREATE TABLE
    result = cli("restore", str(path), "--force", *(["--in-place"] if in_place else []))
    assert result.code == 1, result.text
    errors = [x for x in result.err.splitlines() if x.startswith("Error:")]
    assert errors == [f"Error: Restore failed: line {line} of the backup, {first}: {message}"], result.err
    assert "drop cascades" not in result.err
    assert "Traceback" not in result.err
    assert state_of(database_url) == before
    assert side_databases(admin_url, database_url) == []


def test_a_custom_backup_names_the_failing_entry(
    project: Path, cli: Run, admin_url: str, database_url: str, db: psycopg.Connection
) -> None:
    """An owner that no longer exists: pg_restore (or, for a server before 17, psql on
    pg_restore's script) names the entry or line, with the error's own message."""
    role = f"zz_owner_{db.info.dbname[-12:]}"
    db.execute(f"CREATE ROLE {role}")
    try:
        db.execute("CREATE TABLE public.owned (id int PRIMARY KEY); INSERT INTO public.owned VALUES (1)")
        db.execute(f"ALTER TABLE public.owned OWNER TO {role}")
        db.execute("SET client_min_messages = notice; CREATE TABLE public.gone (id int)")
        db.execute("CREATE VIEW public.gone_v1 AS SELECT * FROM public.gone")
        db.execute("CREATE VIEW public.gone_v2 AS SELECT * FROM public.gone")
        path = backup(cli, "--format=custom")
        db.execute(f"DROP OWNED BY {role}; DROP ROLE {role}")
        db.execute("CREATE TABLE public.owned (id int PRIMARY KEY); INSERT INTO public.owned VALUES (1), (2)")
        result = cli("restore", str(path), "--force")
        assert result.code == 1, result.text
        errors = [x for x in result.err.splitlines() if x.startswith("Error:")]
        assert len(errors) == 1, result.err
        assert f'role "{role}" does not exist' in errors[0]
        if db.info.server_version >= 170000:
            assert "TOC entry" in errors[0] and "TABLE owned" in errors[0], errors[0]
            assert f"Command was: ALTER TABLE public.owned OWNER TO {role};" in errors[0]
        else:
            assert f"ALTER TABLE public.owned OWNER TO {role};" in errors[0]
            assert "of the backup's SQL script (as pg_restore writes it)" in errors[0]
        assert "drop cascades" not in result.err
        assert db.execute("SELECT count(*) FROM public.owned").fetchone() == (2,)
        assert side_databases(admin_url, database_url) == []
    finally:
        db.execute(f"DROP ROLE IF EXISTS {role}")
