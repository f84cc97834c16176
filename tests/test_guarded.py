"""Python seeds and Python migrations get a connection that refuses to end their transaction:
all or nothing holds whatever the code does, and savepoints still work."""

from __future__ import annotations

import textwrap
from pathlib import Path

import psycopg
import pytest

from conftest import Cli, Run
from dbops.postgres.guarded import transaction_control


def write(folder: Path, files: dict[str, str]) -> None:
    folder.mkdir(exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    for name, text in files.items():
        (folder / name).write_text(textwrap.dedent(text))


def tables(db: psycopg.Connection) -> set[str]:
    return {r[0] for r in db.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}


def refused(result: Cli, where: str, call: str, what: str) -> None:
    assert result.code == 1, result.text
    assert "Traceback" not in result.text
    assert (
        result.err.splitlines()[0]
        == f"Error: {where}: {call}: {what} may not end or start a transaction itself"
    )
    assert result.err.splitlines()[1].startswith("Hint: Remove it")


@pytest.fixture
def seeded_table(project: Path, db: psycopg.Connection) -> Path:
    db.execute("CREATE TABLE kept (id int PRIMARY KEY, note text)")
    write(project / "migrations", {})  # nothing pending
    (project / "seeds").mkdir()
    return project / "seeds"


# --------------------------------------------------------------------------- seeds


def test_a_seed_that_commits_then_raises_leaves_nothing(
    seeded_table: Path, cli: Run, db: psycopg.Connection
) -> None:
    write(
        seeded_table,
        {
            "01.py": """\
            def seed(db):
                db.execute("INSERT INTO kept VALUES (1, 'before')")
                try:
                    db.execute("COMMIT")
                except Exception:
                    pass  # swallowed: the run still fails on it
                raise RuntimeError("boom")
            """
        },
    )
    refused(cli("seed"), "seeds/01.py:4", "COMMIT", "a seed")
    assert db.execute("SELECT count(*) FROM kept").fetchone() == (0,)


@pytest.mark.parametrize(
    ("code", "call"),
    [
        ('db.execute("commit")', "commit"),
        ('db.execute("ROLLBACK")', "ROLLBACK"),
        ('db.execute("END")', "END"),
        ('db.execute("abort work")', "abort work"),
        ('db.execute("BEGIN")', "BEGIN"),
        ('db.execute("START TRANSACTION")', "START TRANSACTION"),
        ("db.execute(\"PREPARE TRANSACTION 'x'\")", "PREPARE TRANSACTION 'x'"),
        ("db.execute(\"COMMIT PREPARED 'x'\")", "COMMIT PREPARED 'x'"),
        ('db.execute("SELECT 1; /* then */ COMMIT AND CHAIN")', "COMMIT AND CHAIN"),
        ('db.execute(b"COMMIT")', "COMMIT"),
        ('db.execute(__import__("psycopg").sql.SQL("COMMIT"))', "COMMIT"),
        ('db.cursor().execute("COMMIT")', "COMMIT"),
        ('db.execute("SELECT 1").connection.commit()', "commit()"),
        ("db.commit()", "commit()"),
        ("db.rollback()", "rollback()"),
        ("db.autocommit = True", "autocommit = True"),
        ("db.set_autocommit(True)", "set_autocommit()"),
        ("db.close()", "close()"),
        ('db.tpc_begin(db.xid(1, "a", "b"))', "tpc_begin()"),
        ("with db: pass", "with db: (its end commits)"),
    ],
)
def test_each_way_of_ending_the_seeds_transaction_is_refused(
    seeded_table: Path, cli: Run, db: psycopg.Connection, code: str, call: str
) -> None:
    write(
        seeded_table,
        {"01.py": f"def seed(db):\n    db.execute(\"INSERT INTO kept VALUES (1, 'x')\")\n    {code}\n"},
    )
    refused(cli("seed"), "seeds/01.py:3", call, "a seed")
    assert db.execute("SELECT count(*) FROM kept").fetchone() == (0,)


def test_savepoints_stay_usable_in_a_seed(seeded_table: Path, cli: Run, db: psycopg.Connection) -> None:
    write(
        seeded_table,
        {
            "01.py": """\
            def seed(db):
                db.execute("INSERT INTO kept VALUES (1, 'COMMIT; END -- not a statement')")
                db.execute("SAVEPOINT a")
                db.execute("INSERT INTO kept VALUES (2, 'undone')")
                db.execute("ROLLBACK TO SAVEPOINT a")
                db.execute("INSERT INTO kept VALUES (3, 'undone too')")
                db.execute("ROLLBACK WORK TO a")
                db.execute("RELEASE SAVEPOINT a")
                with db.transaction():
                    db.execute("INSERT INTO kept VALUES (4, 'nested block')")
                    try:
                        with db.transaction():
                            db.execute("INSERT INTO kept VALUES (5, 'undone by its block')")
                            raise ValueError
                    except ValueError:
                        pass
                with db.cursor() as cur:
                    cur.execute("INSERT INTO kept VALUES (%s, %s)", (6, "through a cursor"))
            """
        },
    )
    result = cli("seed")
    assert result.code == 0, result.text
    assert [r[0] for r in db.execute("SELECT id FROM kept ORDER BY id")] == [1, 4, 6]


# --------------------------------------------------------------------------- migrations

PY_MIGRATION = """\
from yoyo import step


def go(conn):
    conn.execute("CREATE TABLE py_c (id int)")
    {code}
    raise RuntimeError("boom")


steps = [step(go)]
"""


def test_a_migration_that_commits_then_raises_leaves_no_table(
    project: Path, cli: Run, db: psycopg.Connection
) -> None:
    code = "try:\n        conn.execute('COMMIT')\n    except Exception:\n        pass"
    write(project / "migrations", {"001_py.py": PY_MIGRATION.format(code=code)})
    refused(cli("migrate"), "migrations/001_py.py:7", "COMMIT", "a migration")
    assert "py_c" not in tables(db)
    write(
        project / "migrations",
        {"001_py.py": PY_MIGRATION.format(code="").replace("    raise", "    # raise")},
    )
    again = cli("migrate")  # the fixed migration applies: nothing of the first attempt is in its way
    assert again.code == 0, again.text
    assert "py_c" in tables(db)


@pytest.mark.parametrize(
    ("code", "call"),
    [
        ("conn.commit()", "commit()"),
        ("conn.cursor().execute('END')", "END"),
        ("conn.autocommit = True", "autocommit = True"),
    ],
)
def test_each_way_of_ending_a_migrations_transaction_is_refused(
    project: Path, cli: Run, db: psycopg.Connection, code: str, call: str
) -> None:
    write(project / "migrations", {"001_py.py": PY_MIGRATION.format(code=code)})
    refused(cli("migrate"), "migrations/001_py.py:6", call, "a migration")
    assert "py_c" not in tables(db)


def test_ignore_errors_does_not_hide_a_refusal_and_string_steps_are_checked(
    project: Path, cli: Run, db: psycopg.Connection
) -> None:
    write(
        project / "migrations",
        {
            "001_py.py": """\
            from yoyo import step

            def go(conn):
                conn.execute("CREATE TABLE py_c (id int)")
                conn.commit()

            steps = [step(go, ignore_errors="apply")]
            """
        },
    )
    refused(cli("migrate"), "migrations/001_py.py:5", "commit()", "a migration")
    write(
        project / "migrations",
        {
            "001_py.py": 'from yoyo import step\n\nsteps = [step("CREATE TABLE py_c (id int)"), step("COMMIT")]\n'
        },
    )
    refused(cli("migrate"), "001_py.py: step 2", "COMMIT", "a migration")
    assert "py_c" not in tables(db)


def test_savepoints_stay_usable_in_a_migration(project: Path, cli: Run, db: psycopg.Connection) -> None:
    write(
        project / "migrations",
        {
            "001_py.py": """\
            from yoyo import step

            def go(conn):
                conn.execute("CREATE TABLE py_c (id int)")
                try:
                    with conn.transaction():
                        conn.execute("CREATE TABLE py_undone (id int)")
                        raise ValueError
                except ValueError:
                    pass
                conn.execute("SAVEPOINT s; CREATE TABLE py_undone_too (id int); ROLLBACK TO s")

            steps = [step(go)]
            """
        },
    )
    result = cli("migrate")
    assert result.code == 0, result.text
    assert {"py_c", "py_undone", "py_undone_too"} & tables(db) == {"py_c"}


def test_what_counts_as_transaction_control() -> None:
    assert transaction_control("SELECT 1; -- COMMIT\n/* END */ SELECT 'ROLLBACK; END'") is None
    assert transaction_control("DO $$ BEGIN PERFORM 1; END $$; SELECT $x$COMMIT$x$") is None
    assert transaction_control("ROLLBACK TRANSACTION TO SAVEPOINT a; ROLLBACK TO a; RELEASE a") is None
    assert transaction_control("PREPARE q AS SELECT 1; EXECUTE q") is None
    function = (
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC "
        "SELECT CASE WHEN true THEN 1 END; SELECT 2; END; SELECT f()"
    )
    assert transaction_control(function) is None
    assert transaction_control(function + "; END") == "END"
    assert transaction_control("SELECT 1;\n  rollback\n  and chain") == "rollback\n  and chain"
    assert transaction_control("ROLLBACK PREPARED 'x'") == "ROLLBACK PREPARED 'x'"
