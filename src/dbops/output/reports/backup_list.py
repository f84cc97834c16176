"""The report of backup-list."""

from __future__ import annotations

from dataclasses import dataclass, field

from dbops.output import units
from dbops.output.render import Line, heading

UNKNOWN = "?"  # the database of a backup without manifest


@dataclass
class ListedBackup:
    file: str  # relative to the project
    kind: str
    created: str
    age: str
    size: int
    database: str | None
    format: str | None
    checksum: str  # ok, mismatch, missing file, no manifest
    reason: str | None = None
    keep: bool = False
    rows: int | None = None  # in the application's tables, as the backup report counts them
    tables: int | None = None


@dataclass
class BackupListReport:
    folder: str
    environment: str
    database: str | None
    backups: list[ListedBackup] = field(default_factory=list)

    def warnings(self) -> list[str]:
        return [f"{b.file}: {b.checksum}" for b in self.backups if b.checksum != "ok"]

    def lines(self) -> list[Line]:
        lines = heading("🗂️ Database Backups")
        lines.append(("", f"Folder: {self.folder}"))
        if not self.backups:
            return [*lines, ("dim", "No backups yet: dbops backup takes one")]
        width = max(len(b.database or UNKNOWN) for b in self.backups)
        for b in self.backups:
            mark = "✓" if b.checksum == "ok" else "✗"
            database = b.database or UNKNOWN
            extra = f" ({b.reason})" if b.reason else ""
            keep = " keep" if b.keep else ""
            text = (
                f"{mark} {b.kind:<9} {b.age:>5} {units.size(b.size):>10}  {database:<{width}}  "
                f"{b.file}{extra}{keep}" + ("" if b.checksum == "ok" else f"  checksum: {b.checksum}")
            )
            lines.append(("ok" if b.checksum == "ok" else "fail", text))
        manual = sum(b.kind == "manual" for b in self.backups)
        lines.append(
            ("dim", f"{len(self.backups)} backup(s): {manual} manual, {len(self.backups) - manual} automatic")
        )
        return lines
