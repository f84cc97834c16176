"""status, complete as in the spec, through the dbops Program, against a real PostgreSQL."""

from __future__ import annotations

import json
import time
from pathlib import Path

import psycopg
import pytest

from conftest import Run, apply_migrations


def test_fresh_database_shows_everything_pending(project: Path, cli: Run) -> None:
    result = cli("status")
    assert result.code == 0, result.text
    out = result.out
    assert out.startswith("📊 Database Status\n")
    for line in (
        "Connection: ✓ Connected",
        "Environment: development",
        "  Applied: 0",
        "  Pending: 7",
        "  Last migration: (none)",
        "  Tables: 0",
        "⚠ pending migrations: 7 pending",
    ):
        assert line in out, line
    assert "Version: PostgreSQL " in out
    assert "\x1b[" not in out  # not a terminal: plain lines


def test_migrated_database(project: Path, cli: Run, database_url: str, db: psycopg.Connection) -> None:
    apply_migrations(database_url, project / "migrations")
    db.execute(
        "INSERT INTO users (email, password) SELECT 'u' || g || '@x', 'p' FROM generate_series(1, 145) g"
    )
    db.execute("INSERT INTO organizations (name, slug) VALUES ('ExFabrica', 'exfabrica')")
    result = cli("status")
    assert result.code == 0, result.text
    out = result.out
    for line in (
        "  Applied: 7",
        "  Pending: 0",
        "  Last migration: 20251001090600_add_workflow_permissions",
        "  Tables: 7",
        "  Views: 0",
        "  Sequences: 5",
        "  users: 145 records",
        "  organizations: 1 records",
        "  workflows: 0 records",
        "Health: ✓ All checks passed (7)",
    ):
        assert line in out, line
    assert "_yoyo" not in out and "yoyo_lock" not in out
    indexes = db.execute(
        "SELECT count(*) FROM pg_indexes WHERE schemaname = 'public' AND tablename NOT LIKE '%yoyo%'"
    ).fetchone()
    assert f"  Indexes: {indexes[0]}\n" in out  # type: ignore[index]
    assert "  Largest table: users (" in out


def test_json_is_one_document(project: Path, cli: Run, database_url: str) -> None:
    apply_migrations(database_url, project / "migrations")
    result = cli("status", "--json")
    assert result.code == 0 and result.err == ""
    doc = json.loads(result.out)
    assert doc["ok"] is True and doc["operation"] == "status" and doc["environment"] == "development"
    report = doc["report"]
    assert report["migrations"]["applied"] == 7 and report["migrations"]["pending"] == 0
    assert {t["name"] for t in report["catalog"]["tables"]} >= {"users", "workflows", "api_keys"}
    assert all(c["result"] == "ok" for c in report["health"])
    assert [s["name"] for s in doc["steps"]] == ["connect", "inspect"]


def test_large_tables_are_estimated_small_ones_counted(
    project: Path, cli: Run, db: psycopg.Connection
) -> None:
    db.execute("CREATE TABLE big (id int, pad text)")
    db.execute("INSERT INTO big SELECT g, repeat('x', 200) FROM generate_series(1, 60000) g")
    db.execute("CREATE TABLE small (id int)")
    db.execute("INSERT INTO small SELECT generate_series(1, 12)")
    db.execute("ANALYZE big")
    out = cli("status").out
    assert "  small: 12 records" in out
    line = next(line for line in out.splitlines() if line.startswith("  big: "))
    assert line.startswith("  big: ~")
    estimate = int(line.split("~")[1].split()[0].replace(",", ""))
    assert 50_000 <= estimate <= 70_000
    assert "  Largest table: big (" in out


def test_health_checks_find_invalid_indexes_and_not_valid_constraints(
    project: Path, cli: Run, db: psycopg.Connection
) -> None:
    db.execute("CREATE TABLE dup (email text)")
    db.execute("INSERT INTO dup VALUES ('a'), ('a')")
    with pytest.raises(psycopg.errors.UniqueViolation):
        db.execute("CREATE UNIQUE INDEX CONCURRENTLY dup_email ON dup (email)")
    db.execute("ALTER TABLE dup ADD CONSTRAINT email_lower CHECK (email = lower(email)) NOT VALID")
    result = cli("status")
    assert result.code == 0
    assert "  ✗ invalid indexes: public.dup_email" in result.out
    assert "  ⚠ NOT VALID constraints: email_lower on dup" in result.out
    gated = cli("status", "--check")
    assert gated.code == 1
    assert gated.err.startswith(
        "Error: status --check: 3 check(s) not passing: pending migrations: 7 pending; "
    )
    assert "Traceback" not in gated.text


def test_check_gate_passes_when_healthy(project: Path, cli: Run, database_url: str) -> None:
    assert cli("status", "--check").code == 1
    apply_migrations(database_url, project / "migrations")
    result = cli("status", "--check")
    assert result.code == 0, result.text


def test_applied_migration_whose_file_is_gone(project: Path, cli: Run, database_url: str) -> None:
    apply_migrations(database_url, project / "migrations")
    (project / "migrations" / "20251001090600_add_workflow_permissions.sql").unlink()
    out = cli("status").out
    assert "  Applied but missing from migrations/: 20251001090600_add_workflow_permissions" in out
    assert "⚠ migration files: applied but missing: 20251001090600_add_workflow_permissions" in out


def test_ci_annotations(project: Path, cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    assert "::warning::pending migrations: 7 pending\n" in cli("status").out
    monkeypatch.delenv("GITHUB_ACTIONS")
    monkeypatch.setenv("TF_BUILD", "True")
    result = cli("status", "--json")
    json.loads(result.out)  # annotations stay off stdout in JSON mode
    assert "##vso[task.logissue type=warning]pending migrations: 7 pending" in result.err
    failed = cli("status", "--env", "production")
    assert "##vso[task.logissue type=error]" in failed.out


def test_protected_environment_without_url(project: Path, cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DBOPS_TEST_PROD_URL", raising=False)
    result = cli("status", "--env=production")
    assert result.code == 2
    assert result.err.startswith(
        "Error: dbops.yaml:10: environments.production.url: variable DBOPS_TEST_PROD_URL is not set"
    )
    result = cli("status", "--env=staging")
    assert result.code == 2 and "Known: development (dev), test, production" in result.err


def test_env_alias_and_config_flag(
    project: Path, cli: Run, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "Environment: development" in cli("status", "--env=dev").out
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    assert cli("status").code == 2
    result = cli("status", "--config", str(project / "dbops.yaml"), "--env", "test")
    assert result.code == 0 and "Environment: test" in result.out


def test_operation_log(project: Path, cli: Run) -> None:
    cli("status")
    cli("status", "--env=nope")
    records = [
        json.loads(line) for line in (project / ".dbops/log/operations.jsonl").read_text().splitlines()
    ]
    assert [r["outcome"] for r in records] == ["ok", "usage error"]
    first = records[0]
    assert first["operation"] == "status" and first["environment"] == "development"
    assert first["time"].endswith("Z") and "@" in first["user"] and first["dbops_version"]
    assert first["duration_s"] > 0


def test_partitioned_tables_count_their_partitions(project: Path, cli: Run, db: psycopg.Connection) -> None:
    db.execute("CREATE TABLE events (id int, at date) PARTITION BY RANGE (at)")
    db.execute(
        "CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')"
    )
    db.execute(
        "CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')"
    )
    db.execute("INSERT INTO events SELECT g, date '2025-06-01' + g FROM generate_series(1, 300) g")
    db.execute("CREATE TABLE emptied (id int)")
    db.execute("INSERT INTO emptied VALUES (1), (2)")
    db.execute("DELETE FROM emptied")
    out = cli("status").out
    assert "  events: 300 records" in out
    assert "events_2025" not in out  # partitions are part of their table
    assert "  emptied: 0 records" in out
    assert "  Tables: 2" in out


def test_a_table_locked_by_a_migration_does_not_block_status(
    project: Path, cli: Run, database_url: str, db: psycopg.Connection
) -> None:
    db.execute("CREATE TABLE busy (id int)")
    db.execute("INSERT INTO busy SELECT generate_series(1, 50)")
    db.execute("ANALYZE busy")
    with psycopg.connect(
        database_url
    ) as holder:  # a transaction holding ACCESS EXCLUSIVE, as ALTER TABLE does
        holder.execute("LOCK TABLE busy IN ACCESS EXCLUSIVE MODE")
        result = cli("status")
        holder.rollback()
    assert result.code == 0, result.text
    assert "  busy: ~50 records (locked by another session)" in result.out


def test_a_queued_exclusive_lock_gives_estimates_not_a_hang(
    project: Path, cli: Run, database_url: str, db: psycopg.Connection
) -> None:
    """A reader holds a table, an ALTER TABLE queues behind it: status must not queue too."""
    import threading

    db.execute("CREATE TABLE queued (id int)")
    db.execute("INSERT INTO queued SELECT generate_series(1, 10)")
    with psycopg.connect(database_url) as reader, psycopg.connect(database_url, autocommit=True) as alter:
        reader.execute("SELECT count(*) FROM queued")  # holds ACCESS SHARE until rollback
        blocked = threading.Thread(target=lambda: alter.execute("ALTER TABLE queued ADD COLUMN x int"))
        blocked.start()
        deadline = time.monotonic() + 10
        while not db.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()[0]:  # type: ignore[index]
            assert time.monotonic() < deadline
            time.sleep(0.02)
        result = cli("status")
        reader.rollback()
        blocked.join()
    assert result.code == 0, result.text
    assert "another session is waiting for a table lock: figures are estimates" in result.out


def test_a_table_the_user_cannot_read_is_estimated(
    project: Path, cli: Run, database_url: str, db: psycopg.Connection
) -> None:
    import uuid

    role = f"reader_{uuid.uuid4().hex[:8]}"
    db.execute(f"CREATE ROLE {role} LOGIN")
    try:
        db.execute("CREATE TABLE secret (id int)")
        db.execute("INSERT INTO secret VALUES (1), (2)")
        db.execute("CREATE TABLE open_data (id int)")
        db.execute("INSERT INTO open_data VALUES (1)")
        db.execute(f"GRANT SELECT ON open_data TO {role}")
        db.execute("ANALYZE secret")
        url = database_url.replace("postgres@", f"{role}@", 1).replace("postgres:", f"{role}:", 1)
        (project / "dbops.yaml").write_text(f'environments:\n  development:\n    url: "{url}"\n')
        result = cli("status")
        assert result.code == 0, result.text
        assert "  open_data: 1 records" in result.out
        assert "  secret: ~2 records" in result.out
    finally:
        db.execute(f"DROP OWNED BY {role}")
        db.execute(f"DROP ROLE {role}")


def test_long_transactions_are_reported(
    project: Path, cli: Run, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dbops.schema import introspect

    monkeypatch.setattr(introspect, "LONG_TRANSACTION", "0 seconds")
    with psycopg.connect(database_url, application_name="stuck-worker") as stuck:
        stuck.execute("SELECT 1")  # a transaction left open
        time.sleep(0.05)
        out = cli("status").out
    assert "⚠ long transactions (> 5 min): pid " in out and "(stuck-worker, since " in out


def test_a_missing_migrations_folder_fails_the_check(project: Path, cli: Run) -> None:
    (project / "dbops.yaml").write_text(
        (project / "dbops.yaml")
        .read_text()
        .replace("project: sample", "project: sample\nmigrations: migratons")
    )
    result = cli("status", "--check")
    assert result.code == 1
    assert "✗ migrations folder: migratons does not exist (check migrations: in dbops.yaml)" in result.out


def test_json_with_an_error_is_still_one_document(project: Path, cli: Run) -> None:
    result = cli("status", "--json", "--env=nowhere")
    assert result.code == 2 and result.err == ""
    doc = json.loads(result.out)
    assert doc["ok"] is False and doc["exit_code"] == 2
    assert doc["error"]["message"].startswith("Unknown environment 'nowhere'") and doc["error"]["hint"]


def test_colour_on_a_terminal_and_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from dbops.output.render import Output

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    screen = Terminal()
    Output(stdout=screen).write([("ok", "✓ fine"), ("warn", "⚠ careful")], screen)
    assert "\x1b[" in screen.getvalue() and "✓ fine" in screen.getvalue()
    monkeypatch.setenv("NO_COLOR", "1")
    plain = Terminal()
    Output(stdout=plain).write([("ok", "✓ fine")], plain)
    assert plain.getvalue() == "✓ fine\n"


def test_usage_errors_exit_2_with_a_hint(project: Path, cli: Run) -> None:
    result = cli("status", "--bogus")
    assert result.code == 2
    assert result.err.splitlines() == [
        "Error: No idea what '--bogus' is!",
        "Hint: dbops --list shows the tasks, dbops TASK --help their flags",
    ]
    assert cli("nosuchtask").code == 2
    assert "Show connection, migrations" in cli("status", "-h").out
