"""backup, restore, backup-list and backup-cleanup against a real PostgreSQL, real pg_dump/psql/pg_restore."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import re
import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from backup_helpers import build_rich, fingerprint, schema_dump
from conftest import Run, apply_migrations, dbops_bin, url_for, write_config
from dbops.postgres.embedded import bin_dir


def side_databases(admin_url: str, database_url: str) -> list[str]:
    name = psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE starts_with(datname, %s) ORDER BY 1", (f"{name}__",)
        ).fetchall()
    return [r[0] for r in rows]


def backup(cli: Run, *args: str) -> Path:
    result = cli("backup", "--json", *args)
    assert result.code == 0, result.text
    doc = json.loads(result.out)
    return Path(doc["report"]["path"])


def print_of(url: str) -> dict[str, str]:
    with psycopg.connect(url, autocommit=True) as conn:
        return fingerprint(conn)


# ----------------------------------------------------------------------------- backup


def test_backup_as_the_spec_shows(project: Path, cli: Run, database_url: str, db: psycopg.Connection) -> None:
    apply_migrations(database_url, project / "migrations")
    db.execute(
        "INSERT INTO users (email, password) SELECT 'u' || g || '@x', 'p' FROM generate_series(1, 145) g"
    )
    result = cli("backup")
    assert result.code == 0, result.text
    lines = result.out.splitlines()
    database = db.info.dbname
    assert lines[:4] == [
        "💾 Creating Database Backup",
        "===========================",
        f"Database: {database}",
        lines[3],
    ]
    match = re.fullmatch(rf"Backup file: (backups/db/{database}_\d{{8}}_\d{{6}}\.sql\.gz)", lines[3])
    assert match, lines[3]
    assert "✓ Backup created successfully" in lines
    assert any(re.fullmatch(r"✓ Size: [\d.]+ KB \(compressed\)", line) for line in lines), lines
    assert "✓ Records: 145 in 7 tables" in lines
    path = project / match.group(1)
    assert lines[-2:] == ["Backup location:", str(path)]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    manifest = json.loads(path.with_name(path.name + ".json").read_text())
    assert stat.S_IMODE(path.with_name(path.name + ".json").stat().st_mode) == 0o600
    assert manifest["kind"] == "manual" and manifest["reason"] is None and manifest["format"] == "plain"
    assert manifest["database"] == database and manifest["environment"] == "development"
    assert manifest["last_migration"] == "20251001090600_add_workflow_permissions"
    assert manifest["rows_exact"] is True
    assert {"schema": "public", "name": "users", "rows": 145} in manifest["tables"]
    assert manifest["server_version"].startswith("PostgreSQL ") and manifest["pg_dump_version"].startswith(
        "18."
    )
    assert manifest["size"] == path.stat().st_size
    import hashlib

    assert manifest["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert datetime.fromisoformat(manifest["created"].replace("Z", "+00:00")).tzinfo is not None
    text = gzip.decompress(path.read_bytes()).decode()
    assert "-- PostgreSQL database dump complete" in text and "COPY public.users" in text
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []


def test_backup_json_and_formats(project: Path, cli: Run, db: psycopg.Connection) -> None:
    build_rich(db)
    result = cli("backup", "--json", "--format=custom")
    assert result.code == 0, result.text
    doc = json.loads(result.out)
    assert doc["ok"] and doc["operation"] == "backup"
    report = doc["report"]
    assert report["path"].endswith(".dump") and report["format"] == "custom" and report["rows"] == 955
    assert (Path(report["path"]).read_bytes()[:5]) == b"PGDMP"
    directory = backup(cli, "--format=directory", "--jobs=2")
    assert directory.name.endswith(".dir") and (directory / "toc.dat").is_file()
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in directory.iterdir())
    manifest = json.loads(directory.with_name(directory.name + ".json").read_text())
    assert set(manifest["files"]) == {p.name for p in directory.iterdir()}
    plain = backup(cli, "--compress=none")
    counted = json.loads(plain.with_name(plain.name + ".json").read_text())["tables"]  # from the script
    counted_by_server = json.loads(Path(report["path"] + ".json").read_text())["tables"]  # count(*)
    assert counted == counted_by_server
    assert {"schema": "app", "name": 'Odd "name".x ü', "rows": 3} in counted
    assert {"schema": "app", "name": "no_columns", "rows": 2} in counted
    assert plain.name.endswith(".sql") and plain.read_text().count("PostgreSQL database dump complete") == 1
    fast = backup(cli, "--compress=gzip:1")
    assert json.loads(fast.with_name(fast.name + ".json").read_text())["compression"] == "gzip:1"


def test_backup_refuses_what_this_pg_dump_cannot_do(project: Path, cli: Run, db: psycopg.Connection) -> None:
    result = cli("backup", "--format=custom", "--compress=zstd")
    assert result.code == 2 and "has no zstd compression" in result.err, result.text
    result = cli("backup", "--compress=zstd")
    assert result.code == 2 and "plain backups are gzip or none" in result.err
    result = cli("backup", "--compress=brotli")
    assert result.code == 2 and "expected gzip, lz4 or zstd" in result.err
    result = cli("backup", "--jobs=2")
    assert result.code == 2 and "--jobs needs --format=directory" in result.err
    assert not (project / "backups").exists() or not any((project / "backups" / "db").iterdir())


def fake_pg_dump(folder: Path, body: str) -> Path:
    """A pg_dump stand-in (with the real pg_restore and psql beside it)."""
    folder.mkdir()
    script = folder / "pg_dump"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)
    for name in ("pg_restore", "psql"):
        (folder / name).symlink_to(bin_dir() / name)
    return script


def add_backup_settings(project: Path, text: str) -> None:
    config = project / "dbops.yaml"
    config.write_text(config.read_text() + text)


def test_a_failed_pg_dump_leaves_nothing(project: Path, cli: Run, db: psycopg.Connection) -> None:
    fake = fake_pg_dump(
        project / "fakebin",
        'case "$1" in --version) echo "pg_dump (PostgreSQL) 18.6"; exit 0;; esac\n'
        'echo "-- PostgreSQL database dump"; echo "CREATE TABLE half (" \n'
        'echo "pg_dump: error: query failed: ERROR:  out of shared memory" >&2; exit 1\n',
    )
    add_backup_settings(project, f"backups:\n  pg_dump: {fake}\n")
    result = cli("backup")
    assert result.code == 1, result.text
    assert "pg_dump failed (exit 1): pg_dump: error: query failed: ERROR:  out of shared memory" in result.err
    assert list((project / "backups" / "db").iterdir()) == []


def test_a_pg_dump_older_than_the_server_is_refused(project: Path, cli: Run, db: psycopg.Connection) -> None:
    fake = fake_pg_dump(project / "oldbin", 'echo "pg_dump (PostgreSQL) 12.3"\n')
    add_backup_settings(project, f"backups:\n  pg_dump: {fake}\n")
    result = cli("backup")
    assert result.code == 2, result.text
    assert "pg_dump 12.3" in result.err and "must be at least the server's major version" in result.err
    assert "backups.pg_dump" in result.err


def test_backups_settings_are_validated(project: Path, cli: Run) -> None:
    add_backup_settings(project, "backups:\n  retention_days: soon\n")
    result = cli("backup-list")
    assert result.code == 2 and "backups.retention_days: expected a whole number of days" in result.err
    config = project / "dbops.yaml"
    config.write_text(config.read_text().replace("retention_days: soon", "direktory: x"))
    result = cli("backup-list")
    assert result.code == 2 and "backups.direktory: unknown key (did you mean 'directory'?)" in result.err


def test_no_password_reaches_a_child_output_or_manifest(
    project: Path, cli: Run, admin_url: str, database_url: str, db: psycopg.Connection
) -> None:
    """pg_dump's argv and environment as it saw them, through a wrapper that records them."""
    secret = "s3cr:et\\pass"
    role = f"{db.info.dbname}_owner"
    db.execute(
        sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}").format(
            sql.Identifier(role), sql.Literal(secret)
        )
    )
    try:
        record = project / "seen.txt"
        wrapper = fake_pg_dump(
            project / "wrapbin",
            f'if [ "$1" != --version ]; then echo "$@" > {record}; env >> {record}; '
            f'stat -L -c %a "$PGPASSFILE" >> {record}; cat "$PGPASSFILE" >> {record}; fi\n'
            f'exec {bin_dir() / "pg_dump"} "$@"\n',
        )
        from urllib.parse import quote

        url = database_url.replace("postgres@", f"{role}:{quote(secret, safe='')}@", 1)
        config = project / "dbops.yaml"
        config.write_text(
            config.read_text().replace(f'url: "{database_url}"', f'url: "{url}"', 1)
            + f"backups:\n  pg_dump: {wrapper}\n"
        )
        result = cli("backup", "--json")
        assert result.code == 0, result.text
        seen = record.read_text()
        argv = seen.splitlines()[0]
        assert secret not in argv and quote(secret, safe="") not in argv and "password=" not in argv
        assert "PGPASSFILE=" in seen and "\n600\n" in seen
        assert "*:*:*:*:s3cr\\:et\\\\pass" in seen  # the passfile's escaping
        passfile = re.search(r"PGPASSFILE=(\S+)", seen).group(1)  # type: ignore[union-attr]
        assert passfile.startswith("/dev/fd/")  # an anonymous memory file: never on disk
        assert secret not in result.out and quote(secret, safe="") not in result.out
        for path in (project / "backups" / "db").iterdir():
            if path.name.endswith(".json"):
                assert secret not in path.read_text()
        assert secret not in (project / ".dbops" / "log" / "operations.jsonl").read_text()
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_verify_restore_test_restores_and_leaves_no_database(
    project: Path, cli: Run, admin_url: str, database_url: str, db: psycopg.Connection
) -> None:
    build_rich(db)
    result = cli("backup", "--verify=restore")
    assert result.code == 0, result.text
    assert "test restore (row counts match)" in result.out
    assert side_databases(admin_url, database_url) == []


# ----------------------------------------------------------------------------- round trips


@pytest.mark.parametrize(
    "flags",
    [[], ["--compress=none"], ["--format=custom"], ["--format=directory", "--jobs=2"]],
    ids=["plain-gzip", "plain", "custom", "directory"],
)
def test_round_trip_in_every_format(
    project: Path, cli: Run, admin_url: str, database_url: str, db: psycopg.Connection, flags: list[str]
) -> None:
    build_rich(db)
    schema_before, rows_before = schema_dump(database_url), fingerprint(db)
    path = backup(cli, *flags)
    db.execute(
        "DROP TABLE public.notes; UPDATE app.people SET name = 'changed'; SELECT lo_unlink(min(oid)) FROM pg_largeobject_metadata"
    )
    db.execute(sql.SQL("ALTER DATABASE {} SET work_mem = '1MB'").format(sql.Identifier(db.info.dbname)))
    jobs = ["--jobs=2"] if "--format=directory" in flags else []  # pg_restore --jobs
    result = cli("restore", str(path), "--force", *jobs)
    assert result.code == 0, result.text
    assert "Database restored successfully!" in result.out and "✓ Terminated 1 connection(s)" in result.out
    assert schema_dump(database_url) == schema_before
    assert print_of(database_url) == rows_before
    kept = [d for d in side_databases(admin_url, database_url) if "__pre_restore_" in d]
    assert len(kept) == 1 and f"Previous database kept as: {kept[0]}" in result.out
    with psycopg.connect(url_for(admin_url, kept[0])) as old:
        assert old.execute("SELECT count(*) FROM app.people WHERE name = 'changed'").fetchone()[0] == 500  # type: ignore[index]


@pytest.mark.parametrize("flags", [[], ["--format=custom"]], ids=["plain-gzip", "custom"])
def test_in_place_round_trip(
    project: Path, cli: Run, admin_url: str, database_url: str, db: psycopg.Connection, flags: list[str]
) -> None:
    build_rich(db)
    schema_before, rows_before = schema_dump(database_url), fingerprint(db)
    path = backup(cli, *flags)
    db.execute("CREATE TABLE public.later (id int); CREATE SCHEMA extra; CREATE TABLE extra.t (x int)")
    db.execute("DELETE FROM app.events WHERE id < 100")
    result = cli("restore", str(path), "--force", "--in-place")
    assert result.code == 0, result.text
    assert "✓ Restored in place, in one transaction" in result.out
    assert schema_dump(database_url) == schema_before
    assert print_of(database_url) == rows_before
    assert [d for d in side_databases(admin_url, database_url) if "__restore_" in d or "__pre_" in d] == []


def test_in_place_failure_rolls_everything_back(
    project: Path, cli: Run, database_url: str, db: psycopg.Connection
) -> None:
    build_rich(db)
    path = backup(cli)
    db.execute("UPDATE app.people SET name = 'current'")
    with gzip.open(path, "rt") as handle:
        text = handle.read()
    broken = text.replace(
        "CREATE VIEW app.happy", "CREATE VIEW app.happy_broken AS SELECT nope; CREATE VIEW app.happy"
    )
    path.write_bytes(gzip.compress(broken.encode()))
    refresh_manifest(path)
    result = cli("restore", str(path), "--force", "--in-place")
    assert result.code == 1, result.text
    assert 'column "nope" does not exist' in result.err and "rolled back" in result.err
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM app.people WHERE name = 'current'").fetchone()[0] == 500  # type: ignore[index]


def refresh_manifest(path: Path) -> None:
    """Make the manifest match a file changed on purpose (as if pg_dump had written it so)."""
    import hashlib

    manifest_file = path.with_name(path.name + ".json")
    manifest = json.loads(manifest_file.read_text())
    manifest["size"] = path.stat().st_size
    manifest["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    manifest_file.write_text(json.dumps(manifest))


# ----------------------------------------------------------------------------- bad files


def live_marker(database_url: str) -> list[tuple[int]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT id FROM public.notes ORDER BY id").fetchall()


@pytest.mark.parametrize("in_place", [False, True], ids=["scratch", "in-place"])
@pytest.mark.parametrize(
    "damage",
    [
        "truncated",
        "flipped byte",
        "header byte",
        "no manifest",
        "not a dump",
        "custom, corrupt",
        "custom, byte",
    ],
)
def test_a_bad_file_is_refused_before_anything_is_touched(
    project: Path,
    cli: Run,
    admin_url: str,
    database_url: str,
    db: psycopg.Connection,
    damage: str,
    in_place: bool,
) -> None:
    """The size and an archive's table of contents before anything; the sha256 and the full read
    as the file loads (into a scratch database, or in place in one transaction, which is then
    rolled back): nothing of the live database changes, and no safety backup stays."""
    build_rich(db)
    path = backup(cli, *(["--format=custom"] if damage.startswith("custom") else []))
    db.execute("DELETE FROM public.notes WHERE id > 3")
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flipped byte":
        path.write_bytes(data[:500] + bytes([data[500] ^ 0xFF]) + data[501:])
    elif damage == "header byte":  # the gzip header's time: the script loads whole, only its sha256 differs
        path.write_bytes(data[:5] + bytes([data[5] ^ 0xFF]) + data[6:])
    elif damage == "custom, byte":  # in a data block: only the sha256 tells before pg_restore does
        path.write_bytes(data[:-200] + bytes([data[-200] ^ 0xFF]) + data[-199:])
    elif damage == "no manifest":
        path.with_name(path.name + ".json").unlink()
    elif damage == "not a dump":
        path.write_bytes(gzip.compress(b"SELECT 1;\n" * 100))
        refresh_manifest(path)
    else:
        middle = len(data) // 2
        path.write_bytes(data[:middle] + b"\x00" * 64 + data[middle + 64 :])
        refresh_manifest(path)
    result = cli("restore", str(path), "--force", *(["--in-place"] if in_place else []))
    assert result.code == 2, result.text
    assert f"Error: Invalid backup file format: {path.relative_to(project)}" in result.err
    assert "Hint: Use a different backup, or restore from the automatic ones" in result.err
    assert "dbops restore latest" in result.err
    assert live_marker(database_url) == [(1,), (2,), (3,)]
    assert side_databases(admin_url, database_url) == []
    # not even a safety backup: a file found bad as it loads takes the one taken meanwhile along
    assert list((project / "backups" / "db" / "automated").glob("*")) == []
    if damage in (
        "flipped byte",
        "header byte",
        "custom, byte",
    ):  # found as it loaded (truncated: by its size)
        assert "remove the safety backup this restore took: the database is as it was (removed " in result.out


def test_restore_needs_confirmation(project: Path, cli: Run, db: psycopg.Connection) -> None:
    db.execute("CREATE TABLE notes (id int)")
    path = backup(cli)
    result = cli("restore", str(path))
    assert result.code == 3, result.text
    assert "needs confirmation: no terminal to ask on" in result.err and "--force" in result.err
    assert not (project / "backups" / "db" / "automated").exists()


def test_confirmation_on_a_terminal(
    project: Path,
    database_url: str,
    db: psycopg.Connection,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """yes/no in development; the database name in a protected environment."""
    import io

    from dbops.boundary import run_operation
    from dbops.engine.options import BackupOptions, RestoreOptions, Safety

    db.execute("CREATE TABLE notes (id int)")
    monkeypatch.setenv("DBOPS_TEST_PROD_URL", database_url)
    assert run_operation("backup", BackupOptions, safety=Safety()) == 0
    path = next((project / "backups" / "db").glob("*.sql.gz"))
    monkeypatch.setattr("sys.stdin", io.StringIO("no\n"))
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    assert run_operation("restore", lambda: RestoreOptions(str(path)), safety=Safety()) == 3
    err = capsys.readouterr().err
    assert "⚠️ WARNING: This will replace all current data!" in err and "Answer yes to confirm" in err
    monkeypatch.setattr("sys.stdin", io.StringIO("yes\n"))
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    assert run_operation("restore", lambda: RestoreOptions(str(path)), safety=Safety()) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("yes\n"))
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    assert run_operation("restore", lambda: RestoreOptions(str(path)), safety=Safety(), env="production") == 3
    assert "Type the database name exactly" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO(db.info.dbname + "\n"))
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    assert run_operation("restore", lambda: RestoreOptions(str(path)), safety=Safety(), env="production") == 0


# ----------------------------------------------------------------------------- automatic backups


def test_restore_takes_a_safety_backup_and_latest_finds_it(
    project: Path, cli: Run, database_url: str, db: psycopg.Connection
) -> None:
    db.execute("CREATE TABLE notes (id int); INSERT INTO notes VALUES (1)")
    path = backup(cli)
    db.execute("INSERT INTO notes VALUES (2)")
    result = cli("restore", str(path), "--force")
    assert result.code == 0, result.text
    automated = list((project / "backups" / "db" / "automated").glob("*.sql.gz"))
    assert len(automated) == 1 and f"✓ Safety backup: backups/db/automated/{automated[0].name}" in result.out
    manifest = json.loads(automated[0].with_name(automated[0].name + ".json").read_text())
    assert manifest["kind"] == "automatic" and manifest["reason"] == "before restore"
    assert live_marker(database_url) == [(1,)]
    # 'latest' is the safety backup of the restore before (rows 1, 2); the spec's path for it then
    # finds the one that restore took in turn (row 1 only)
    for name, rows in (("latest", [(1,), (2,)]), ("backups/db/automated/latest.sql.gz", [(1,)])):
        result = cli("restore", name, "--force", "--json")
        assert result.code == 0, result.text
        assert Path(json.loads(result.out)["report"]["path"]).parent.name == "automated"
        assert live_marker(database_url) == rows


def test_rollback_in_a_protected_environment_takes_a_safety_backup(
    project: Path, cli: Run, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DBOPS_TEST_PROD_URL", database_url)
    assert cli("migrate", "--env=production").code == 0
    result = cli("migrate-rollback", "--env=production", "--force", "--json")
    assert result.code == 0, result.text
    doc = json.loads(result.out)
    assert [s["name"] for s in doc["steps"]] == ["connect", "confirm", "backup", "rollback"]
    automated = list((project / "backups" / "db" / "automated").glob("*.json"))
    assert len(automated) == 1
    manifest = json.loads(automated[0].read_text())
    assert manifest["reason"] == "before migrate-rollback" and manifest["environment"] == "production"
    assert manifest["last_migration"] == "20251001090600_add_workflow_permissions"
    assert cli("migrate-rollback", "--force").code == 0  # development: no safety backup
    assert len(list((project / "backups" / "db" / "automated").glob("*.json"))) == 1


# ----------------------------------------------------------------------------- failures during a restore


def test_a_restore_that_fails_leaves_live_untouched_and_drops_the_scratch(
    project: Path, cli: Run, admin_url: str, database_url: str, db: psycopg.Connection
) -> None:
    db.execute("CREATE TABLE notes (id int); INSERT INTO notes VALUES (1), (2)")
    path = backup(cli, "--compress=none")
    db.execute("INSERT INTO notes VALUES (3)")
    text = path.read_text().replace("COPY public.notes", "SELECT broken_on_purpose();\nCOPY public.notes")
    path.write_text(text)
    refresh_manifest(path)
    result = cli("restore", str(path), "--force")
    assert result.code == 1, result.text
    assert "Restore failed:" in result.err and "broken_on_purpose" in result.err
    assert "The live database was not touched" in result.err
    assert live_marker(database_url) == [(1,), (2,), (3,)]
    assert side_databases(admin_url, database_url) == []


@pytest.mark.parametrize("how", ["plain", "plain, in place", "custom"])
def test_row_counts_that_differ_from_the_manifest_stop_before_the_swap(
    project: Path, cli: Run, admin_url: str, database_url: str, db: psycopg.Connection, how: str
) -> None:
    """Counted as the script goes to psql (plain), or in the database (pg_restore's load)."""
    db.execute("CREATE TABLE notes (id int); INSERT INTO notes VALUES (1), (2)")
    path = backup(cli, *(["--format=custom"] if how == "custom" else []))
    manifest_file = path.with_name(path.name + ".json")
    manifest = json.loads(manifest_file.read_text())
    manifest["tables"][0]["rows"] = 3
    manifest_file.write_text(json.dumps(manifest))
    result = cli("restore", str(path), "--force", *(["--in-place"] if "in place" in how else []))
    assert result.code == 1, result.text
    assert "does not match the backup's manifest: public.notes: 2 rows, expected 3" in result.err
    assert side_databases(admin_url, database_url) == []


@pytest.mark.parametrize("in_place", [False, True], ids=["new-database", "in-place"])
def test_a_load_into_a_new_database_commits_without_waiting_for_the_disk(
    project: Path, cli: Run, db: psycopg.Connection, database_url: str, in_place: bool
) -> None:
    """synchronous_commit off for a load into a new database (the swap's commit writes it all
    out); an in-place restore, one transaction, keeps the setting it had (here the URL's)."""
    db.execute("CREATE TABLE notes (id int); INSERT INTO notes VALUES (1)")
    path = backup(cli, "--compress=none")
    joiner = "&" if "?" in database_url else "?"
    url = f"{database_url}{joiner}options=-c%20synchronous_commit%3Don"
    write_config(project, f'environments:\n  development:\n    url: "{url}"\n    backup_before: []\n')
    wanted = "on" if in_place else "off"
    probe = (
        f"DO $$ BEGIN IF current_setting('synchronous_commit') <> '{wanted}' THEN RAISE EXCEPTION"
        " 'synchronous_commit is %', current_setting('synchronous_commit'); END IF; END $$;\n"
    )
    path.write_text(path.read_text().replace("COPY public.notes", probe + "COPY public.notes"))
    refresh_manifest(path)
    result = cli("restore", str(path), "--force", *(["--in-place"] if in_place else []))
    assert result.code == 0, result.text


def big_database(db: psycopg.Connection) -> None:
    db.execute(
        "CREATE TABLE notes (id int PRIMARY KEY); INSERT INTO notes VALUES (1), (2), (3);"
        "CREATE TABLE bulk AS SELECT g AS id, md5(g::text) || repeat('x', 200) AS body"
        " FROM generate_series(1, 300000) g"
    )


def run_dbops(project: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBOPS_") and k != "DATABASE_URL"}
    return subprocess.Popen(
        [dbops_bin(), *args], cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for(condition: object, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def loading(admin_url: str, database_url: str) -> bool:
    """A COPY is running into the scratch database."""
    name = psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE starts_with(datname, %s) AND query LIKE 'COPY%%'",
            (f"{name}__restore_",),
        ).fetchone()
    return bool(row and row[0])


@pytest.mark.parametrize("victim", ["dbops", "psql"])
def test_kill_9_during_the_restore(
    project: Path, cli: Run, admin_url: str, database_url: str, db: psycopg.Connection, victim: str
) -> None:
    """kill -9 of dbops itself, or of its psql child, while the scratch database is loading."""
    big_database(db)
    path = backup(cli, "--compress=gzip:1")
    manifest = json.loads(path.with_name(path.name + ".json").read_text())
    assert manifest["rows_total"] == 300_003  # counted in the script as it streamed by
    assert subprocess.run(["gzip", "-t", str(path)]).returncode == 0  # gzip members, as pigz writes
    db.execute("DELETE FROM notes WHERE id = 3")
    process = run_dbops(project, "restore", str(path), "--force")
    try:
        wait_for(lambda: loading(admin_url, database_url))
        if victim == "dbops":
            os.kill(process.pid, signal.SIGKILL)
        else:
            child = subprocess.run(["pgrep", "-P", str(process.pid), "psql"], capture_output=True, text=True)
            os.kill(int(child.stdout.split()[0]), signal.SIGKILL)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert live_marker(database_url) == [(1,), (2,)]
    if victim == "dbops":
        assert process.returncode == -signal.SIGKILL
        assert any("__restore_" in d for d in side_databases(admin_url, database_url))  # left behind
        wait_for(lambda: not loading(admin_url, database_url))  # its psql died with it
    else:
        assert process.returncode == 1, out + err
        assert "Restore failed:" in err and "The live database was not touched" in err
        assert side_databases(admin_url, database_url) == []
    result = cli("restore", str(path), "--force")  # the next restore sweeps what a killed one left
    assert result.code == 0, result.text
    assert live_marker(database_url) == [(1,), (2,), (3,)]
    assert [d for d in side_databases(admin_url, database_url) if "__restore_" in d] == []


def test_kill_9_during_a_backup_leaves_nothing_under_the_final_name(
    project: Path, cli: Run, db: psycopg.Connection
) -> None:
    big_database(db)
    folder = project / "backups" / "db"
    process = run_dbops(project, "backup", "--compress=gzip:9")
    try:
        wait_for(lambda: folder.is_dir() and any(p.name.startswith(".") for p in folder.iterdir()))
        os.kill(process.pid, signal.SIGKILL)
        process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    names = [p.name for p in folder.iterdir()]
    assert len(names) == 1 and re.fullmatch(r"\..+\.sql\.gz\.tmp-.+-\d+", names[0]), names
    listed = cli("backup-list")
    assert "No backups yet" in listed.out
    result = cli("backup-cleanup")
    assert result.code == 0 and "(leftover temporary file)" in result.out and "Dry run" in result.out
    assert len(list(folder.iterdir())) == 1
    result = cli("backup-cleanup", "--force")
    assert result.code == 0 and list(folder.iterdir()) == []


# ----------------------------------------------------------------------------- list and retention


def age_backup(path: Path, days: int, *, keep: bool = False) -> None:
    manifest_file = path.with_name(path.name + ".json")
    manifest = json.loads(manifest_file.read_text())
    created = datetime.now(UTC) - timedelta(days=days)
    manifest["created"] = created.replace(microsecond=0).isoformat().replace("+00:00", "Z")
    manifest["keep"] = keep
    manifest_file.write_text(json.dumps(manifest))


def test_backup_list_shows_kind_age_size_and_checksum(
    project: Path, cli: Run, db: psycopg.Connection
) -> None:
    db.execute("CREATE TABLE notes (id int)")
    manual = backup(cli)
    assert cli("restore", str(manual), "--force").code == 0
    automatic = next((project / "backups" / "db" / "automated").glob("*.sql.gz"))
    age_backup(manual, 3)
    result = cli("backup-list")
    assert result.code == 0, result.text
    lines = result.out.splitlines()
    assert lines[:3] == ["🗂️ Database Backups", "===================", "Folder: backups/db"]
    name = db.info.dbname
    assert re.search(
        rf"✓ manual +3d +[\d.]+ (bytes|KB)  {name}  backups/db/{manual.name}$", result.out, re.M
    ), result.out
    assert re.search(
        rf"✓ automatic +\d+s +[\d.]+ (bytes|KB)  {name}  backups/db/automated/{automatic.name} \(before restore\)$",
        result.out,
        re.M,
    )
    with open(automatic, "r+b") as handle:
        handle.seek(100)
        handle.write(b"\x00")
    result = cli("backup-list", "--json")
    assert result.code == 1, result.text
    doc = json.loads(result.out)
    by_kind = {b["kind"]: b for b in doc["report"]["backups"]}
    assert by_kind["automatic"]["checksum"] == "mismatch" and by_kind["manual"]["checksum"] == "ok"
    assert by_kind["manual"]["database"] == db.info.dbname and by_kind["manual"]["age"] == "3d"


def test_cleanup_keeps_manual_newest_and_marked_backups(
    project: Path, cli: Run, db: psycopg.Connection
) -> None:
    db.execute("CREATE TABLE notes (id int)")
    manual = backup(cli)
    for _ in range(4):
        assert cli("restore", str(manual), "--force").code == 0  # in the same second: _2, _3, ...
    automated = sorted((project / "backups" / "db" / "automated").glob("*.sql.gz"))
    assert len(automated) == 4
    age_backup(manual, 400)
    age_backup(automated[0], 40)  # expired
    age_backup(automated[1], 35, keep=True)  # expired, but marked keep
    age_backup(automated[2], 10)  # within retention
    age_backup(automated[3], 31)  # expired, but the newest automatic one? no: 10 days is newer
    result = cli("backup-cleanup")
    assert result.code == 0, result.text
    assert (
        f"- backups/db/automated/{automated[0].name} (automatic, older than 30 days, 40d old)" in result.out
    )
    assert (
        f"- backups/db/automated/{automated[3].name} (automatic, older than 30 days, 31d old)" in result.out
    )
    assert "Kept: 1 manual, 1 marked keep, 1 newest automatic" in result.out
    assert "Dry run: nothing was deleted" in result.out and automated[0].exists()
    result = cli("backup-cleanup", "--force", "--json")
    assert result.code == 0, result.text
    assert not automated[0].exists() and not automated[3].exists()
    assert not automated[0].with_name(automated[0].name + ".json").exists()
    assert manual.exists() and automated[1].exists() and automated[2].exists()
    age_backup(automated[1], 95, keep=True)
    age_backup(automated[2], 90)  # the newest automatic stays however old it is
    result = cli("backup-cleanup", "--force")
    assert "✓ Nothing to delete" in result.out and automated[2].exists()
    add_backup_settings(project, "backups:\n  retention_days: 100\n  directory: backups/db\n")
    assert "✓ Nothing to delete" in cli("backup-cleanup").out


# ----------------------------------------------------------------------------- across server versions


@pytest.fixture(scope="module")
def other_admin_url(admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The other test server: an embedded 18 beside DBOPS_TEST_DATABASE_URL, or else the machine's
    PostgreSQL (DBOPS_TEST_OTHER_URL, default 127.0.0.1:5432) beside the embedded one."""
    from dbops.postgres.embedded import EmbeddedServer

    if os.environ.get("DBOPS_TEST_DATABASE_URL"):
        server = EmbeddedServer(tmp_path_factory.mktemp("server18") / "pg", durable=False)
        state = server.ensure_running()
        yield f"postgresql://postgres@/postgres?host={state.socket_dir}"
        server.stop()
        return
    url = os.environ.get("DBOPS_TEST_OTHER_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.OperationalError:
        pytest.skip(f"no second server at {url} (set DBOPS_TEST_OTHER_URL)")
    yield url


@pytest.fixture
def other_database_url(other_admin_url: str) -> Iterator[str]:
    import uuid

    name = f"dbops_x_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(other_admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield url_for(other_admin_url, name)
    with psycopg.connect(other_admin_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE starts_with(datname, %s)", (name,)
        ).fetchall()
        for (other,) in rows:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(other)))


def major(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.info.server_version // 10000


@pytest.mark.parametrize("flags", [[], ["--format=custom"]], ids=["plain-gzip", "custom"])
def test_backups_cross_server_versions(
    project: Path,
    cli: Run,
    database_url: str,
    other_database_url: str,
    db: psycopg.Connection,
    flags: list[str],
) -> None:
    """From 18 into 15 and from 15 into 18 (pg_dump 18 writes SET transaction_timeout, which 15 rejects)."""
    assert {major(database_url), major(other_database_url)} == {15, 18}
    add_backup_settings(project, "")
    config = project / "dbops.yaml"
    config.write_text(
        config.read_text().replace("  test:\n", f'  other:\n    url: "{other_database_url}"\n  test:\n')
    )
    build_rich(db)
    there = backup(cli, *flags)
    result = cli("restore", str(there), "--env=other", "--force")
    assert result.code == 0, result.text
    assert print_of(other_database_url) == print_of(database_url) != {}
    with psycopg.connect(other_database_url, autocommit=True) as other:
        other.execute("INSERT INTO public.notes VALUES (1000, 'only over there', NULL)")
    back = backup(cli, "--env=other", *flags)
    assert json.loads(back.with_name(back.name + ".json").read_text())["environment"] == "other"
    result = cli("restore", str(back), "--force")
    assert result.code == 0, result.text
    assert print_of(database_url) == print_of(other_database_url)
    assert live_marker_notes(database_url) == 51


def live_marker_notes(url: str) -> int:
    with psycopg.connect(url) as conn:
        count: int = conn.execute("SELECT count(*) FROM public.notes").fetchone()[0]  # type: ignore[index]
        return count


# ----------------------------------------------------------------------------- for other steps


def test_restore_file_and_the_backup_step_as_other_steps_use_them(
    project: Path, database_url: str, db: psycopg.Connection
) -> None:
    """The interface other steps' undo actions use: Backup(automatic=True) and restore_file()."""
    from dbops.backups.restore import restore_file
    from dbops.config.loader import load_config
    from dbops.engine.catalog import RULES
    from dbops.engine.context import RunContext
    from dbops.engine.options import BackupOptions
    from dbops.steps.backup import Backup

    db.execute("CREATE TABLE notes (id int); INSERT INTO notes VALUES (1)")
    config = load_config(RULES)
    ctx = RunContext(config, config.environment("development"))
    outcome = Backup(BackupOptions(), automatic=True, reason="before reset").run(ctx)
    assert outcome.undo is None
    path = outcome.data.path
    assert path.parent == project / "backups" / "db" / "automated" and path.is_file()
    assert json.loads(path.with_name(path.name + ".json").read_text())["reason"] == "before reset"
    ctx.connection().execute("INSERT INTO notes VALUES (2)")
    ctx.close()  # as dbops.engine.restore_point does: the restore replaces the database under it
    restore_file(ctx.target(), ctx.env, ctx.config, path)
    assert live_marker(database_url) == [(1,)]
    assert [p.name for p in path.parent.iterdir() if p.suffix == ".gz"] == [path.name]  # no safety backup
    ctx.close()


def test_the_commands_describe_themselves(project: Path, cli: Run) -> None:
    listing = cli("--list").out
    for task in ("backup", "restore", "backup-list", "backup-cleanup"):
        assert f"  {task} " in listing

    def help_of(task: str) -> str:  # in a child: invoke fits the help to a terminal's width
        done = subprocess.run([dbops_bin(), task, "--help"], cwd=project, capture_output=True, text=True)
        return " ".join(done.stdout.split())

    backup_help = help_of("backup")
    for flag in (
        "--format=STRING plain",
        "--compress=STRING gzip",
        "--jobs=STRING With",  # a string, checked by dbops: Invoke's own int() ends in a traceback
        "--verify=STRING file",
    ):
        assert flag in backup_help, flag
    assert "--keep Mark this backup" in backup_help
    assert "--force Delete them" in help_of("backup-cleanup")
    usage = cli("restore", "--help")
    assert usage.code == 0 and "Usage: dbops [--core-opts] restore" in usage.out and "--in-place" in usage.out
    missing = cli("restore", "backups/db/nothing.sql.gz", "--force")
    assert missing.code == 2 and "Backup file not found: backups/db/nothing.sql.gz" in missing.err


def test_without_createdb_the_restore_says_so_and_in_place_works(
    project: Path, cli: Run, admin_url: str, database_url: str, db: psycopg.Connection
) -> None:
    """An application role that owns its database but may not create databases."""
    role = f"{db.info.dbname}_app"
    db.execute(sql.SQL("CREATE ROLE {} LOGIN NOCREATEDB").format(sql.Identifier(role)))
    try:
        db.execute(
            sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                sql.Identifier(db.info.dbname), sql.Identifier(role)
            )
        )
        db.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(sql.Identifier(role)))
        role_url = database_url.replace("postgres@", f"{role}@", 1)
        with psycopg.connect(role_url, autocommit=True) as conn:
            conn.execute("CREATE TABLE notes (id int PRIMARY KEY); INSERT INTO notes VALUES (1), (2)")
        config = project / "dbops.yaml"
        config.write_text(config.read_text().replace(f'url: "{database_url}"', f'url: "{role_url}"', 1))
        path = backup(cli)
        with psycopg.connect(role_url, autocommit=True) as conn:
            conn.execute("INSERT INTO notes VALUES (3)")
        result = cli("restore", str(path), "--force")
        assert result.code == 1, result.text
        assert "permission denied (CREATEDB)" in result.err and "--in-place" in result.err
        assert live_marker(database_url) == [(1,), (2,), (3,)]
        assert not (project / "backups" / "db" / "automated").exists()  # refused before the safety backup
        result = cli("restore", str(path), "--force", "--in-place")
        assert result.code == 0, result.text
        assert live_marker(database_url) == [(1,), (2,)]
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("ALTER DATABASE {} OWNER TO postgres").format(sql.Identifier(db.info.dbname))
            )
        db.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(sql.Identifier(role)))
        db.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


# ----------------------------------------------------------------------------- review fixes


def add_environment(project: Path, name: str, url: str) -> None:
    config = project / "dbops.yaml"
    config.write_text(config.read_text().replace("  test:\n", f'  {name}:\n    url: "{url}"\n  test:\n', 1))


def notes_of(url: str) -> list[tuple[int]]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT id FROM notes ORDER BY id").fetchall()


def test_restore_latest_is_the_newest_automatic_backup_of_this_database(
    project: Path, cli: Run, admin_url: str, database_url: str, db: psycopg.Connection
) -> None:
    """Never another database's: staging's 'latest' is not development's newest safety backup."""
    dev = db.info.dbname
    staging = f"{dev}__staging"  # dropped with the test's database
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(staging)))
    staging_url = url_for(admin_url, staging)
    add_environment(project, "staging", staging_url)
    db.execute("CREATE TABLE notes (id int); INSERT INTO notes VALUES (1)")
    with psycopg.connect(staging_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE notes (id int); INSERT INTO notes VALUES (100)")
    manual = backup(cli)
    assert cli("restore", str(manual), "--force").code == 0  # a safety backup of development
    for name in ("latest", "backups/db/automated/latest.sql.gz"):
        result = cli("restore", name, "--env=staging", "--force")
        assert result.code == 2, result.text
        assert f"Error: No automatic backup of {staging} in backups/db/automated/ to restore as '{name}'" in (
            result.err
        )
        assert f"Hint: The automatic backups there are of: {dev} (1);" in result.err
        assert "Traceback" not in result.text
    assert notes_of(staging_url) == [(100,)]
    assert len(list((project / "backups" / "db" / "automated").glob("*.json"))) == 1  # no safety backup
    staging_manual = backup(cli, "--env=staging")
    assert (
        cli("restore", str(staging_manual), "--env=staging", "--force").code == 0
    )  # staging's safety backup
    with psycopg.connect(staging_url, autocommit=True) as conn:
        conn.execute("INSERT INTO notes VALUES (101)")
    assert cli("restore", str(manual), "--force").code == 0  # development's newest safety backup
    result = cli("restore", "latest", "--env=staging", "--force", "--json")
    assert result.code == 0, result.text
    restored = Path(json.loads(result.out)["report"]["path"])
    assert json.loads(restored.with_name(restored.name + ".json").read_text())["database"] == staging
    assert notes_of(staging_url) == [(100,)] and notes_of(database_url) == [(1,)]
    # the spec's path: the newest of staging's, which that restore has just taken (100 and 101)
    result = cli("restore", "backups/db/automated/latest.sql.gz", "--env=staging", "--force")
    assert result.code == 0, result.text
    assert notes_of(staging_url) == [(100,), (101,)] and notes_of(database_url) == [(1,)]


def test_restore_latest_without_any_automatic_backup(project: Path, cli: Run, db: psycopg.Connection) -> None:
    result = cli("restore", "latest", "--force")
    assert result.code == 2, result.text
    assert f"No automatic backup of {db.info.dbname} in backups/db/automated/" in result.err
    assert "Hint: There are no automatic backups at all" in result.err


SEQUENCES = """
CREATE TABLE public.tickets (id serial PRIMARY KEY, title text);
INSERT INTO public.tickets (title) SELECT 'ticket ' || g FROM generate_series(1, 30) g;
CREATE SEQUENCE public.counter START 50 INCREMENT 5;
SELECT setval('public.counter', 75);
CREATE TABLE public.numbered (n int DEFAULT nextval('public.counter'), label text);
INSERT INTO public.numbered (label) VALUES ('a'), ('b');
INSERT INTO users (email, password) SELECT 'u' || g || '@x', 'p' FROM generate_series(1, 40) g;
INSERT INTO organizations (name, slug) VALUES ('Acme', 'acme'), ('Beta', 'beta');
INSERT INTO api_keys (organization_id, name, prefix, key_hash)
  SELECT 1, 'key ' || g, 'pre' || g, repeat('a', 64) FROM generate_series(1, 5) g;
"""


@pytest.mark.parametrize(
    "flags",
    [[], ["--compress=none"], ["--format=custom"], ["--format=directory"]],
    ids=["plain-gzip", "plain", "custom", "directory"],
)
def test_in_place_with_identity_serial_and_plain_sequences(
    project: Path, cli: Run, admin_url: str, database_url: str, db: psycopg.Connection, flags: list[str]
) -> None:
    """The sample project (identity columns everywhere), a serial column and a sequence of its own,
    in public: their sequences go with their tables, not on their own."""
    apply_migrations(database_url, project / "migrations")
    db.execute(SEQUENCES)
    schema_before, rows_before = schema_dump(database_url), fingerprint(db)
    path = backup(cli, *flags)
    db.execute(
        "INSERT INTO users (email, password) VALUES ('later@x', 'p'); DELETE FROM public.tickets WHERE id < 10;"
        "SELECT nextval('public.counter'); CREATE TABLE public.later (id int GENERATED ALWAYS AS IDENTITY)"
    )
    result = cli("restore", str(path), "--force", "--in-place")
    assert result.code == 0, result.text
    assert "✓ Restored in place, in one transaction" in result.out
    assert schema_dump(database_url) == schema_before
    assert print_of(database_url) == rows_before
    with psycopg.connect(database_url, autocommit=True) as conn:  # the sequences carry on where they were
        assert conn.execute(
            "INSERT INTO users (email, password) VALUES ('next@x', 'p') RETURNING id"
        ).fetchone() == (41,)
        assert conn.execute(
            "SELECT nextval('public.tickets_id_seq'), nextval('public.counter')"
        ).fetchone() == (
            31,
            90,  # 75, then 80 and 85 for the two rows of numbered
        )
    assert [d for d in side_databases(admin_url, database_url) if "__restore_" in d or "__pre_" in d] == []


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--compress=gzip:12"], "--compress gzip:12: gzip levels are 1 to 9"),
        (["--compress=gzip:0"], "--compress gzip:0: gzip levels are 1 to 9"),
        (["--format=custom", "--compress=gzip:10"], "--compress gzip:10: gzip levels are 1 to 9"),
        (["--format=directory", "--compress=lz4:13"], "--compress lz4:13: lz4 levels are 0 to 12"),
        (["--format=custom", "--compress=zstd:23"], "--compress zstd:23: zstd levels are -131072 to 22"),
        (["--format=custom", "--compress=gzip:"], "expected gzip, lz4 or zstd with an optional :LEVEL"),
        (["--compress=gzip:-1"], "expected gzip, lz4 or zstd with an optional :LEVEL"),
        (["--compress=gzip:²"], "expected gzip, lz4 or zstd with an optional :LEVEL"),
        (["--format=directory", "--jobs=-1"], "--jobs expects a whole number of 1 or more, got '-1'"),
        (["--format=directory", "--jobs=0"], "--jobs expects a whole number of 1 or more, got '0'"),
        (["--format=custom", "--jobs=2"], "--jobs needs --format=directory and a count of 1 or more"),
    ],
)
def test_bad_compression_levels_and_job_counts_are_usage_errors(
    project: Path, cli: Run, db: psycopg.Connection, flags: list[str], message: str
) -> None:
    result = cli("backup", *flags)
    assert result.code == 2, result.text
    assert result.err.splitlines()[0].startswith("Error: ") and message in result.err.splitlines()[0]
    assert result.err.splitlines()[1].startswith("Hint: ") and len(result.err.splitlines()) == 2
    assert "Unexpected error" not in result.err and "pg_dump" not in result.err
    assert not (project / "backups").exists()  # refused before connecting, let alone writing


def test_compression_levels_pg_dump_accepts() -> None:
    from dbops.postgres.tools import parse_compression

    assert parse_compression("gzip:9") == ("gzip", 9) and parse_compression("GZIP:1") == ("gzip", 1)
    assert parse_compression("lz4:0") == ("lz4", 0) and parse_compression("lz4:12") == ("lz4", 12)
    assert parse_compression("zstd:-5") == ("zstd", -5) and parse_compression("zstd:22") == ("zstd", 22)
    assert parse_compression("none") == ("none", None) and parse_compression("zstd") == ("zstd", None)


@contextlib.contextmanager
def restore_running(admin_url: str, database: str) -> Iterator[None]:
    """Another restore of `database`, as far as the lock goes: it holds the restore lock."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(hashtextextended('dbops restore ' || %s, 0))", (database,))
        yield


@pytest.mark.parametrize("in_place", [False, True], ids=["scratch", "in-place"])
def test_a_second_restore_is_refused_before_its_safety_backup(
    project: Path, cli: Run, admin_url: str, database_url: str, db: psycopg.Connection, in_place: bool
) -> None:
    db.execute("CREATE TABLE notes (id int); INSERT INTO notes VALUES (1)")
    path = backup(cli)
    db.execute("INSERT INTO notes VALUES (2)")
    flags = ["--in-place"] if in_place else []
    with restore_running(admin_url, db.info.dbname):
        result = cli("restore", str(path), "--force", *flags)
        assert result.code == 1, result.text
        assert f"Error: Another restore of {db.info.dbname} is running on this server" in result.err
        assert not (project / "backups" / "db" / "automated").exists()  # no safety backup taken
    assert live_marker(database_url) == [(1,), (2,)]
    result = cli("restore", str(path), "--force", "--json", *flags)
    assert result.code == 0, result.text
    steps = [s["name"] for s in json.loads(result.out)["steps"]]
    loads = [] if in_place else ["restore-load"]  # through a scratch database: loaded while backing up
    assert steps == ["connect", "check-backup", "restore-lock", "confirm", *loads, "backup", "restore"]
    assert live_marker(database_url) == [(1,)]
    with psycopg.connect(admin_url, autocommit=True) as conn:  # the lock went with the run
        held = conn.execute(
            "SELECT pg_try_advisory_lock(hashtextextended('dbops restore ' || %s, 0))", (db.info.dbname,)
        ).fetchone()
        assert held == (True,)


def test_backup_list_exits_1_on_a_checksum_mismatch(project: Path, cli: Run, db: psycopg.Connection) -> None:
    db.execute("CREATE TABLE notes (id int)")
    first = backup(cli)
    second = backup(cli)
    result = cli("backup-list")
    assert result.code == 0, result.text
    with open(second, "r+b") as handle:
        handle.seek(100)
        handle.write(b"\x00")
    result = cli("backup-list")
    assert result.code == 1, result.text
    assert re.search(rf"✓ manual .*  {db.info.dbname}  backups/db/{first.name}$", result.out, re.M), (
        result.out
    )
    assert re.search(
        rf"✗ manual .*  {db.info.dbname}  backups/db/{second.name}  checksum: mismatch$", result.out, re.M
    )
    assert result.err.splitlines()[0] == f"Error: 1 backup(s) fail their checksum: backups/db/{second.name}"
    doc = json.loads(cli("backup-list", "--json").out)
    assert doc["exit_code"] == 1 and not doc["ok"] and len(doc["report"]["backups"]) == 2
