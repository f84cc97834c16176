"""Live output: each line of a report appears as the run gets there, on a terminal (with a
spinner that names what runs) and in plain output alike; --json stays one document at the end.

A real dbops child on a pseudo-terminal (or a pipe), read as it writes. Migration 2 waits for
an advisory lock the test holds: the test sees migration 1's line while migration 2 is still
waiting on the server (pg_locks says so), then lets it go. Cause and effect, no timings.
"""

from __future__ import annotations

import io
import json
import os
import re
import select
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from conftest import Run, dbops_bin
from dbops.output.render import Line, OperationResult, Output

GATE = 727274  # the advisory lock migration 2 waits for
FIRST = "20251001090000_create_users.sql"
SECOND = "20251001090100_create_organizations.sql"
_TOKENS = re.compile(r"\x1b\[([0-9;?]*)([A-Za-z])|([\r\n])|([^\x1b\r\n]+)")


def screen(raw: bytes) -> str:
    """What a terminal shows once `raw` is written to it: the lines a live view erased (its
    spinner) are gone, colours are left out."""
    lines: list[str] = []
    current: list[str] = []
    column = 0
    for match in _TOKENS.finditer(raw.decode(errors="replace")):
        argument, command, control, text = match.groups()
        if text:
            current[column : column + len(text)] = list(text)
            column += len(text)
        elif control == "\r":
            column = 0
        elif control == "\n":
            lines.append("".join(current))
            current, column = [], 0
        elif command == "K" and argument == "2":  # erase the line
            current = []
        elif command == "A":  # the cursor up
            for _ in range(int(argument or 1)):
                current, column = list(lines.pop() if lines else ""), 0
    return "\n".join([*lines, "".join(current)])


class Child:
    """dbops ARGS in `project`, its stdout (and stderr) read as they come: on a pseudo-terminal
    (stdin too), or on a pipe."""

    def __init__(self, project: Path, args: list[str], *, terminal: bool, colour: bool = True) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DBOPS_", "NO_COLOR"))}
        env.update(COLUMNS="200", TERM="xterm-256color")
        if not colour:
            env["NO_COLOR"] = "1"
        if terminal:
            self.fd, child = os.openpty()
        else:
            self.fd, child = os.pipe()
        stdin = child if terminal else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [dbops_bin(), *args],
            cwd=project,
            env=env,
            close_fds=True,
            stdin=stdin,
            stdout=child,
            stderr=child,
        )
        os.close(child)
        self.raw = b""
        self.closed = False

    @property
    def text(self) -> str:
        return screen(self.raw)

    def read_until(self, done: Callable[[str], bool], deadline_s: float = 60) -> str:
        """Read until done(text so far) holds, or the child closes its end (then it must hold)."""
        deadline = time.monotonic() + deadline_s
        while not done(self.text) and not self.closed and time.monotonic() < deadline:
            ready, _, _ = select.select([self.fd], [], [], 0.2)
            if not ready:
                continue
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:  # EIO: the terminal's other side closed
                chunk = b""
            if not chunk:
                self.closed = True
            self.raw += chunk
        assert done(self.text), self.text
        return self.text

    def answer(self, line: str) -> None:
        os.write(self.fd, line.encode() + b"\n")

    def finish(self) -> tuple[int, str]:
        self.read_until(lambda _: self.closed)
        code = self.process.wait(timeout=60)
        os.close(self.fd)
        return code, self.text

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def gated(project: Path, database_url: str) -> Path:
    """Migration 2 waits for the advisory lock GATE."""
    second = project / "migrations" / SECOND
    second.write_text(second.read_text() + f"\nSELECT pg_advisory_xact_lock({GATE});\n")
    return project


def waiting_for_gate(db: psycopg.Connection) -> bool:
    row = db.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s AND NOT granted", (GATE,)
    ).fetchone()
    return row is not None and row[0] == 1


def gate_awaited(db: psycopg.Connection) -> bool:
    """Whether the child comes to wait for the gate (within 30 s)."""
    deadline = time.monotonic() + 30
    while not waiting_for_gate(db) and time.monotonic() < deadline:
        time.sleep(0.05)
    return waiting_for_gate(db)


@pytest.mark.parametrize(
    ("terminal", "colour"),
    [(True, True), (True, False), (False, False)],
    ids=["terminal", "terminal-no-colour", "pipe"],
)
def test_each_migration_line_appears_while_the_next_one_runs(
    gated: Path, db: psycopg.Connection, terminal: bool, colour: bool
) -> None:
    db.execute("SELECT pg_advisory_lock(%s)", (GATE,))
    child = Child(gated, ["migrate"], terminal=terminal, colour=colour)
    try:
        text = child.read_until(lambda t: f"✓ {FIRST} (" in t)
        assert gate_awaited(db)  # migration 2 is running, blocked on the server
        assert f"✓ {SECOND}" not in text
        assert text.startswith("🗃️ Running Database Migrations\n")
        assert "Pending migrations:\n" in text
        if colour:  # the spinner says which migration runs
            child.read_until(lambda t: f"migrate: apply pending migrations · applying {SECOND}" in t)
        assert child.process.poll() is None
    finally:
        db.execute("SELECT pg_advisory_unlock(%s)", (GATE,))
    try:
        code, text = child.finish()
    finally:
        child.kill()
    assert code == 0, text
    lines = [line for line in text.splitlines() if line.startswith("✓ 2025")]
    assert len(lines) == 7 and lines[0].startswith(f"✓ {FIRST} (") and lines[1].startswith(f"✓ {SECOND} (")
    assert text.count("All migrations completed successfully!") == 1
    assert text.count("🗃️ Running Database Migrations") == 1  # nothing printed twice
    if not colour:  # lines only: the streamed text is the report, exactly
        assert "applying" not in text and "\x1b" not in child.raw.decode()


def test_json_on_a_terminal_is_one_document_and_nothing_else(gated: Path, db: psycopg.Connection) -> None:
    child = Child(gated, ["migrate", "--json"], terminal=True)
    try:
        code, text = child.finish()
    finally:
        child.kill()
    assert code == 0, text
    doc = json.loads(child.raw.decode())  # the whole output: one document, no spinner, no escape
    assert doc["ok"] is True and len(doc["report"]["items"]) == 7
    assert [s["status"] for s in doc["steps"]] == ["ok", "ok"]


def test_a_pipeline_streams_each_steps_report_and_lists_the_steps_once_at_the_end(
    gated: Path, db: psycopg.Connection
) -> None:
    """fresh on a terminal: the reports of backup, drop and migrate are on the screen while
    migrate waits; the steps' list comes once, at the end."""
    (gated / "dbops.yaml").write_text((gated / "dbops.yaml").read_text() + "pipelines:\n  fresh: [reset]\n")
    db.execute("SELECT pg_advisory_lock(%s)", (GATE,))
    child = Child(gated, ["fresh", "--force"], terminal=True)
    try:
        text = child.read_until(lambda t: f"✓ {FIRST} (" in t)
        assert "💾 Creating Safety Backup" in text and "🗑️ Dropping All Database Objects" in text
        assert "Steps:" not in text
        child.read_until(lambda t: f"5/5 migrate: apply pending migrations · applying {SECOND}" in t)
    finally:
        db.execute("SELECT pg_advisory_unlock(%s)", (GATE,))
    try:
        code, text = child.finish()
    finally:
        child.kill()
    assert code == 0, text
    assert text.count("Steps:\n") == 1 and text.count("💾 Creating Safety Backup") == 1
    assert (
        text.index(f"✓ {SECOND} (")
        < text.index("Steps:\n")
        < text.index("Pipeline fresh completed successfully!")
    )


def test_the_spinner_names_the_seed_file_running(project: Path, cli: Run, db: psycopg.Connection) -> None:
    assert cli("migrate").code == 0
    (project / "seeds").mkdir()
    (project / "seeds" / "99_gate.py").write_text(
        f"def seed(db):\n    db.execute('SELECT pg_advisory_xact_lock({GATE})')\n"
    )
    db.execute("SELECT pg_advisory_lock(%s)", (GATE,))
    child = Child(project, ["seed"], terminal=True)
    try:
        child.read_until(lambda t: "seed: load the seed data · seeding 99_gate.py" in t)
        assert gate_awaited(db)  # the seed file runs, blocked on the server
    finally:
        db.execute("SELECT pg_advisory_unlock(%s)", (GATE,))
    try:
        code, text = child.finish()
    finally:
        child.kill()
    assert code == 0, text
    assert "seeding 99_gate.py" not in text  # the spinner is gone once the run ends
    assert text.count("🌱 Seeding Database") == 1 and "Database seeded successfully!" in text


def test_a_failing_pipeline_streams_its_reports_once_then_the_steps_and_the_undos(
    project: Path, cli: Run, db: psycopg.Connection
) -> None:
    """Plain output (in-process, not a terminal): what was streamed and what the end adds make
    the report once, in its order."""
    (project / "dbops.yaml").write_text(
        (project / "dbops.yaml").read_text()
        + "pipelines:\n  broken: [{migrate: {to: '20251001090200'}}, migrate, seed]\n"
    )
    (project / "seeds").mkdir()
    (project / "seeds" / "01_bad.sql").write_text("INSERT INTO no_such_table VALUES (1);\n")
    result = cli("broken")
    assert result.code == 1, result.text
    out = result.out
    assert out.count("🗃️ Running Database Migrations") == 2 and out.count("🌱 Seeding Database") == 1
    assert out.count("Steps:\n") == 1 and out.count("Undo, in reverse order:") == 1
    assert out.index("🌱 Seeding Database") < out.index("Steps:\n") < out.index("✗ Step 4 'seed'")
    assert db.execute("SELECT to_regclass('users')").fetchone() == (None,)  # both migrates undone


class Growing:
    """A report that grows as a run goes (as a migrate's does)."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def lines(self) -> list[Line]:
        return [("title", "Title"), *[("ok", f"✓ {item}") for item in self.items]]

    def warnings(self) -> list[str]:
        return []


def test_streamed_lines_and_the_final_report_make_one_text() -> None:
    out, err = io.StringIO(), io.StringIO()
    output = Output(stdout=out, stderr=err)
    report = Growing()
    output.stream(report)
    report.items.append("one")
    output.stream(report)
    output.stream(report)  # nothing new: nothing written
    report.items.append("two")
    assert out.getvalue() == "Title\n✓ one\n"
    output.emit(OperationResult("migrate", "development", report=report))
    assert out.getvalue() == "Title\n✓ one\n✓ two\n"
    output.emit(OperationResult("migrate", "test", report=report))  # the next one starts afresh
    assert out.getvalue() == "Title\n✓ one\n✓ two\n" * 2
    quiet = io.StringIO()
    Output(json_mode=True, stdout=quiet).stream(report)  # JSON: one document, at the end only
    assert quiet.getvalue() == ""
