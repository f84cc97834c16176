"""dbops's pytest plugin, used the way a project uses it: a sample project (this repository's
migrations and seeds, and a dbops.yaml) whose own tests take the fixtures, run by pytester.

Each test's project names a database of its own on the test server, so its template
(<database>__dbops_template) is its own; it is dropped afterwards. A Python seed appends a line
to builds.txt each time it runs: the number of lines is the number of template builds.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from conftest import PLUGIN_ARGS, REPO, url_for

COUNTER_SEED = """\
from pathlib import Path


def seed(db):
    with open({path!r}, "a") as out:
        out.write("built\\n")
"""

ISOLATION = """\
import json, os
from pathlib import Path

def note(kind, name):
    with open("seen.jsonl", "a") as out:
        out.write(json.dumps({"kind": kind, "name": name, "worker": os.environ.get("PYTEST_XDIST_WORKER", "main")}) + "\\n")

def test_write_in_a_clone(dbops_database, dbops_connection):
    note("database", dbops_database.name)
    assert dbops_connection.execute("SELECT count(*) FROM users").fetchone() == (10,)
    dbops_connection.execute("DELETE FROM api_keys")
    dbops_connection.commit()

def test_the_next_clone_has_not_seen_it(dbops_database, dbops_connection):
    note("database", dbops_database.name)
    assert dbops_connection.execute("SELECT count(*) FROM api_keys").fetchone() == (5,)
    dbops_connection.execute("DELETE FROM api_keys")
    dbops_connection.commit()

def test_write_in_a_transaction(dbops_transaction):
    note("transaction", dbops_transaction.info.dbname)
    with dbops_transaction.transaction():  # a savepoint
        dbops_transaction.execute("DELETE FROM api_keys")
    assert dbops_transaction.execute("SELECT count(*) FROM api_keys").fetchone() == (0,)

def test_the_next_transaction_has_not_seen_it(dbops_transaction):
    note("transaction", dbops_transaction.info.dbname)
    assert dbops_transaction.execute("SELECT count(*) FROM api_keys").fetchone() == (5,)
"""


class Sample:
    def __init__(self, pytester: pytest.Pytester, admin_url: str, database: str | None) -> None:
        self.pytester = pytester
        self.admin_url = admin_url
        self.path = pytester.path
        self.database = database
        shutil.copytree(REPO / "migrations", self.path / "migrations")
        shutil.copytree(REPO / "seeds", self.path / "seeds", ignore=shutil.ignore_patterns("development"))
        self.counter = self.path / "builds.txt"
        (self.path / "seeds" / "99_counter.py").write_text(COUNTER_SEED.format(path=str(self.counter)))
        env = f'    url: "{url_for(admin_url, database)}"\n' if database else "    embedded: true\n"
        (self.path / "dbops.yaml").write_text(f"project: sample\nenvironments:\n  test:\n{env}")

    @property
    def builds(self) -> int:
        return len(self.counter.read_text().splitlines()) if self.counter.exists() else 0

    def run(self, *args: str) -> pytest.RunResult:
        return self.pytester.runpytest_subprocess(*PLUGIN_ARGS, "-p", "no:cacheprovider", *args)

    def databases(self) -> list[str]:
        """The databases of this project on the server: its template and clones."""
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT datname FROM pg_database WHERE starts_with(datname, %s) ORDER BY 1",
                (f"{self.database}__",),
            ).fetchall()
        return [row[0] for row in rows]


@pytest.fixture
def sample(pytester: pytest.Pytester, admin_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sample]:
    for name in ("DBOPS_ENV", "DBOPS_CONFIG", "DATABASE_URL", "PYTEST_ADDOPTS"):
        monkeypatch.delenv(name, raising=False)
    project = Sample(pytester, admin_url, f"dbops_p_{uuid.uuid4().hex[:10]}")
    yield project
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for name in project.databases():
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def seen(project: Sample) -> list[dict[str, str]]:
    import json

    return [json.loads(line) for line in (project.path / "seen.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("ahead", [None, "3"], ids=["default", "3-ahead"])
def test_each_test_gets_its_own_clone_and_transactions_roll_back(sample: Sample, ahead: str | None) -> None:
    if ahead is not None:
        sample.pytester.makeini(f"[pytest]\ndbops_clones_ahead = {ahead}\n")
    sample.pytester.makepyfile(test_app=ISOLATION)
    result = sample.run("-v")
    result.assert_outcomes(passed=4)
    notes = seen(sample)
    clones = [n["name"] for n in notes if n["kind"] == "database"]
    shared = {n["name"] for n in notes if n["kind"] == "transaction"}
    assert len(set(clones)) == 2 and len(shared) == 1 and not shared & set(clones)
    assert sample.builds == 1
    assert sample.databases() == [f"{sample.database}__dbops_template"]  # every clone was dropped


def test_the_template_is_rebuilt_when_a_migration_changes_and_only_then(sample: Sample) -> None:
    sample.pytester.makepyfile(
        test_app="""\
def test_tables(dbops_connection):
    rows = dbops_connection.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    with open("tables.txt", "w") as out:
        out.write(" ".join(sorted(r[0] for r in rows)))
"""
    )
    sample.run().assert_outcomes(passed=1)
    assert sample.builds == 1
    sample.run().assert_outcomes(passed=1)
    assert sample.builds == 1  # unchanged files: the template is reused
    assert "approvals" not in (sample.path / "tables.txt").read_text().split()

    (sample.path / "migrations" / "20251002000000_add_approvals.sql").write_text(
        "-- depends: 20251001090600_add_workflow_permissions\nCREATE TABLE approvals (id int);\n"
    )
    sample.run().assert_outcomes(passed=1)
    assert sample.builds == 2
    assert "approvals" in (sample.path / "tables.txt").read_text().split()
    sample.run().assert_outcomes(passed=1)
    assert sample.builds == 2

    sample.run("--dbops-rebuild").assert_outcomes(passed=1)
    assert sample.builds == 3


def test_xdist_workers_share_one_template_and_make_their_own_clones(sample: Sample) -> None:
    tests = "".join(
        f"""
def test_{i}(dbops_database, dbops_transaction):
    note("database", dbops_database.name)
    note("transaction", dbops_transaction.info.dbname)
    time.sleep(0.05)
"""
        for i in range(12)
    )
    sample.pytester.makepyfile(test_app=ISOLATION.split("\ndef test_")[0] + "\nimport time\n" + tests)
    result = sample.run("-n", "2", "--dbops-rebuild")
    result.assert_outcomes(passed=12)
    assert sample.builds == 1  # --dbops-rebuild rebuilds once per run, not once per worker
    notes = seen(sample)
    assert {n["worker"] for n in notes} == {"gw0", "gw1"}
    clones = [n["name"] for n in notes if n["kind"] == "database"]
    assert len(set(clones)) == 12
    shared = {(n["worker"], n["name"]) for n in notes if n["kind"] == "transaction"}
    assert len(shared) == 2 and len({name for _, name in shared}) == 2  # one per worker
    assert sample.databases() == [f"{sample.database}__dbops_template"]


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_a_broken_migration_fails_the_session_with_one_line(sample: Sample, workers: list[str]) -> None:
    (sample.path / "migrations" / "20251002000000_broken.sql").write_text(
        "-- depends: 20251001090600_add_workflow_permissions\nCREATE TABLE t (id int);\nALTER TABLE nowhere ADD x int;\n"
    )
    sample.pytester.makepyfile(
        test_app="".join(f"def test_{i}(dbops_connection):\n    pass\n\n" for i in range(6))
        + "def test_without_a_database():\n    pass\n"
    )
    result = sample.run(*workers)
    assert result.ret != 0
    text = result.stdout.str() + result.stderr.str()
    errors = [line for line in text.splitlines() if line.startswith("Error:")]
    assert errors == [
        'Error: Migration 20251002000000_broken.sql failed at line 3: relation "nowhere" does not exist'
    ], text
    assert "Hint: Nothing of it was applied. Fix 20251002000000_broken.sql" in text
    assert "Traceback" not in text and "dbops/testing" not in text, text
    assert "the test template could not be built" in text
    assert result.parseoutcomes().get("passed", 0) <= 1  # the session stopped


def test_the_embedded_server_needs_no_setup(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("DBOPS_ENV", "DBOPS_CONFIG", "DATABASE_URL", "PYTEST_ADDOPTS"):
        monkeypatch.delenv(name, raising=False)
    project = Sample(pytester, "", None)
    pytester.makepyfile(test_app=ISOLATION)
    try:
        project.run().assert_outcomes(passed=4)
    finally:
        from dbops.postgres.embedded import EmbeddedServer

        EmbeddedServer(project.path / ".dbops" / "pg").stop()
    assert project.builds == 1


def test_a_role_without_createdb_is_told_how_and_the_hint_works(sample: Sample) -> None:
    assert sample.database is not None
    role = f"{sample.database}_role"
    with psycopg.connect(sample.admin_url, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN NOCREATEDB")
    try:
        url = url_for(sample.admin_url, sample.database).replace("postgres@", f"{role}@", 1)
        (sample.path / "dbops.yaml").write_text(
            f'project: sample\nenvironments:\n  test:\n    url: "{url}"\n'
        )
        sample.pytester.makepyfile(test_app=ISOLATION)
        result = sample.run()
        text = result.stdout.str() + result.stderr.str()
        template = f"{sample.database}__dbops_template"
        errors = [line for line in text.splitlines() if line.startswith(("Error:", "Hint:"))]
        assert errors[0].startswith(f"Error: Cannot create the test template {template} at ") and errors[
            0
        ].endswith(": permission denied"), text
        assert f"grant CREATEDB (ALTER ROLE {role} CREATEDB)" in errors[1]
        assert result.ret != 0 and "Traceback" not in text

        with psycopg.connect(sample.admin_url, autocommit=True) as admin:
            admin.execute(f"ALTER ROLE {role} CREATEDB")  # as the hint says
        sample.run().assert_outcomes(passed=4)
    finally:
        with psycopg.connect(sample.admin_url, autocommit=True) as admin:
            for name in sample.databases():
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f"DROP ROLE {role}")


WAITING = """\
import time
from pathlib import Path

def test_holds_its_clone(dbops_database):
    with open("clones-{label}.txt", "a") as out:
        out.write(dbops_database.name + "\\n")
    while not Path("release-{label}").exists():
        time.sleep(0.05)
"""


class Background:
    """A pytest run of the sample in a child process, its one test waiting (its clone held)
    until released: `label` names its files."""

    def __init__(self, sample: Sample, label: str) -> None:
        self.sample = sample
        self.label = label
        (sample.path / f"test_{label}.py").write_text(WAITING.format(label=label))
        # a background job of a non-interactive shell starts with SIGINT ignored: set it
        start = "import signal, sys, pytest; signal.signal(signal.SIGINT, signal.default_int_handler); "
        args = [*PLUGIN_ARGS, "-p", "no:cacheprovider", "-q", f"test_{label}.py"]
        self.child = subprocess.Popen(
            [sys.executable, "-c", start + f"sys.exit(pytest.main({args!r}))"],
            cwd=sample.path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def clone(self) -> str:
        """The clone its test holds, once it has it."""
        path = self.sample.path / f"clones-{self.label}.txt"
        deadline = time.monotonic() + 120
        while not path.exists() or not path.read_text().endswith("\n"):
            assert self.child.poll() is None, self.child.communicate()[0]
            assert time.monotonic() < deadline
            time.sleep(0.05)
        return path.read_text().split()[0]

    def release(self) -> str:
        (self.sample.path / f"release-{self.label}").touch()
        return self.child.communicate(timeout=120)[0]


def token_of(sample: Sample, clone: str) -> str:
    prefix = f"{sample.database}__dbops_t_"
    assert clone.startswith(prefix), clone
    return clone[len(prefix) :][:8]


def lock_is_free(sample: Sample, clone: str, wait: float) -> bool:
    """Whether the advisory lock of the clone's process can be taken (within `wait` seconds)."""
    owner = f"{sample.database}__dbops_t_{token_of(sample, clone)}"
    deadline = time.monotonic() + wait
    with psycopg.connect(sample.admin_url, autocommit=True) as conn:
        while True:
            row = conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (owner,)).fetchone()
            if row and row[0]:
                conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (owner,))
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)


def test_a_killed_runs_clones_are_dropped_by_the_next_run_and_a_live_runs_kept(sample: Sample) -> None:
    sample.pytester.makepyfile(test_app="def test_one(dbops_database):\n    pass\n")
    sample.run("test_app.py").assert_outcomes(passed=1)  # the template, built once
    live = Background(sample, "live")
    killed = Background(sample, "killed")
    try:
        live_clone, killed_clone = live.clone(), killed.clone()
        killed.child.send_signal(signal.SIGKILL)
        killed.child.wait()
        killed_left = [n for n in sample.databases() if "__dbops_t_" + token_of(sample, killed_clone) in n]
        assert killed_clone in killed_left  # what a killed run leaves (and the ones it made ahead)
        assert lock_is_free(sample, killed_clone, wait=10)
        assert not lock_is_free(sample, live_clone, wait=0)
        live_made = {n for n in sample.databases() if "__dbops_t_" + token_of(sample, live_clone) in n}

        sample.run("test_app.py").assert_outcomes(passed=1)  # the next run: it ensures the template
        left = sample.databases()
        assert not [n for n in left if "__dbops_t_" + token_of(sample, killed_clone) in n], left
        assert live_clone in live_made and live_made <= set(left)  # the live run's, in use or made ahead
    finally:
        if killed.child.poll() is None:
            killed.child.kill()
        output = live.release()
    assert "1 passed" in output, output
    assert sample.databases() == [f"{sample.database}__dbops_template"]  # the live run dropped its own


def test_ctrl_c_drops_every_clone(sample: Sample) -> None:
    run = Background(sample, "interrupted")
    clone = run.clone()
    assert clone in sample.databases()
    run.child.send_signal(signal.SIGINT)
    output = run.child.communicate(timeout=120)[0]
    assert "KeyboardInterrupt" in output and run.child.returncode != 0, output
    assert sample.databases() == [f"{sample.database}__dbops_template"], output


def test_a_clone_that_cannot_be_made_fails_its_test_in_one_line_and_the_next_gets_one(sample: Sample) -> None:
    sample.pytester.makeini("[pytest]\ndbops_clones_ahead = 0\n")  # each clone made when asked for
    sample.pytester.makepyfile(
        test_app="""\
import psycopg

held = []

def test_holds_the_template_open(dbops_template):
    # CREATE DATABASE ... TEMPLATE needs nobody connected to the template
    held.append(psycopg.connect(**dbops_template.target.params))

def test_cannot_have_a_clone(dbops_database):
    pass

def test_gets_one_once_it_is_closed(dbops_template, request):
    held.pop().close()
    request.getfixturevalue("dbops_database")
"""
    )
    result = sample.run("-v")
    result.assert_outcomes(passed=2, errors=1)
    text = result.stdout.str() + result.stderr.str()
    errors = [line for line in text.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and errors[0].startswith("Error: Could not create the test database "), text
    assert f"a clone of {sample.database}__dbops_template" in errors[0]
    assert "is being accessed by other users" in errors[0], text
    assert "Traceback" not in text and "dbops/testing" not in text, text
    assert sample.databases() == [f"{sample.database}__dbops_template"]


def test_a_clone_that_cannot_be_dropped_fails_the_next_test_in_one_line(sample: Sample) -> None:
    sample.pytester.makepyfile(
        test_app="""\
import time

def test_makes_its_clone_undroppable(dbops_database, dbops_connection):
    dbops_connection.execute(f'ALTER DATABASE "{dbops_database.name}" IS_TEMPLATE true')  # DROP refuses it
    dbops_connection.commit()
    with open("undroppable.txt", "w") as out:
        out.write(dbops_database.name)

def test_meanwhile_its_drop_fails():
    time.sleep(1)

def test_is_told(dbops_database):
    pass

def test_and_the_next_one_gets_a_clone(dbops_database):
    pass
"""
    )
    result = sample.run("-v")
    undroppable = (sample.path / "undroppable.txt").read_text()
    with psycopg.connect(sample.admin_url, autocommit=True) as conn:  # for the fixture to drop it
        conn.execute(f'ALTER DATABASE "{undroppable}" IS_TEMPLATE false')
    result.assert_outcomes(passed=3, errors=1)
    text = result.stdout.str() + result.stderr.str()
    assert "test_is_told ERROR" in text, text
    errors = [line for line in text.splitlines() if line.startswith("Error:")]
    assert errors == [
        f"Error: Could not drop the test database {undroppable} (a previous test's):"
        " cannot drop a template database"
    ], text
    assert "Traceback" not in text and "dbops/testing" not in text, text
    assert set(sample.databases()) == {f"{sample.database}__dbops_template", undroppable}


def test_a_bad_clones_ahead_value_stops_the_run_before_any_test(sample: Sample) -> None:
    sample.pytester.makeini("[pytest]\ndbops_clones_ahead = many\n")
    sample.pytester.makepyfile(test_app="def test_one(dbops_database):\n    pass\n")
    result = sample.run()
    text = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR, text
    assert "dbops_clones_ahead: not a number: 'many' (how many clones to make ahead, e.g. 3)" in text
    assert "Traceback" not in text and sample.builds == 0
