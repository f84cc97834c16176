"""dbops --help, --list and --version skip Invoke's parser: the same output, and on their path
only argument parsing and the cached task index (no configuration, engine or step module)."""

from __future__ import annotations

import os
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
