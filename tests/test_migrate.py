"""migrate and friends against a real PostgreSQL, with yoyo's own CLI as the referee."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import time
from pathlib import Path

import psycopg
import pytest

from conftest import Run, dbops_bin, write_config


def write_migrations(folder: Path, files: dict[str, str]) -> None:
    folder.mkdir(exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    for name, text in files.items():
        (folder / name).write_text(text)


def yoyo_list(url: str, folder: Path) -> dict[str, str]:
    """What plain yoyo says is applied (A) or not (U)."""
    yoyo = str(Path(dbops_bin()).with_name("yoyo"))
    done = subprocess.run(
        [yoyo, "list", "--database", url.replace("postgresql://", "postgresql+psycopg://", 1), str(folder)],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = [line.split() for line in done.stdout.splitlines() if re.match(r"^[AU]\s", line)]
    return {row[1]: row[0] for row in rows}


BOOKKEEPING = {"_yoyo_migration", "_yoyo_log", "_yoyo_version", "yoyo_lock", "_dbops_migration_checksum"}


def all_tables(db: psycopg.Connection) -> set[str]:
    rows = db.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {r[0] for r in rows}


def tables(db: psycopg.Connection) -> set[str]:
    """The application's tables, without yoyo's and dbops' bookkeeping."""
    return all_tables(db) - BOOKKEEPING


def applied_ids(db: psycopg.Connection) -> list[str]:
    return [
        r[0]
        for r in db.execute("SELECT migration_id FROM _yoyo_migration ORDER BY applied_at_utc").fetchall()
    ]


# ----------------------------------------------------------------------------- applying


def test_migrate_applies_and_yoyo_agrees(
    project: Path, cli: Run, database_url: str, db: psycopg.Connection
) -> None:
    result = cli("migrate")
    assert result.code == 0, result.text
    lines = result.out.splitlines()
    assert lines[0] == "🗃️ Running Database Migrations" and "Pending migrations:" in lines
    applied = [line for line in lines if line.startswith("✓ ")]
    assert len(applied) == 7 and re.match(r"✓ 20251001090000_create_users\.sql \(\d+ ms\)$", applied[0])
    assert re.match(r"All migrations completed successfully! \(\d+\.\ds\)$", lines[-1])
    assert set(yoyo_list(database_url, project / "migrations").values()) == {"A"}
    assert {"users", "organizations", "organization_members", "projects", "workflows", "api_keys"} <= tables(
        db
    )
    again = cli("migrate")
    assert again.code == 0 and "nothing to migrate" in again.out
    status = cli("status").out
    assert "  Applied: 7" in status and "  Tables: 7" in status and "Health: ✓ All checks passed" in status
    log = db.execute("SELECT count(*) FROM _yoyo_log WHERE operation = 'apply'").fetchone()
    assert log == (7,)


def test_failed_migration_names_file_and_line_and_rolls_back_earlier_ones(
    project: Path, cli: Run, database_url: str, db: psycopg.Connection
) -> None:
    folder = project / "migrations"
    write_migrations(
        folder,
        {
            "001_first.sql": "CREATE TABLE first (id int);\n",
            "001_first.rollback.sql": "DROP TABLE first;\n",
            "002_second.sql": "-- a comment\nCREATE TABLE second (id int);\n\nINSERT INTO second\n  VALUES (1),\n  (oops);\n",
            "003_third.sql": "CREATE TABLE third (id int);\n",
        },
    )
    result = cli("migrate")
    assert result.code == 1
    assert "✓ 001_first.sql (" in result.out and "✗ 002_second.sql failed" in result.out
    assert "003_third" not in result.out
    error = result.err.splitlines()[0]
    assert error == 'Error: Migration 002_second.sql failed at line 6: column "oops" does not exist'
    assert "Traceback" not in result.text
    assert "Undo, in reverse order:\n  ✓ 2. migrate: roll back the migrations this run applied" in result.out
    assert tables(db) == set()  # second rolled back entirely, first undone, third never started
    assert yoyo_list(database_url, folder) == {"001_first": "U", "002_second": "U", "003_third": "U"}


def test_an_earlier_migration_without_rollback_script_stays_and_says_so(
    project: Path, cli: Run, database_url: str, db: psycopg.Connection
) -> None:
    write_migrations(
        project / "migrations",
        {"001_first.sql": "CREATE TABLE first (id int);\n", "002_second.sql": "SELECT 1/0;\n"},
    )
    result = cli("migrate")
    assert result.code == 4
    assert (
        "✗ 2. migrate: roll back the migrations this run applied: Cannot roll back 001_first.sql"
        in result.out
    )
    assert result.err.splitlines() == [
        "Error: Migration 002_second.sql failed at line 1: division by zero",
        "Hint: Nothing of it was applied. Fix 002_second.sql and run migrate again. Undo of step 2 (migrate)"
        " did not complete, attention needed: Restore the database from a backup, or write the rollback"
        " script and run dbops migrate-rollback --steps 1",
    ]
    assert tables(db) == {"first"}
    # the hint, followed: a rollback script written after the migration ran is not an edit of it
    (project / "migrations" / "001_first.rollback.sql").write_text("DROP TABLE first;\n")
    assert cli("status", "--check").out.count("Edited since applied") == 0
    followed = cli("migrate-rollback", "--steps", "1")
    assert followed.code == 0, followed.text
    assert tables(db) == set() and applied_ids(db) == []


def test_the_hint_of_a_failed_pipeline_migrate_is_followed_to_success(
    project: Path, cli: Run, db: psycopg.Connection
) -> None:
    write_migrations(
        project / "migrations",
        {
            "001_a.sql": "CREATE TABLE a (id int);\n",
            "002_b.sql": "CREATE TABLE b (id int);\n",
            "003_c.sql": "SELECT 1/0;\n",
        },
    )
    with (project / "dbops.yaml").open("a") as config:
        config.write("pipelines:\n  ship:\n    steps: [migrate, validate]\n")
    failed = cli("ship")
    assert failed.code == 4 and "dbops migrate-rollback --steps 2" in failed.err
    assert tables(db) >= {"a", "b"}
    for name in ("a", "b"):
        (project / "migrations" / f"00{'ab'.index(name) + 1}_{name}.rollback.sql").write_text(
            f"DROP TABLE {name};\n"
        )
    followed = cli("migrate-rollback", "--steps", "2")
    assert followed.code == 0, followed.text
    assert not {"a", "b"} & tables(db) and applied_ids(db) == []


def test_checksums_recorded_with_the_rollback_script_still_validate(
    project: Path, cli: Run, db: psycopg.Connection
) -> None:
    """dbops before 0.x recorded the sha256 of the migration and its rollback script together:
    such a database keeps validating, and an edited rollback script there is accepted by repair."""
    from dbops.migrations.files import checksum_of

    assert cli("migrate").code == 0
    folder = project / "migrations"
    old_form = {}
    for path in sorted(folder.glob("*.rollback.sql")):
        forward = path.with_name(path.name.removesuffix(".rollback.sql") + ".sql")
        files = [(forward.name, forward.read_bytes()), (path.name, path.read_bytes())]
        old_form[forward.stem] = checksum_of(files)
        db.execute(
            "UPDATE _dbops_migration_checksum SET sha256 = %s, files = %s WHERE migration_id = %s",
            (old_form[forward.stem], f"{forward.name},{path.name}", forward.stem),
        )
    assert old_form
    status = cli("status", "--check")
    assert status.code == 0, status.text
    assert cli("validate").code == 0
    first = sorted(old_form)[0]
    (folder / f"{first}.rollback.sql").write_text("-- fixed\nSELECT 1;\n")
    edited = cli("migrate")
    assert edited.code == 2 and f"{first} (edited)" in edited.err  # its old checksum covered the script
    assert cli("migrate-repair").code == 0
    stored = db.execute(
        "SELECT files FROM _dbops_migration_checksum WHERE migration_id = %s", (first,)
    ).fetchone()
    assert stored == (f"{first}.sql",)  # repaired into the forward-only form
    (folder / f"{first}.rollback.sql").write_text("-- fixed again\nSELECT 2;\n")
    assert cli("migrate").code == 0


def test_postgres_hint_is_passed_on(project: Path, cli: Run) -> None:
    write_migrations(project / "migrations", {"001_fn.sql": "SELECT no_such_function(1, 'x');\n"})
    result = cli("migrate")
    assert result.code == 1
    assert (
        "Error: Migration 001_fn.sql failed at line 1: function no_such_function(integer, unknown) does not exist"
        in result.err
    )
    assert (
        "Hint: Nothing of it was applied. No function matches the given name and argument types" in result.err
    )


def test_syntax_error(project: Path, cli: Run, db: psycopg.Connection) -> None:
    write_migrations(
        project / "migrations", {"001_bad.sql": "CREATE TABLE ok (id int);\nCREATE TABEL nope (id int);\n"}
    )
    result = cli("migrate")
    assert result.code == 1
    assert result.err.startswith(
        'Error: Migration 001_bad.sql failed at line 2: syntax error at or near "TABEL"'
    )
    assert tables(db) == set()


def test_rows_returned_by_statements_never_reach_stdout(project: Path, cli: Run) -> None:
    write_migrations(
        project / "migrations",
        {
            "001_rows.sql": "CREATE TABLE t (v text);\nSELECT 'row-output-marker' FROM generate_series(1, 3);\n"
        },
    )
    result = cli("migrate")
    assert result.code == 0 and "row-output-marker" not in result.text


def test_non_transactional_failure_reports_what_ran_and_cleans_the_invalid_index(
    project: Path, cli: Run, db: psycopg.Connection
) -> None:
    folder = project / "migrations"
    write_migrations(
        folder,
        {
            "001_emails.sql": "CREATE TABLE emails (address text);\nINSERT INTO emails VALUES ('a'), ('a');\n",
            "002_unique.sql": (
                "-- transactional: false\n"
                "CREATE INDEX CONCURRENTLY emails_plain ON emails (address);\n"
                "CREATE UNIQUE INDEX CONCURRENTLY emails_unique ON emails (address);\n"
            ),
        },
    )
    result = cli("migrate")
    assert result.code == 4  # part of it stays: attention needed
    assert "Migration 002_unique.sql failed at line 3: could not create unique index" in result.err
    assert "statements that ran and stay: line 2" in result.err
    assert "INVALID index left behind: emails_unique" in result.err
    invalid = db.execute("SELECT count(*) FROM pg_index WHERE NOT indisvalid").fetchone()
    assert invalid == (1,)
    db.execute("DELETE FROM emails WHERE ctid NOT IN (SELECT min(ctid) FROM emails)")
    db.execute("DROP INDEX emails_plain")
    retry = cli("migrate")
    assert retry.code == 0, retry.text
    assert "dropped the INVALID index an earlier attempt left: emails_unique" in retry.out
    assert db.execute("SELECT count(*) FROM pg_index WHERE NOT indisvalid").fetchone() == (0,)


def test_python_migration_and_dependencies(
    project: Path, cli: Run, database_url: str, db: psycopg.Connection
) -> None:
    folder = project / "migrations"
    write_migrations(
        folder,
        {
            "001_base.sql": "CREATE TABLE base (id int);\n",
            "002_seed.py": (
                "from yoyo import step\n"
                "__depends__ = {'001_base'}\n"
                "def fill(conn):\n"
                "    conn.cursor().execute('INSERT INTO base VALUES (41), (42)')\n"
                "steps = [step(fill, 'DELETE FROM base'), step('CREATE TABLE extra (id int)', 'DROP TABLE extra')]\n"
            ),
        },
    )
    assert cli("migrate").code == 0
    assert db.execute("SELECT sum(id) FROM base").fetchone() == (83,)
    assert yoyo_list(database_url, folder) == {"001_base": "A", "002_seed": "A"}
    rolled = cli("migrate-rollback")
    assert rolled.code == 0, rolled.text
    assert db.execute("SELECT count(*) FROM base").fetchone() == (0,) and "extra" not in tables(db)


def test_session_settings_and_protected_defaults(
    project: Path, cli: Run, database_url: str, db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_migrations(
        project / "migrations",
        {
            "001_settings.sql": "CREATE TABLE settings AS SELECT current_setting('lock_timeout') AS lock, current_setting('statement_timeout') AS stmt;\n",
        },
    )
    write_config(
        project,
        f'environments:\n  development:\n    url: "{database_url}"\n    lock_timeout: 3s\n'
        f'  production:\n    protected: true\n    url: "{database_url}"\n',
    )
    assert cli("migrate").code == 0
    assert db.execute("SELECT lock, stmt FROM settings").fetchone() == ("3s", "0")
    db.execute("DROP TABLE settings")
    db.execute("DELETE FROM _yoyo_migration")
    db.execute("DELETE FROM _dbops_migration_checksum")
    assert cli("migrate", "--env=production").code == 0
    assert db.execute("SELECT lock, stmt FROM settings").fetchone() == ("5s", "30min")


# ----------------------------------------------------------------------------- checksums


def test_edited_or_deleted_applied_migrations_stop_migrate(
    project: Path, cli: Run, db: psycopg.Connection
) -> None:
    folder = project / "migrations"
    assert cli("migrate").code == 0
    (folder / "20251001090100_create_organizations.sql").write_text("CREATE TABLE organizations (id int);\n")
    (folder / "20251001090600_add_workflow_permissions.sql").unlink()
    (folder / "20251001090600_add_workflow_permissions.rollback.sql").unlink()
    (folder / "20251101000000_more.sql").write_text("CREATE TABLE more (id int);\n")
    refused = cli("migrate")
    assert refused.code == 2
    assert refused.err.splitlines()[0] == (
        "Error: Applied migrations changed since they were applied: 20251001090100_create_organizations (edited), "
        "20251001090600_add_workflow_permissions (deleted)"
    )
    assert "more" not in tables(db)
    status = cli("status").out
    assert "  Edited since applied: 20251001090100_create_organizations" in status
    assert "  Applied but missing from migrations/: 20251001090600_add_workflow_permissions" in status
    assert (
        "⚠ migration files: applied but missing: 20251001090600_add_workflow_permissions; edited since applied: 20251001090100_create_organizations"
        in status
    )
    check = cli("status", "--check")
    assert check.code == 1
    hint = "Hint: Restore the changed migration files, or accept them: dbops migrate-repair"
    assert hint in check.err  # validate's words
    repaired = cli("migrate-repair")  # the hint, followed
    assert repaired.code == 0 and "✓ 20251001090100_create_organizations.sql" in repaired.out
    assert "✓ 20251001090600_add_workflow_permissions (deleted)" in repaired.out
    pending = cli("status", "--check")
    assert pending.code == 1 and "Hint: Apply the 1 pending migration(s): dbops migrate" in pending.err
    assert cli("migrate").code == 0 and "more" in tables(db)
    healthy = cli("status", "--check")
    assert healthy.code == 0, healthy.text


def test_accept_changes_flag_and_plain_yoyo_migrations_are_adopted(
    project: Path, cli: Run, database_url: str, db: psycopg.Connection
) -> None:
    from conftest import apply_migrations

    apply_migrations(database_url, project / "migrations")  # applied by yoyo: no checksums yet
    result = cli("migrate")
    assert result.code == 0 and "Recorded checksums of 7 migration(s) applied without dbops" in result.out
    (project / "migrations" / "20251001090000_create_users.sql").write_text("-- edited\n")
    assert cli("migrate").code == 2
    accepted = cli("migrate", "--accept-changes")
    assert (
        accepted.code == 0 and "⚠ Accepted the changed migration 20251001090000_create_users" in accepted.out
    )
    assert cli("migrate").code == 0


# ----------------------------------------------------------------------------- dry run and ranges


def dump(database_url: str) -> str:
    from dbops.postgres.embedded import bin_dir

    env = {**os.environ, "PGAPPNAME": "test-dump"}
    done = subprocess.run(
        [str(bin_dir() / "pg_dump"), "--no-comments", "-d", database_url],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return "\n".join(
        line for line in done.stdout.splitlines() if not line.startswith(("\\restrict", "\\unrestrict"))
    )


def test_dry_run_touches_nothing(project: Path, cli: Run, database_url: str, db: psycopg.Connection) -> None:
    before = dump(database_url)
    result = cli("migrate", "--dry-run")
    assert result.code == 0, result.text
    assert "Would apply, in this order:" in result.out and "    CREATE TABLE users (" in result.out
    assert dump(database_url) == before
    assert all_tables(db) == set()  # not even the bookkeeping tables
    assert cli("migrate", "--to", "20251001090100").code == 0
    before = dump(database_url)
    assert cli("migrate", "--dry-run").code == 0
    assert cli("migrate-rollback", "--dry-run", "--steps", "2").code == 0
    assert dump(database_url) == before


def test_from_to_ranges_and_dependencies(project: Path, cli: Run, db: psycopg.Connection) -> None:
    partial = cli("migrate", "--to", "20251001090100")
    assert partial.code == 0 and partial.out.count("✓ 2025") == 2
    assert tables(db) - {
        "_yoyo_migration",
        "_yoyo_log",
        "_yoyo_version",
        "yoyo_lock",
        "_dbops_migration_checksum",
    } == {"users", "organizations"}
    skipping = cli("migrate", "--from", "20251001090300")
    assert skipping.code == 2
    assert skipping.err.startswith(
        "Error: 20251001090300_create_projects.sql depends on 20251001090200_add_user_organization_relation, which --from/--to leave out"
    )
    ranged = cli("migrate", "--from", "20251001090200", "--to", "20251001090300")
    assert ranged.code == 0 and ranged.out.count("✓ 2025") == 2


# ----------------------------------------------------------------------------- rollback, baseline, create


def test_rollback_last_steps_and_to(
    project: Path, cli: Run, database_url: str, db: psycopg.Connection
) -> None:
    assert cli("migrate").code == 0
    one = cli("migrate-rollback")
    assert one.code == 0 and "✓ 20251001090600_add_workflow_permissions.sql (" in one.out
    assert "workflow_permissions" not in tables(db)
    two = cli("migrate-rollback", "--steps", "2")
    assert two.code == 0 and two.out.count("✓ 2025") == 2
    to = cli("migrate-rollback", "--to", "20251001090200_add_user_organization_relation")
    assert to.code == 0 and to.out.count("✓ 2025") == 2
    assert applied_ids(db) == ["20251001090000_create_users", "20251001090100_create_organizations"]
    assert (
        yoyo_list(database_url, project / "migrations")["20251001090200_add_user_organization_relation"]
        == "U"
    )
    assert db.execute("SELECT count(*) FROM _yoyo_log WHERE operation = 'rollback'").fetchone() == (5,)
    prefix = cli("migrate-rollback", "--to", "20251001090100")  # an id prefix, as migrate --to takes
    assert prefix.code == 0 and prefix.out.count("✓ 2025") == 1
    assert applied_ids(db) == ["20251001090000_create_users"]
    none = cli("migrate-rollback", "--to", "2024")
    assert none.code == 2 and none.err.startswith("Error: --to 2024: no applied migration has that id")


def test_rollback_refuses_without_a_rollback_script(project: Path, cli: Run, db: psycopg.Connection) -> None:
    assert cli("migrate").code == 0
    (project / "migrations" / "20251001090600_add_workflow_permissions.rollback.sql").unlink()
    assert cli("status", "--check").code == 0  # the rollback file is not part of the applied migration
    result = cli("migrate-rollback")
    assert result.code == 2
    assert result.err.startswith("Error: No rollback script for 20251001090600_add_workflow_permissions.sql")
    assert "workflow_permissions" in tables(db) and len(applied_ids(db)) == 7


def test_rollback_in_a_protected_environment(
    project: Path, cli: Run, database_url: str, monkeypatch: pytest.MonkeyPatch, db: psycopg.Connection
) -> None:
    monkeypatch.setenv("DBOPS_TEST_PROD_URL", database_url)
    assert cli("migrate", "--env=prod" if False else "--env=production").code == 0
    refused = cli("migrate-rollback", "--env=production")  # pytest's stdin is no terminal
    assert refused.code == 3
    assert "needs confirmation: no terminal to ask on" in refused.err and "--force" in refused.err
    assert len(applied_ids(db)) == 7
    forced = cli("migrate-rollback", "--env=production", "--force")
    assert forced.code == 0 and len(applied_ids(db)) == 6


def test_baseline_marks_without_running(
    project: Path, cli: Run, database_url: str, db: psycopg.Connection
) -> None:
    result = cli("migrate-baseline", "20251001090200_add_user_organization_relation")
    assert result.code == 0 and result.out.count("✓ 2025") == 3
    assert "users" not in tables(db)  # marked, not run
    assert (
        yoyo_list(database_url, project / "migrations")["20251001090200_add_user_organization_relation"]
        == "A"
    )
    assert db.execute("SELECT count(*) FROM _dbops_migration_checksum").fetchone() == (3,)
    assert cli("migrate-baseline", "nope").code == 2


def test_migrate_create(project: Path, cli: Run) -> None:
    result = cli("migrate-create", "add_approvals")
    assert result.code == 0, result.text
    created = sorted(p.name for p in (project / "migrations").glob("*_add_approvals*"))
    assert len(created) == 2 and re.match(r"^\d{14}_add_approvals\.rollback\.sql$", created[0])
    assert f"✓ Created migrations/{created[1]}" in result.out
    text = (project / "migrations" / created[1]).read_text()
    assert "-- depends: 20251001090600_add_workflow_permissions" in text
    assert cli("migrate-create", "Add-Approvals").code == 2
    assert [
        p.name for p in (project / "migrations").iterdir() if p.name.startswith(".")
    ] == []  # no temp file
    status = cli("status").out
    assert "  Pending: 8" in status


def test_migrate_create_uses_project_templates_and_never_overwrites(project: Path, cli: Run) -> None:
    own = project / "db-templates"
    own.mkdir()
    (own / "migration.sql.j2").write_text("-- {{ id }} by our team\nSET lock_timeout = '2s';\n")
    text = (project / "dbops.yaml").read_text()
    (project / "dbops.yaml").write_text(
        text.replace("project: sample", "project: sample\ntemplates: db-templates")
    )
    assert cli("migrate-create", "team_style").code == 0
    made = next((project / "migrations").glob("*_team_style.sql"))
    assert made.read_text().endswith("by our team\nSET lock_timeout = '2s';\n")
    from dbops.errors import UsageError
    from dbops.steps.create import _write_new

    with pytest.raises(UsageError, match="already exists"):
        _write_new(made, "overwritten?")
    assert "our team" in made.read_text()


# ----------------------------------------------------------------------------- one at a time, and kill -9


def run_dbops(project: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DBOPS_ENV", "DBOPS_CONFIG", "DATABASE_URL")}
    return subprocess.Popen(
        [dbops_bin(), *args], cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def many_migrations(folder: Path, count: int) -> None:
    files = {}
    for i in range(1, count + 1):
        files[f"{i:03d}_t{i}.sql"] = (
            f"CREATE TABLE t{i} (id int);\nINSERT INTO t{i} SELECT generate_series(1, 200);\nSELECT pg_sleep(0.005);\n"
        )
        files[f"{i:03d}_t{i}.rollback.sql"] = f"DROP TABLE t{i};\n"
    write_migrations(folder, files)


def consistent(db: psycopg.Connection, count: int) -> int:
    """Every migration is applied and recorded (yoyo row, log row, checksum) or none of it.

    Read in one snapshot: a migration committing meanwhile must not look half-done.
    """
    with db.transaction():
        db.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        have = all_tables(db)
        if "_yoyo_migration" not in have:
            assert not {f"t{i}" for i in range(1, count + 1)} & have
            return 0
        recorded = set(applied_ids(db))
        checksums = {
            r[0] for r in db.execute("SELECT migration_id FROM _dbops_migration_checksum").fetchall()
        }
        logged = {
            r[0]
            for r in db.execute("SELECT migration_id FROM _yoyo_log WHERE operation = 'apply'").fetchall()
        }
        for i in range(1, count + 1):
            mid = f"{i:03d}_t{i}"
            exists = f"t{i}" in have
            assert exists == (mid in recorded) == (mid in checksums) == (mid in logged), mid
            if exists:
                assert db.execute(f"SELECT count(*) FROM t{i}").fetchone() == (200,)
        return len(recorded)


def test_four_concurrent_migrate_processes(project: Path, db: psycopg.Connection) -> None:
    many_migrations(project / "migrations", 12)
    children = [run_dbops(project, "migrate", "--json") for _ in range(4)]
    docs = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, out + err
        docs.append(json.loads(out))
    applied_counts = sorted(len(d["report"]["items"]) for d in docs)
    assert sum(applied_counts) == 12  # each migration applied by exactly one process
    assert consistent(db, 12) == 12


def test_a_held_lock_names_its_holder(
    project: Path, cli: Run, database_url: str, db: psycopg.Connection
) -> None:
    from dbops.postgres.locks import MIGRATION_LOCK

    write_config(project, f'environments:\n  development:\n    url: "{database_url}"\n    lock_wait: 1s\n')
    with psycopg.connect(database_url, autocommit=True, application_name="other-deployer") as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        started = time.monotonic()
        result = cli("migrate")
        waited = time.monotonic() - started
    assert result.code == 1 and waited >= 1
    assert re.match(
        r"Error: Another migration run holds the lock on \S+: pid \d+ \(other-deployer\), since \d{4}-\d\d-\d\d ",
        result.err,
    )
    assert "lock_wait" in result.err
    assert "users" not in tables(db)
    assert cli("migrate").code == 0  # released with the holder's session


def test_kill_9_at_random_moments_leaves_every_migration_whole(project: Path, db: psycopg.Connection) -> None:
    """Kill while migration k of 20 is running, for many k: each migration is whole or absent."""
    count = 20
    many_migrations(project / "migrations", count)
    rng = random.Random(20261127)
    part_way = 0
    for _ in range(10):
        before = consistent(db, count)
        if before == count:  # all done: take the second half back by hand and go on
            for i in range(11, count + 1):
                db.execute(f"DROP TABLE t{i}")
            for table in ("_yoyo_migration", "_dbops_migration_checksum", "_yoyo_log"):
                db.execute(f"DELETE FROM {table} WHERE migration_id > '010_t10'")
            before = consistent(db, count)
        target = rng.randint(before + 1, min(before + 6, count))
        child = run_dbops(project, "migrate")
        deadline = time.monotonic() + 60
        while consistent(db, count) < target and child.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.002)
        time.sleep(rng.uniform(0, 0.004))  # somewhere inside the next migration
        child.send_signal(signal.SIGKILL)
        child.communicate()
        after = consistent(db, count)
        part_way += before < after < count
    assert part_way >= 5
    final = run_dbops(project, "migrate")
    out, err = final.communicate(timeout=120)
    assert final.returncode == 0, out + err
    assert consistent(db, count) == count
    assert set(yoyo_list_for(project, count).values()) == {"A"}


def yoyo_list_for(project: Path, count: int) -> dict[str, str]:
    text = (project / "dbops.yaml").read_text()
    url = re.search(r'url: "([^"]+)"', text).group(1)  # type: ignore[union-attr]
    return yoyo_list(url, project / "migrations")


# ----------------------------------------------------------------------------- all environments


def test_all_environments(project: Path, cli: Run, admin_url: str, database_url: str) -> None:
    import uuid

    from conftest import url_for

    other = f"dbops_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {other}")
    try:
        write_config(
            project,
            (
                f'environments:\n  development:\n    url: "{database_url}"\n'
                f'  test:\n    url: "{url_for(admin_url, other)}"\n'
                f'  production:\n    protected: true\n    url: "postgresql://nobody@127.0.0.1:1/none"\n'
            ),
        )
        result = cli("migrate", "--all-environments")
        assert result.code == 0, result.text
        assert result.out.count("All migrations completed successfully!") == 2
        assert "Skipped protected environment(s): production" in result.out
        as_json = json.loads(cli("migrate", "--all-environments", "--json").out)
        assert [e["environment"] for e in as_json["environments"]] == ["development", "test"]
        assert as_json["skipped"] == ["production"] and as_json["ok"]
        failing = cli("migrate", "--all-environments", "--include-protected")
        assert failing.code == 1 and "Connection refused" in failing.err
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {other} WITH (FORCE)")


# ----------------------------------------------------------------------------- what review found


@pytest.mark.parametrize(
    "commit",
    ["COMMIT;", "/* block comments /* nest */ in PostgreSQL */ COMMIT;"],
    ids=["plain", "behind-nested-comment"],
)
def test_transaction_control_in_a_transactional_migration_is_refused(
    project: Path, cli: Run, db: psycopg.Connection, commit: str
) -> None:
    write_migrations(
        project / "migrations",
        {"001_commit.sql": f"CREATE TABLE a (id int);\n{commit}\nCREATE TABLE b (id int);\n"},
    )
    result = cli("migrate")
    assert result.code == 2
    assert result.err.startswith("Error: 001_commit.sql:2: COMMIT: a migration runs in one transaction")
    assert "transactional: false" in result.err and tables(db) == set()


def test_session_settings_do_not_leak_into_the_next_migration(
    project: Path, cli: Run, database_url: str, db: psycopg.Connection
) -> None:
    folder = project / "migrations"
    write_migrations(
        folder,
        {
            "001_schema.sql": "CREATE SCHEMA app;\nSET search_path = app;\nCREATE TABLE inside (id int);\n",
            "002_other.sql": "CREATE TABLE other (id int);\n",
        },
    )
    result = cli("migrate")
    assert result.code == 0, result.text
    where: dict[str, str] = dict(
        db.execute(
            "SELECT tablename, schemaname FROM pg_tables WHERE tablename IN ('inside', 'other')"
        ).fetchall()
    )
    assert where == {"inside": "app", "other": "public"}  # as yoyo, with a connection per migration, does
    assert yoyo_list(database_url, folder) == {"001_schema": "A", "002_other": "A"}


def test_a_deferred_constraint_failing_at_commit(project: Path, cli: Run, db: psycopg.Connection) -> None:
    write_migrations(
        project / "migrations",
        {
            "001_parent.sql": "CREATE TABLE parent (id int PRIMARY KEY);\n",
            "001_parent.rollback.sql": "DROP TABLE parent;\n",
            "002_child.sql": (
                "CREATE TABLE child (parent_id int REFERENCES parent DEFERRABLE INITIALLY DEFERRED);\n"
                "INSERT INTO child VALUES (42);\n"
            ),
        },
    )
    result = cli("migrate")
    assert result.code == 1
    assert "✓ 001_parent.sql" in result.out and "✗ 002_child.sql failed" in result.out
    assert result.err.startswith("Error: Migration 002_child.sql failed at commit: insert or update on table")
    assert "nothing to migrate" not in result.out and tables(db) == set()


def test_one_error_line_and_the_line_after_a_comment(project: Path, cli: Run) -> None:
    write_migrations(
        project / "migrations",
        {"001_div.sql": "-- first\nCREATE TABLE d (id int);\n\n-- the culprit:\nSELECT 1/0;\n"},
    )
    result = cli("migrate")
    assert result.code == 1
    assert result.err.splitlines() == [
        "Error: Migration 001_div.sql failed at line 5: division by zero",
        "Hint: Nothing of it was applied. Fix 001_div.sql and run migrate again",
    ]
    write_migrations(project / "migrations", {"001_only.sql": "SELECT 1/0;\n"})
    assert len(cli("migrate").err.splitlines()) == 2  # nothing from psycopg's pipeline logger


def test_a_failing_python_step_names_its_line(project: Path, cli: Run) -> None:
    write_migrations(
        project / "migrations",
        {
            "001_py.py": "from yoyo import step\n\n\ndef go(conn):\n    conn.execute('SELECT 1')\n    raise ValueError('no good')\n\n\nsteps = [step(go)]\n",
        },
    )
    result = cli("migrate")
    assert result.code == 1
    assert result.err.startswith("Error: Migration 001_py.py failed at line 6, step 1: no good")


def test_a_failing_rollback_is_reported_as_one(project: Path, cli: Run, db: psycopg.Connection) -> None:
    write_migrations(
        project / "migrations",
        {
            "001_a.sql": "CREATE TABLE a (id int);\n",
            "001_a.rollback.sql": "DROP TABLE a;\nDROP TABLE not_there;\n",
        },
    )
    assert cli("migrate").code == 0
    result = cli("migrate-rollback")
    assert result.code == 1
    assert "✗ 001_a.sql failed" in result.out and "Nothing to roll back" not in result.out
    assert result.err.splitlines() == [
        'Error: Rollback of 001_a failed at 001_a.rollback.sql:2: table "not_there" does not exist',
        "Hint: Nothing was rolled back. Fix 001_a.rollback.sql and run migrate-rollback again",
    ]
    assert "a" in tables(db)


def test_invalid_index_detection_with_comments_and_unnamed_indexes(
    project: Path, cli: Run, db: psycopg.Connection
) -> None:
    write_migrations(
        project / "migrations",
        {
            "001_t.sql": "CREATE TABLE t (v int);\nINSERT INTO t VALUES (1), (1);\n",
            "002_idx.sql": (
                "-- transactional: false\n"
                "CREATE INDEX CONCURRENTLY ON t (v);\n"
                "-- must be unique\n"
                "CREATE UNIQUE INDEX CONCURRENTLY t_v_unique ON t (v);\n"
            ),
        },
    )
    result = cli("migrate")
    assert result.code == 4
    assert "failed at line 4" in result.err and "INVALID index left behind: t_v_unique" in result.err
    db.execute("DELETE FROM t WHERE ctid = (SELECT max(ctid) FROM t)")
    for (name,) in db.execute("SELECT indexname FROM pg_indexes WHERE tablename = 't'").fetchall():
        if name != "t_v_unique":
            db.execute(f"DROP INDEX {name}")
    retry = cli("migrate")
    assert retry.code == 0, retry.text
    assert "dropped the INVALID index an earlier attempt left: t_v_unique" in retry.out


def test_plain_yoyo_apply_after_dbops_finds_nothing_to_do(project: Path, cli: Run, database_url: str) -> None:
    assert cli("migrate").code == 0
    yoyo = str(Path(dbops_bin()).with_name("yoyo"))
    done = subprocess.run(
        [
            yoyo,
            "apply",
            "--batch",
            "--database",
            database_url.replace("postgresql://", "postgresql+psycopg://", 1),
            str(project / "migrations"),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert cli("migrate").out.splitlines()[-1] == "✓ Database is up to date: nothing to migrate"


def test_a_database_from_yoyo_before_6_is_upgraded_by_yoyo_in_our_transaction(
    project: Path, database_url: str, db: psycopg.Connection
) -> None:
    """yoyo < 6 kept one table (id, ctime): yoyo's own upgrade makes version 2 of it, in dbops'
    transaction, beside the lock row dbops holds (yoyo's own upgrade would wait for that row)."""
    folder = project / "migrations"
    write_migrations(
        folder, {"001_old.sql": "CREATE TABLE old (id int);\n", "002_new.sql": "CREATE TABLE new (id int);\n"}
    )
    db.execute("CREATE TABLE old (id int)")
    db.execute("CREATE TABLE _yoyo_migration (id VARCHAR(191) NOT NULL PRIMARY KEY, ctime TIMESTAMP)")
    db.execute("INSERT INTO _yoyo_migration VALUES ('001_old', '2019-05-01 10:00')")
    db.execute(
        "CREATE TABLE yoyo_lock (locked INT DEFAULT 1, ctime TIMESTAMP, pid INT NOT NULL, PRIMARY KEY (locked))"
    )
    child = run_dbops(project, "migrate")
    try:
        out, err = child.communicate(timeout=30)
    finally:
        child.kill()
    assert child.returncode == 0, out + err
    assert "✓ 002_new.sql (" in out and "001_old" not in out.split("Pending migrations:")[-1]
    assert db.execute("SELECT version FROM _yoyo_version").fetchall() == [(2,)]
    assert db.execute(
        "SELECT migration_id, created_at_utc::text FROM _yoyo_log WHERE migration_id = '001_old'"
    ).fetchall() == [("001_old", "2019-05-01 10:00:00")]
    assert db.execute("SELECT count(*) FROM yoyo_lock").fetchone() == (0,)
    assert yoyo_list(database_url, folder) == {"001_old": "A", "002_new": "A"}


def test_yoyo_tables_and_the_checksum_table_are_made_together_or_not_at_all(
    project: Path, cli: Run, db: psycopg.Connection
) -> None:
    """The checksum table, made after yoyo's, fails (a type already has its name): yoyo's go too."""
    db.execute("CREATE TYPE _dbops_migration_checksum AS ENUM ('in the way')")
    failed = cli("migrate")
    assert failed.code == 1 and 'type "_dbops_migration_checksum" already exists' in failed.err
    assert all_tables(db) == set()
    db.execute("DROP TYPE _dbops_migration_checksum")
    assert cli("migrate").code == 0 and all_tables(db) >= BOOKKEEPING


def test_bookkeeping_tables_are_the_ones_plain_yoyo_makes(
    project: Path, cli: Run, admin_url: str, database_url: str
) -> None:
    import uuid

    from conftest import url_for

    other = f"dbops_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {other}")
    try:
        assert cli("migrate").code == 0
        yoyo_list(url_for(admin_url, other), project / "migrations")  # plain yoyo makes its tables
        columns = (
            "SELECT table_name, column_name, data_type, is_nullable, column_default,"
            " character_maximum_length FROM information_schema.columns"
            " WHERE table_schema = 'public' AND table_name = ANY(%s) ORDER BY 1, 2"
        )
        keys = (
            "SELECT tc.table_name, tc.constraint_type, kcu.column_name FROM information_schema.table_constraints tc"
            " JOIN information_schema.key_column_usage kcu USING (constraint_schema, constraint_name)"
            " WHERE tc.table_schema = 'public' AND tc.table_name = ANY(%s) ORDER BY 1, 2, 3"
        )
        yoyo_tables = sorted(BOOKKEEPING - {"_dbops_migration_checksum"})
        found = []
        for url in (database_url, url_for(admin_url, other)):
            with psycopg.connect(url) as conn:
                found.append(
                    (
                        conn.execute(columns, (yoyo_tables,)).fetchall(),
                        conn.execute(keys, (yoyo_tables,)).fetchall(),
                        conn.execute("SELECT version FROM _yoyo_version").fetchall(),
                    )
                )
        assert found[0] == found[1] and len(found[0][0]) == 16
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {other} WITH (FORCE)")


def test_unknown_range_bounds_are_refused(project: Path, cli: Run) -> None:
    result = cli("migrate", "--from", "2099")
    assert result.code == 2 and "--from 2099: no migration has that id or starts with it" in result.err
