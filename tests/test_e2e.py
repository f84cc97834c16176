"""End to end: the installed commands in a subprocess, on a fresh copy of the sample project."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import REPO, dbops_bin
from dbops.postgres.embedded import EmbeddedServer


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("sample")
    for name in ("dbops.yaml", "tasks.py"):
        shutil.copy(REPO / name, folder / name)
    for name in ("migrations", "seeds"):
        shutil.copytree(REPO / name, folder / name)
    yield folder
    EmbeddedServer(folder / ".dbops" / "pg").stop()


def run(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DBOPS_ENV", "DBOPS_CONFIG")}
    env.pop("TF_BUILD", None)
    env.pop("GITHUB_ACTIONS", None)
    env["PATH"] = f"{Path(dbops_bin()).parent}{os.pathsep}{env.get('PATH', '')}"  # as in an activated venv
    program = args[0] if args[0] != "dbops" else dbops_bin()
    if program == "invoke":
        program = str(Path(dbops_bin()).with_name("invoke"))
    return subprocess.run(
        [program, *args[1:]],
        cwd=folder,
        env=env,
        stdin=subprocess.DEVNULL,  # no terminal, as in CI
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_status_of_the_sample_project(sample: Path) -> None:
    result = run(sample, "dbops", "status")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Database: exfabrica_af_dev" in result.stdout
    assert "Host: embedded (" in result.stdout
    assert "  Pending: 7" in result.stdout
    doc = json.loads(run(sample, "dbops", "status", "--json").stdout)
    assert doc["ok"] and doc["report"]["migrations"]["pending"] == 7
    via_invoke = run(sample, "invoke", "db.status", "--env=test")
    assert via_invoke.returncode == 0, via_invoke.stderr
    assert "Database: exfabrica_af_test" in via_invoke.stdout


def test_the_readme_main_job(sample: Path) -> None:
    """invoke db.migrate && invoke db.status, as the README's first command runs them."""
    migrated = run(sample, "invoke", "db.migrate")
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert (
        migrated.stdout.count("✓ 2025") == 7 and "All migrations completed successfully!" in migrated.stdout
    )
    status = run(sample, "invoke", "db.status")
    assert status.returncode == 0
    assert "  Applied: 7" in status.stdout and "  Tables: 7" in status.stdout
    assert "Health: ✓ All checks passed" in status.stdout


def test_every_task_and_flag_is_described(sample: Path) -> None:
    listing = run(sample, "invoke", "--list").stdout
    tasks = (
        "status",
        "server",
        "migrate",
        "migrate-create",
        "migrate-rollback",
        "migrate-baseline",
        "migrate-repair",
        "reset",
        "run",
        "fresh",
        "deploy",
        "test-setup",
    )
    for task in tasks:
        assert f"db.{task} " in listing
        assert f"  {task} " in run(sample, "dbops", "--list").stdout
    assert re.search(r"db\.fresh +Development workflow: reset the database", listing), listing
    for task in ("status", "server", "migrate", "migrate-rollback", "migrate-repair", "reset", "deploy"):
        help_text = run(sample, "dbops", task, "--help").stdout
        for line in help_text.split("Options:")[1].strip().splitlines():
            if line.strip().startswith("-"):
                assert len(line.split("   ")) > 1 and line.split("   ")[-1].strip(), line


def test_malformed_config_is_one_line_without_traceback(sample: Path, tmp_path: Path) -> None:
    (tmp_path / "dbops.yaml").write_text("environments:\n  development:\n    url: 'unclosed\n")
    result = run(tmp_path, "dbops", "status")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("Error: dbops.yaml:")
    assert len(result.stderr.strip().splitlines()) == 2


@pytest.mark.parametrize(
    "args",
    [
        ("dbops", "migrate-rollback", "--steps", "abc"),
        ("invoke", "db.migrate-rollback", "--steps=0"),
        ("dbops", "backup", "--format=directory", "--jobs", "x"),
        ("dbops", "restore", "latest", "--jobs=-1"),
        ("dbops", "backup", "--format=directory", "--jobs=\u00b2"),  # '²'.isdigit() is True
        ("invoke", "db.backup", "--format=directory", "--jobs=\u00b2"),
        ("invoke", "db.restore", "latest", "--jobs=\u0663"),  # an Arabic-Indic 3: int() takes it
        ("dbops", "migrate-rollback", "--steps=\u00b9"),
        ("invoke", "db.migrate-rollback", "--steps", "\u00b2"),
    ],
)
def test_a_bad_number_is_a_usage_error_in_both_commands(sample: Path, args: tuple[str, ...]) -> None:
    result = run(sample, *args)
    assert result.returncode == 2, result.stderr
    flag = "--steps" if "rollback" in args[1] else "--jobs"
    assert result.stderr.splitlines() == [
        f"Error: {flag} expects a whole number of 1 or more, got {args[-1].split('=')[-1]!r}",
        f"Hint: e.g. {flag}=2",
    ]


def test_a_listing_says_why_the_pipelines_are_missing(tmp_path: Path) -> None:
    (tmp_path / "dbops.yaml").write_text("environments:\n  development: {}\npipelines:\n  x: [sed]\n")
    result = run(tmp_path, "dbops", "--list")
    assert result.returncode == 0 and "  status " in result.stdout
    assert result.stderr.splitlines() == [
        "Warning: dbops.yaml does not load, so its pipelines are not listed: dbops.yaml:4: pipelines.x.0:"
        " unknown step 'sed' (did you mean 'seed'?)"
    ]


def test_server_stops(sample: Path) -> None:
    started = run(sample, "dbops", "server", "--start")  # so the test also stands alone
    assert started.returncode == 0, started.stdout + started.stderr
    assert EmbeddedServer(sample / ".dbops" / "pg").state().running
    result = run(sample, "dbops", "server", "--stop")
    assert result.returncode == 0 and "Stopped" in result.stdout
    assert not EmbeddedServer(sample / ".dbops" / "pg").state().running


def readme_block(after: str) -> list[str]:
    """The lines of the README's console block that follow the line `after`."""
    text = (REPO / "README.md").read_text()
    start = text.index(after + "\n") + len(after) + 1
    return text[start : text.index("```", start)].splitlines()


def test_the_readme_pipelines_and_the_makefile(sample: Path) -> None:
    plan = run(sample, "dbops", "fresh", "--dry-run")
    assert plan.returncode == 0, plan.stderr
    assert plan.stdout.splitlines() == readme_block("$ dbops fresh --dry-run")
    refused = run(sample, "dbops", "reset")
    assert refused.returncode == 3
    assert refused.stderr.splitlines() == [
        "Error: Reset on development (exfabrica_af_dev) needs confirmation: no terminal to ask on",
        "Hint: Run it on a terminal, or pass --force if you mean it",
    ]
    fresh = run(sample, "invoke", "db.fresh", "--force")
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    assert "Pipeline fresh completed successfully!" in fresh.stdout
    assert "✓ Users: 10 records created" in fresh.stdout
    deploy = run(sample, "dbops", "deploy")
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    assert "✓ Backup created successfully" in deploy.stdout
    assert "✓ All models validated successfully" in deploy.stdout
    make = run(sample, "make", "-f", str(REPO / "examples" / "Makefile"), "test")
    assert make.returncode == 0, make.stdout + make.stderr
    assert "Pipeline test-setup completed successfully!" in make.stdout
    validated = make.stdout.split("🔍 Schema Validation", 1)[-1]  # then the tests, on the database prepared
    assert "Database: exfabrica_af_test" in validated and "✓ All models validated successfully" in validated
    plan = run(
        sample, "make", "-f", str(REPO / "examples" / "Makefile"), "deploy-plan"
    )  # no DATABASE_URL here
    assert plan.returncode != 0 and "🧭 Pipeline Plan: deploy (dry run: nothing is changed)" in plan.stdout
    assert "variable DATABASE_URL is not set" in plan.stderr  # as the deployment itself would say


TASKS = (
    "status",
    "server",
    "migrate",
    "migrate-rollback",
    "migrate-create",
    "migrate-baseline",
    "migrate-repair",
    "seed",
    "backup",
    "restore",
    "backup-list",
    "backup-cleanup",
    "validate",
    "lint",
    "reset",
    "run",
    "fresh",
)


def test_every_task_gives_its_full_help_under_both_programs(sample: Path) -> None:
    """`dbops TASK --help` and `invoke db.TASK --help` print the task's flags, also for the tasks
    whose positional argument Invoke would hand the flag to (restore FILE, migrate-create NAME)."""
    for task in TASKS:
        for program, name in (("dbops", task), ("invoke", f"db.{task}")):
            done = run(sample, program, name, "--help")
            assert done.returncode == 0, (program, task, done.stderr)
            shown = "inv[oke]" if program == "invoke" else program  # as Invoke's own help says it
            assert done.stdout.startswith(f"Usage: {shown} [--core-opts] {name} "), done.stdout
            assert "--env=STRING" in done.stdout or task == "migrate-create", (program, task)
            assert "--json" in done.stdout and done.stderr == "", (program, task, done.stderr)
    restore_help = " ".join(run(sample, "invoke", "db.restore", "-h").stdout.split())
    assert "--in-place Restore into the existing database in one transaction" in restore_help


def test_dbops_help_lists_only_the_core_options_that_mean_something(sample: Path) -> None:
    text = run(sample, "dbops", "--help").stdout
    core = text.split("Subcommands:")[0]
    for useless in (
        "--hide",
        "--echo",
        "--pty",
        "--dry",
        "--warn-only",
        "--prompt-for-sudo-password",
        "--command-timeout",
        "--write-pyc",
        "--config",
        "--debug",
    ):
        assert useless not in core, useless
    for kept in ("--help", "--list", "--version", "--list-format"):
        assert kept in core, kept
    assert "  restore " in text
