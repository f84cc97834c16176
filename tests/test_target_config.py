"""Where an environment connects: its URL and its database: agree or are refused, and values
libpq would refuse at connect time (a port, an sslmode) are configuration errors naming the key."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import psycopg
import pytest

from conftest import REPO, Cli, Run, write_config
from dbops.postgres.connection import Target

PASSWORD = "Pr0be-S3cret-Value"


def one_line_error(result: Cli, code: int = 2) -> str:
    assert result.code == code, result.text
    assert "Traceback" not in result.text
    lines = result.err.strip().splitlines()
    assert lines[0].startswith("Error: ") and lines[1].startswith("Hint: "), result.err
    return lines[0].removeprefix("Error: ")


def untouched(database_url: str) -> bool:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone() == (0,)


# --------------------------------------------------------------------------- item 8


def test_a_url_and_a_database_that_disagree_are_refused(
    project: Path, cli: Run, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(
        project,
        "environments:\n"
        "  production:\n"
        "    protected: true\n"
        "    url: ${DATABASE_URL}\n"
        "    database: exfabrica_af_prod\n",
    )
    monkeypatch.setenv("DATABASE_URL", database_url)
    named = Target.from_url(database_url).dbname
    for args in (
        ("migrate", "--env=production"),
        ("migrate", "--env=production", "--dry-run"),
        ("status", "--env=prod"),
    ):
        message = one_line_error(cli(*args))
        assert message == (
            "Two database names disagree: dbops.yaml:5: environments.production.database says "
            f"'exfabrica_af_prod', DATABASE_URL from the environment (url: at dbops.yaml:4: "
            f"environments.production.url) names '{named}'"
        )
    assert untouched(database_url)
    logged = (project / ".dbops/log/operations.jsonl").read_text()
    assert "exfabrica_af_prod" not in [json.loads(line)["database"] for line in logged.splitlines()]


def test_the_env_files_url_against_database(project: Path, cli: Run, database_url: str) -> None:
    (project / ".env.development").write_text(f"DATABASE_URL={database_url}\n")
    write_config(
        project,
        "environments:\n"
        "  development:\n"
        "    embedded: true\n"
        "    env_file: .env.development\n"
        "    database: app_dev\n",
    )
    message = one_line_error(cli("status"))
    assert message.startswith("Two database names disagree: dbops.yaml:5: environments.development.database ")
    assert "DATABASE_URL in .env.development names" in message


def test_a_url_and_database_that_agree_or_a_url_without_database(
    project: Path, cli: Run, database_url: str
) -> None:
    named = Target.from_url(database_url).dbname
    write_config(
        project, f'environments:\n  development:\n    url: "{database_url}"\n    database: {named}\n'
    )
    assert cli("migrate").code == 0
    without = (
        database_url.rsplit("/", 1)[0] if "?" not in database_url else database_url.replace(f"/{named}", "/")
    )
    write_config(project, f'environments:\n  development:\n    url: "{without}"\n    database: {named}\n')
    result = cli("status", "--json")
    assert result.code == 0, result.text
    assert json.loads(result.out)["report"]["connection"]["database"] == named


def test_the_sample_production_takes_its_database_from_the_url(
    project: Path, cli: Run, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sample dbops.yaml and examples/azure-pipelines.yml: the secret's database is the one used."""
    shutil.copy(REPO / "dbops.yaml", project / "dbops.yaml")
    assert "DATABASE_URL: $(DATABASE_URL)" in (REPO / "examples/azure-pipelines.yml").read_text()
    monkeypatch.setenv("DATABASE_URL", database_url)
    result = cli("status", "--env=production", "--json")
    assert result.code == 0, result.text
    assert json.loads(result.out)["report"]["connection"]["database"] == Target.from_url(database_url).dbname


# --------------------------------------------------------------------------- item 18


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (":99999/app", "the port '99999' is not a port number (1 to 65535)"),
        (":0/app", "the port '0' is not a port number (1 to 65535)"),
        (":abc/app", "the port is not a port number (1 to 65535)"),
        (
            "/app?sslmode=bogus",
            "sslmode='bogus' is not one of disable, allow, prefer, require, verify-ca, verify-full",
        ),
        ("/app?target_session_attrs=rw", "target_session_attrs='rw' is not one of"),
        ("/app?connect_timeout=soon", "connect_timeout must be a whole number"),
    ],
)
def test_bad_connection_values_are_configuration_errors(
    project: Path, cli: Run, query: str, expected: str
) -> None:
    write_config(
        project, f'environments:\n  development:\n    url: "postgresql://app:{PASSWORD}@127.0.0.1{query}"\n'
    )
    for args in (("status",), ("migrate", "--dry-run")):
        message = one_line_error(cli(*args))
        assert message.startswith("dbops.yaml:3: environments.development.url: " + expected), message
    as_json = cli("status", "--json")
    assert as_json.code == 2 and json.loads(as_json.out)["error"]["hint"]
    for text in (as_json.out, (project / ".dbops/log/operations.jsonl").read_text()):
        assert PASSWORD not in text


def test_a_password_read_as_a_port_is_not_shown(
    project: Path, cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """postgresql://app:SECRET/db (no '@') parses as host 'app', port 'SECRET'."""
    (project / ".env.development").write_text(f"DATABASE_URL=postgresql://app:{PASSWORD}/app\n")
    write_config(project, "environments:\n  development:\n    env_file: .env.development\n")
    result = cli("status")
    assert (
        one_line_error(result)
        == "DATABASE_URL in .env.development: the port is not a port number (1 to 65535)"
    )
    assert PASSWORD not in result.text + (project / ".dbops/log/operations.jsonl").read_text()


def test_libpq_settings_from_the_process_environment(
    project: Path, cli: Run, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGSSLMODE", "bogus")
    message = one_line_error(cli("status"))
    assert (
        message.startswith("Invalid connection setting for ") and 'invalid sslmode value: "bogus"' in message
    )
