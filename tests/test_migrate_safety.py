"""Migrations under unlucky conditions (issue 12): a lock the server would end, INVALID indexes in
other schemas, empty and duplicate migration files, a mistyped migrations folder, broken Python."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest

from conftest import Run
from test_migrate import applied_ids, run_dbops, tables, write_migrations

# ----------------------------------------------------------------------------- the migration lock


def _lock_holders(db: psycopg.Connection) -> list[int]:
    from dbops.postgres.locks import MIGRATION_LOCK

    rows = db.execute(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        " AND ((classid::bigint << 32) | objid::bigint) = %s",
        (MIGRATION_LOCK,),
    ).fetchall()
    return [r[0] for r in rows]


def _wait_for_sleep(db: psycopg.Connection, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        row = db.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%pg_sleep(%'"
            " AND pid <> pg_backend_pid()"
        ).fetchone()
        if row and row[0]:
            return
        time.sleep(0.02)
    raise AssertionError("the migration never started sleeping")


def test_the_lock_outlives_server_idle_timeouts(
    project: Path, cli: Run, database_url: str, db: psycopg.Connection
) -> None:
    """A database-level idle_in_transaction_session_timeout and idle_session_timeout of 1 s, and a
    migration that runs 2.5 s: the advisory lock and yoyo's row are held throughout."""
    folder = project / "migrations"
    write_migrations(folder, {"001_first.sql": "CREATE TABLE first (id int);\n"})
    assert cli("migrate").code == 0  # yoyo's lock table exists from now on
    dbname = db.info.dbname
    db.execute(f"ALTER DATABASE \"{dbname}\" SET idle_in_transaction_session_timeout = '1s'")
    db.execute(f"ALTER DATABASE \"{dbname}\" SET idle_session_timeout = '1s'")
    (folder / "002_slow.sql").write_text("CREATE TABLE slow (id int);\nSELECT pg_sleep(2.5);\n")
    (folder / "003_after.sql").write_text("CREATE TABLE after (id int);\n")
    child = run_dbops(project, "migrate")
    _wait_for_sleep(db)
    time.sleep(1.6)  # past both timeouts
    with psycopg.connect(database_url, autocommit=True) as other:
        assert len(_lock_holders(other)) == 1
        other.execute("SET lock_timeout = '100ms'")
        with pytest.raises(psycopg.errors.LockNotAvailable), other.transaction():
            other.execute("INSERT INTO yoyo_lock (locked, ctime, pid) VALUES (1, now(), 1)")
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, out + err
    assert {"first", "slow", "after"} <= tables(db)


@pytest.mark.parametrize("session", ["advisory", "yoyo row"])
def test_a_lost_lock_fails_loudly_before_the_next_commit(
    project: Path, cli: Run, db: psycopg.Connection, session: str
) -> None:
    """The session holding the advisory lock (or yoyo's row) is terminated while a migration
    runs: that migration is not committed, and the run fails with one line saying why."""
    folder = project / "migrations"
    write_migrations(folder, {"001_first.sql": "CREATE TABLE first (id int);\n"})
    assert cli("migrate").code == 0  # yoyo's lock table exists from now on
    (folder / "002_slow.sql").write_text("CREATE TABLE slow (id int);\nSELECT pg_sleep(1.5);\n")
    (folder / "003_after.sql").write_text("CREATE TABLE after (id int);\n")
    child = run_dbops(project, "migrate")
    _wait_for_sleep(db)
    if session == "advisory":
        (holder,) = _lock_holders(db)
    else:
        (holder,) = db.execute(
            "SELECT DISTINCT pid FROM pg_locks WHERE relation = 'yoyo_lock'::regclass"
        ).fetchone() or (None,)
    db.execute("SELECT pg_terminate_backend(%s)", (holder,))
    out, err = child.communicate(timeout=60)
    assert child.returncode == 1, out + err
    assert err.startswith("Error: The migration lock was lost before 002_slow.sql was committed"), err
    assert "Traceback" not in err
    assert not {"slow", "after"} & tables(db)
    assert applied_ids(db) == ["001_first"]


# ----------------------------------------------------------------------------- CREATE INDEX CONCURRENTLY


def test_an_invalid_index_outside_public_is_dropped_and_another_schemas_survives(
    project: Path, cli: Run, db: psycopg.Connection
) -> None:
    db.execute("CREATE SCHEMA other; CREATE TABLE other.t (v int); INSERT INTO other.t VALUES (1), (1)")
    with pytest.raises(psycopg.errors.UniqueViolation):  # other.t_v_key: INVALID, and not ours
        db.execute("CREATE UNIQUE INDEX CONCURRENTLY t_v_key ON other.t (v)")
    write_migrations(
        project / "migrations",
        {
            "001_app.sql": "CREATE SCHEMA app;\nCREATE TABLE app.t (v int);\nINSERT INTO app.t VALUES (1), (1);\n",
            "002_key.sql": "-- transactional: false\nCREATE UNIQUE INDEX CONCURRENTLY t_v_key ON app.t (v);\n",
        },
    )
    result = cli("migrate")
    assert result.code == 4, result.text
    assert "INVALID index left behind: app.t_v_key (dropped before the next attempt)" in result.err
    db.execute("DELETE FROM app.t WHERE ctid = (SELECT max(ctid) FROM app.t)")
    retry = cli("migrate")
    assert retry.code == 0, retry.text
    assert "dropped the INVALID index an earlier attempt left: app.t_v_key" in retry.out
    rows = db.execute(
        "SELECT n.nspname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
        " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = 't_v_key' ORDER BY 1"
    ).fetchall()
    assert rows == [("app", True), ("other", False)]


def test_concurrently_in_a_transactional_migration_hints_at_the_directive(
    project: Path, cli: Run, db: psycopg.Connection
) -> None:
    folder = project / "migrations"
    write_migrations(
        folder,
        {
            "001_t.sql": "CREATE TABLE t (v int);\n",
            "001_t.rollback.sql": "DROP TABLE t;\n",
            "002_idx.sql": "-- an index\nCREATE INDEX CONCURRENTLY t_v ON t (v);\n",
        },
    )
    result = cli("migrate")
    assert result.code == 1
    assert "cannot run inside a transaction block" in result.err
    assert "add -- transactional: false to its leading comment block (002_idx.sql" in result.err
    # following the hint
    (folder / "002_idx.sql").write_text(
        "-- an index\n-- transactional: false\nCREATE INDEX CONCURRENTLY t_v ON t (v);\n"
    )
    retry = cli("migrate")
    assert retry.code == 0, retry.text
    assert db.execute("SELECT count(*) FROM pg_indexes WHERE indexname = 't_v'").fetchone() == (1,)


# ----------------------------------------------------------------------------- Python migrations


def test_a_python_migration_with_a_syntax_error_prints_no_traceback(
    project: Path, db: psycopg.Connection
) -> None:
    write_migrations(
        project / "migrations",
        {"001_bad.py": "from yoyo import step\n\nstep('CREATE TABLE t (v int)'\n"},
    )
    child = run_dbops(project, "migrate")
    out, err = child.communicate(timeout=60)
    assert child.returncode == 2, out + err
    lines = err.splitlines()
    assert len(lines) == 2, err
    assert lines[0].startswith("Error: 001_bad.py: cannot be loaded: SyntaxError")
    assert lines[1].startswith("Hint: ")
    assert "Traceback" not in out + err
    assert tables(db) == set()


# ----------------------------------------------------------------------------- which files are migrations


def test_two_files_with_one_id_are_refused_naming_both(
    project: Path, cli: Run, db: psycopg.Connection
) -> None:
    write_migrations(
        project / "migrations",
        {
            "001_dup.sql": "CREATE TABLE from_sql (v int);\n",
            "001_dup.py": "from yoyo import step\n\nstep('CREATE TABLE from_py (v int)')\n",
        },
    )
    for command in ("migrate", "lint", "status"):
        result = cli(command)
        assert result.code == 2, (command, result.text)
        assert "Two migrations have the id 001_dup: 001_dup.py and 001_dup.sql" in result.err
    assert tables(db) == set()


def test_a_rollback_script_without_its_migration_is_named_in_a_warning(project: Path, cli: Run) -> None:
    write_migrations(
        project / "migrations",
        {
            "001_t.sql": "CREATE TABLE t (v int);\n",
            "001_t.rollback.sql": "DROP TABLE t;\n",
            "002_renamed.rollback.sql": "DROP TABLE u;\n",
        },
    )
    result = cli("migrate")
    assert result.code == 0, result.text
    assert (
        "⚠ 002_renamed.rollback.sql has no migration beside it (002_renamed.sql): it is never run"
        in result.out
    )


def test_an_untouched_template_is_refused_and_an_empty_rollback_named_as_such(
    project: Path, cli: Run, db: psycopg.Connection
) -> None:
    folder = project / "migrations"
    write_migrations(folder, {})
    assert cli("migrate-create", "add_things").code == 0
    (migration,) = folder.glob("*_add_things.sql")
    rollback = migration.with_name(migration.stem + ".rollback.sql")
    assert rollback.is_file()
    for command in ("migrate", "lint", "validate"):
        result = cli(command)
        assert result.code == 2, (command, result.text)
        assert f"Error: {migration.name} is empty: it holds no SQL statement, only comments" in result.err
    assert applied_ids(db) == []  # nothing recorded
    migration.write_text(migration.read_text() + "CREATE TABLE things (id int);\n")
    assert cli("migrate").code == 0
    result = cli("migrate-rollback")
    assert result.code == 2, result.text
    assert f"Error: {rollback.name}: the rollback script is empty (only comments)" in result.err
    assert "No rollback script" not in result.err
    assert "things" in tables(db)


# ----------------------------------------------------------------------------- a mistyped migrations folder


def test_a_mistyped_migrations_folder_never_switches_edit_detection_off(
    project: Path, cli: Run, database_url: str, db: psycopg.Connection
) -> None:
    assert cli("migrate").code == 0  # the sample's 7 migrations
    config = project / "dbops.yaml"
    good = config.read_text()
    config.write_text("migrations: migratons\n" + good)
    for command in ("migrate", "migrate-repair", "lint", "migrate-rollback"):
        result = cli(command)
        assert result.code == 2, (command, result.text)
        assert "Error: Migrations folder migratons does not exist" in result.err
        assert "(deleted)" not in result.text
    # a folder that exists but lost every applied migration: repair refuses to accept them all
    (project / "migratons").mkdir()
    result = cli("migrate-repair")
    assert result.code == 2, result.text
    assert "Every applied migration (7) is missing from migratons/" in result.err
    hint = "dbops migrate-repair --all-deleted"
    assert hint in result.err
    assert cli(*hint.split()[1:]).code == 0  # following the hint: recorded as deleted
    # the typo is fixed, and one applied migration was edited meanwhile: noticed again
    config.write_text(good)
    edited = sorted((project / "migrations").glob("*_create_projects.sql"))[0]
    edited.write_text(edited.read_text() + "\n-- edited\n")
    result = cli("migrate")
    assert result.code == 2, result.text
    assert f"Applied migrations changed since they were applied: {edited.stem} (edited)" in result.err
    assert cli("migrate-repair").code == 0
    assert cli("migrate").code == 0
