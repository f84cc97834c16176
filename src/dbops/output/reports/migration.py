"""The report of migrate, migrate-rollback, migrate-baseline and migrate-repair."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from dbops.output import units
from dbops.output.render import Line, Style, heading

ItemStatus = Literal["applied", "failed", "interrupted", "planned", "rolled back", "marked", "accepted"]

_TITLES = {
    "migrate": "🗃️ Running Database Migrations",
    "plan": "🗃️ Migration Plan (dry run: nothing is changed)",
    "rollback": "↩️ Rolling Back Migrations",
    "rollback-plan": "↩️ Rollback Plan (dry run: nothing is changed)",
    "baseline": "📌 Baseline: Marking Migrations as Applied",
    "repair": "🔧 Accepting Changed Migration Files",
}
_MARKS: dict[ItemStatus, tuple[Style, str]] = {
    "applied": ("ok", "✓"),
    "rolled back": ("ok", "✓"),
    "marked": ("ok", "✓"),
    "accepted": ("ok", "✓"),
    "planned": ("", "→"),
    "failed": ("fail", "✗"),
    "interrupted": ("fail", "✗"),
}


@dataclass
class MigrationItem:
    id: str
    file: str
    status: ItemStatus
    duration_s: float = 0.0
    sql: str | None = None  # dry runs: exactly what would run
    note: str | None = None


@dataclass
class MigrationReport:
    kind: str
    environment: str
    database: str
    items: list[MigrationItem] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)  # applied by plain yoyo: checksum recorded now
    notes: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    finished: bool = False  # the step ran to its end (else it failed, and its error says why)

    def warnings(self) -> list[str]:
        return [n for n in self.notes if n.startswith("⚠")]

    def lines(self) -> list[Line]:
        lines = heading(_TITLES[self.kind])
        lines += [("", f"Database: {self.database}"), ("", f"Environment: {self.environment}")]
        lines += [("warn" if n.startswith("⚠") else "dim", n) for n in self.notes]
        if self.adopted:
            lines.append(
                ("dim", f"Recorded checksums of {len(self.adopted)} migration(s) applied without dbops")
            )
        if not self.items:
            return [*lines, ("ok", self._nothing())] if self.finished else lines
        lines.append(("", _LISTS.get(self.kind, "Migrations:")))
        for item in self.items:
            style, mark = _MARKS[item.status]
            took = units.step_duration(item.duration_s)
            timing = f" ({took})" if item.status in ("applied", "rolled back") else ""
            failed = f" {item.status}" if item.status in ("failed", "interrupted") else ""
            lines.append((style, f"{mark} {item.file}{timing}{failed}"))
            if item.note:
                lines.append(("dim", f"    {item.note}"))
            if item.sql is not None:
                lines += [("dim", f"    {line}") for line in item.sql.splitlines()]
        if self.finished:
            lines.append(("ok", f"{_DONE[self.kind]} ({units.duration(self.duration_s)})"))
        return lines

    def _nothing(self) -> str:
        return {
            "rollback": "Nothing to roll back: no migration is applied",
            "rollback-plan": "Nothing to roll back: no migration is applied",
            "baseline": "Nothing to mark: every migration up to there is applied",
            "repair": "Nothing to accept: every applied migration matches its file",
        }.get(self.kind, "✓ Database is up to date: nothing to migrate")


_LISTS = {
    "migrate": "Pending migrations:",
    "plan": "Would apply, in this order:",
    "rollback": "Rolled back:",
    "rollback-plan": "Would roll back, in this order:",
    "baseline": "Marked as applied (not run):",
    "repair": "Accepted as they are now:",
}
_DONE = {
    "migrate": "All migrations completed successfully!",
    "rollback": "Rollback completed successfully!",
    "baseline": "Baseline recorded.",
    "repair": "Checksums updated.",
    "plan": "Dry run complete: nothing was changed.",
    "rollback-plan": "Dry run complete: nothing was changed.",
}
