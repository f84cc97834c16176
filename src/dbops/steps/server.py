"""server: show, start or stop the project's embedded PostgreSQL. Undo: none."""

from __future__ import annotations

from dataclasses import replace

from dbops.engine.context import RunContext
from dbops.engine.options import ServerAction
from dbops.engine.pipeline import StepOutcome
from dbops.output.reports.server import ServerReport


class ServerControl:
    name = "server"
    undo = "none"
    policy_action: str | None = None

    def __init__(self, action: ServerAction = "show") -> None:
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
        full = server.binary_version() if state.version else None
        if full and full.split(".")[0] == state.version:  # in full, as status shows it
            state = replace(state, version=full)
        url = None
        if state.running:
            url = f"postgresql://postgres@/{ctx.database_name()}?host={state.socket_dir}"
        return StepOutcome(data=ServerReport(self.action, changed, state, str(server.log), url))
