"""Safety policies per environment: every refusal before any change; prompts only on a terminal."""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from pathlib import Path

import psycopg
import pytest

from conftest import Run, dbops_bin, write_config


def configure(
    project: Path, url: str, production: str = "", development: str = "", pipelines: str = ""
) -> None:
    write_config(
        project,
        f"""\
project: sample
environments:
  development:
    url: "{url}"
{development}
  production:
    protected: true
    url: "{url}"
{production}
{pipelines}
""",
    )


def state(db: psycopg.Connection) -> tuple[object, ...]:
    tables = db.execute("SELECT array_agg(tablename ORDER BY 1) FROM pg_tables WHERE schemaname = 'public'")
    row = tables.fetchone()
    users = (
        db.execute("SELECT count(*) FROM users").fetchone() if row and row[0] and "users" in row[0] else None
    )
    return (row, users)


@pytest.fixture
def migrated(project: Path, cli: Run, db: psycopg.Connection) -> Path:
    assert cli("migrate", "--to", "20251001090100").code == 0
    db.execute("INSERT INTO users (email, password) VALUES ('kept@example.com', 'x')")
    return project


@pytest.mark.parametrize(
    ("production", "development", "pipelines", "args", "message"),
    [
        ("", "", "", ["reset"], "Reset on development (dbops_t_"),
        (
            "",
            "",
            "",
            ["reset", "--env=production", "--force"],
            "Reset is refused in the protected environment",
        ),
        (
            "    allow_reset: true\n    allow_force: false\n",
            "",
            "",
            ["reset", "--env=production", "--force"],
            "--force is not accepted in the environment production (allow_force: false)",
        ),
        ("    allow_reset: true\n", "", "", ["reset", "--env=production"], "needs confirmation: no terminal"),
        ("", "", "", ["migrate-rollback", "--env=production"], "needs confirmation: no terminal"),
        ("", "    allow_seed: false\n", "", ["seed"], "Seeding is refused in the environment development"),
        (
            "",
            "",
            "pipelines:\n  deploy: [migrate, seed]\n",
            ["deploy", "--env=production"],
            "Seeding is refused in the protected environment production",
        ),
    ],
    ids=["reset", "protected-reset", "no-force", "protected-confirm", "rollback", "seed", "pipeline"],
)
def test_each_policy_refuses_without_a_terminal_before_any_change(
    migrated: Path,
    cli: Run,
    database_url: str,
    db: psycopg.Connection,
    production: str,
    development: str,
    pipelines: str,
    args: list[str],
    message: str,
) -> None:
    configure(migrated, database_url, production, development, pipelines)
    before = state(db)
    result = cli(*args)
    assert result.code == 3, result.text
    assert message in result.err.splitlines()[0]
    if "no terminal" in message or args == ["reset"]:
        assert "--force" in result.text
    assert state(db) == before  # the pipeline's migrate did not run either


# --------------------------------------------------------------------------- on a terminal


def on_terminal(project: Path, args: list[str], answer: str) -> tuple[int, str]:
    """Run dbops with a pseudo-terminal as stdin/stdout/stderr; answer its prompt."""
    master, slave = os.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBOPS_")} | {"NO_COLOR": "1"}
    child = subprocess.Popen(
        [dbops_bin(), *args], cwd=project, env=env, stdin=slave, stdout=slave, stderr=slave, close_fds=True
    )
    os.close(slave)
    seen = b""
    answered = False
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                seen += chunk
            if not answered and seen.rstrip().endswith((b"(yes/no):", b"to continue:")):
                os.write(master, answer.encode() + b"\n")
                answered = True
            if child.poll() is not None and not ready:
                break
        return child.wait(timeout=60), seen.decode().replace("\r\n", "\n")
    finally:
        child.kill()
        os.close(master)


def test_confirmation_on_a_terminal(migrated: Path, database_url: str, db: psycopg.Connection) -> None:
    configure(migrated, database_url)
    before = state(db)
    code, text = on_terminal(migrated, ["reset"], "no")
    assert "⚠️ WARNING: This will delete ALL data in the database!\nDatabase: dbops_t_" in text
    assert (
        "Environment: development\nTo drop: 2 table(s) (1 row), the records of every applied migration\n"
        in text
    )
    assert "migration\nAre you sure you want to continue? (yes/no): no\n" in text
    assert code == 3 and "Error: Not confirmed: nothing was changed" in text
    assert state(db) == before
    code, text = on_terminal(migrated, ["reset"], "yes")
    assert code == 0, text
    assert "confirmed on the terminal" in text and "Pipeline reset completed successfully!" in text
    assert db.execute("SELECT count(*) FROM users").fetchone() == (0,)


def test_a_protected_environment_asks_for_the_database_name(
    migrated: Path, database_url: str, db: psycopg.Connection
) -> None:
    configure(migrated, database_url, production="    allow_reset: true\n")
    name = db.info.dbname
    before = state(db)
    code, text = on_terminal(migrated, ["reset", "--env=production"], "yes")
    assert f"Type the database name ({name}) to continue: yes\n" in text
    assert code == 3 and "Error: Not confirmed: nothing was changed" in text
    assert state(db) == before
    code, text = on_terminal(migrated, ["reset", "--env=production"], name)
    assert code == 0, text
    assert db.execute("SELECT count(*) FROM users").fetchone() == (0,)


def test_policy_keys_are_checked_when_dbops_yaml_loads(project: Path, database_url: str) -> None:
    from dbops.config.loader import load_config
    from dbops.engine.catalog import RULES
    from dbops.errors import ConfigError

    for production, message in (
        ("    backup_before: [seed]\n", "environments.production.backup_before.0: expected some of reset,"),
        (
            "    confirm: maybe\n",
            "environments.production.confirm: expected name (type the database name) or yes",
        ),
        ("    allow_force: 'no'\n", "environments.production.allow_force: expected true or false"),
    ):
        configure(project, database_url, production)
        with pytest.raises(ConfigError) as info:
            load_config(RULES)
        assert message in info.value.message


def test_a_refusal_and_a_dry_run_name_the_urls_database(
    project: Path, cli: Run, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before connecting, the database is the URL's (not a name made up for the embedded server)."""
    monkeypatch.setenv("DBOPS_TEST_PROD_URL", database_url)
    name = psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]
    plan = cli("reset", "--env=production", "--dry-run", "--json")
    document = json.loads(plan.out)
    assert document["database"] == name
    assert plan.code == 3  # a dry run of a plan a real run would refuse says so in its exit code
    assert document["report"]["steps"][1]["does"].startswith("refuse: Reset is refused")
    assert cli("reset", "--env=production", "--force").code == 3
    logged = (project / ".dbops" / "log" / "operations.jsonl").read_text().splitlines()
    assert [json.loads(line)["database"] for line in logged[-2:]] == [name, name]
