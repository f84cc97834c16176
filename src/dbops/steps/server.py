"""server: show, start or stop the project's embedded PostgreSQL. Undo: none."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from dbops.engine.context import RunContext
from dbops.engine.pipeline import StepOutcome
from dbops.output.render import Line, heading
from dbops.postgres.embedded import ServerState

Action = Literal["show", "start", "stop"]


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
            started = datetime.fromtimestamp(int(s.started or 0), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
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


class ServerControl:
    name = "server"

    def __init__(self, action: Action = "show") -> None:
        self.action = action
        self.description = f"{action} the embedded server"

    def run(self, ctx: RunContext) -> StepOutcome:
        server = ctx.embedded_server()
        changed = False
        if self.action == "stop":
            changed = server.stop()
        elif self.action == "start":
            changed = not server.state().running
            server.ensure_running()
        state = server.state()
        url = None
        if state.running:
            url = f"postgresql://postgres@/{ctx.database_name()}?host={state.socket_dir}"
        return StepOutcome(data=ServerReport(self.action, changed, state, str(server.log), url))
