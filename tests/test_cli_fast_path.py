"""dbops --help, --list and --version skip Invoke's parser: the same output, and on their path
only argument parsing and the cached task index (no configuration, engine or step module).
A run on one database (validate, status, migrate) imports only what it runs: not the fleet's
machinery, not pg_dump's side, not what a pipeline, a plan or a confirmation needs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import dbops_bin

SRC = Path(__file__).resolve().parent.parent / "src"
# What the three may import of dbops: the command line and the task index's few helpers.
ALLOWED = {
    "dbops",
    "dbops.cli",
    "dbops.cli.program",
    "dbops.cli.help",
    "dbops.cli.tasks",
    "dbops.cli.task_index",
    "dbops.cli.pipes",
    "dbops.atomic",
    "dbops.errors",
    "dbops.config",
    "dbops.config.locate",
}


def env() -> dict[str, str]:
    kept = {k: v for k, v in os.environ.items() if not k.startswith("DBOPS_")}
    return {**kept, "PYTHONPATH": str(SRC)}


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env(), capture_output=True, text=True, check=False)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "dbops.yaml").write_text(
        "environments:\n  development:\n    url: postgresql://postgres@127.0.0.1/x\n"
        "pipelines:\n  nightly:\n    description: Back up, then migrate\n    steps: [backup, migrate]\n"
    )
    return tmp_path


@pytest.mark.parametrize("flag", ["--help", "-h", "--list", "-l", "--version", "-V"])
def test_the_fast_path_prints_what_invoke_prints(project: Path, flag: str) -> None:
    fast = run([dbops_bin(), flag], project)
    # --list-format=flat changes nothing here, but takes the command line through Invoke's parser
    parsed = run([dbops_bin(), flag, "--list-format=flat"], project)
    assert (fast.returncode, fast.stderr) == (0, "")
    assert (fast.stdout, fast.returncode) == (parsed.stdout, parsed.returncode)
    if flag in ("--list", "-l"):
        assert "nightly" in fast.stdout and "migrate-rollback" in fast.stdout
    if flag in ("--version", "-V"):
        assert fast.stdout.startswith("dbops ")


@pytest.mark.parametrize("flag", ["--help", "--list", "--version"])
def test_only_parsing_and_the_task_index_are_imported(project: Path, flag: str) -> None:
    script = (
        "import sys\n"
        f"sys.argv = ['dbops', {flag!r}]\n"
        "from dbops.cli.program import main\n"
        "main()\n"
        "print(' '.join(sorted(m for m in sys.modules if m == 'dbops' or m.startswith('dbops.'))),"
        " file=sys.stderr)\n"
    )
    run([sys.executable, "-c", script], project)  # the first run writes the task index
    done = run([sys.executable, "-c", script], project)
    assert done.returncode == 0, done.stderr
    loaded = set(done.stderr.split())
    assert "dbops.cli.program" in loaded
    assert loaded <= ALLOWED, sorted(loaded - ALLOWED)


# What a run on one database never needs (with nothing pending, nothing to confirm, no --check).
NOT_ON_ONE_DATABASE = {
    "dbops.fleet.operation",
    "dbops.fleet.runner",
    "dbops.fleet.live",
    "dbops.fleet.rollout",
    "dbops.fleet.targets",
    "dbops.output.reports.fleet",
    "dbops.output.reports.pipeline",
    "dbops.steps.plan",
    "dbops.steps.confirm",
    "dbops.output.prompt",
    "dbops.postgres.tools",
    "dbops.backups.store",
}
NOT_FOR = {
    "validate": {"dbops.migrations.lint", "dbops.migrations.migrator"},  # nothing pending: no lint
    "status": {"dbops.steps.gate", "dbops.migrations.lint", "dbops.schema.compare"},
    "migrate": {"dbops.migrations.lint", "dbops.schema.snapshot"},
}


def loaded_by(command: str, cwd: Path) -> set[str]:
    """The dbops modules `dbops COMMAND` has imported when it ends (it must succeed)."""
    script = (
        "import sys\n"
        f"sys.argv = ['dbops', {command!r}]\n"
        "from dbops.cli.program import main\n"
        "try:\n"
        "    main()\n"
        "finally:\n"
        "    print('MODULES', *sorted(m for m in sys.modules if m.startswith('dbops')), file=sys.stderr)\n"
    )
    done = run([sys.executable, "-c", script], cwd)
    assert done.returncode == 0, done.stdout + done.stderr
    return set(done.stderr.rpartition("MODULES")[2].split())


@pytest.fixture
def sample(tmp_path: Path, database_url: str) -> Path:
    """The sample's migrations, applied to a database of this test's own (conftest)."""
    shutil.copytree(SRC.parent / "migrations", tmp_path / "migrations")
    (tmp_path / "dbops.yaml").write_text(f'environments:\n  development:\n    url: "{database_url}"\n')
    migrated = run([dbops_bin(), "migrate"], tmp_path)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    return tmp_path


@pytest.mark.parametrize("command", ["validate", "status", "migrate"])
def test_a_run_on_one_database_imports_only_what_it_runs(sample: Path, command: str) -> None:
    loaded = loaded_by(command, sample)
    assert f"dbops.steps.{'inspect' if command == 'status' else command}" in loaded  # it did run
    assert not loaded & (NOT_ON_ONE_DATABASE | NOT_FOR[command]), sorted(
        loaded & (NOT_ON_ONE_DATABASE | NOT_FOR[command])
    )
