"""The lint of pending migrations: each rule with a case and its -- dbops:ignore comment, the
lint command, and migrate refusing in protected environments (validate_before_migrate)."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from conftest import Run
from dbops.migrations.files import discover
from dbops.migrations.lint import RULES, Finding, lint
from dbops.migrations.scripts import load, order


def lint_folder(folder: Path, *, lock_timeout_ms: int | None = 5000, pending_from: int = 0) -> list[Finding]:
    scripts = order(list(load(discover(folder)).values()))[pending_from:]
    return lint(scripts, lock_timeout_ms=lock_timeout_ms, shown=lambda p: p.name)


def lint_sql(tmp_path: Path, sql: str, lock_timeout_ms: int | None = 5000) -> list[tuple[int, str]]:
    """Lint one pending migration onto an existing database: (line, rule) of each finding."""
    folder = tmp_path / "migrations"
    folder.mkdir(exist_ok=True)
    (folder / "0001_change.sql").write_text(sql)
    return [(f.line, f.rule) for f in lint_folder(folder, lock_timeout_ms=lock_timeout_ms)]


RULE_CASES = [
    ("index-concurrently", "CREATE INDEX idx_users_email ON users (email);"),
    ("index-concurrently", "CREATE UNIQUE INDEX idx_users_email ON users (lower(email));"),
    ("index-concurrently", "ALTER TABLE users ADD CONSTRAINT users_name_key UNIQUE (name);"),
    ("not-null-default", "ALTER TABLE users ADD COLUMN tenant_id bigint NOT NULL;"),
    ("set-not-null", "ALTER TABLE users ALTER COLUMN first_name SET NOT NULL;"),
    ("column-type", "ALTER TABLE users ALTER COLUMN email TYPE text;"),
    (
        "not-valid",
        "ALTER TABLE projects ADD CONSTRAINT fk_owner FOREIGN KEY (owner_id) REFERENCES users (id);",
    ),
    ("not-valid", "ALTER TABLE users ADD CONSTRAINT users_email_check CHECK (email <> '');"),
    ("drop-column", "ALTER TABLE users DROP COLUMN last_name;"),
    ("drop-table", "DROP TABLE api_keys;"),
    ("rename", "ALTER TABLE users RENAME COLUMN first_name TO given_name;"),
    ("rename", "ALTER TABLE users RENAME TO accounts;"),
]


@pytest.mark.parametrize(("rule", "sql"), RULE_CASES, ids=[sql for _, sql in RULE_CASES])
def test_each_rule_and_its_ignore_comment(tmp_path: Path, rule: str, sql: str) -> None:
    assert lint_sql(tmp_path, f"-- A change.\n\n{sql}\n") == [(3, rule)]
    assert lint_sql(tmp_path, f"-- A change.\n-- dbops:ignore {rule}\n{sql}\n") == []
    assert lint_sql(tmp_path, f"SELECT 1;\n{sql} -- dbops:ignore {rule}\n") == []
    # a comment silences the statement it belongs to, not the next one
    assert lint_sql(tmp_path, f"{sql} -- dbops:ignore {rule}\n{sql}\n") == [(2, rule)]


def test_a_migration_without_lock_timeout(tmp_path: Path) -> None:
    change = "-- depends:\nSELECT 1;\nALTER TABLE users ADD COLUMN nickname text;\n"
    assert lint_sql(tmp_path, change, lock_timeout_ms=None) == [(3, "lock-timeout")]
    assert lint_sql(tmp_path, change, lock_timeout_ms=2000) == []  # dbops.yaml gives every session one
    timed = "SET lock_timeout = '2s';\nALTER TABLE users ADD COLUMN nickname text;\n"
    assert lint_sql(tmp_path, timed, lock_timeout_ms=None) == []
    local = "SET LOCAL lock_timeout TO 2000;\nALTER TABLE users ADD COLUMN nickname text;\n"
    assert lint_sql(tmp_path, local, lock_timeout_ms=None) == []
    config = "SELECT set_config('lock_timeout', '2s', true);\nDROP INDEX idx_users_email;\n"
    assert lint_sql(tmp_path, config, lock_timeout_ms=None) == []
    zero = "SET lock_timeout = 0;\nALTER TABLE users ADD COLUMN nickname text;\n"
    assert lint_sql(tmp_path, zero, lock_timeout_ms=None) == [(2, "lock-timeout")]
    not_transactional = "-- transactional: false\nSET LOCAL lock_timeout = '2s';\nALTER TABLE users ADD COLUMN nickname text;\n"
    assert lint_sql(tmp_path, not_transactional, lock_timeout_ms=None) == [(3, "lock-timeout")]
    reset = "SET lock_timeout = '2s';\nRESET lock_timeout;\nALTER TABLE users ADD COLUMN nickname text;\n"
    assert lint_sql(tmp_path, reset, lock_timeout_ms=None) == [(3, "lock-timeout")]
    assert lint_sql(tmp_path, reset, lock_timeout_ms=2000) == []  # back to the session's own
    ignored = "-- dbops:ignore lock-timeout\nALTER TABLE users ADD COLUMN nickname text;\n"
    assert lint_sql(tmp_path, ignored, lock_timeout_ms=None) == []


def test_safe_changes_have_no_findings(tmp_path: Path) -> None:
    safe = """\
-- transactional: false
SET lock_timeout = '5s';
CREATE INDEX CONCURRENTLY idx_users_email ON users (email);
ALTER TABLE users ADD COLUMN tenant_id bigint NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN nickname text;
ALTER TABLE projects ADD CONSTRAINT fk_owner FOREIGN KEY (owner_id) REFERENCES users (id) NOT VALID;
ALTER TABLE projects VALIDATE CONSTRAINT fk_owner;
CREATE UNIQUE INDEX CONCURRENTLY users_name_idx ON users (name);
ALTER TABLE users ADD CONSTRAINT users_name_key UNIQUE USING INDEX users_name_idx;
DROP INDEX CONCURRENTLY idx_old;
"""
    assert lint_sql(tmp_path, safe, lock_timeout_ms=None) == []


def test_tables_the_pending_migrations_create_are_new(tmp_path: Path) -> None:
    new = """\
CREATE TABLE approvals (id bigint PRIMARY KEY, workflow_id bigint);
CREATE INDEX idx_approvals_workflow ON approvals (workflow_id);
ALTER TABLE approvals ADD COLUMN state text NOT NULL;
ALTER TABLE approvals ADD CONSTRAINT fk_workflow FOREIGN KEY (workflow_id) REFERENCES workflows (id);
ALTER TABLE approvals RENAME TO workflow_approvals;
ALTER TABLE workflow_approvals ALTER COLUMN state TYPE varchar(20);
"""
    # the one lock anyone waits for: the foreign key's on workflows, which exists already
    assert lint_sql(tmp_path, new, lock_timeout_ms=None) == [(4, "lock-timeout")]
    assert lint_sql(tmp_path, new, lock_timeout_ms=5000) == []


def test_the_sample_migrations_lint_clean() -> None:
    folder = Path(__file__).resolve().parent.parent / "migrations"
    assert lint_folder(folder, lock_timeout_ms=None) == []


def test_findings_name_the_statement_line_in_a_multi_line_file(tmp_path: Path) -> None:
    sql = """\
-- depends:
CREATE TABLE notes (id int);

ALTER TABLE users
    ADD COLUMN tenant_id bigint NOT NULL,
    DROP COLUMN last_name;
/* dbops:ignore drop-column */ ALTER TABLE users DROP COLUMN first_name;
"""
    assert lint_sql(tmp_path, sql) == [(4, "not-null-default"), (4, "drop-column")]


def test_an_unknown_rule_and_a_syntax_error_are_findings(tmp_path: Path) -> None:
    assert lint_sql(
        tmp_path, "SELECT 1;\n-- dbops:ignore drop-colum\nALTER TABLE users DROP COLUMN x;\n"
    ) == [
        (2, "ignore-comment"),
        (3, "drop-column"),
    ]
    assert lint_sql(tmp_path, "SELECT 1;\n\nALTER TABLE users ADD COLUM x int;\n") == [(3, "syntax")]


def test_python_migrations_have_their_sql_steps_linted(tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0001_py.py").write_text(
        'from yoyo import step\n\nsteps = [\n    step("SELECT 1"),\n    step("ALTER TABLE users DROP COLUMN x"),\n]\n'
    )
    assert [(f.file, f.line, f.rule) for f in lint_folder(folder)] == [("0001_py.py", 5, "drop-column")]


# ----------------------------------------------------------------------------- the command and migrate

DANGEROUS = """\
-- depends: 20251001090600_add_workflow_permissions
-- Find users by e-mail fast.
CREATE INDEX idx_users_last_name ON users (last_name);
"""
DANGEROUS_NAME = "20251001090700_index_users.sql"


def test_lint_command(project: Path, cli: Run, db: psycopg.Connection) -> None:
    clean = cli("lint")
    assert clean.code == 0, clean.text
    assert clean.out.splitlines()[-2:] == ["Pending migrations: 7", "✓ No findings in 7 pending migration(s)"]
    assert cli("migrate").code == 0
    (project / "migrations" / DANGEROUS_NAME).write_text(DANGEROUS)
    result = cli("lint")
    assert result.code == 3
    assert result.out.splitlines()[-5:] == [
        "Pending migrations: 1",
        f"⚠ migrations/{DANGEROUS_NAME}:3: index-concurrently: CREATE INDEX idx_users_last_name on existing"
        " table users without CONCURRENTLY blocks its writes while it builds",
        "    Fix: use CREATE INDEX CONCURRENTLY in a migration with -- transactional: false"
        " (or -- dbops:ignore index-concurrently)",
        f"⚠ migrations/{DANGEROUS_NAME}:3: lock-timeout: takes heavy locks on existing tables with no"
        " lock_timeout: it can stall all traffic",
        "    Fix: start the migration with SET lock_timeout = '5s', or set lock_timeout: in dbops.yaml"
        " (or -- dbops:ignore lock-timeout)",
    ]
    assert result.err.splitlines()[0] == (
        f"Error: Migration lint: migrations/{DANGEROUS_NAME}:3: index-concurrently: CREATE INDEX"
        " idx_users_last_name on existing table users without CONCURRENTLY blocks its writes while it builds"
        " (and 1 more: listed above)"
    )
    validate = cli("validate")  # lint findings (and the index the pending migration adds) are warnings
    assert validate.code == 0, validate.text
    assert f"⚠ Warning: migrations/{DANGEROUS_NAME}:3: index-concurrently:" in validate.out


@pytest.fixture
def production(project: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DBOPS_TEST_PROD_URL", database_url)
    return project


def yoyo_rows(db: psycopg.Connection) -> int:
    if db.execute("SELECT to_regclass('_yoyo_migration')").fetchone() == (None,):
        return -1
    count: int = db.execute("SELECT count(*) FROM _yoyo_migration").fetchone()[0]  # type: ignore[index]
    return count


def test_protected_migrate_refuses_before_any_change(
    production: Path, cli: Run, db: psycopg.Connection
) -> None:
    assert cli("migrate").code == 0  # development: applied without a lint
    (production / "migrations" / DANGEROUS_NAME).write_text(DANGEROUS)
    result = cli("migrate", "--env", "production")
    assert result.code == 3, result.text
    assert result.err.splitlines() == [
        f"Error: Migration lint: migrations/{DANGEROUS_NAME}:3: index-concurrently: CREATE INDEX"
        " idx_users_last_name on existing table users without CONCURRENTLY blocks its writes while it builds",
        "Hint: Fix: use CREATE INDEX CONCURRENTLY in a migration with -- transactional: false; or, if you"
        " accept it, add -- dbops:ignore index-concurrently to the statement. validate_before_migrate: false"
        " in dbops.yaml turns this check off for production",
    ]
    assert yoyo_rows(db) == 7
    assert db.execute("SELECT to_regclass('idx_users_last_name')").fetchone() == (None,)
    (production / "migrations" / DANGEROUS_NAME).write_text(
        DANGEROUS.replace("CREATE INDEX", "-- dbops:ignore index-concurrently\nCREATE INDEX")
    )
    accepted = cli("migrate", "--env", "production")
    assert accepted.code == 0, accepted.text
    assert yoyo_rows(db) == 8


def test_a_fresh_database_is_not_touched_when_refused(
    production: Path, cli: Run, db: psycopg.Connection
) -> None:
    (production / "migrations" / "20251001090700_drop_legacy.sql").write_text(
        "-- depends: 20251001090600_add_workflow_permissions\nDROP TABLE legacy_users;\n"
    )
    result = cli("migrate", "--env", "production", "--dry-run")
    assert result.code == 3
    result = cli("migrate", "--env", "production")
    assert result.code == 3
    assert "drop-table: DROP TABLE legacy_users breaks the running application" in result.err
    assert yoyo_rows(db) == -1  # not even yoyo's bookkeeping tables were created


def test_validate_before_migrate_setting(production: Path, cli: Run, db: psycopg.Connection) -> None:
    config = production / "dbops.yaml"
    text = config.read_text()
    assert cli("migrate").code == 0
    (production / "migrations" / DANGEROUS_NAME).write_text(DANGEROUS)
    config.write_text(
        text.replace("    protected: true\n", "    protected: true\n    validate_before_migrate: false\n")
    )
    assert cli("migrate", "--env", "production", "--dry-run").code == 0
    config.write_text(text.replace("  development:\n", "  development:\n    validate_before_migrate: true\n"))
    refused = cli("migrate")
    assert refused.code == 3
    assert "turns this check off for development" in refused.err
    config.write_text(
        text.replace("  development:\n", "  development:\n    validate_before_migrate: yes please\n")
    )
    bad = cli("migrate")
    assert bad.code == 2
    assert (
        "environments.development.validate_before_migrate: expected true or false, got 'yes please'"
        in bad.err
    )


def test_the_policy_lint_runs_before_a_pipeline_changes_anything(
    production: Path, cli: Run, db: psycopg.Connection
) -> None:
    """One check point: in [rollback, migrate] the lint of what migrate would apply refuses
    before the rollback (and before the automatic backup and the confirmation)."""
    assert cli("migrate").code == 0
    (production / "migrations" / DANGEROUS_NAME).write_text(DANGEROUS)
    with (production / "dbops.yaml").open("a") as config:
        config.write("pipelines:\n  redo: [rollback, migrate]\n")
    result = cli("run", "redo", "--env", "production", "--force")
    assert result.code == 3, result.text
    assert result.err.splitlines()[0].startswith(f"Error: Migration lint: migrations/{DANGEROUS_NAME}:3:")
    assert "validate_before_migrate: false" in result.err
    assert yoyo_rows(db) == 7  # the rollback did not run
    assert not (production / "backups").exists()


# ----------------------------------------------------------------------------- objects the run creates (issue 13.4)


def test_a_sequence_created_above_is_not_an_existing_table(tmp_path: Path) -> None:
    """The issue's false positive: pg_dump writes this for every sequence, after SET lock_timeout = 0."""
    dumped = "SET lock_timeout = 0;\nCREATE SEQUENCE s;\nALTER TABLE s OWNER TO postgres;\n"
    assert lint_sql(tmp_path, dumped, lock_timeout_ms=None) == []
    assert lint_sql(tmp_path, dumped, lock_timeout_ms=5000) == []
    # the same statement on a sequence that is already there is still a heavy lock
    assert lint_sql(tmp_path, "ALTER TABLE s OWNER TO postgres;\n", lock_timeout_ms=None) == [
        (1, "lock-timeout")
    ]


def test_every_relation_kind_created_in_the_run_is_new(tmp_path: Path) -> None:
    new = """\
CREATE TABLE t (id int, owner_id int, code text);
ALTER TABLE t ADD CONSTRAINT t_owner FOREIGN KEY (owner_id) REFERENCES t (id);
ALTER TABLE t ADD CONSTRAINT t_code CHECK (code <> '');
ALTER TABLE t ADD CONSTRAINT t_pkey PRIMARY KEY (id);
CREATE INDEX ON t (owner_id);
CREATE UNIQUE INDEX t_code_idx ON public.t (code);
ALTER INDEX t_code_idx SET (fillfactor = 90);
DROP INDEX public.t_code_idx;
ALTER TABLE ONLY public.t ALTER COLUMN code SET NOT NULL;
CREATE SEQUENCE "Billing".invoice_no;
ALTER SEQUENCE "Billing".invoice_no OWNER TO postgres;
CREATE TABLE "Billing"."Invoice" (id serial, n bigint GENERATED ALWAYS AS IDENTITY);
ALTER TABLE "Billing"."Invoice_id_seq" OWNER TO postgres;
ALTER SEQUENCE "Billing"."Invoice_n_seq" OWNER TO postgres;
ALTER TABLE "Billing"."Invoice" ALTER COLUMN id TYPE bigint;
CREATE TABLE public.k (id bigint NOT NULL);
ALTER TABLE public.k ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY (SEQUENCE NAME public.k_seq);
ALTER TABLE public.k_seq OWNER TO postgres;
CREATE VIEW v AS SELECT * FROM t;
ALTER VIEW v OWNER TO postgres;
CREATE MATERIALIZED VIEW m AS SELECT count(*) FROM t;
ALTER MATERIALIZED VIEW m OWNER TO postgres;
CREATE INDEX ON m (count);
CREATE TABLE p (id int, d date) PARTITION BY RANGE (d);
CREATE TABLE p_2020 PARTITION OF p FOR VALUES FROM ('2020-01-01') TO ('2030-01-01');
ALTER TABLE p_2020 OWNER TO postgres;
ALTER TABLE ONLY p ADD CONSTRAINT p_pkey PRIMARY KEY (id, d);
CREATE TRIGGER t_touch BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION touch();
ALTER TABLE v RENAME TO v2;
ALTER VIEW v2 OWNER TO postgres;
ALTER TABLE p SET SCHEMA archive;
ALTER TABLE archive.p ADD COLUMN n int NOT NULL;
TRUNCATE t, p;
DROP TABLE public.t CASCADE;
"""
    assert lint_sql(tmp_path, new, lock_timeout_ms=None) == []


def test_an_earlier_pending_migration_creates_it(tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0001_create.sql").write_text('CREATE TABLE app."Orders" (id int);\nCREATE SEQUENCE app.seq;\n')
    (folder / "0002_change.sql").write_text(
        'ALTER TABLE app."Orders" ADD COLUMN total int NOT NULL;\nCREATE INDEX ON app."Orders" (total);\n'
        'ALTER SEQUENCE app.seq OWNED BY app."Orders".id;\nALTER TABLE app.seq OWNER TO postgres;\n'
    )
    assert lint_folder(folder, lock_timeout_ms=None) == []
    # applied already (not pending): the same changes are on an existing table
    found = [(f.file, f.line, f.rule) for f in lint_folder(folder, lock_timeout_ms=None, pending_from=1)]
    assert found == [
        ("0002_change.sql", 1, "not-null-default"),
        ("0002_change.sql", 1, "lock-timeout"),
        ("0002_change.sql", 2, "index-concurrently"),
    ]


def test_a_name_created_elsewhere_is_still_existing(tmp_path: Path) -> None:
    """Schema-qualified and quoted names are told apart: what the run created is another object."""
    other_schema = "CREATE TABLE app.users (id int);\nALTER TABLE users ADD COLUMN x int NOT NULL;\n"
    assert lint_sql(tmp_path, other_schema, lock_timeout_ms=None) == [
        (2, "not-null-default"),
        (2, "lock-timeout"),
    ]
    quoted = 'CREATE TABLE "Users" (id int);\nCREATE INDEX ON users (id);\n'
    assert lint_sql(tmp_path, quoted) == [(2, "index-concurrently")]
    folded = (
        'CREATE TABLE Users (id int);\nCREATE INDEX ON "users" (id);\nCREATE INDEX ON public.USERS (id);\n'
    )
    assert lint_sql(tmp_path, folded) == []
    index = "-- transactional: false\nCREATE INDEX CONCURRENTLY i ON users (id);\nDROP INDEX app.i;\n"
    assert lint_sql(tmp_path, index, lock_timeout_ms=None) == [(3, "lock-timeout")]
    assert lint_sql(tmp_path, index.replace("app.i", "i"), lock_timeout_ms=None) == []
    view = "CREATE VIEW v AS SELECT 1;\nALTER TABLE v2 OWNER TO postgres;\n"
    assert lint_sql(tmp_path, view, lock_timeout_ms=None) == [(2, "lock-timeout")]


def test_a_pg_dump_schema_is_a_clean_first_migration(
    production: Path, cli: Run, db: psycopg.Connection, admin_url: str, database_url: str
) -> None:
    """pg_dump --schema-only of the sample schema plus sequences, identity columns, partitions,
    indexes, foreign keys and quoted names: lint is clean, and a protected environment's lint
    gate lets migrate apply it to an empty database (exit 0, not 3)."""
    from psycopg import sql

    from backup_helpers import RICH_SCHEMA
    from conftest import url_for
    from pg_dump_tool import pg_dump

    source = f"{database_url.rsplit('/', 1)[1].split('?')[0]}_src"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(source)))
    try:
        with psycopg.connect(url_for(admin_url, source), autocommit=True) as conn:
            for path in sorted((production / "migrations").glob("*[0-9]_*.sql")):
                if not path.name.endswith(".rollback.sql"):
                    conn.execute(path.read_text())
            conn.execute(RICH_SCHEMA)
            conn.execute("CREATE SEQUENCE public.free_seq; CREATE TABLE public.loose (n serial)")
        schema = pg_dump(url_for(admin_url, source), "--schema-only")
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(source)))
    assert "CREATE SEQUENCE public.free_seq" in schema and "OWNER TO" in schema
    assert "SET lock_timeout = 0;" in schema  # every heavy lock would be flagged on existing tables
    for path in (production / "migrations").iterdir():
        path.unlink()
    (production / "migrations" / "0001_schema.sql").write_text(schema)
    linted = cli("lint", "--env", "production")
    assert linted.code == 0, linted.text
    migrated = cli("migrate", "--env", "production")
    assert migrated.code == 0, migrated.text
    tables = db.execute(
        "SELECT count(*) FROM pg_class WHERE relkind IN ('r', 'p') AND relnamespace IN "
        "('public'::regnamespace, 'app'::regnamespace) AND relname NOT LIKE '%yoyo%'"
    ).fetchone()
    assert tables == (16,)
    assert yoyo_rows(db) == 1
    # and a change to one of its tables afterwards is found
    (production / "migrations" / "0002_owner.sql").write_text(
        "-- depends: 0001_schema\nALTER TABLE public.users ADD COLUMN tenant bigint NOT NULL;\n"
    )
    refused = cli("migrate", "--env", "production")
    assert refused.code == 3, refused.text
    assert "0002_owner.sql:2: not-null-default" in refused.err


def test_locks_on_an_existing_parent_or_referenced_table(tmp_path: Path) -> None:
    """CREATE TABLE ... PARTITION OF takes ACCESS EXCLUSIVE on its parent, a new FOREIGN KEY
    SHARE ROW EXCLUSIVE on the table it references: heavy locks on those existing tables,
    though the statement creates or changes another."""
    partition = (
        "CREATE TABLE events_2030 PARTITION OF events FOR VALUES FROM ('2030-01-01') TO ('2031-01-01');\n"
    )
    column = "CREATE TABLE notes (id int PRIMARY KEY, user_id int REFERENCES users (id));\n"
    table = "CREATE TABLE notes (id int, owner int, FOREIGN KEY (owner) REFERENCES app.users);\n"
    added = "CREATE TABLE notes (id int, owner int);\nALTER TABLE notes ADD FOREIGN KEY (owner) REFERENCES users;\n"
    new_column = "CREATE TABLE notes (id int);\nALTER TABLE notes ADD COLUMN owner int REFERENCES users;\n"
    for sql, line in ((partition, 1), (column, 1), (table, 1), (added, 2), (new_column, 2)):
        assert lint_sql(tmp_path, sql, lock_timeout_ms=None) == [(line, "lock-timeout")], sql
        assert lint_sql(tmp_path, sql, lock_timeout_ms=5000) == [], sql
        assert lint_sql(tmp_path, f"SET lock_timeout = '5s';\n{sql}", lock_timeout_ms=None) == [], sql
    folder = tmp_path / "migrations"
    (folder / "0001_change.sql").write_text(new_column)
    [found] = lint_folder(folder, lock_timeout_ms=None)
    assert found.message == (
        "FOREIGN KEY on notes references existing table users: a SHARE ROW EXCLUSIVE lock on users, held to"
        " the migration's end, with no lock_timeout: writes to users can stall"
    )
    assert found.fix.endswith(
        "; on a table with rows, add it NOT VALID, then VALIDATE CONSTRAINT in a later migration"
    )
    (folder / "0001_change.sql").write_text(partition)
    [found] = lint_folder(folder, lock_timeout_ms=None)
    assert found.message == (
        "CREATE TABLE events_2030 PARTITION OF existing table events takes an ACCESS EXCLUSIVE lock on events"
        " with no lock_timeout: every read and write of it waits"
    )
    assert "ALTER TABLE events ATTACH PARTITION events_2030" in found.fix
    assert found.fix.startswith(RULES["lock-timeout"].fix)
    # created by the pending migrations themselves (or the table itself): nobody else waits
    created = """\
CREATE TABLE users2 (id int PRIMARY KEY, boss int REFERENCES users2);
CREATE TABLE notes (id int, owner int REFERENCES users2, FOREIGN KEY (id) REFERENCES public.users2);
ALTER TABLE notes ADD FOREIGN KEY (owner) REFERENCES users2;
CREATE TABLE events (id int, d date) PARTITION BY RANGE (d);
CREATE TABLE events_2030 PARTITION OF events FOR VALUES FROM ('2030-01-01') TO ('2031-01-01');
CREATE TABLE kids () INHERITS (users);
"""
    assert lint_sql(tmp_path, created, lock_timeout_ms=None) == []
