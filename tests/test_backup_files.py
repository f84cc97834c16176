"""Backup files on disk: manifests read with their own words, names that never collide, and
temporary files of other hosts left alone (issue 12, items 6, 12 and 18)."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from conftest import Run


def backup(cli: Run, *args: str) -> Path:
    result = cli("backup", "--json", *args)
    assert result.code == 0, result.text
    return Path(json.loads(result.out)["report"]["path"])


@pytest.mark.parametrize("manifest", ["{}", '{"file": "x.sql.gz"}'], ids=["empty", "partial"])
def test_a_manifest_that_is_not_dbops_is_named_so(
    project: Path, cli: Run, db: psycopg.Connection, manifest: str
) -> None:
    db.execute("CREATE TABLE notes (id int)")
    path = backup(cli)
    path.with_name(path.name + ".json").write_text(manifest)
    result = cli("restore", str(path), "--force")
    assert result.code == 2, result.text
    assert "TypeError" not in result.err and "Traceback" not in result.err
    expected = "it is an empty object ({})" if manifest == "{}" else "it lacks database, environment"
    assert f"its manifest ({path.name}.json) is not one dbops writes: {expected}" in result.err
    assert "Hint: Use a different backup" in result.err


def test_a_file_larger_than_its_manifest_says_is_not_called_truncated(
    project: Path, cli: Run, db: psycopg.Connection
) -> None:
    db.execute("CREATE TABLE notes (id int)")
    path = backup(cli)
    size = path.stat().st_size
    with path.open("ab") as handle:
        handle.write(b"\0" * 10)
    result = cli("restore", str(path), "--force")
    assert result.code == 2, result.text
    assert "truncated" not in result.err
    assert f"{size + 10:,} bytes, larger than the {size:,} its manifest says" in result.err


def test_parallel_backups_all_succeed_with_distinct_files(
    project: Path, cli: Run, db: psycopg.Connection
) -> None:
    """Three `dbops backup` at once, in the same second: three files, none overwritten."""
    import hashlib
    import os
    import subprocess

    from conftest import dbops_bin

    db.execute("CREATE TABLE notes (id int); INSERT INTO notes SELECT generate_series(1, 1000)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBOPS_") and k != "DATABASE_URL"}
    runs = [
        subprocess.Popen(
            [dbops_bin(), "backup", "--json"],
            cwd=project,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(3)
    ]
    outputs = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], outputs
    paths = {Path(json.loads(out)["report"]["path"]) for out, _ in outputs}
    assert len(paths) == 3
    folder = project / "backups" / "db"
    assert sorted(p.name for p in folder.glob("*.sql.gz")) == sorted(p.name for p in paths)
    for path in paths:
        manifest = json.loads(path.with_name(path.name + ".json").read_text())
        assert manifest["file"] == path.name
        assert manifest["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no temporary left
    listed = cli("backup-list", "--json")
    assert listed.code == 0, listed.text
    from datetime import datetime

    created = [datetime.fromisoformat(b["created"]) for b in json.loads(listed.out)["report"]["backups"]]
    assert created == sorted(created) and len(set(created)) == 3  # sub-second: still in order


def test_cleanup_leaves_another_hosts_temporary_files_alone(
    project: Path, cli: Run, db: psycopg.Connection
) -> None:
    """A backups folder shared between hosts: a pid means something only on its own host."""
    import os
    import time

    from dbops.atomic import host

    db.execute("CREATE TABLE notes (id int)")
    folder = backup(cli).parent
    dead = 2**22 + 12345  # above pid_max's default: no such process here
    names = {
        "mine, dead": f".a.sql.gz.tmp-{host()}-{dead}",
        "mine, running": f".b.sql.gz.tmp-{host()}-{os.getpid()}",
        "other host, fresh": f".c.sql.gz.tmp-ci-runner-7-{dead}",
        "other host, 25 h old": f".d.sql.gz.tmp-ci-runner-7-{dead}",
        "no host, fresh": f".e.sql.gz.tmp-{dead}",
        "no host, 25 h old": f".f.sql.gz.tmp-{dead}",
    }
    for name in names.values():
        (folder / name).write_bytes(b"partial")
    old = time.time() - 25 * 3600
    for key in ("other host, 25 h old", "no host, 25 h old"):
        os.utime(folder / names[key], (old, old))
    result = cli("backup-cleanup", "--force")
    assert result.code == 0, result.text
    left = {key for key, name in names.items() if (folder / name).exists()}
    assert left == {"mine, running", "other host, fresh", "no host, fresh"}


@pytest.mark.parametrize("fmt", ["custom", "directory"])
def test_ctrl_c_during_a_backup_does_not_wait_for_the_row_counts(
    project: Path, db: psycopg.Connection, database_url: str, fmt: str
) -> None:
    """The row counts run on a thread beside pg_dump; here they wait on a lock (as a long scan
    would take long): a real SIGINT cancels them, and the run ends at once with 130."""
    import os
    import signal
    import subprocess
    import time

    from conftest import dbops_bin, sigint_default

    db.execute("CREATE TABLE notes (id int); INSERT INTO notes VALUES (1)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBOPS_") and k != "DATABASE_URL"}
    with psycopg.connect(database_url) as locker:
        locker.execute("LOCK TABLE notes IN ACCESS EXCLUSIVE MODE")  # held until the block ends
        child = subprocess.Popen(
            [dbops_bin(), "backup", f"--format={fmt}"],
            cwd=project,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=sigint_default,  # a background shell ignores it
        )
        try:
            deadline = time.monotonic() + 60
            while not db.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND query ILIKE '%count(*)%'"
            ).fetchone()[0]:  # type: ignore[index]
                assert child.poll() is None and time.monotonic() < deadline, child.communicate()
                time.sleep(0.05)
            child.send_signal(signal.SIGINT)
            started = time.monotonic()
            out, err = child.communicate(timeout=20)
            took = time.monotonic() - started
        finally:
            child.kill()
        locker.rollback()
    assert child.returncode == 130, out + err
    assert took < 10, took
    assert "Traceback" not in err
    folder = project / "backups" / "db"
    assert not folder.exists() or list(folder.iterdir()) == []
    deadline = time.monotonic() + 10  # the sessions of the ended run go away
    while db.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    ).fetchone() != (0,):
        assert time.monotonic() < deadline, "a session of the interrupted backup is left"
        time.sleep(0.05)


def test_restoring_another_databases_backup_says_so_when_asking(
    project: Path,
    admin_url: str,
    database_url: str,
    db: psycopg.Connection,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import io
    import uuid

    from psycopg import sql

    from conftest import url_for
    from dbops.boundary import run_operation
    from dbops.engine.options import BackupOptions, RestoreOptions, Safety

    other = f"dbops_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(other)))
    try:
        with psycopg.connect(url_for(admin_url, other), autocommit=True) as conn:
            conn.execute("CREATE TABLE notes (id int); INSERT INTO notes VALUES (7)")
        with (project / "dbops.yaml").open("a") as config:
            config.write(f'  staging:\n    url: "{url_for(admin_url, other)}"\n')
        db.execute("CREATE TABLE notes (id int); INSERT INTO notes VALUES (1)")
        assert run_operation("backup", BackupOptions, safety=Safety(), env="staging") == 0
        path = next((project / "backups" / "db").glob(f"{other}_*.sql.gz"))
        capsys.readouterr()
        # no terminal: --force is needed, as before; the refusal names the other database too
        assert run_operation("restore", lambda: RestoreOptions(str(path)), safety=Safety()) == 3
        err = capsys.readouterr().err
        assert f"this backup comes from another database: {other}, not {db.info.dbname}" in err
        # on a terminal: the question says so in plain words, before the answer
        monkeypatch.setattr("sys.stdin", io.StringIO("no\n"))
        monkeypatch.setattr("sys.stdin.isatty", lambda: True)
        assert run_operation("restore", lambda: RestoreOptions(str(path)), safety=Safety()) == 3
        err = capsys.readouterr().err
        warning = (
            f"⚠️ WARNING: This backup comes from another database: {other}, not {db.info.dbname}; "
            f"its contents will replace {db.info.dbname}'s"
        )
        assert warning in err and err.index(warning) < err.index("Answer yes to confirm")
        assert db.execute("SELECT id FROM notes").fetchall() == [(1,)]
        # its own database's backup: no such warning
        assert run_operation("backup", BackupOptions, safety=Safety()) == 0
        own = next((project / "backups" / "db").glob(f"{db.info.dbname}_*.sql.gz"))
        monkeypatch.setattr("sys.stdin", io.StringIO("no\n"))
        capsys.readouterr()
        assert run_operation("restore", lambda: RestoreOptions(str(own)), safety=Safety()) == 3
        assert "another database" not in capsys.readouterr().err
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(other)))
