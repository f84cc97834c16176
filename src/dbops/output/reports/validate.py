"""The report of validate: migration integrity, schema differences and lint findings, each an
error or a warning, shown as in the spec (``⚠ Warning: Index 'idx_users_email' missing on
users table``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dbops.output import units
from dbops.output.render import Line, heading

if TYPE_CHECKING:
    from dbops.migrations.lint import Finding  # only validate with pending migrations lints them
    from dbops.schema.compare import Difference, Severity
    from dbops.schema.expected import ExpectedInfo


@dataclass(frozen=True)
class Problem:
    severity: Severity
    message: str


@dataclass
class ValidateReport:
    environment: str
    database: str
    strict: bool = False
    expected: ExpectedInfo | None = None
    applied: int = 0
    pending: list[str] = field(default_factory=list)
    edited: list[str] = field(default_factory=list)  # applied, then their files were edited
    deleted: list[str] = field(default_factory=list)  # applied, then their files were deleted
    differences: list[Difference] = field(default_factory=list)
    lint: list[Finding] = field(default_factory=list)
    duration_s: float = 0.0
    finished: bool = False

    def problems(self) -> list[Problem]:
        """Everything found, in report order: integrity, schema, lint."""
        problems = [Problem("error", f"Migration {i} was edited after it was applied") for i in self.edited]
        problems += [
            Problem("error", f"Migration {i} was applied, then its file deleted") for i in self.deleted
        ]
        problems += [Problem("warning", f"Migration {i} is pending") for i in self.pending]
        problems += [Problem(d.severity, d.message) for d in self.differences]
        problems += [Problem("warning", f"{f.text} (fix: {f.fix})") for f in self.lint]
        return problems

    def errors(self) -> list[str]:
        return [p.message for p in self.problems() if p.severity == "error"]

    def warnings(self) -> list[str]:
        return [p.message for p in self.problems() if p.severity == "warning"]

    @property
    def failed(self) -> bool:
        """Errors fail validate; with --strict, warnings too."""
        return bool(self.errors() or (self.strict and self.warnings()))

    def lines(self) -> list[Line]:
        lines = heading("🔍 Schema Validation")
        lines += [("", f"Database: {self.database}"), ("", f"Environment: {self.environment}")]
        if self.expected is not None:
            lines.append(("dim", _expected_line(self.expected)))
        lines.append(("", f"Migrations: {self.applied} applied, {len(self.pending)} pending"))
        if not self.finished:
            return lines
        problems = self.problems()
        if not any(p.severity == "error" for p in problems):
            lines.append(("ok", "✓ All models validated successfully"))
        for problem in problems:
            if problem.severity == "error":
                lines.append(("fail", f"✗ Error: {problem.message}"))
            else:
                lines.append(("warn", f"⚠ Warning: {problem.message}"))
        lines += self._lint_fixes()
        if problems:
            lines.append(self._summary())
        return lines

    def _lint_fixes(self) -> list[Line]:
        if not self.lint:
            return []
        rules = sorted({f.rule for f in self.lint if f.ignorable})
        if not rules:
            return []
        return [
            (
                "dim",
                f"  To accept a lint finding: -- dbops:ignore <rule> on its statement ({', '.join(rules)})",
            )
        ]

    def _summary(self) -> Line:
        errors, warnings = len(self.errors()), len(self.warnings())
        took = units.duration(self.duration_s)
        counts = f"{_count(errors, 'error')}, {_count(warnings, 'warning')} ({took})"
        if errors:
            return ("fail", f"✗ Validation failed: {counts}")
        if self.strict:
            return ("fail", f"✗ Validation failed (--strict): {counts}")
        return ("warn", f"⚠ Validation passed with warnings: {counts}; --strict makes warnings fail")


def _expected_line(info: ExpectedInfo) -> str:
    what = (
        f"{_count(info.objects, 'migration')} applied"
        if info.source == "migrations"
        else f"{_count(info.objects, 'table')} from {info.source}"
    )
    where = "the embedded server" if info.scratch == "embedded" else "the same server"
    took = units.duration(info.duration_s)
    how = " (reused, rolled back)" if info.reused else ""
    return f"Expected schema: {what} in a scratch database on {where}{how}, {info.server} ({took})"


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")
