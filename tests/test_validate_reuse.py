"""validate's reusable scratch database (dbops.postgres.reusable) on a real PostgreSQL: reused
between runs and left empty, claimed by one run at a time, made again when someone changed it,
dropped when a statement ends its transaction, clean after a killed run; fresh databases where
the environment says so.

Each test validates as a role of its own, so the reusable database it sees is its own (others
running validate on the same server meanwhile have theirs)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from conftest import Run, dbops_bin, url_for, write_config
from dbops.config.model import Environment
from dbops.migrations.files import YOYO_TABLES, discover
from dbops.migrations.scripts import load, order
from dbops.postgres import reusable
from dbops.postgres.connection import Target, connect
from dbops.postgres.reusable import _COMMENT, _LOCK, _MARK, _fingerprint, claimed, name_for
from dbops.schema import expected
from test_validate import EXTRAS, scratch_databases

MIGRATED_SAMPLE = True


class Role:
    """A LOGIN CREATEDB role that the project's environments connect as."""

    def __init__(self, project: Path, database_url: str, name: str, admin_url: str) -> None:
        self.project, self.database_url, self.name, self.admin_url = project, database_url, name, admin_url
        self.kept = name_for(name)
        self.use(name)

    def url(self, user: str) -> str:
        return self.database_url.replace("postgres@", f"{user}@", 1)

    def use(self, user: str, **development: str) -> None:
        url = self.url(user)
        extra = "".join(f"\n    {key}: {value}" for key, value in development.items())
        write_config(
            self.project,
            f'project: sample\nenvironments:\n  development:\n    url: "{url}"{extra}\n'
            f'  production:\n    protected: true\n    url: "{url}"\n',
        )

    def kept_connection(self) -> psycopg.Connection[Any]:
        """A superuser's connection to the reusable database (CONNECT is revoked from PUBLIC)."""
        return psycopg.connect(url_for(self.admin_url, self.kept), autocommit=True)

    def kept_exists(self, db: psycopg.Connection[Any]) -> bool:
        return db.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.kept,)).fetchone() is not None


@pytest.fixture
def role(
    project: Path, cli: Run, db: psycopg.Connection, database_url: str, admin_url: str
) -> Iterator[Role]:
    (project / "migrations" / "20251001090700_extras.sql").write_text(EXTRAS)
    assert cli("migrate").code == 0
    name = "dbops_t_reuse_" + db.info.dbname[-12:]
    db.execute(f"CREATE ROLE {name} LOGIN CREATEDB")
    bookkeeping = ", ".join(YOYO_TABLES)  # what is applied; the catalog needs no grant
    db.execute(f"GRANT SELECT ON {bookkeeping} TO {name}")
    made = Role(project, database_url, name, admin_url)
    try:
        yield made
    finally:
        db.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(made.kept)))
        db.execute(f"REVOKE ALL ON {bookkeeping} FROM {name}")
        db.execute(f"DROP ROLE {name}")


def validate(cli: Run, *args: str) -> dict[str, Any]:
    result = cli("validate", "--json", "--strict", *args)
    assert result.code == 0, result.text
    report: dict[str, Any] = json.loads(result.out)["report"]
    assert report["differences"] == []
    return report


def user_relations(kept: psycopg.Connection[Any]) -> list[str]:
    rows = kept.execute(
        "SELECT relname::text FROM pg_class WHERE relnamespace = 'public'::regnamespace ORDER BY 1"
    ).fetchall()
    return [r[0] for r in rows]


def test_it_is_made_once_reused_and_left_empty(role: Role, cli: Run, db: psycopg.Connection) -> None:
    assert not role.kept_exists(db)
    first = validate(cli)
    assert first["expected"]["reused"] is True and first["expected"]["scratch"] == "same server"
    assert role.kept_exists(db)
    oid_before = db.execute("SELECT oid FROM pg_database WHERE datname = %s", (role.kept,)).fetchone()
    second = cli("validate")
    assert second.code == 0, second.text
    assert "8 migrations applied in a scratch database on the same server (reused, rolled back)" in second.out
    oid_after = db.execute("SELECT oid FROM pg_database WHERE datname = %s", (role.kept,)).fetchone()
    assert oid_before == oid_after  # the same database, not made again
    acl, comment = db.execute(
        "SELECT datacl::text, shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
        (role.kept,),
    ).fetchone() or (None, None)
    assert "=c/" not in acl  # no CONNECT for PUBLIC
    assert comment.startswith("dbops validate's reusable scratch database")
    with role.kept_connection() as kept:
        assert user_relations(kept) == []
    assert scratch_databases(db) == []


def test_protected_environments_and_reuse_scratch_false_take_a_fresh_database(
    role: Role, cli: Run, db: psycopg.Connection
) -> None:
    assert validate(cli, "--env=production")["expected"]["reused"] is False
    role.use(role.name, reuse_scratch="false")
    assert validate(cli)["expected"]["reused"] is False
    assert not role.kept_exists(db)
    assert scratch_databases(db) == []


def test_while_one_run_holds_it_the_next_takes_a_fresh_database(role: Role, cli: Run) -> None:
    validate(cli)
    with role.kept_connection() as holder, holder.transaction():
        holder.execute(f"SELECT pg_advisory_xact_lock({_LOCK})")
        assert validate(cli)["expected"]["reused"] is False
    assert validate(cli)["expected"]["reused"] is True


def test_two_runs_at_once(role: Role, project: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DBOPS_", "GITHUB_", "TF_"))}
    subprocess.run([dbops_bin(), "validate"], cwd=project, env=env, check=True, capture_output=True)
    children = [
        subprocess.Popen(
            [dbops_bin(), "validate", "--json", "--strict"],
            cwd=project,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    reports = []
    for child in children:
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0, out + err
        reports.append(json.loads(out)["report"])
    assert all(r["differences"] == [] for r in reports)
    assert any(r["expected"]["reused"] for r in reports)


def test_a_database_someone_changed_is_made_again(role: Role, cli: Run, db: psycopg.Connection) -> None:
    validate(cli)
    with role.kept_connection() as kept:
        kept.execute("CREATE TABLE intruder (id int)")  # committed: it would show as unexpected
    report = validate(cli)  # differences == []: no 'intruder'
    assert report["expected"]["reused"] is True
    with role.kept_connection() as kept:
        assert user_relations(kept) == []


def test_statements_that_end_its_transaction_get_it_dropped(
    role: Role, cli: Run, tmp_path: Path, db: psycopg.Connection
) -> None:
    """The loader refuses transaction control in a transactional migration; should a statement
    still end the transaction, what followed it may have stayed: no schema from there, and the
    database goes (a COMMIT is crafted in here past the loader)."""
    validate(cli)
    folder = tmp_path / "crafted"
    folder.mkdir()
    (folder / "0001_commits.sql").write_text(
        "-- transactional: false\nCREATE TABLE committed_early (id int);\nCOMMIT;\nCREATE TABLE after (id int);\n"
    )
    scripts = [replace(s, transactional=True) for s in order(list(load(discover(folder)).values()))]
    env = Environment(name="development")
    target = Target.of_environment(role.url(role.name), env)
    conn = connect(target, env)
    try:
        with claimed(conn, target, env) as claim:
            assert claim is not None and expected.in_one_transaction(scripts)
            assert expected.build_reused(claim, scripts) is None
            assert claim.dirty
    finally:
        conn.close()
    assert not role.kept_exists(db)
    assert validate(cli)["expected"]["reused"] is True  # made again


def test_a_failing_migration_gets_its_precise_error_and_leaves_it_clean(
    role: Role, cli: Run, project: Path
) -> None:
    validate(cli)
    broken = project / "migrations" / "20251001090800_broken.sql"
    broken.write_text(
        "-- depends: 20251001090700_extras\nCREATE TABLE half (id int);\nSELECT * FROM nowhere;\n"
    )
    result = cli("validate")
    assert result.code == 1
    assert result.err.splitlines()[0] == (
        "Error: Building the expected schema failed in a scratch database on the same server:"
        ' Migration 20251001090800_broken.sql failed at line 3: relation "nowhere" does not exist'
    )
    broken.unlink()
    assert validate(cli)["expected"]["reused"] is True
    with role.kept_connection() as kept:
        assert user_relations(kept) == []


def test_a_killed_run_leaves_it_clean(role: Role, cli: Run, project: Path, db: psycopg.Connection) -> None:
    validate(cli)
    slow = project / "migrations" / "20251001090800_slow.sql"
    slow.write_text("-- depends: 20251001090700_extras\nCREATE TABLE half (id int);\nSELECT pg_sleep(60);\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DBOPS_", "GITHUB_", "TF_"))}
    child = subprocess.Popen(
        [dbops_bin(), "validate"], cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        sleeping = "SELECT 1 FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND datname = %s"
        deadline = time.monotonic() + 20
        while not db.execute(sleeping, (role.kept,)).fetchone():
            assert time.monotonic() < deadline, "the slow migration never started"
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
    slow.unlink()
    # the server notices the lost client within a second (client_connection_check_interval)
    # and rolls back; meanwhile a run would take a fresh database
    deadline = time.monotonic() + 10
    while db.execute("SELECT 1 FROM pg_stat_activity WHERE datname = %s", (role.kept,)).fetchone():
        assert time.monotonic() < deadline, "the killed run's session is still there"
        time.sleep(0.05)
    assert validate(cli)["expected"]["reused"] is True
    with role.kept_connection() as kept:
        assert user_relations(kept) == []


def test_one_another_role_made_is_neither_used_nor_dropped(
    role: Role, cli: Run, db: psycopg.Connection[Any]
) -> None:
    """A database of that name that another role owns could hold functions that would run as
    this role (an operator in public that a query of the catalog picks over pg_catalog's, the
    migrations' own calls): it is never connected to, used or dropped."""
    other = role.name + "_other"
    db.execute(f"CREATE ROLE {other}")
    try:
        db.execute(f"CREATE DATABASE {role.kept} OWNER {other}")
        db.execute(f"GRANT CONNECT ON DATABASE {role.kept} TO {role.name}")
        with role.kept_connection() as planted:  # planted, with a fingerprint that matches
            planted.execute("CREATE TABLE planted (id int)")
            planted.execute("GRANT ALL ON SCHEMA public TO PUBLIC")  # room for the migrations
            # a sequence: what a rolled-back transaction does to it stays
            planted.execute("CREATE SEQUENCE ran; GRANT USAGE ON SEQUENCE ran TO PUBLIC")
            planted.execute(
                "CREATE FUNCTION public.snoop(oid, text) RETURNS text LANGUAGE sql"
                " AS $$ SELECT $2 || nextval('public.ran') $$"
            )
            planted.execute(
                "CREATE OPERATOR public.|| (LEFTARG = oid, RIGHTARG = text, FUNCTION = public.snoop)"
            )
            planted.execute("SET search_path = pg_catalog, pg_temp")  # as dbops reads it
            fingerprint = planted.execute(f"SELECT {_fingerprint()}").fetchone()
            assert fingerprint is not None
            comment = sql.Literal(_COMMENT + _MARK + fingerprint[0])
            planted.execute(
                sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(role.kept), comment)
            )
        assert validate(cli)["expected"]["reused"] is False  # differences == []: no 'planted'
        with role.kept_connection() as planted:
            assert user_relations(planted) == ["planted", "ran"]
            assert planted.execute("SELECT is_called FROM ran").fetchone() == (False,)  # nothing ran
    finally:
        db.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(role.kept)))
        db.execute(f"DROP ROLE {other}")


def test_a_constraint_checked_at_commit_fails_as_in_a_fresh_database(
    role: Role, cli: Run, project: Path
) -> None:
    """The transaction is rolled back, never committed: deferred constraints are checked
    before the schema is read, and a failure gets the fresh database's precise error."""
    validate(cli)
    (project / "migrations" / "20251001090800_deferred.sql").write_text(
        "-- depends: 20251001090700_extras\n"
        "CREATE TABLE parent (id int PRIMARY KEY);\n"
        "CREATE TABLE child (parent_id int REFERENCES parent DEFERRABLE INITIALLY DEFERRED);\n"
        "INSERT INTO child VALUES (42);\n"
    )
    result = cli("validate")
    assert result.code == 1, result.text
    assert result.err.splitlines()[0].startswith(
        "Error: Building the expected schema failed in a scratch database on the same server:"
        " Migration 20251001090800_deferred.sql failed at commit: insert or update on table"
    )
    with role.kept_connection() as kept:
        assert user_relations(kept) == []


def test_a_changed_template_gets_it_made_again(
    role: Role, cli: Run, db: psycopg.Connection[Any], admin_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh scratch database is a copy of template1: when template1's rows change, the
    reusable one is made again. (A database of the test's own stands in for template1, which
    other tests' CREATE DATABASE must be able to copy meanwhile.)"""
    stand_in = f"dbops_t_template_{db.info.dbname[-12:]}"
    db.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(stand_in)))
    try:
        monkeypatch.setattr(reusable, "TEMPLATE", stand_in)
        validate(cli)
        made = "SELECT oid FROM pg_database WHERE datname = %s"
        first = db.execute(made, (role.kept,)).fetchone()
        assert validate(cli)["expected"]["reused"] is True
        assert db.execute(made, (role.kept,)).fetchone() == first  # unchanged: kept
        with psycopg.connect(url_for(admin_url, stand_in), autocommit=True) as template:
            template.execute("CREATE EXTENSION IF NOT EXISTS plpgsql")  # no change: no rows
            template.execute("CREATE TABLE added_to_the_template (id int)")
        assert validate(cli)["expected"]["reused"] is True
        assert db.execute(made, (role.kept,)).fetchone() != first  # made again
    finally:
        db.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(stand_in)))


def test_migrations_that_need_their_own_commits_never_make_it(
    role: Role, cli: Run, project: Path, db: psycopg.Connection[Any]
) -> None:
    (project / "migrations" / "20251001090800_concurrently.sql").write_text(
        "-- depends: 20251001090700_extras\n-- transactional: false\n"
        "CREATE INDEX CONCURRENTLY idx_projects_name ON projects (name);\n"
    )
    role.use("postgres")
    assert cli("migrate").code == 0
    role.use(role.name)
    assert validate(cli)["expected"]["reused"] is False
    assert not role.kept_exists(db)  # nothing left on the server for a database it cannot use
