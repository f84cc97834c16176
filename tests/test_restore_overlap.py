"""A restore through a scratch database loads it while the safety backup is taken; the swap
comes only when both succeeded, and a failure of either leaves the live database as it was."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import psycopg
import pytest

from conftest import Run
from test_backup import backup, side_databases


def notes(url: str) -> list[tuple[int]]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT id FROM notes ORDER BY id").fetchall()


def test_the_load_runs_while_the_safety_backup_is_taken(
    project: Path, cli: Run, admin_url: str, database_url: str, db: psycopg.Connection
) -> None:
    db.execute("CREATE TABLE notes (id int); INSERT INTO notes VALUES (1)")
    path = backup(cli)
    db.execute("INSERT INTO notes VALUES (2)")
    result = cli("restore", str(path), "--force", "--json")
    assert result.code == 0, result.text
    document = json.loads(result.out)
    steps = [(s["name"], s["status"]) for s in document["steps"]]
    assert steps[-3:] == [("restore-load", "ok"), ("backup", "ok"), ("restore", "ok")]
    assert notes(database_url) == [(1,)]
    kept = document["report"]["result"]["kept_as"]
    assert side_databases(admin_url, database_url) == [kept]  # the scratch database became the live one
    safety = project / document["report"]["safety_backup"]
    assert safety.is_file()  # and the safety backup holds the live database as it was
    restored = cli("restore", str(safety), "--force")
    assert restored.code == 0, restored.text
    assert notes(database_url) == [(1,), (2,)]


def test_a_failed_safety_backup_stops_the_load_and_drops_the_scratch_database(
    project: Path, cli: Run, admin_url: str, database_url: str, db: psycopg.Connection
) -> None:
    db.execute("CREATE TABLE notes (id int); INSERT INTO notes VALUES (1)")
    path = backup(cli)
    db.execute("INSERT INTO notes VALUES (2)")
    automated = project / "backups" / "db" / "automated"
    automated.write_text("a file where the safety backups' folder goes: the backup fails")
    result = cli("restore", str(path), "--force", "--json")
    assert result.code != 0, result.text
    steps = {s["name"]: s["status"] for s in json.loads(result.out)["steps"]}
    assert (steps["restore-load"], steps["backup"], steps["restore"]) == ("ok", "failed", "not run")
    assert notes(database_url) == [(1,), (2,)]  # untouched
    assert side_databases(admin_url, database_url) == []  # the scratch database went with the run
    assert [t.name for t in threading.enumerate() if t.name == "dbops-restore-load"] == []


@pytest.mark.parametrize("fmt", ["plain", "custom"])
def test_a_load_told_to_stop_ends_and_leaves_no_scratch_database(
    project: Path, cli: Run, admin_url: str, database_url: str, db: psycopg.Connection, fmt: str
) -> None:
    """BackgroundLoad.abandon() right after the start: the load stops (or ends), nothing stays."""
    from dbops.backups import restore as restorer
    from dbops.backups import store
    from dbops.config.loader import load_config
    from dbops.engine.catalog import RULES
    from dbops.postgres.connection import Target
    from dbops.postgres.locks import locked_maintenance
    from dbops.postgres.tools import toolbox

    db.execute("CREATE TABLE notes (id int); INSERT INTO notes SELECT generate_series(1, 50000)")
    path = backup(cli, f"--format={fmt}")
    config = load_config(RULES, str(project / "dbops.yaml"))
    env = config.environments["development"]
    target = Target.of_environment(database_url, env)
    manifest = store.read_manifest(path, str(path))
    with locked_maintenance(target, env) as admin:
        loading = restorer.BackgroundLoad(target, env, toolbox(config), path, manifest, admin)
        loading.abandon()
        assert not loading.thread.is_alive()
    assert side_databases(admin_url, database_url) == []
    assert len(notes(database_url)) == 50000
