"""The report of drop."""

from __future__ import annotations

from dataclasses import dataclass, field

from dbops.output import units
from dbops.output.render import Line, heading
from dbops.schema.catalog import TITLES

_TITLES = {
    "view": "Views",
    "table": "Tables",
    "bookkeeping": "Migration records (yoyo's and dbops' tables)",
    "sequence": "Sequences",
    "function": "Functions and procedures",
    "type": "Types",
    "schema": "Schemas",
}


@dataclass
class DropReport:
    environment: str
    database: str
    dropped: dict[str, list[str]] = field(default_factory=dict)  # kind -> names, in drop order
    duration_s: float = 0.0
    finished: bool = False

    def warnings(self) -> list[str]:
        return []

    def lines(self) -> list[Line]:
        lines = heading("🗑️ Dropping All Database Objects")
        lines += [("", f"Database: {self.database}"), ("", f"Environment: {self.environment}")]
        if not self.finished:
            return lines
        if not any(self.dropped.values()):
            return [*lines, ("ok", "Nothing to drop: the database holds no application object")]
        for kind, names in self.dropped.items():
            if names:
                shown = ", ".join(names[:8]) + (f", … (+{len(names) - 8})" if len(names) > 8 else "")
                title = _TITLES.get(kind) or TITLES[kind]  # the other kinds under the catalog's titles
                lines.append(("ok", f"✓ {title}: {len(names)} ({shown})"))
        lines.append(("ok", f"All objects dropped ({units.duration(self.duration_s)})"))
        return lines
