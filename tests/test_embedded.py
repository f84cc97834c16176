"""The embedded PostgreSQL: created on demand, reused, stopped, and robust to kills and races."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Run, dbops_bin, write_config
from dbops.server import EmbeddedServer


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
    child = subprocess.Popen(
        [dbops_bin(), "server", "--start"],
        cwd=local,
        env=env_without_ci(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.3)
    child.send_signal(signal.SIGKILL)
    child.wait()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    done = subprocess.run(
        [dbops_bin(), "status"], cwd=local, env=env_without_ci(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Connection: ✓ Connected" in done.stdout


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
        for _ in range(3)
    ]
    outputs = [child.communicate(timeout=120) for child in children]
    for child, (out, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, out + err
        assert json.loads(out)["report"]["connection"]["database"] == "app_dev"
    pids = {json.loads(out)["report"]["connection"]["location"] for out, _ in outputs}
    assert len(pids) == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="runs as root to switch to an ordinary user")
def test_works_as_an_ordinary_user(tmp_path: Path) -> None:
    """The same embedded server, run by a user who is not root (nobody), in a forked child."""
    import pwd
    import shutil

    import psycopg

    from dbops.server import _grant_traverse, bin_dir

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
