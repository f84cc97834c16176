"""Pipelines declared in dbops.yaml: loading, tasks, plans, undo in reverse order, Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import psycopg
import pytest

from conftest import Run, dbops_bin, sigint_default
from dbops.config.loader import load_config
from dbops.engine.catalog import RULES
from dbops.errors import ConfigError

USERS = "20251001090000_create_users"
RELATION = "20251001090200_add_user_organization_relation"


def declare(project: Path, pipelines: str) -> None:
    """Append a pipelines: section to the project's dbops.yaml."""
    path = project / "dbops.yaml"
    path.write_text(path.read_text() + "pipelines:\n" + pipelines)


def snapshot(db: psycopg.Connection) -> tuple[list[str], list[str], list[tuple[str, int]]]:
    """Tables, applied migrations and row counts: 'the database as it was'."""
    tables = [
        r[0] for r in db.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
    ]
    applied: list[str] = []
    if "_yoyo_migration" in tables:
        applied = [r[0] for r in db.execute("SELECT migration_id FROM _yoyo_migration ORDER BY 1")]
    logs = {"_yoyo_log"}  # a history: the undo's rollbacks are logged there, as they should be
    counts = [(t, db.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]) for t in tables if t not in logs]  # type: ignore[index]
    return tables, applied, counts


@pytest.fixture
def started(project: Path, cli: Run, db: psycopg.Connection) -> Path:
    """The project's database already holds its first migration and a row."""
    assert cli("migrate", "--to", USERS).code == 0
    db.execute("INSERT INTO users (email, password) VALUES ('kept@example.com', 'x')")
    return project


def bad_seed(project: Path) -> None:
    (project / "seeds").mkdir(exist_ok=True)
    (project / "seeds" / "01_bad.sql").write_text("INSERT INTO no_such_table VALUES (1);\n")


# --------------------------------------------------------------------------- dbops.yaml


def config_error(project: Path, pipelines: str) -> str:
    declare(project, pipelines)
    with pytest.raises(ConfigError) as info:
        load_config(RULES)
    assert info.value.exit_code == 2 and info.value.hint
    return info.value.message


@pytest.mark.parametrize(
    ("pipelines", "message"),
    [
        ("  fresh: [reset, migrat]\n", "pipelines.fresh.1: unknown step 'migrat' (did you mean 'migrate'?)"),
        (
            "  fresh: [reset, {seed: {clera: true}}]\n",
            "pipelines.fresh.1.seed.clera: unknown key (did you mean 'clear'?)",
        ),
        ("  fresh: [{seed: {clear: 'yes'}}]\n", "pipelines.fresh.0.seed.clear: expected true or false"),
        ("  fresh: [{reset: {hard: true}}]\n", "pipelines.fresh.0.reset.hard: unknown argument"),
        ("  fresh:\n    steps: []\n", "pipelines.fresh.steps: expected a list of steps"),
        ("  fresh:\n    step: [reset]\n", "pipelines.fresh.step: unknown key (did you mean 'steps'?)"),
        ("  migrate: [migrate]\n", "pipelines.migrate: 'migrate' is a built-in task's name"),
        ("  my_fresh: [reset]\n", "pipelines.my_fresh: a pipeline's name is a task's: write my-fresh"),
        ("  up: [{rollback: {steps: 0}}]\n", "pipelines.up.0.rollback.steps: expected a whole number"),
    ],
)
def test_a_wrong_pipeline_names_its_key_path(project: Path, pipelines: str, message: str) -> None:
    error = config_error(project, pipelines)
    assert error.startswith("dbops.yaml:1") and message in error, error


def test_no_pipeline_can_shadow_a_built_in_task() -> None:
    from dbops.cli.tasks import BUILT_IN, reset, run

    assert {t.name.replace("_", "-") for t in (*BUILT_IN, reset, run)} == RULES.reserved


def test_pipelines_load_typed(project: Path) -> None:
    declare(
        project,
        "  fresh:\n    description: Start afresh\n    steps: [reset, {seed: {clear: true}}]\n"
        "  up: [{migrate: {to: 20251001090200}}, status]\n",
    )
    pipelines = load_config(RULES).pipelines
    assert pipelines["fresh"].description == "Start afresh"
    assert [(c.name, dict(c.args)) for c in pipelines["fresh"].steps] == [
        ("reset", {}),
        ("seed", {"clear": True}),
    ]
    assert pipelines["up"].description == "Pipeline: migrate → status"
    assert pipelines["up"].steps[0].args == {"to": "20251001090200"}  # an id, even unquoted


# --------------------------------------------------------------------------- running them


def test_pipelines_are_tasks_listed_with_their_description(project: Path, cli: Run) -> None:
    declare(project, "  deploy:\n    description: Ship the schema\n    steps: [migrate, status]\n")
    listing = cli("--list").out
    assert "  deploy " in listing and "Ship the schema" in listing
    assert "  reset " in listing and "  run " in listing
    assert cli("deploy").code == 0
    by_run = cli("run", "deploy")
    assert by_run.code == 0 and "Pipeline deploy completed successfully!" in by_run.out
    unknown = cli("run", "nope")
    assert unknown.code == 2 and "No pipeline named 'nope' in dbops.yaml (declared: deploy)" in unknown.err


def test_the_task_listing_follows_dbops_yaml(project: Path, cli: Run) -> None:
    declare(project, "  one: [status]\n")
    assert "  one " in cli("--list").out
    assert (project / ".dbops" / "tasks.json").is_file()  # the next listing reads only that
    path = project / "dbops.yaml"
    path.write_text(path.read_text().replace("  one: [status]", "  two: [status, status]"))
    listing = cli("--list").out
    assert "  two " in listing and "  one " not in listing
    (project / ".dbops" / "tasks.json").write_text("{not json")
    assert "  two " in cli("--list").out
    path.write_text(path.read_text() + "  three: [nope]\n")
    broken = cli("--list")
    assert broken.code == 0 and "  two " not in broken.out and "  status " in broken.out
    unknown = cli("two")
    assert (
        unknown.code == 2 and "Hint: dbops.yaml does not load, so its pipelines are not tasks:" in unknown.err
    )
    assert "pipelines.three.0: unknown step 'nope'" in unknown.err


def test_dry_run_prints_the_plan_and_touches_nothing(project: Path, cli: Run, db: psycopg.Connection) -> None:
    declare(project, "  fresh: [reset, {seed: {clear: true}}]\n")
    before = snapshot(db)
    result = cli("fresh", "--dry-run")
    assert result.code == 0, result.text
    lines = result.out.splitlines()
    assert lines[0] == "🧭 Pipeline Plan: fresh (dry run: nothing is changed)"
    assert "2. confirm: ask for confirmation of reset: answer yes" in lines
    assert "3. backup: take a safety backup (before reset)" in lines
    assert "4. drop: drop every object of the application's schemas" in lines
    assert (
        "   undo: restore the backup taken before it (reset takes one unless --no-backup); else none" in lines
    )
    assert snapshot(db) == before
    doc = json.loads(cli("fresh", "--dry-run", "--json").out)
    assert [s["step"] for s in doc["report"]["steps"]] == [
        "connect",
        "confirm",
        "backup",
        "drop",
        "migrate",
        "seed",
    ]


def test_the_third_step_fails_and_the_undos_run_in_reverse_order(
    started: Path, cli: Run, db: psycopg.Connection
) -> None:
    project = started
    bad_seed(project)
    declare(project, f"  broken: [{{migrate: {{to: {RELATION}}}}}, migrate, seed]\n")
    before = snapshot(db)

    result = cli("broken")
    assert result.code == 1, result.text
    out = result.out
    assert "✗ Step 4 'seed' (load the seed data) failed" in out  # connect is the first
    undo = out[out.index("Undo, in reverse order:") :].splitlines()
    assert undo[1].startswith(
        "  ✓ 3. migrate: roll back the migrations this run applied (rolled back 20251001090600"
    )
    assert undo[2].startswith(
        "  ✓ 2. migrate: roll back the migrations this run applied (rolled back " + RELATION
    )
    assert undo[2].endswith("20251001090100_create_organizations)")  # not the one applied before
    assert (
        result.err.startswith("Error: seeds/01_bad.sql")
        and 'relation "no_such_table" does not exist' in result.err
    )
    assert snapshot(db) == before

    doc = json.loads(cli("broken", "--json").out)
    assert doc["exit_code"] == 1 and [u["number"] for u in doc["undos"]] == [3, 2]
    assert [s["status"] for s in doc["steps"]] == ["ok", "ok", "ok", "failed"]
    assert doc["steps"][3]["error"]["message"] == doc["error"]["message"]
    assert snapshot(db) == before


def test_an_undo_that_fails_exits_4_and_says_what_next(
    project: Path, cli: Run, db: psycopg.Connection
) -> None:
    (project / "migrations" / f"{USERS}.rollback.sql").unlink()  # this one cannot be rolled back
    bad_seed(project)
    declare(project, "  broken: [migrate, seed]\n")
    result = cli("broken")
    assert result.code == 4
    assert (
        f"  ✗ 2. migrate: roll back the migrations this run applied: Cannot roll back {USERS}.sql"
        in result.out
    )
    hint = result.err.splitlines()[1]
    assert (
        "Undo of step 2 (migrate) did not complete, attention needed: Restore the database from a backup"
        in hint
    )
    assert snapshot(db)[1]  # the migrations stay applied, as the report says


def test_a_rollback_step_is_undone_by_applying_again(started: Path, cli: Run, db: psycopg.Connection) -> None:
    assert cli("migrate").code == 0
    bad_seed(started)
    declare(started, "  back: [{rollback: {steps: 2}}, seed]\n")
    before = snapshot(db)
    result = cli("back")
    assert result.code == 1
    assert (
        "  ✓ 2. rollback: apply again the migrations it rolled back (the schema comes back, not their rows)"
        " (applied again 20251001090500_create_api_keys, 20251001090600_add_workflow_permissions)"
        in result.out
    )
    assert snapshot(db) == before  # their tables were empty: nothing was lost


def test_an_irreversible_migration_is_undone_by_restoring_the_pipelines_backup(
    started: Path, cli: Run, db: psycopg.Connection
) -> None:
    (started / "migrations" / "20251001090600_add_workflow_permissions.rollback.sql").unlink()
    bad_seed(started)
    declare(started, f"  careful: [backup, {{migrate: {{to: {RELATION}}}}}, migrate, seed]\n")
    before = snapshot(db)
    result = cli("careful")
    assert result.code == 1, result.text
    undo = result.out[result.out.index("Undo, in reverse order:") :].splitlines()
    assert undo[1].startswith(
        "  ✓ 4. migrate: roll back the migrations this run applied (20251001090600_add_workflow_permissions.sql:"
        " no rollback script, so restored backups/db/"
    )
    kept = re.search(
        r", taken by step 2; the database it replaced is kept as (\S+): drop it once no longer needed\)$",
        undo[1],
    )
    assert kept and kept.group(1).startswith(f"{db.info.dbname}__pre_restore_"), undo[1]
    dsn = psycopg.conninfo.make_conninfo(db.info.dsn, dbname=kept.group(1))
    with psycopg.connect(dsn, autocommit=True) as replaced:  # as the failed run left it: migrated
        assert replaced.execute("SELECT to_regclass('workflow_permissions') IS NOT NULL").fetchone() == (
            True,
        )
    assert undo[2] == (
        "  ✓ 3. migrate: roll back the migrations this run applied"
        " (nothing left to do: the backup of step 2 was restored)"
    )
    with psycopg.connect(db.info.dsn, autocommit=True) as again:  # the restore swapped the database
        assert snapshot(again) == before


def test_a_policy_may_back_up_before_every_migrate(project: Path, cli: Run) -> None:
    path = project / "dbops.yaml"
    text = path.read_text().replace("  test:\n", "    backup_before: [migrate]\n  test:\n", 1)
    path.write_text(text)
    result = cli("migrate")
    assert result.code == 0, result.text
    assert "Safety backup: backups/db/automated/" in result.out
    assert len(list((project / "backups" / "db" / "automated").glob("*.json"))) == 1
    assert cli("migrate", "--env=test").code == 0  # not there
    assert len(list((project / "backups" / "db" / "automated").glob("*.json"))) == 1


def test_all_environments(project: Path, cli: Run) -> None:
    declare(project, "  deploy: [migrate]\n")
    result = cli("deploy", "--all-environments")
    assert result.code == 0, result.text
    assert result.out.count("🔗 Pipeline: deploy") == 2
    assert "Environment: development" in result.out and "Environment: test" in result.out
    assert "Skipped protected environment(s): production (add --include-protected)" in result.out
    assert cli("deploy", "--all-environments", "--env=test").code == 2


def test_ctrl_c_runs_the_undos_and_exits_130(started: Path, db: psycopg.Connection) -> None:
    """A real SIGINT to a dbops process, while the second migrate of the pipeline waits in a migration."""
    project = started
    folder = project / "migrations"
    (folder / "20251002000000_slow.sql").write_text(
        "-- depends: 20251001090600_add_workflow_permissions\nCREATE TABLE slow (id int);\nSELECT pg_sleep(60);\n"
    )
    declare(project, f"  slow: [{{migrate: {{to: {RELATION}}}}}, migrate]\n")
    before = snapshot(db)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBOPS_")}
    child = subprocess.Popen(
        [dbops_bin(), "slow"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=sigint_default,
    )
    try:
        deadline = time.monotonic() + 60
        while not db.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE '%pg_sleep(60)%'"
            " AND pid <> pg_backend_pid()"
        ).fetchone()[0]:  # type: ignore[index]
            assert child.poll() is None and time.monotonic() < deadline, child.communicate()
            time.sleep(0.05)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == 130, out + err
    assert "✗ Step 3 'migrate' (apply pending migrations) was interrupted" in out
    assert "  ✓ 3. migrate: roll back the migrations this run applied (rolled back 20251001090600" in out
    assert f"  ✓ 2. migrate: roll back the migrations this run applied (rolled back {RELATION}" in out
    assert err.splitlines() == ["Error: Interrupted", "Hint: What the steps had changed was undone"]
    assert snapshot(db) == before
