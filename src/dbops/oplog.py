"""The operation log: one JSON line per run in .dbops/log/operations.jsonl. Never a secret."""

from __future__ import annotations

import getpass
import json
import os
import socket
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dbops import __version__
from dbops.output.render import OperationResult
from dbops.redact import clean

_OUTCOMES = {0: "ok", 1: "failed", 2: "usage error", 3: "refused", 4: "undo failed", 130: "interrupted"}


def append(
    state_dir: Path, result: OperationResult, duration_s: float, extra: Mapping[str, Any] | None = None
) -> None:
    """One line for a run; `extra` adds keys of its own (a fleet target's run id, name, wave)."""
    record = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "environment": result.environment,
        "database": clean(result.database) if result.database else None,
        "operation": result.operation,
        "outcome": _OUTCOMES.get(result.exit_code, "failed"),
        "exit_code": result.exit_code,
        "duration_s": round(duration_s, 4),
        "dbops_version": __version__,
        "user": f"{_user()}@{socket.gethostname()}",
        "error": clean(result.error.message) if result.error else None,
        **{key: clean(value) if isinstance(value, str) else value for key, value in (extra or {}).items()},
    }
    folder = state_dir / "log"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # One write() of one line with O_APPEND: concurrent runs never interleave.
        fd = os.open(folder / "operations.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (json.dumps(record, ensure_ascii=False) + "\n").encode())
        finally:
            os.close(fd)
    except OSError:
        pass  # a read-only checkout must not turn a successful operation into a failure


def records(state_dir: Path) -> Iterator[dict[str, Any]]:
    """The log's records, oldest first; a line that does not parse (cut by a crash) is skipped."""
    try:
        text = (state_dir / "log" / "operations.jsonl").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            yield record


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())
