"""The report of migrate-create."""

from __future__ import annotations

from dataclasses import dataclass

from dbops.output.render import Line, heading


@dataclass(frozen=True)
class CreatedReport:
    migration: str
    rollback: str
    depends: tuple[str, ...]

    def warnings(self) -> list[str]:
        return []

    def lines(self) -> list[Line]:
        lines = heading("📝 New Migration")
        lines += [("ok", f"✓ Created {self.migration}"), ("ok", f"✓ Created {self.rollback}")]
        if self.depends:
            lines.append(("dim", f"  depends on {', '.join(self.depends)}"))
        lines.append(("", "Write the change, then: dbops migrate"))
        return lines
