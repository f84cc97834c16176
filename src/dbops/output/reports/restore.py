"""The report of restore."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dbops.backups.restore import RestoreResult
from dbops.output import units
from dbops.output.render import Line, heading


@dataclass
class RestoreReport:
    environment: str
    database: str
    file: str
    path: Path
    created: str = ""
    size: int = 0
    format: str = ""
    kind: str = ""
    source_database: str = ""
    verified: bool = False
    safety_backup: str | None = None
    result: RestoreResult | None = None
    duration_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    def warnings(self) -> list[str]:
        return []

    def lines(self) -> list[Line]:
        lines = heading("♻️ Restoring Database")
        lines += [
            ("", f"Database: {self.database}"),
            ("", f"Environment: {self.environment}"),
            ("", f"Backup file: {self.file}"),
        ]
        if self.created:
            source = f", from {self.source_database}" if self.source_database != self.database else ""
            lines.append(
                (
                    "dim",
                    f"  {self.kind} {self.format} backup of {self.created}, {units.size(self.size)}{source}",
                )
            )
        if self.verified:
            lines.append(("ok", "✓ Backup file verified (sha256, full read)"))
        if self.safety_backup:
            lines.append(("ok", f"✓ Safety backup: {self.safety_backup}"))
        r = self.result
        if r is None:
            return lines
        if r.in_place:
            lines.append(("ok", f"✓ Restored in place, in one transaction ({units.duration(r.load_s)})"))
        else:
            lines.append(("ok", f"✓ Restored into scratch database {r.scratch} ({units.duration(r.load_s)})"))
        lines.append(("ok", f"✓ Verified: {r.tables} tables, {r.rows:,} records, objects match the manifest"))
        if not r.in_place:
            lines.append(("ok", f"✓ Terminated {r.terminated} connection(s) to {r.database}"))
            lines.append(("ok", f"✓ Swapped: {r.database} is now the restored database"))
            if r.kept_as:
                lines.append(("", f"Previous database kept as: {r.kept_as}"))
                lines.append(("dim", f"  (drop it once you no longer need it: DROP DATABASE {r.kept_as})"))
        lines.append(("ok", f"Database restored successfully! ({units.duration(self.duration_s)})"))
        return lines
