"""The runner: steps in order; on failure the undos of completed steps, in reverse order."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from dbops.config.loader import load_config
from dbops.engine.catalog import RULES
from dbops.engine.context import RunContext
from dbops.engine.pipeline import Step, StepOutcome, Undo, run_pipeline
from dbops.errors import DbopsError


class CreateTable:
    """A real step: creates a table; its undo drops it."""

    description = "create a table"
    undo = "drop it"
    policy_action: str | None = None

    def __init__(self, table: str, undo_fails: bool = False) -> None:
        self.name = f"create {table}"
        self.table = table
        self.undo_fails = undo_fails

    def run(self, ctx: RunContext) -> StepOutcome:
        conn = ctx.connection()
        conn.execute(f"CREATE TABLE {self.table} (id int)")

        def drop() -> None:
            if self.undo_fails:
                conn.execute(f"DROP TABLE {self.table}_does_not_exist")
            conn.execute(f"DROP TABLE {self.table}")

        return StepOutcome(undo=Undo(f"drop {self.table}", drop), data=self.table)


class Fail:
    name = "fail"
    description = "a step that fails"
    undo = "none"
    policy_action: str | None = None

    def __init__(self, raise_: Callable[[], None]) -> None:
        self.raise_ = raise_

    def run(self, ctx: RunContext) -> StepOutcome:
        self.raise_()
        return StepOutcome()


def tables(db: psycopg.Connection) -> set[str]:
    rows = db.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {r[0] for r in rows}


@pytest.fixture
def ctx(project: Path) -> RunContext:
    config = load_config(RULES)
    return RunContext(config, config.environment("development"))


def test_steps_run_in_order_and_pass_data(ctx: RunContext, db: psycopg.Connection) -> None:
    result = run_pipeline("p", [CreateTable("a"), CreateTable("b")], ctx)
    assert result.ok and result.exit_code == 0 and result.undos == []
    assert [s.status for s in result.steps] == ["ok", "ok"]
    assert [s.data for s in result.steps] == ["a", "b"]
    assert tables(db) == {"a", "b"}


def test_failure_undoes_completed_steps_in_reverse(ctx: RunContext, db: psycopg.Connection) -> None:
    def boom() -> None:
        raise DbopsError("the third step broke", "fix it")

    result = run_pipeline("p", [CreateTable("a"), CreateTable("b"), Fail(boom), CreateTable("c")], ctx)
    assert [s.status for s in result.steps] == ["ok", "ok", "failed", "not run"]
    assert [(u.step, u.ok) for u in result.undos] == [("create b", True), ("create a", True)]
    assert result.error is not None and result.error.message == "the third step broke"
    assert result.exit_code == 1
    assert tables(db) == set()


def test_a_failing_undo_is_reported_and_the_others_still_run(ctx: RunContext, db: psycopg.Connection) -> None:
    def boom() -> None:
        raise DbopsError("broke")

    result = run_pipeline("p", [CreateTable("a"), CreateTable("b", undo_fails=True), Fail(boom)], ctx)
    assert [(u.step, u.ok) for u in result.undos] == [("create b", False), ("create a", True)]
    failed = result.undos[0].error
    assert failed is not None and "does not exist" in failed.message
    assert result.exit_code == 4
    assert tables(db) == {"b"}


def test_database_and_unexpected_errors_become_dbops_errors(ctx: RunContext, db: psycopg.Connection) -> None:
    def sql_error() -> None:
        ctx.connection().execute("SELECT * FROM no_such_table")

    result = run_pipeline("p", [CreateTable("a"), Fail(sql_error)], ctx)
    assert result.error is not None and 'relation "no_such_table" does not exist' in result.error.message
    assert tables(db) == set()

    def bug() -> None:
        raise ZeroDivisionError("division by zero")

    result = run_pipeline("p", [CreateTable("a"), Fail(bug)], ctx)
    assert (
        result.error is not None
        and result.error.message == "Unexpected error: ZeroDivisionError: division by zero"
    )
    assert "bug in dbops" in result.error.hint
    assert result.exit_code == 1 and tables(db) == set()


def test_interrupt_runs_the_undos_and_exits_130(ctx: RunContext, db: psycopg.Connection) -> None:
    def ctrl_c() -> None:
        signal.raise_signal(signal.SIGINT)

    # as at a terminal: a background job of a non-interactive shell starts with SIGINT ignored
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        result = run_pipeline("p", [CreateTable("a"), Fail(ctrl_c), CreateTable("c")], ctx)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert result.interrupted and result.exit_code == 130
    assert [s.status for s in result.steps] == ["ok", "interrupted", "not run"]
    assert [u.ok for u in result.undos] == [True]
    assert tables(db) == set()


def test_sigterm_at_the_boundary_undoes_and_exits_130(
    project: Path, db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A CI job cancelled mid-operation: SIGTERM is handled as Ctrl-C."""
    import os

    from dbops.boundary import run_operation
    from dbops.engine import catalog
    from dbops.engine.options import NoOptions, Safety

    def terminated() -> None:
        os.kill(os.getpid(), signal.SIGTERM)

    def build(options: NoOptions) -> list[Step]:
        return [CreateTable("a"), Fail(terminated), CreateTable("c")]

    operation = catalog.Operation("cancel-me", NoOptions, build, "none", connects=False)
    monkeypatch.setitem(catalog.OPERATIONS, "cancel-me", operation)
    previous = signal.getsignal(signal.SIGTERM)
    assert run_operation("cancel-me", NoOptions, safety=Safety()) == 130
    assert signal.getsignal(signal.SIGTERM) is previous
    assert tables(db) == set()
    err = capsys.readouterr().err
    assert "Error: Interrupted" in err and "undone" in err
