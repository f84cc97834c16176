"""The report of lint."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dbops.migrations.lint import IGNORE, Finding
from dbops.output.render import Line, heading

if TYPE_CHECKING:
    pass


@dataclass
class LintReport:
    environment: str
    database: str
    pending: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    finished: bool = False

    def warnings(self) -> list[str]:
        return [f.text for f in self.findings]

    def lines(self) -> list[Line]:
        lines = heading("🔎 Linting Pending Migrations")
        lines += [("", f"Database: {self.database}"), ("", f"Environment: {self.environment}")]
        if not self.finished:
            return lines
        lines.append(("", f"Pending migrations: {len(self.pending)}"))
        for finding in self.findings:
            lines.append(("warn", f"⚠ {finding.text}"))
            silence = f" (or -- {IGNORE} {finding.rule})" if finding.ignorable else ""
            lines.append(("dim", f"    Fix: {finding.fix}{silence}"))
        if not self.findings:
            count = len(self.pending)
            checked = f"✓ No findings in {count} pending migration{'s' if count != 1 else ''}"
            lines.append(("ok", checked if count else "✓ No pending migrations to lint"))
        return lines
