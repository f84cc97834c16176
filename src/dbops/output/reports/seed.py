"""The report of seed."""

from __future__ import annotations

from dataclasses import dataclass, field

from dbops.output import units
from dbops.output.render import Line, heading
from dbops.seeding.loader import Account, TableResult


@dataclass
class SeedReport:
    environment: str
    database: str
    files: list[str] = field(default_factory=list)
    tables: list[TableResult] = field(default_factory=list)
    accounts: list[Account] = field(default_factory=list)
    cleared: bool = False
    duration_s: float = 0.0
    finished: bool = False
    passwords_shown: bool = field(default=False, repr=False)

    def warnings(self) -> list[str]:
        return []

    def show_secrets(self, on_terminal: bool) -> list[str]:
        """The accounts' passwords are shown on a terminal only (the renderer says whether it is
        one); returns those the lines will show, for CI to mask."""
        self.passwords_shown = on_terminal
        return [a.password for a in self.accounts] if on_terminal else []

    def lines(self) -> list[Line]:
        lines = heading("🌱 Seeding Database")
        lines += [("", f"Environment: {self.environment}"), ("", f"Database: {self.database}")]
        if self.cleared:
            lines.append(("dim", "Cleared the seeded tables first (--clear)"))
        if not self.finished:
            return lines
        if not self.files:
            return [*lines, ("ok", "Nothing to seed: no seed files")]
        lines.append(("", "Seeding data:"))
        for table in self.tables:
            lines.append(("ok", f"✓ {_title(table.table)}: {_counts(table)}"))
        lines.append(("ok", f"Database seeded successfully! ({units.duration(self.duration_s)})"))
        if self.accounts:
            if self.passwords_shown:
                lines.append(("", "Test Accounts:"))
                lines += [("", f"- {a.login} / {a.password}") for a in self.accounts]
            else:
                lines.append(("", "Test Accounts (passwords are shown on a terminal only):"))
                lines += [("", f"- {a.login}") for a in self.accounts]
        return lines


def _title(table: str) -> str:
    name = " ".join(table.split(".")[-1].replace("_", " ").split()).title()
    return name.replace("Api ", "API ")


def _counts(table: TableResult) -> str:
    if not table.updated and not table.unchanged:
        return f"{table.created:,} records created"
    parts = [
        f"{n:,} {word}"
        for n, word in (
            (table.created, "created"),
            (table.updated, "updated"),
            (table.unchanged, "unchanged"),
        )
        if n
    ]
    return ", ".join(parts) or "0 records"
