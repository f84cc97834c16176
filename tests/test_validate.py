"""validate against a real PostgreSQL: one deliberately drifted database per kind of difference,
each reported exactly; a clean one; migration integrity; the scratch database always dropped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import psycopg
import pytest

from conftest import Run, dbops_bin, sigint_default, write_config
from dbops.migrations.files import YOYO_TABLES, discover
from dbops.migrations.scripts import load, order
from dbops.postgres.reusable import name_for
from dbops.schema.expected import joined

# a test that takes `migrated` starts from a clone of the migrated sample (conftest.database_url)
MIGRATED_SAMPLE = True

# Objects the sample lacks, so every kind of difference has something to differ on.
EXTRAS = """\
-- depends: 20251001090600_add_workflow_permissions
CREATE INDEX idx_users_email ON users (email);
CREATE SEQUENCE invoice_numbers START 1000;
CREATE TABLE invoices (
    id      bigint PRIMARY KEY DEFAULT nextval('invoice_numbers'),
    amount  numeric(10,2) NOT NULL,
    tags    text[] NOT NULL DEFAULT '{}',
    issued  timestamptz DEFAULT now()
);
CREATE VIEW active_projects AS SELECT id, name FROM projects WHERE status = 'active';
"""


@pytest.fixture
def migrated(project: Path, cli: Run, db: psycopg.Connection) -> psycopg.Connection:
    """The sample project plus EXTRAS, migrated: a database that validates clean."""
    (project / "migrations" / "20251001090700_extras.sql").write_text(EXTRAS)
    result = cli("migrate")
    assert result.code == 0, result.text
    return db


def scratch_databases(db: psycopg.Connection, *, everyone: bool = False) -> list[str]:
    """The scratch databases validate made for this test's database (others' tests may run
    validate on the same server meanwhile); with `everyone`, all of them."""
    rows = db.execute("SELECT datname FROM pg_database WHERE datname LIKE 'dbops\\_validate\\_%'").fetchall()
    mine = f"dbops_validate_{db.info.dbname}_"
    return [r[0] for r in rows if everyone or r[0].startswith(mine)]


def problems(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith(("⚠ Warning: ", "✗ Error: "))]


# ----------------------------------------------------------------------------- clean


def test_clean_database_validates(migrated: psycopg.Connection, cli: Run) -> None:
    result = cli("validate")
    assert result.code == 0, result.text
    lines = result.out.splitlines()
    assert lines[:2] == ["🔍 Schema Validation", "===================="]
    assert "Migrations: 8 applied, 0 pending" in lines
    assert any(
        line.startswith("Expected schema: 8 migrations applied in a scratch database on the same server")
        for line in lines
    )
    assert lines[-1] == "✓ All models validated successfully"
    assert problems(result.out) == []
    assert result.err == ""
    assert scratch_databases(migrated) == []


def test_clean_database_as_json(migrated: psycopg.Connection, cli: Run) -> None:
    result = cli("validate", "--json", "--strict")
    assert result.code == 0, result.text
    doc = json.loads(result.out)
    report = doc["report"]
    assert doc["operation"] == "validate" and doc["ok"] is True
    assert report["differences"] == [] and report["lint"] == [] and report["pending"] == []
    assert report["expected"]["source"] == "migrations" and report["expected"]["objects"] == 8
    assert report["expected"]["scratch"] == "same server"
    assert [s["name"] for s in doc["steps"]] == ["connect", "validate"]


def test_equivalent_defaults_compare_equal(migrated: psycopg.Connection, cli: Run) -> None:
    migrated.execute("ALTER TABLE users ALTER COLUMN created_at SET DEFAULT CURRENT_TIMESTAMP")
    migrated.execute("ALTER TABLE users ALTER COLUMN updated_at SET DEFAULT transaction_timestamp()")
    migrated.execute("ALTER TABLE invoices ALTER COLUMN tags SET DEFAULT ('{}'::text[])")
    result = cli("validate", "--strict")
    assert result.code == 0, result.text
    assert problems(result.out) == []


def test_a_run_of_migrations_goes_as_one_query_with_each_migrations_settings_reset(
    tmp_path: Path, db: psycopg.Connection
) -> None:
    """The expected schema's fast path: a statement that ends in a comment, a %, a migration's
    SET search_path that must not reach the next migration (as migrate resets its session)."""
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0001_other.sql").write_text(
        "CREATE SCHEMA other;\nSET search_path = other;\nCREATE TABLE a (id int) -- the last line, no semicolon"
    )
    (folder / "0002_public.sql").write_text(
        "CREATE TABLE b (id int);\nCREATE VIEW pct AS SELECT 'a%b'::text AS x;\n"
    )
    text = joined(order(list(load(discover(folder)).values())))
    with db.transaction(force_rollback=True):
        db.execute(text)
        found = "SELECT relname::text, relnamespace::regnamespace::text FROM pg_class WHERE relname IN ('a', 'b', 'pct')"
        assert dict(db.execute(found).fetchall()) == {"a": "other", "b": "public", "pct": "public"}
        assert db.execute("SELECT x FROM public.pct").fetchone() == ("a%b",)


# ----------------------------------------------------------------------------- each kind of difference

DRIFTS = [
    # tables, both ways
    ("DROP TABLE workflow_permissions", ["✗ Error: Table 'workflow_permissions' missing"]),
    ("CREATE TABLE tmp_import (id int)", ["⚠ Warning: Unexpected table 'tmp_import'"]),
    (
        "CREATE SCHEMA audit; CREATE TABLE audit.log (id int)",
        ["⚠ Warning: Unexpected table 'audit.log'", "⚠ Warning: Unexpected schema 'audit'"],
    ),
    # columns, both ways
    ("ALTER TABLE users DROP COLUMN last_name", ["✗ Error: Column 'last_name' missing on users table"]),
    (
        "ALTER TABLE users ADD COLUMN legacy_id int",
        ["⚠ Warning: Unexpected column 'legacy_id' on users table"],
    ),
    # types with their modifiers
    (
        "ALTER TABLE users ALTER COLUMN updated_at TYPE timestamp",
        [
            "⚠ Warning: Column 'updated_at' type mismatch on users table (expected: timestamptz, found: timestamp)"
        ],
    ),
    (
        "ALTER TABLE users ALTER COLUMN email TYPE text",
        ["⚠ Warning: Column 'email' type mismatch on users table (expected: varchar(255), found: text)"],
    ),
    (
        "ALTER TABLE users ALTER COLUMN first_name TYPE varchar(120)",
        [
            "⚠ Warning: Column 'first_name' type mismatch on users table (expected: varchar(100), found: varchar(120))"
        ],
    ),
    (
        "ALTER TABLE invoices ALTER COLUMN amount TYPE numeric(12,2)",
        [
            "⚠ Warning: Column 'amount' type mismatch on invoices table (expected: numeric(10,2), found: numeric(12,2))"
        ],
    ),
    (
        "ALTER TABLE invoices ALTER COLUMN amount TYPE numeric(10,3)",
        [
            "⚠ Warning: Column 'amount' type mismatch on invoices table (expected: numeric(10,2), found: numeric(10,3))"
        ],
    ),
    (
        "ALTER TABLE invoices ALTER COLUMN tags DROP DEFAULT, ALTER COLUMN tags TYPE varchar(20)[],"
        " ALTER COLUMN tags SET DEFAULT '{}'",
        ["⚠ Warning: Column 'tags' type mismatch on invoices table (expected: text[], found: varchar(20)[])"],
    ),
    (
        "ALTER TABLE api_keys ALTER COLUMN key_hash TYPE char(40)",
        [
            "⚠ Warning: Column 'key_hash' type mismatch on api_keys table (expected: char(64), found: char(40))"
        ],
    ),
    # nullability
    (
        "ALTER TABLE users ALTER COLUMN first_name SET NOT NULL",
        [
            "⚠ Warning: Column 'first_name' nullability mismatch on users table (expected: NULL, found: NOT NULL)"
        ],
    ),
    (
        "ALTER TABLE users ALTER COLUMN password DROP NOT NULL",
        [
            "⚠ Warning: Column 'password' nullability mismatch on users table (expected: NOT NULL, found: NULL)"
        ],
    ),
    # defaults
    (
        "ALTER TABLE users ALTER COLUMN role DROP DEFAULT",
        ["⚠ Warning: Column 'role' default mismatch on users table (expected: 'user'::text, found: none)"],
    ),
    (
        "ALTER TABLE workflows ALTER COLUMN status SET DEFAULT 'active'",
        [
            "⚠ Warning: Column 'status' default mismatch on workflows table"
            " (expected: 'draft'::workflow_status, found: 'active'::workflow_status)"
        ],
    ),
    (
        "ALTER TABLE users ALTER COLUMN id DROP IDENTITY",
        [
            "⚠ Warning: Column 'id' identity mismatch on users table"
            " (expected: GENERATED BY DEFAULT AS IDENTITY, found: none)"
        ],
    ),
    # primary keys and unique constraints
    (
        "ALTER TABLE workflow_permissions DROP CONSTRAINT workflow_permissions_pkey",
        [
            "⚠ Warning: Primary key 'workflow_permissions_pkey' missing on workflow_permissions table"
            " (expected: PRIMARY KEY (workflow_id, user_id, permission))"
        ],
    ),
    (
        "ALTER TABLE users DROP CONSTRAINT users_email_key",
        ["⚠ Warning: Unique constraint 'users_email_key' missing on users table (expected: UNIQUE (email))"],
    ),
    (
        "ALTER TABLE users RENAME CONSTRAINT users_email_key TO users_email_unique",
        [
            "⚠ Warning: Unique constraint 'users_email_key' name mismatch on users table"
            " (expected: users_email_key, found: users_email_unique)"
        ],
    ),
    (
        "ALTER TABLE organizations ADD CONSTRAINT organizations_name_key UNIQUE (name)",
        [
            "⚠ Warning: Unexpected unique constraint 'organizations_name_key' on organizations table (UNIQUE (name))"
        ],
    ),
    # indexes: missing, unexpected, columns, method, uniqueness, predicate
    ("DROP INDEX idx_users_email", ["⚠ Warning: Index 'idx_users_email' missing on users table"]),
    (
        "CREATE INDEX idx_tmp ON users (last_name)",
        ["⚠ Warning: Unexpected index 'idx_tmp' on users table (btree (last_name))"],
    ),
    (
        "DROP INDEX idx_workflows_project; CREATE INDEX idx_workflows_project ON workflows (project_id, name)",
        [
            "⚠ Warning: Index 'idx_workflows_project' columns mismatch on workflows table"
            " (expected: (project_id), found: (project_id, name))"
        ],
    ),
    (
        "DROP INDEX idx_projects_owner; CREATE INDEX idx_projects_owner ON projects USING hash (owner_id)",
        [
            "⚠ Warning: Index 'idx_projects_owner' method mismatch on projects table (expected: btree, found: hash)"
        ],
    ),
    (
        "DROP INDEX idx_api_keys_organization; CREATE UNIQUE INDEX idx_api_keys_organization ON api_keys (organization_id)",
        [
            "⚠ Warning: Index 'idx_api_keys_organization' uniqueness mismatch on api_keys table"
            " (expected: not unique, found: UNIQUE)"
        ],
    ),
    (
        "DROP INDEX idx_workflows_active;"
        " CREATE INDEX idx_workflows_active ON workflows (project_id) WHERE status = 'paused'",
        [
            "⚠ Warning: Index 'idx_workflows_active' predicate mismatch on workflows table"
            " (expected: WHERE status = 'active'::workflow_status, found: WHERE status = 'paused'::workflow_status)"
        ],
    ),
    (
        "ALTER INDEX idx_projects_owner RENAME TO projects_owner_idx",
        [
            "⚠ Warning: Index 'idx_projects_owner' name mismatch on projects table"
            " (expected: idx_projects_owner, found: projects_owner_idx)"
        ],
    ),
    # foreign keys: missing, ON DELETE, ON UPDATE, target
    (
        "ALTER TABLE api_keys DROP CONSTRAINT api_keys_user_id_fkey",
        [
            "⚠ Warning: Foreign key 'api_keys_user_id_fkey' missing on api_keys table"
            " (expected: FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE SET NULL)"
        ],
    ),
    (
        "ALTER TABLE projects DROP CONSTRAINT projects_owner_id_fkey,"
        " ADD CONSTRAINT projects_owner_id_fkey FOREIGN KEY (owner_id) REFERENCES users (id) ON DELETE CASCADE",
        [
            "⚠ Warning: Foreign key 'projects_owner_id_fkey' definition mismatch on projects table"
            " (expected: FOREIGN KEY (owner_id) REFERENCES users(id) ON DELETE SET NULL,"
            " found: FOREIGN KEY (owner_id) REFERENCES users(id) ON DELETE CASCADE)"
        ],
    ),
    (
        "ALTER TABLE projects DROP CONSTRAINT projects_owner_id_fkey, ADD CONSTRAINT projects_owner_id_fkey"
        " FOREIGN KEY (owner_id) REFERENCES users (id) ON UPDATE CASCADE ON DELETE SET NULL",
        [
            "⚠ Warning: Foreign key 'projects_owner_id_fkey' definition mismatch on projects table"
            " (expected: FOREIGN KEY (owner_id) REFERENCES users(id) ON DELETE SET NULL,"
            " found: FOREIGN KEY (owner_id) REFERENCES users(id) ON UPDATE CASCADE ON DELETE SET NULL)"
        ],
    ),
    (
        "ALTER TABLE workflows DROP CONSTRAINT workflows_created_by_fkey, ADD CONSTRAINT workflows_created_by_fkey"
        " FOREIGN KEY (created_by) REFERENCES organizations (id) ON DELETE SET NULL",
        [
            "⚠ Warning: Foreign key 'workflows_created_by_fkey' definition mismatch on workflows table"
            " (expected: FOREIGN KEY (created_by) REFERENCES users(id) ON DELETE SET NULL,"
            " found: FOREIGN KEY (created_by) REFERENCES organizations(id) ON DELETE SET NULL)"
        ],
    ),
    (
        "ALTER TABLE projects DROP CONSTRAINT projects_owner_id_fkey, ADD CONSTRAINT projects_owner_id_fkey"
        " FOREIGN KEY (organization_id) REFERENCES organizations (id) ON DELETE SET NULL",
        [
            "⚠ Warning: Foreign key 'projects_owner_id_fkey' definition mismatch on projects table"
            " (expected: FOREIGN KEY (owner_id) REFERENCES users(id) ON DELETE SET NULL,"
            " found: FOREIGN KEY (organization_id) REFERENCES organizations(id) ON DELETE SET NULL)"
        ],
    ),
    # check constraints
    (
        "ALTER TABLE users DROP CONSTRAINT users_role_check",
        [
            "⚠ Warning: Check constraint 'users_role_check' missing on users table"
            " (expected: CHECK (role = ANY (ARRAY['admin'::text, 'user'::text, 'viewer'::text])))"
        ],
    ),
    (
        "ALTER TABLE users DROP CONSTRAINT users_role_check,"
        " ADD CONSTRAINT users_role_check CHECK (role IN ('admin', 'user'))",
        [
            "⚠ Warning: Check constraint 'users_role_check' definition mismatch on users table"
            " (expected: CHECK (role = ANY (ARRAY['admin'::text, 'user'::text, 'viewer'::text])),"
            " found: CHECK (role = ANY (ARRAY['admin'::text, 'user'::text])))"
        ],
    ),
    # enums: labels and their order
    (
        "ALTER TYPE workflow_status ADD VALUE 'deleted'",
        [
            "⚠ Warning: Enum 'workflow_status' labels mismatch"
            " (expected: [draft, active, paused, archived], found: [draft, active, paused, archived, deleted])"
        ],
    ),
    (
        "ALTER TYPE workflow_status ADD VALUE 'review' BEFORE 'active'",
        [
            "⚠ Warning: Enum 'workflow_status' labels mismatch"
            " (expected: [draft, active, paused, archived], found: [draft, review, active, paused, archived])"
        ],
    ),
    ("CREATE TYPE mood AS ENUM ('ok')", ["⚠ Warning: Unexpected enum 'mood'"]),
    # sequences
    (
        "ALTER SEQUENCE invoice_numbers INCREMENT BY 10",
        [
            "⚠ Warning: Sequence 'invoice_numbers' settings mismatch (expected: increment 1, found: increment 10)"
        ],
    ),
    (
        "ALTER TABLE invoices ALTER COLUMN id DROP DEFAULT; DROP SEQUENCE invoice_numbers",
        [
            "⚠ Warning: Column 'id' default mismatch on invoices table"
            " (expected: nextval('invoice_numbers'::regclass), found: none)",
            "✗ Error: Sequence 'invoice_numbers' missing",
        ],
    ),
    ("CREATE SEQUENCE stray_numbers", ["⚠ Warning: Unexpected sequence 'stray_numbers'"]),
    # views
    ("DROP VIEW active_projects", ["✗ Error: View 'active_projects' missing"]),
    ("CREATE VIEW stray AS SELECT 1 AS one", ["⚠ Warning: Unexpected view 'stray'"]),
]


@pytest.mark.parametrize(("drift", "expected"), DRIFTS, ids=[d for d, _ in DRIFTS])
def test_drift_is_reported_exactly(
    migrated: psycopg.Connection, cli: Run, drift: str, expected: list[str]
) -> None:
    migrated.execute(drift)
    result = cli("validate")
    assert problems(result.out) == expected, result.text
    errors = [p for p in expected if p.startswith("✗")]
    assert result.code == (1 if errors else 0), result.text
    if errors:
        assert "✓ All models validated successfully" not in result.out
        assert result.err.startswith("Error: Schema does not match the migrations: ")
    else:
        assert "✓ All models validated successfully" in result.out
        assert cli("validate", "--strict").code == 1
    assert scratch_databases(migrated) == []


def test_changed_view_definition(migrated: psycopg.Connection, cli: Run) -> None:
    migrated.execute(
        "CREATE OR REPLACE VIEW active_projects AS SELECT id, name FROM projects WHERE status = 'archived'"
    )
    result = cli("validate")
    # PostgreSQL 16 and later print the columns of a one-table view unqualified.
    columns = "id, name" if migrated.info.server_version >= 160000 else "projects.id, projects.name"
    status = "status" if migrated.info.server_version >= 160000 else "projects.status"
    assert problems(result.out) == [
        "⚠ Warning: View 'active_projects' definition mismatch"
        f" (expected: SELECT {columns} FROM projects WHERE {status} = 'active'::text,"
        f" found: SELECT {columns} FROM projects WHERE {status} = 'archived'::text)"
    ], result.text


def test_the_specs_sample_output(migrated: psycopg.Connection, cli: Run) -> None:
    migrated.execute("DROP INDEX idx_users_email")
    migrated.execute("ALTER TABLE users ALTER COLUMN updated_at TYPE timestamp")
    result = cli("validate")
    assert result.code == 0, result.text
    lines = result.out.splitlines()
    at = lines.index("✓ All models validated successfully")
    assert lines[at + 1 : at + 3] == [
        "⚠ Warning: Column 'updated_at' type mismatch on users table (expected: timestamptz, found: timestamp)",
        "⚠ Warning: Index 'idx_users_email' missing on users table",
    ]
    assert lines[-1].startswith("⚠ Validation passed with warnings: 0 errors, 2 warnings (")
    strict = cli("validate", "--strict")
    assert strict.code == 1
    assert strict.err.splitlines() == [
        "Error: Schema does not match the migrations: 0 error(s), 2 warning(s) (--strict)",
        "Hint: Create a corrective migration: dbops migrate-create fix_users_schema",
    ]


def test_errors_as_json_and_ci_annotations(
    migrated: psycopg.Connection, cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    migrated.execute("ALTER TABLE users DROP COLUMN last_name")
    migrated.execute("DROP INDEX idx_users_email")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    result = cli("validate", "--json")
    assert result.code == 1
    doc = json.loads(result.out)
    assert doc["ok"] is False and doc["error"]["kind"] == "ValidationFailed"
    assert doc["report"]["differences"] == [
        {
            "severity": "error",
            "kind": "column",
            "name": "last_name",
            "table": "users",
            "problem": "missing",
            "expected": "varchar(100)",
            "found": None,
            "message": "Column 'last_name' missing on users table",
        },
        {
            "severity": "warning",
            "kind": "index",
            "name": "idx_users_email",
            "table": "users",
            "problem": "missing",
            "expected": "btree (email)",
            "found": None,
            "message": "Index 'idx_users_email' missing on users table",
        },
    ]
    assert "::warning::Index 'idx_users_email' missing on users table" in result.err.splitlines()
    assert "::error::Column 'last_name' missing on users table" in result.err.splitlines()


# ----------------------------------------------------------------------------- migration integrity


def test_edited_deleted_and_pending_migrations(migrated: psycopg.Connection, cli: Run, project: Path) -> None:
    folder = project / "migrations"
    extras = folder / "20251001090700_extras.sql"
    extras.write_text(EXTRAS + "-- a comment added after it was applied\n")
    (folder / "20251001090500_create_api_keys.sql").unlink()
    (folder / "20251001090500_create_api_keys.rollback.sql").unlink()
    (folder / "20251001090800_add_notes.sql").write_text(
        "-- depends: 20251001090700_extras\nALTER TABLE projects ADD COLUMN notes text;\n"
    )
    result = cli("validate")
    assert result.code == 1
    assert problems(result.out) == [
        "✗ Error: Migration 20251001090700_extras was edited after it was applied",
        "✗ Error: Migration 20251001090500_create_api_keys was applied, then its file deleted",
        "⚠ Warning: Migration 20251001090800_add_notes is pending",
        "⚠ Warning: Unexpected table 'api_keys'",
        "✗ Error: Column 'notes' missing on projects table",
        "⚠ Warning: migrations/20251001090800_add_notes.sql:2: lock-timeout: takes heavy locks on existing"
        " tables with no lock_timeout: it can stall all traffic"
        " (fix: start the migration with SET lock_timeout = '5s', or set lock_timeout: in dbops.yaml)",
    ]
    assert result.err.splitlines()[1] == (
        "Hint: Restore the changed migration files, or accept them: dbops migrate-repair"
    )


def test_remedies(migrated: psycopg.Connection, cli: Run, project: Path) -> None:
    pending = project / "migrations" / "20251001090800_lock.sql"
    pending.write_text("-- depends: 20251001090700_extras\nLOCK TABLE users IN ACCESS EXCLUSIVE MODE;\n")
    strict = cli("validate", "--strict")  # a pending migration and its lint finding, no difference
    assert strict.code == 1
    assert strict.err.splitlines() == [
        "Error: Schema does not match the migrations: 0 error(s), 2 warning(s) (--strict)",
        "Hint: Apply the 1 pending migration(s): dbops migrate",
    ]
    pending.write_text("-- depends: 20251001090700_extras\nCREATE TABLE approvals (id int);\n")
    missing = cli("validate")
    assert missing.code == 1
    assert missing.err.splitlines()[1] == (
        "Hint: Apply the 1 pending migration(s): dbops migrate;"
        " then, if differences remain: dbops migrate-create fix_approvals_schema"
    )


# ----------------------------------------------------------------------------- the scratch database


def test_a_failing_migration_fails_validate_and_the_scratch_database_goes(
    migrated: psycopg.Connection, cli: Run, project: Path
) -> None:
    (project / "migrations" / "20251001090800_broken.sql").write_text(
        "-- depends: 20251001090700_extras\nALTER TABLE projects\n  ADD COLUMN owner_name text REFERENCES nowhere (id);\n"
    )
    result = cli("validate")
    assert result.code == 1
    assert result.err.splitlines()[0] == (
        "Error: Building the expected schema failed in a scratch database on the same server:"
        ' Migration 20251001090800_broken.sql failed at line 2: relation "nowhere" does not exist'
    )
    assert scratch_databases(migrated) == []


@pytest.mark.parametrize("reuse", [False, True], ids=["fresh", "reusable"])
def test_ctrl_c_drops_the_scratch_database(
    migrated: psycopg.Connection, project: Path, database_url: str, reuse: bool
) -> None:
    """A fresh scratch database is dropped; in the reusable one (dbops.postgres.reusable) the
    transaction is cancelled and rolled back."""
    (project / "migrations" / "20251001090800_slow.sql").write_text(
        "-- depends: 20251001090700_extras\nSELECT pg_sleep(30);\n"
    )
    write_config(
        project,
        f'project: sample\nenvironments:\n  development:\n    url: "{database_url}"\n'
        f"    reuse_scratch: {str(reuse).lower()}\n",
    )
    # with reuse, another test's validate may hold the reusable database: then this one is fresh
    sleeping_in = "dbops\\_validate\\_%" if reuse else f"dbops\\_validate\\_{migrated.info.dbname}\\_%"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DBOPS_", "GITHUB_", "TF_"))}
    child = subprocess.Popen(
        [dbops_bin(), "validate"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=sigint_default,
    )
    try:
        deadline = time.monotonic() + 20
        while not migrated.execute(
            # the migrations run as one query (its text may be cut short here): what it waits on
            "SELECT 1 FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND datname LIKE %s",
            (sleeping_in,),
        ).fetchone():
            assert time.monotonic() < deadline, "the slow migration never started"
            time.sleep(0.05)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=20)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 130, out + err
    assert "Interrupted" in err
    assert scratch_databases(migrated) == []
    kept = name_for(migrated.info.user)  # its statement was cancelled, not left sleeping
    sleeping = "SELECT 1 FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND datname = %s"
    assert migrated.execute(sleeping, (kept,)).fetchone() is None


def test_stale_scratch_databases_of_killed_runs_are_dropped(migrated: psycopg.Connection, cli: Run) -> None:
    own = migrated.info.dbname  # named after this test's database, as validate names its own
    stale = f"dbops_validate_{own}_20200101000000_abcdef"
    recent = f"dbops_validate_{own}_{time.strftime('%Y%m%d%H%M%S', time.gmtime())}_abcdef"
    for name in (stale, recent):
        migrated.execute(f"CREATE DATABASE {name}")
    try:
        assert cli("validate").code == 0
        left = scratch_databases(migrated, everyone=True)
        assert stale not in left
        assert recent in left  # another run's may still be in use
    finally:
        for name in (stale, recent):
            migrated.execute(f"DROP DATABASE IF EXISTS {name}")


def test_scratch_on_the_embedded_server_when_the_role_cannot_create_databases(
    migrated: psycopg.Connection, cli: Run, project: Path, database_url: str
) -> None:
    role = "dbops_t_nocreatedb_" + migrated.info.dbname[-12:]
    migrated.execute(f"CREATE ROLE {role} LOGIN NOCREATEDB")
    # reading the catalog needs no grant; reading what is applied needs dbops' and yoyo's tables
    # (a grant on an application table would be a difference of its own)
    bookkeeping = ", ".join(YOYO_TABLES)
    migrated.execute(f"GRANT SELECT ON {bookkeeping} TO {role}")
    server = None
    try:
        url = database_url.replace("postgres@", f"{role}@", 1)
        write_config(project, f'project: sample\nenvironments:\n  development:\n    url: "{url}"\n')
        result = cli("validate", "--json")
        doc = json.loads(result.out)
        assert result.code == 0, result.text
        assert doc["report"]["expected"]["scratch"] == "embedded"
        assert doc["report"]["expected"]["server"].startswith("PostgreSQL 18")
        assert doc["report"]["differences"] == []
    finally:
        from dbops.postgres.embedded import EmbeddedServer

        server = EmbeddedServer(project / ".dbops" / "pg")
        server.stop()
        migrated.execute(f"REVOKE ALL ON {bookkeeping} FROM {role}")
        migrated.execute(f"DROP ROLE {role}")


def test_no_password_in_output_json_or_log(
    migrated: psycopg.Connection, cli: Run, project: Path, database_url: str
) -> None:
    url = database_url.replace("postgres@", "postgres:s3cr3t-pw@", 1)
    write_config(project, f'project: sample\nenvironments:\n  development:\n    url: "{url}"\n')
    migrated.execute("DROP TABLE workflow_permissions")
    text = cli("validate").text + cli("validate", "--json").text
    text += (project / ".dbops" / "log" / "operations.jsonl").read_text()
    assert "Table 'workflow_permissions' missing" in text
    assert "s3cr3t" not in text


# ----------------------------------------------------------------------------- as a pipeline step


def test_validate_is_a_pipeline_step_after_migrate(project: Path, db: psycopg.Connection) -> None:
    from dbops.config.loader import load_config
    from dbops.engine.catalog import RULES
    from dbops.engine.context import RunContext
    from dbops.engine.options import MigrateOptions
    from dbops.engine.pipeline import run_pipeline
    from dbops.steps.connect import Connect
    from dbops.steps.migrate import Migrate
    from dbops.steps.validate import Validate

    config = load_config(RULES)
    ctx = RunContext(config, config.environment(None))
    try:
        result = run_pipeline("deploy", [Connect(), Migrate(MigrateOptions()), Validate(strict=True)], ctx)
    finally:
        ctx.close()
    assert result.ok, result.error
    assert [s.status for s in result.steps] == ["ok", "ok", "ok"]
    assert result.steps[-1].data.differences == []


# ----------------------------------------------------------------------------- SQLAlchemy models


MODELS = """\
from sqlalchemy import Column, DateTime, ForeignKey, Integer, MetaData, String, Table, func

metadata = MetaData()
teams = Table("teams", metadata, Column("id", Integer, primary_key=True), Column("name", String(80), nullable=False))
members = Table(
    "members",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("team_id", ForeignKey("teams.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("joined_at", DateTime(timezone=True), server_default=func.now()),
)
"""


def test_models_are_the_expected_schema(
    project: Path, cli: Run, db: psycopg.Connection, database_url: str
) -> None:
    (project / "app").mkdir()
    (project / "app" / "__init__.py").write_text("")
    (project / "app" / "models.py").write_text(MODELS)
    config = (
        (project / "dbops.yaml")
        .read_text()
        .replace("project: sample\n", "project: sample\nmodels: app.models:metadata\n")
    )
    (project / "dbops.yaml").write_text(config)
    for name in (project / "migrations").iterdir():
        name.unlink()
    db.execute("CREATE TABLE teams (id serial PRIMARY KEY, name varchar(80) NOT NULL)")
    db.execute(
        "CREATE TABLE members (id serial PRIMARY KEY, team_id int NOT NULL REFERENCES teams (id) ON DELETE CASCADE,"
        " joined_at timestamp DEFAULT CURRENT_TIMESTAMP)"
    )
    db.execute("CREATE INDEX ix_members_team_id ON members (team_id)")
    result = cli("validate")
    assert problems(result.out) == [
        "⚠ Warning: Column 'joined_at' type mismatch on members table (expected: timestamptz, found: timestamp)"
    ], result.text
    assert "Expected schema: 2 tables from models: app.models:metadata" in result.out
    db.execute("ALTER TABLE members ALTER COLUMN joined_at TYPE timestamptz")
    assert cli("validate", "--strict").code == 0


def test_models_that_do_not_import(project: Path, cli: Run) -> None:
    config = (
        (project / "dbops.yaml")
        .read_text()
        .replace("project: sample\n", "project: sample\nmodels: nowhere.models:metadata\n")
    )
    (project / "dbops.yaml").write_text(config)
    result = cli("validate")
    assert result.code == 2
    assert result.err.startswith("Error: models: cannot import nowhere.models: ModuleNotFoundError")


def test_models_key_is_checked(project: Path, cli: Run) -> None:
    config = (
        (project / "dbops.yaml")
        .read_text()
        .replace("project: sample\n", "project: sample\nmodels: app.models\n")
    )
    (project / "dbops.yaml").write_text(config)
    result = cli("validate")
    assert result.code == 2
    assert result.err.startswith(
        "Error: dbops.yaml:2: models: expected package.module:metadata, got 'app.models'"
    )


def test_migrations_that_need_their_own_commits_build_the_same_schema(
    migrated: psycopg.Connection, cli: Run, project: Path
) -> None:
    """A new enum value cannot be used in the transaction that adds it: the scratch build, which
    runs migrations together in one transaction, falls back to one by one, as migrate runs them."""
    folder = project / "migrations"
    (folder / "20251001090800_deleted_status.sql").write_text(
        "-- depends: 20251001090700_extras\nALTER TYPE workflow_status ADD VALUE 'deleted';\n"
    )
    (folder / "20251001090900_deleted_default.sql").write_text(
        "-- depends: 20251001090800_deleted_status\n"
        "ALTER TABLE workflows ALTER COLUMN status SET DEFAULT 'deleted';\n"
    )
    assert cli("migrate").code == 0
    result = cli("validate", "--strict")
    assert result.code == 0, result.text
    assert problems(result.out) == []
