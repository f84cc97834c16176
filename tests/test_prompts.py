"""Prompts show everything they confirm, above the question: the backup file `restore latest`
resolved to, the migrations a protected rollback rolls back, what a reset drops. Answered
`no` (or a wrong name), nothing changes. A real dbops on a pseudo-terminal."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg

from conftest import Run, write_config
from test_live import Child


def configure(project: Path, url: str) -> None:
    write_config(
        project,
        f"""\
project: sample
environments:
  development:
    url: "{url}"
  production:
    protected: true
    url: "{url}"
""",
    )


def snapshot(db: psycopg.Connection, project: Path) -> tuple[object, ...]:
    """The tables, their rows, the applied migrations, the databases and the backup files."""
    tables = db.execute(
        "SELECT array_agg(tablename ORDER BY 1) FROM pg_tables WHERE schemaname = 'public'"
    ).fetchone()
    applied = db.execute("SELECT array_agg(migration_id ORDER BY 1) FROM _yoyo_migration").fetchone()
    users = db.execute("SELECT count(*) FROM users").fetchone()
    databases = db.execute(  # this one and those a restore would make or keep (<name>__...)
        "SELECT array_agg(datname ORDER BY 1) FROM pg_database WHERE starts_with(datname, current_database())"
    ).fetchone()
    files = sorted(str(p.relative_to(project)) for p in (project / "backups").rglob("*") if p.is_file())
    return tables, applied, users, databases, files


def ask(project: Path, args: list[str], answer: str) -> tuple[int, str, str]:
    """Run dbops on a terminal, answer its question; returns the exit code, what was on the
    screen above the question, and all of it."""
    child = Child(project, args, terminal=True)
    try:
        text = child.read_until(lambda t: t.rstrip().endswith(("(yes/no):", "to continue:")))
        child.answer(answer)
        code, everything = child.finish()
    finally:
        child.kill()
    return code, text, everything


def test_restore_latest_shows_the_backup_it_resolved_before_asking(
    project: Path, database_url: str, cli: Run, db: psycopg.Connection
) -> None:
    configure(project, database_url)
    assert cli("migrate").code == 0
    db.execute("INSERT INTO users (email, password) VALUES ('kept@example.com', 'x')")
    assert cli("reset", "--force").code == 0  # latest: the automatic backup before this reset
    [backup] = sorted((project / "backups" / "db" / "automated").glob("*.sql.gz"))
    before = snapshot(db, project)

    code, asked, everything = ask(project, ["restore", "latest"], "no")

    question = asked.rstrip().splitlines()
    block = question[question.index("⚠️ WARNING: This will replace all current data!") :]
    name = db.info.dbname
    assert block[1:4] == [
        f"Database: {name}",
        "Environment: development",
        f"Backup file: backups/db/automated/{backup.name}",
    ]
    described = re.fullmatch(
        rf"  automatic plain backup \(before reset\) of {name}, taken "
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(\d+[smhd] ago\), [\d.]+ \w+",
        block[4],
    )
    assert described, block
    assert block[5] == "  verified: its sha256 and a full read match the manifest"
    assert block[6] == "Are you sure you want to continue? (yes/no):"
    assert code == 3 and "Error: Not confirmed: nothing was changed" in everything
    assert snapshot(db, project) == before


def test_a_protected_rollback_lists_the_migrations_it_rolls_back(
    project: Path, database_url: str, cli: Run, db: psycopg.Connection
) -> None:
    configure(project, database_url)
    assert cli("migrate").code == 0
    before = snapshot(db, project)

    code, asked, everything = ask(project, ["migrate-rollback", "--steps", "2", "--env=production"], "no")

    question = asked.rstrip().splitlines()
    name = db.info.dbname
    at = question.index("Migrations to roll back, newest first:")
    assert question[at - 2 : at] == [f"Database: {name}", "Environment: production"]
    assert question[at + 1 :] == [
        "  ↩ 20251001090600_add_workflow_permissions.sql",
        "  ↩ 20251001090500_create_api_keys.sql",
        f"Type the database name ({name}) to continue:",
    ]
    assert code == 3 and "Error: Not confirmed: nothing was changed" in everything
    assert snapshot(db, project) == before  # no migration rolled back, no backup taken


def test_a_protected_rollback_it_would_refuse_is_refused_before_asking(
    project: Path, database_url: str, cli: Run, db: psycopg.Connection
) -> None:
    configure(project, database_url)
    assert cli("migrate").code == 0
    before = snapshot(db, project)
    child = Child(project, ["migrate-rollback", "--to", "nope", "--env=production"], terminal=True)
    try:
        code, text = child.finish()
    finally:
        child.kill()
    assert code == 2 and "Error: --to nope: no applied migration has that id" in text
    assert "to continue:" not in text
    assert snapshot(db, project) == before


def test_reset_says_what_it_drops(project: Path, database_url: str, cli: Run, db: psycopg.Connection) -> None:
    configure(project, database_url)
    assert cli("migrate").code == 0
    db.execute("INSERT INTO users (email, password) VALUES ('a@example.com', 'x'), ('b@example.com', 'y')")
    before = snapshot(db, project)

    code, asked, everything = ask(project, ["reset"], "no")
    assert "Error: Not confirmed: nothing was changed" in everything

    question = asked.rstrip().splitlines()
    assert question[-2:] == [
        "To drop: 7 table(s) (2 rows), 1 type(s), the records of every applied migration",
        "Are you sure you want to continue? (yes/no):",
    ]
    assert code == 3 and snapshot(db, project) == before
