"""connect: open the environment's connection and read the server's facts. Undo: none."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dbops.engine.pipeline import READS_ONLY, StepOutcome

if TYPE_CHECKING:
    from dbops.engine.context import RunContext


class Connect:
    name = "connect"
    description = "connect to the environment's database"
    undo = READS_ONLY
    policy_action: str | None = None

    def run(self, ctx: RunContext) -> StepOutcome:
        facts = ctx.facts()
        return StepOutcome(messages=[f"Connected to {facts.database} at {facts.location}"], data=facts)
