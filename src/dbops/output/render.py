"""One result model per operation, rendered four ways.

- human: on a terminal, coloured with rich (imported only then);
- plain: the same lines without colour, when stdout is not a terminal or NO_COLOR is set;
- json: exactly one JSON document on stdout (--json);
- CI: in Azure Pipelines (TF_BUILD) and GitHub Actions (GITHUB_ACTIONS=true) errors and
  warnings are repeated as the service's logging commands.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal, Protocol, TextIO

from dbops.engine.results import ErrorInfo, PipelineResult
from dbops.redact import clean, clean_tree

Style = Literal["title", "rule", "ok", "warn", "fail", "dim", "key", ""]
Line = tuple[Style, str]

_RICH_STYLES = {
    "title": "bold",
    "rule": "dim",
    "ok": "green",
    "warn": "yellow",
    "fail": "bold red",
    "dim": "dim",
    "key": "cyan",
    "": "",
}


class Report(Protocol):
    """What an operation reports besides its steps."""

    def lines(self) -> list[Line]: ...

    def warnings(self) -> list[str]: ...


@dataclass
class OperationResult:
    operation: str
    environment: str | None
    database: str | None = None
    pipeline: PipelineResult | None = None
    report: Report | None = None
    error: ErrorInfo | None = None
    exit_code: int = 0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def to_json(self) -> dict[str, Any]:
        return {
            "operation": self.operation,
            "environment": self.environment,
            "database": self.database,
            "ok": self.ok,
            "exit_code": self.exit_code,
            "duration_s": round(self.pipeline.duration_s, 4) if self.pipeline else None,
            "error": _jsonable(self.error),
            "report": _jsonable(self.report),
            "steps": _jsonable(self.pipeline.steps) if self.pipeline else [],
            "undos": _jsonable(self.pipeline.undos) if self.pipeline else [],
        }


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value) if f.repr}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float):
        return round(value, 4)
    return value


def heading(title: str) -> list[Line]:
    return [("title", title), ("rule", "=" * display_width(title))]


def display_width(text: str) -> int:
    """Terminal cells: emoji and other wide characters take two."""
    from unicodedata import east_asian_width

    width = 0
    for ch in text:
        if ch == "\ufe0f":  # emoji presentation: the character before it takes two cells
            width += 1
        elif east_asian_width(ch) in "WF":
            width += 2
        elif ord(ch) >= 0x20:
            width += 1
    return width


class Output:
    def __init__(
        self, *, json_mode: bool = False, stdout: TextIO | None = None, stderr: TextIO | None = None
    ) -> None:
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self.json_mode = json_mode
        self.terminal = not json_mode and _is_tty(self.stdout)
        self.color = self.terminal and "NO_COLOR" not in os.environ
        if os.environ.get("TF_BUILD"):
            self.ci: str | None = "azure"
        elif os.environ.get("GITHUB_ACTIONS") == "true":
            self.ci = "github"
        else:
            self.ci = None
        self.console: Any = None  # a live view's rich Console, while it is shown (dbops.output.live)
        self._shown: list[Line] = []  # the report's lines written so far (streamed as the run went)
        self._masked: set[str] = set()

    @property
    def animated(self) -> bool:
        """A live view with a spinner and progress bars: a colour terminal (else lines only)."""
        return self.color

    # ------------------------------------------------------------------ results

    def emit(self, result: OperationResult) -> None:
        if self.json_mode:
            self.stdout.write(json.dumps(clean_tree(result.to_json()), ensure_ascii=False) + "\n")
            self.stdout.flush()
        else:
            if result.report is not None:
                self.mask(_report_secrets(result.report, self.terminal))
                self.write(self._unshown(result.report.lines()), self.stdout)
            self._shown = []  # the next result (another environment's) starts afresh
            if result.pipeline is not None:
                self.write(pipeline_lines(result.pipeline), self.stdout)
            if result.error is not None:
                self.write(error_lines(result.error), self.stderr)
        self.annotate(result)

    def stream(self, report: Report | None) -> None:
        """Write the lines a report has gained since the last call (a run's report as it grows):
        the final emit() then writes only the rest, so that what was streamed and the final
        report are one and the same text. Nothing in JSON mode (one document, at the end)."""
        if report is None or self.json_mode:
            return
        self.mask(_report_secrets(report, self.terminal))
        lines = report.lines()
        if lines[: len(self._shown)] == self._shown:  # else: the rest waits for the final report
            self.write(self._unshown(lines), self.stdout)

    def _unshown(self, lines: list[Line]) -> list[Line]:
        """The lines after those already written (where they agree), remembered as written."""
        agree = 0
        for old, new in zip(self._shown, lines, strict=False):
            if old != new:
                break
            agree += 1
        self._shown = list(lines)
        return lines[agree:]

    def emit_many(self, operation: str, results: Sequence[OperationResult], skipped: Sequence[str]) -> None:
        """Several environments in one JSON document."""
        code = max((r.exit_code for r in results), default=0)
        doc = {
            "operation": operation,
            "ok": code == 0,
            "exit_code": code,
            "environments": [r.to_json() for r in results],
            "skipped": list(skipped),
        }
        self.stdout.write(json.dumps(clean_tree(doc), ensure_ascii=False) + "\n")
        self.stdout.flush()
        for result in results:
            self.annotate(result)

    def note(self, text: str) -> None:
        self.write([("dim", text)], self.stdout)

    def annotate(self, result: OperationResult) -> None:
        if self.ci is None:
            return
        stream = self.stderr if self.json_mode else self.stdout
        for warning in result.report.warnings() if result.report else []:
            stream.write(self._ci_line("warning", warning) + "\n")
        for error in _report_errors(result.report):  # reports that list errors of their own (validate)
            stream.write(self._ci_line("error", error) + "\n")
        if result.error is not None:
            stream.write(self._ci_line("error", f"{result.error.message} ({result.error.hint})") + "\n")
        stream.flush()

    def mask(self, secrets: Sequence[str]) -> None:
        """Secrets a report shows on a terminal: in CI, registered with the service first, so
        that its log shows *** in their place."""
        secrets = [s for s in secrets if s not in self._masked]  # once each, streamed or not
        if self.ci is None or not secrets:
            return
        start = len(self._masked) + 1
        self._masked.update(secrets)
        for number, secret in enumerate(secrets, start):
            if self.ci == "azure":
                line = f"##vso[task.setvariable variable=DBOPS_SECRET_{number};issecret=true]{secret}"
            else:
                line = "::add-mask::" + secret.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
            self.stdout.write(line + "\n")
        self.stdout.flush()

    def _ci_line(self, kind: str, message: str) -> str:
        message = " ".join(clean(message).split())
        if self.ci == "azure":
            return f"##vso[task.logissue type={kind}]{message}"
        return f"::{kind}::{message.replace('%', '%25')}"

    # ------------------------------------------------------------------ lines

    def write(self, lines: Sequence[Line], stream: TextIO) -> None:
        if not lines:
            return
        lines = [(style, clean(text)) for style, text in lines]  # the last line of defence
        if self.console is not None and stream is self.stdout:  # above the live view's spinner
            from rich.text import Text  # lazy: rich is loaded already while a live view shows

            for style, text in lines:
                self.console.print(Text(text, style=_RICH_STYLES[style]))
        elif self.color and stream is self.stdout:
            from rich.console import Console
            from rich.text import Text

            console = Console(file=stream, highlight=False, soft_wrap=True)
            for style, text in lines:
                console.print(Text(text, style=_RICH_STYLES[style]))
        else:
            stream.write("".join(text + "\n" for _, text in lines))
        stream.flush()


def error_lines(error: ErrorInfo) -> list[Line]:
    lines: list[Line] = [("fail", f"Error: {error.message}")]
    if error.hint:
        lines.append(("dim", f"Hint: {error.hint}"))
    return lines


def pipeline_lines(result: PipelineResult) -> list[Line]:
    """Only what a report does not already say: a failure, its step, and the undos."""
    lines: list[Line] = []
    failed = [s for s in result.steps if s.status in ("failed", "interrupted")]
    if not failed or not result.undos:
        return lines  # with nothing undone, the error line says it all
    step = failed[0]
    number = result.steps.index(step) + 1
    verb = "was interrupted" if step.status == "interrupted" else "failed"
    lines.append(("fail", f"✗ Step {number} '{step.name}' ({step.description}) {verb}"))
    lines.append(("", "Undo, in reverse order:"))
    for undo in result.undos:
        if undo.ok:
            note = f" ({undo.note})" if undo.note else ""
            lines.append(("ok", f"  ✓ {undo.number}. {undo.step}: {undo.description}{note}"))
        else:
            reason = undo.error.message if undo.error else "failed"
            lines.append(("fail", f"  ✗ {undo.number}. {undo.step}: {undo.description}: {reason}"))
    return lines


def _report_secrets(report: Report, on_terminal: bool) -> list[str]:
    """Reports that show secrets (seed's test accounts) show them on a terminal only."""
    show = getattr(report, "show_secrets", None)
    return list(show(on_terminal)) if callable(show) else []


def _report_errors(report: Report | None) -> list[str]:
    errors = getattr(report, "errors", None)
    return list(errors()) if callable(errors) else []


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
