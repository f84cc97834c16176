"""The report of server."""

from __future__ import annotations

from dataclasses import dataclass

from dbops.output.render import Line, heading
from dbops.postgres.embedded import ServerState


@dataclass(frozen=True)
class ServerReport:
    action: str
    changed: bool
    state: ServerState
    log: str
    url: str | None

    def warnings(self) -> list[str]:
        return []

    def lines(self) -> list[Line]:
        s = self.state
        lines = heading("🐘 Embedded PostgreSQL")
        if self.action == "stop":
            lines.append(("ok", "✓ Stopped" if self.changed else "Already stopped"))
        elif self.action == "start":
            lines.append(("ok", "✓ Started" if self.changed else "Already running"))
        if s.running:
            started = s.started.strftime("%Y-%m-%d %H:%M:%S UTC") if s.started else "?"
            lines += [
                ("ok", f"State: ✓ running (pid {s.pid}, since {started})"),
                ("", f"Version: PostgreSQL {s.version}"),
                ("", f"Socket: {s.socket_dir}"),
                ("", f"Connect: psql '{self.url}'"),
            ]
        else:
            state = (
                "stopped" if s.initialised else "not created yet (the first command that needs it creates it)"
            )
            lines.append(("", f"State: {state}"))
        lines += [("", f"Data: {s.data_dir}"), ("dim", f"Log: {self.log}")]
        return lines
