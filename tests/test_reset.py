"""reset: drop every object of the application's schemas, migrate from scratch, seed on request."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import psycopg
import pytest

from conftest import REPO, Run

EXTRAS = """
CREATE SCHEMA app;
CREATE TABLE app.notes (id serial PRIMARY KEY, user_id bigint REFERENCES public.users);
CREATE VIEW active_users AS SELECT * FROM users WHERE role <> 'viewer';
CREATE MATERIALIZED VIEW user_count AS SELECT count(*) FROM users;
CREATE TYPE mood AS ENUM ('ok', 'meh');
CREATE DOMAIN email AS text CHECK (VALUE LIKE '%@%');
CREATE TYPE pair AS (a int, b int);
CREATE SEQUENCE tickets;
CREATE FUNCTION shout(t text) RETURNS text LANGUAGE sql AS 'SELECT upper(t)';
CREATE PROCEDURE noop() LANGUAGE sql AS 'SELECT 1';
CREATE FUNCTION by_user(u users) RETURNS text LANGUAGE sql AS 'SELECT u.email';
"""

OBJECTS = """
SELECT c.relkind::text || ':' || n.nspname || '.' || c.relname FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%%'
  AND c.relkind IN ('r', 'v', 'm', 'S')
UNION ALL SELECT 'f:' || proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'public'
UNION ALL SELECT 't:' || typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd') OR (t.typtype = 'c' AND t.typname = 'pair')
UNION ALL SELECT 'n:' || nspname FROM pg_namespace WHERE nspname = 'app'
"""


def objects(db: psycopg.Connection) -> set[str]:
    return {r[0] for r in db.execute(OBJECTS)}


def test_reset_drops_everything_and_migrates_afresh(project: Path, cli: Run, db: psycopg.Connection) -> None:
    assert cli("migrate").code == 0
    fresh = objects(db)
    db.execute("INSERT INTO users (email, password) VALUES ('gone@example.com', 'x')")
    db.execute(EXTRAS)
    assert len(objects(db)) > len(fresh)

    result = cli("reset", "--force")
    assert result.code == 0, result.text
    out = result.out
    assert out.startswith("🔄 Resetting Database\n")
    assert "✓ Views: 2 (active_users, user_count)" in out
    assert "✓ Tables: 8 (api_keys, app.notes, organization_members, organizations, projects, users," in out
    assert "✓ Migration records (yoyo's and dbops' tables): 5" in out
    assert "✓ Sequences: 1 (tickets)" in out
    assert "✓ Functions and procedures: 3 (by_user(u users), noop(), shout(t text))" in out
    assert "✓ Types: 4 (email, mood, pair, workflow_status)" in out
    assert "✓ Schemas: 1 (app)" in out
    assert "All migrations completed successfully!" in out and "Pipeline reset completed successfully!" in out
    assert objects(db) == fresh
    assert db.execute("SELECT count(*) FROM users").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM _yoyo_migration").fetchone() == (7,)


def test_reset_on_an_empty_database_then_seed(project: Path, cli: Run, db: psycopg.Connection) -> None:
    shutil.copytree(REPO / "seeds", project / "seeds")
    result = cli("reset", "--force", "--seed")
    assert result.code == 0, result.text
    assert "Nothing to drop: the database holds no application object" in result.out
    assert "✓ Users: 10 records created" in result.out
    doc = json.loads(cli("reset", "--force", "--seed", "--json").out)
    assert [s["name"] for s in doc["steps"]] == ["connect", "confirm", "backup", "drop", "migrate", "seed"]
    drop = doc["report"]["steps"][3]["report"]
    assert drop["dropped"]["table"][-1] == "workflows" and drop["finished"]
    assert db.execute("SELECT count(*) FROM users").fetchone() == (10,)


def test_a_failing_migrate_after_the_drop_restores_the_backup(
    project: Path, cli: Run, db: psycopg.Connection
) -> None:
    assert cli("migrate").code == 0
    db.execute("INSERT INTO users (email, password) VALUES ('kept@example.com', 'x')")
    db.execute(EXTRAS)
    before = objects(db)
    (project / "migrations" / "20251002000000_broken.sql").write_text("SELECT 1/0;\n")
    result = cli("reset", "--force")
    assert result.code == 1, result.text
    out = result.out
    assert "💾 Creating Safety Backup" in out and "Reason: before reset" in out
    assert "✗ Step 5 'migrate' (apply pending migrations) failed" in out
    undo = out[out.index("Undo, in reverse order:") :].splitlines()
    assert undo[1].startswith(
        "  ✓ 5. migrate: roll back the migrations this run applied (rolled back 20251001090600"
    )
    assert undo[2].startswith(
        "  ✓ 4. drop: restore the backup taken before it (restored backups/db/automated/"
    )
    kept = f"{db.info.dbname}__pre_restore_"  # the database the undo replaced: kept, and named
    assert f", taken by step 3; the database it replaced is kept as {kept}" in undo[2], undo[2]
    assert undo[2].endswith(": drop it once no longer needed)")
    with psycopg.connect(db.info.dsn, autocommit=True) as again:  # the restore swapped the database
        assert objects(again) == before
        assert again.execute("SELECT email FROM users").fetchall() == [("kept@example.com",)]


def test_no_backup_where_the_policy_allows_it(
    project: Path, cli: Run, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = json.loads(cli("reset", "--force", "--no-backup", "--json").out)
    assert doc["ok"] and [s["name"] for s in doc["steps"]] == ["connect", "confirm", "drop", "migrate"]
    assert not (project / "backups").exists()
    path = project / "dbops.yaml"
    path.write_text(path.read_text() + "    allow_reset: true\n")  # production's, the last environment
    monkeypatch.setenv("DBOPS_TEST_PROD_URL", database_url)
    refused = cli("reset", "--env=production", "--force", "--no-backup")
    assert refused.code == 3
    assert refused.err.splitlines()[0] == (
        "Error: --no-backup is refused in the protected environment production: it takes a backup before reset"
    )
