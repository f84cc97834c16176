"""The user's experience end to end: one vocabulary, counts that agree, hints that lead somewhere."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from datetime import datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from conftest import Run, dbops_bin


def run_dbops(project: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DBOPS_ENV", "DBOPS_CONFIG", "DATABASE_URL")}
    return subprocess.Popen(
        [dbops_bin(), *args], cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for_query(db: psycopg.Connection, text: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = db.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE %s AND pid <> pg_backend_pid()",
            (f"%{text}%",),
        ).fetchone()
        if found and found[0]:
            return
        time.sleep(0.05)
    raise AssertionError(f"no session ran {text!r}")


# ----------------------------------------------------------------------------- one vocabulary


def test_status_json_gives_the_last_migration_time_with_its_zone(project: Path, cli: Run) -> None:
    assert cli("migrate").code == 0
    report = json.loads(cli("status", "--json").out)["report"]
    at = datetime.fromisoformat(report["migrations"]["last_applied_at"])
    assert at.utcoffset() == timedelta(0)
    assert isinstance(report["migrations"]["applied"], int)


def test_lint_wording_without_pending_migrations(project: Path, cli: Run) -> None:
    assert cli("migrate").code == 0
    result = cli("lint")
    assert result.code == 0 and result.out.splitlines()[-1] == "✓ No pending migrations to lint"
    assert "migration(s)" not in result.out


def test_an_interrupted_migration_is_listed_as_interrupted(project: Path, db: psycopg.Connection) -> None:
    folder = project / "migrations"
    for old in folder.iterdir():
        old.unlink()
    (folder / "001_slow.sql").write_text("CREATE TABLE slow (id int);\nSELECT pg_sleep(30);\n")
    child = run_dbops(project, "migrate")
    wait_for_query(db, "pg_sleep(30)")
    child.send_signal(signal.SIGTERM)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 130, err
    assert "✗ 001_slow.sql interrupted" in out and "failed" not in out
    assert err.startswith("Error: Interrupted")


def test_sigterm_before_any_output_does_not_point_at_a_report(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from dbops.boundary import run_operation
    from dbops.engine import catalog
    from dbops.engine.context import RunContext
    from dbops.engine.options import NoOptions, Safety
    from dbops.engine.pipeline import Step, StepOutcome

    class Terminated:
        name = "wait"
        description = "wait for something"
        undo = "none"
        policy_action: str | None = None

        def run(self, ctx: RunContext) -> StepOutcome:
            os.kill(os.getpid(), signal.SIGTERM)
            return StepOutcome()

    def build(options: NoOptions) -> list[Step]:
        return [Terminated()]

    operation = catalog.Operation("cancel-early", NoOptions, build, "none", connects=False)
    monkeypatch.setitem(catalog.OPERATIONS, "cancel-early", operation)
    assert run_operation("cancel-early", NoOptions, safety=Safety()) == 130
    out, err = capsys.readouterr()
    assert out == "" and "report above" not in err
    assert "Hint: It stopped during wait, before any step had finished" in err


# ----------------------------------------------------------------------------- counts that agree


def test_backup_report_manifest_and_list_count_the_same_tables(
    project: Path, cli: Run, db: psycopg.Connection
) -> None:
    """The application's tables, without yoyo's and dbops' bookkeeping, as status counts them."""
    import shutil

    from conftest import REPO

    shutil.copytree(REPO / "seeds", project / "seeds")
    assert cli("migrate").code == 0 and cli("seed").code == 0
    status = json.loads(cli("status", "--json").out)["report"]
    app_tables = status["catalog"]["tables"]
    rows = sum(t["rows"] for t in app_tables)
    assert rows == 135 and len(app_tables) == 7  # the sample's 66 YAML/CSV rows and 69 from its SQL seed
    text = cli("backup")
    assert f"✓ Records: {rows} in {len(app_tables)} tables" in text.out.splitlines()
    report = json.loads(cli("backup", "--json").out)["report"]
    assert (report["rows"], report["tables"]) == (rows, len(app_tables))
    manifest = json.loads(Path(report["path"] + ".json").read_text())
    assert (manifest["rows_total"], manifest["tables_total"]) == (rows, len(app_tables))
    assert len(manifest["tables"]) > len(app_tables)  # the bookkeeping is in the list a restore checks
    listed = json.loads(cli("backup-list", "--json").out)["report"]["backups"]
    assert len(listed) == 2 and all((b["rows"], b["tables"]) == (rows, len(app_tables)) for b in listed)


# ----------------------------------------------------------------------------- check before announcing


def test_a_backup_this_pg_dump_cannot_take_is_refused_before_its_file_is_named(
    project: Path, cli: Run
) -> None:
    refused = 0
    for method in ("lz4", "zstd"):
        result = cli("backup", "--format=custom", f"--compress={method}")
        if result.code == 0:  # a pg_dump built with it
            continue
        refused += 1
        assert result.code == 2 and f"has no {method} compression" in result.err, result.text
        assert "Backup file:" not in result.out and "Backup file:" not in result.err
    folder = project / "backups" / "db"
    written = [p for p in folder.iterdir() if p.is_file()] if folder.exists() else []
    assert len(written) == 2 * (2 - refused)  # a file and its manifest per backup taken


def test_the_backup_folders_are_private_when_the_first_backup_is_automatic(project: Path, cli: Run) -> None:
    import stat

    assert cli("migrate").code == 0
    assert not (project / "backups").exists()
    previous = os.umask(0o022)  # the usual one: mkdir(parents=True) gave the parents 0755
    try:
        result = cli("reset", "--force")  # development backs up before a reset, automatically
    finally:
        os.umask(previous)
    assert result.code == 0, result.text
    automated = project / "backups" / "db" / "automated"
    assert any(automated.glob("*.json"))
    for folder in (project / "backups", project / "backups" / "db", automated):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder


# ----------------------------------------------------------------------------- databases restores keep


def test_databases_kept_by_restores_are_listed_and_cleaned_up(
    project: Path, cli: Run, db: psycopg.Connection, admin_url: str
) -> None:
    import re

    from psycopg import sql

    live = db.info.dbname
    db.execute("CREATE TABLE notes (id int)")
    taken = json.loads(cli("backup", "--json").out)["report"]["path"]
    db.close()
    for _ in range(3):
        assert cli("restore", taken, "--force").code == 0
    with psycopg.connect(admin_url, autocommit=True) as admin:
        kept = sorted(
            r[0]
            for r in admin.execute(
                "SELECT datname FROM pg_database WHERE starts_with(datname, %s)", (f"{live}__pre_restore_",)
            ).fetchall()
        )
        assert len(kept) == 3
        # as if they were kept 400, 300 and 200 days ago (their age is in their name)
        aged = [f"{live}__pre_restore_{stamp}_000000" for stamp in ("20200101", "20200405", "20200714")]
        for old, new in zip(kept, aged, strict=True):
            admin.execute(
                sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(old), sql.Identifier(new))
            )
    status = cli("status")
    assert status.code == 0, status.text
    lines = status.out.splitlines()
    assert "Kept by restore (dbops backup-cleanup drops the expired ones):" in lines
    for name in aged:
        assert any(re.fullmatch(rf"  {name}: \d+d old, [\d.]+ [KMG]B", line) for line in lines), name
    report = json.loads(cli("status", "--json").out)["report"]
    assert [k["name"] for k in report["kept_by_restore"]] == aged
    assert all(
        isinstance(k["size"], int) and k["kept_at"].endswith("+00:00") for k in report["kept_by_restore"]
    )

    dry = cli("backup-cleanup")  # the hint of status, followed: a dry run first
    assert dry.code == 0, dry.text
    for name in aged[:2]:
        assert re.search(
            rf"^- database {name} \(kept by a restore, older than 30 days, \d+d old\)$", dry.out, re.M
        )
    assert aged[2] not in dry.out and "1 newest kept database" in dry.out  # the newest stays, however old
    assert "Dry run: nothing was deleted. Run with --force to delete them." in dry.out
    with psycopg.connect(admin_url, autocommit=True) as admin:
        assert admin.execute(
            "SELECT count(*) FROM pg_database WHERE datname = ANY(%s)", (aged,)
        ).fetchone() == (3,)
    done = cli("backup-cleanup", "--force")
    assert done.code == 0, done.text
    with psycopg.connect(admin_url, autocommit=True) as admin:
        left = admin.execute("SELECT datname FROM pg_database WHERE datname = ANY(%s)", (aged,)).fetchall()
        assert left == [(aged[2],)]
        assert admin.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (live,)).fetchone() == (
            1,
        )
    assert "✓ Nothing to delete" in cli("backup-cleanup").out


def test_cleanup_without_a_reachable_server_still_cleans_files_and_says_so(project: Path, cli: Run) -> None:
    result = cli("backup-cleanup", "--env=production")  # its URL comes from a variable that is not set
    assert result.code == 0, result.text
    assert "⚠ Databases kept by restores not checked:" in result.out


# ----------------------------------------------------------------------------- dry runs check as real runs do


def test_a_dry_run_meets_the_checks_of_a_real_run(
    tmp_path: Path, cli: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sample's deploy in production, with DATABASE_URL unset: the plan's exit code is the real run's."""
    import shutil

    from conftest import REPO

    for name in ("dbops.yaml", "migrations"):
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy
        copy(REPO / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    for name in ("DATABASE_URL", "DBOPS_ENV", "DBOPS_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    real = cli("deploy", "--env=production", "--force")
    dry = cli("deploy", "--env=production", "--dry-run")
    assert real.code == dry.code == 2, dry.text
    assert "variable DATABASE_URL is not set" in real.err.splitlines()[0]
    assert dry.err.splitlines() == real.err.splitlines()
    assert "1. connect: connect to the environment's database" in dry.out  # the plan, above the error
    assert "Dry run complete" not in dry.out
    assert not (tmp_path / "backups").exists()


# ----------------------------------------------------------------------------- a reader that goes away


@pytest.mark.parametrize("program", ["invoke", "dbops"])
def test_listing_into_a_closed_pipe_ends_quietly(project: Path, program: str) -> None:
    """`invoke --list | head`: the reader is gone before the listing is written."""
    import shutil

    from conftest import REPO

    shutil.copy(REPO / "tasks.py", project / "tasks.py")
    env = {k: v for k, v in os.environ.items() if k not in ("DBOPS_ENV", "DBOPS_CONFIG", "DATABASE_URL")}
    read, write = os.pipe()
    os.close(read)  # a reader that went away
    try:
        done = subprocess.run(
            [str(Path(dbops_bin()).with_name(program)), "--list"],
            cwd=project,
            env=env,
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write)
    assert done.returncode == 141, done.stderr
    assert done.stderr == ""
