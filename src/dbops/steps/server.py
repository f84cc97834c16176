"""server: show, start or stop the project's embedded PostgreSQL. Undo: none."""

from __future__ import annotations

from typing import Literal

from dbops.engine.context import RunContext
from dbops.engine.pipeline import StepOutcome
from dbops.output.reports.server import ServerReport

Action = Literal["show", "start", "stop"]


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
