"""connect: open the environment's connection and read the server's facts. Undo: none."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dbops.engine.pipeline import READS_ONLY, StepOutcome

if TYPE_CHECKING:
    import psycopg

    from dbops.engine.context import RunContext
    from dbops.postgres.connection import Target


@dataclass(frozen=True)
class ServerFacts:
    database: str
    location: str
    url: str
    version: str
    user: str


def read_facts(conn: psycopg.Connection[Any], target: Target) -> ServerFacts:
    from dbops.postgres.connection import server_version

    row = conn.execute("SELECT current_database(), current_user").fetchone()
    assert row is not None
    return ServerFacts(row[0], target.location(), target.display(), server_version(conn), row[1])


class Connect:
    name = "connect"
    description = "connect to the environment's database"
    undo = READS_ONLY
    policy_action: str | None = None

    def run(self, ctx: RunContext) -> StepOutcome:
        facts = ctx.facts()
        return StepOutcome(messages=[f"Connected to {facts.database} at {facts.location}"], data=facts)
