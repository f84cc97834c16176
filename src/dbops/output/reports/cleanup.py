"""The report of backup-cleanup."""

from __future__ import annotations

from dataclasses import dataclass, field

from dbops.output import units
from dbops.output.render import Line, heading


@dataclass
class CleanupItem:
    file: str
    age: str
    size: int
    why: str


@dataclass
class CleanupReport:
    folder: str
    retention_days: int
    dry_run: bool
    delete: list[CleanupItem] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    kept: dict[str, int] = field(default_factory=dict)  # why -> how many
    freed: int = 0
    databases: list[CleanupItem] = field(default_factory=list)  # kept by restores (file: its name)
    databases_unchecked: str | None = None  # why the kept databases could not be looked at

    def warnings(self) -> list[str]:
        return [self._unchecked()] if self.databases_unchecked else []

    def _unchecked(self) -> str:
        return f"Databases kept by restores not checked: {self.databases_unchecked}"

    def lines(self) -> list[Line]:
        lines = heading("🧹 Backup Cleanup")
        lines += [
            ("", f"Folder: {self.folder}"),
            ("", f"Retention: automatic backups older than {self.retention_days} days"),
        ]
        verb = "Would delete" if self.dry_run else "Deleted"
        if self.delete or self.leftovers or self.databases:
            lines.append(("", f"{verb}:"))
            lines += [
                ("warn" if self.dry_run else "ok", f"- {i.file} ({i.why}, {i.age} old)") for i in self.delete
            ]
            lines += [
                ("warn" if self.dry_run else "ok", f"- {name} (leftover temporary file)")
                for name in self.leftovers
            ]
            lines += [
                ("warn" if self.dry_run else "ok", f"- database {i.file} ({i.why}, {i.age} old)")
                for i in self.databases
            ]
        else:
            lines.append(("ok", "✓ Nothing to delete"))
        if self.kept:
            lines.append(("dim", "Kept: " + ", ".join(f"{n} {why}" for why, n in self.kept.items())))
        if self.databases_unchecked:
            lines.append(("warn", f"⚠ {self._unchecked()}"))
        if self.dry_run and (self.delete or self.leftovers or self.databases):
            lines.append(("dim", "Dry run: nothing was deleted. Run with --force to delete them."))
        elif not self.dry_run and self.freed:
            lines.append(("ok", f"✓ Freed {units.size(self.freed)}"))
        return lines
