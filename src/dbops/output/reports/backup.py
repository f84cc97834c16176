"""The report of backup."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dbops.output import units
from dbops.output.render import Line, heading


@dataclass
class BackupReport:
    environment: str
    database: str
    path: Path
    file: str  # as shown: relative to the project
    kind: str
    reason: str | None = None
    format: str = "plain"
    compression: str = "gzip"
    size: int = 0
    sha256: str = ""
    rows: int = 0
    rows_exact: bool = True
    tables: int = 0
    verified: list[str] = field(default_factory=list)
    dump_s: float = 0.0
    verify_s: float = 0.0
    finished: bool = False

    def warnings(self) -> list[str]:
        return []

    def lines(self) -> list[Line]:
        title = "💾 Creating Database Backup" if self.kind == "manual" else "💾 Creating Safety Backup"
        lines = heading(title)
        lines += [("", f"Database: {self.database}"), ("", f"Backup file: {self.file}")]
        if self.reason:
            lines.append(("dim", f"Reason: {self.reason}"))
        if not self.finished:
            return lines
        compressed = " (compressed)" if self.compression != "none" else ""
        records = f"{self.rows:,}" if self.rows_exact else f"~{self.rows:,}"
        lines += [
            ("ok", "✓ Backup created successfully"),
            ("ok", f"✓ Size: {units.size(self.size)}{compressed}"),
            ("ok", f"✓ Records: {records} in {self.tables} tables"),
            ("ok", f"✓ Verified: {', '.join(self.verified)}"),
            ("", "Backup location:"),
            ("", str(self.path)),
        ]
        return lines
