"""The steps a pipeline in dbops.yaml may name and their arguments; what each step's undo does.

Light on purpose: config.py checks every pipeline against this table when dbops.yaml is
loaded, so no step module is imported here; an entry builds its steps only when a pipeline
runs. A new step plugs in with one entry in STEPS.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dbops.engine.pipeline import Step

Args = Mapping[str, Any]


@dataclass(frozen=True)
class StepKind:
    name: str
    summary: str  # what it does
    args: Mapping[str, type]  # argument -> bool, int or str
    build: Callable[[Args], list[Step]]

    def describe(self, args: Args) -> str:
        given = ", ".join(f"{k}: {_yaml(v)}" for k, v in args.items())
        return f"{self.summary} ({given})" if given else self.summary


def _yaml(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _migrate(args: Args) -> list[Step]:
    from dbops.steps.migrate import Migrate

    return [Migrate(start=args.get("from"), end=args.get("to"), accept=args.get("accept_changes", False))]


def _rollback(args: Args) -> list[Step]:
    from dbops.steps.rollback import Rollback

    return [Rollback(steps=args.get("steps", 1), to=args.get("to"))]


def _seed(args: Args) -> list[Step]:
    from dbops.steps.seed import Seed

    return [Seed(clear=args.get("clear", False))]


def _reset(args: Args) -> list[Step]:
    from dbops.steps.drop import DropSchema
    from dbops.steps.migrate import Migrate

    return [DropSchema(), Migrate()]


def _validate(args: Args) -> list[Step]:
    from dbops.steps.validate import Validate

    return [Validate(strict=args.get("strict", False))]


def _lint(args: Args) -> list[Step]:
    from dbops.steps.lint import Lint

    return [Lint()]


def _backup(args: Args) -> list[Step]:
    from dbops.steps.backup import Backup

    return [Backup(keep=args.get("keep", False))]


def _status(args: Args) -> list[Step]:
    from dbops.steps.gate import HealthGate
    from dbops.steps.inspect import Inspect

    return [Inspect(), HealthGate("inspect")] if args.get("check") else [Inspect()]


STEPS: dict[str, StepKind] = {
    kind.name: kind
    for kind in (
        StepKind(
            "migrate", "apply pending migrations", {"from": str, "to": str, "accept_changes": bool}, _migrate
        ),
        StepKind("rollback", "roll back the most recent migrations", {"steps": int, "to": str}, _rollback),
        StepKind("seed", "load the seed data", {"clear": bool}, _seed),
        StepKind("reset", "drop every object of the application's schemas, then migrate", {}, _reset),
        StepKind("status", "show migrations, schema, data and health", {"check": bool}, _status),
        StepKind("validate", "compare the schema with the migrations", {"strict": bool}, _validate),
        StepKind("lint", "check pending migrations for operations that lock or break production", {}, _lint),
        StepKind("backup", "back up the database (a verified pg_dump)", {"keep": bool}, _backup),
    )
}

# What the undo of each step (by its name in the report) does, as --dry-run and the README say.
READS_ONLY = "none: it only reads"
UNDO_OF = {
    "connect": READS_ONLY,
    "confirm": "none: it changes nothing",
    "drop": "restore the backup taken before it (reset takes one unless --no-backup); else none",
    "migrate": "roll back the migrations it applied, newest first (also when it fails part-way); "
    "one without rollback script: restore the backup taken before it",
    "rollback": "restore the backup taken before it; without one, apply the migrations again "
    "(the schema comes back, not their rows)",
    "backup": "none: it is what the undos of later steps restore when they cannot take their step back",
    "check-backup": READS_ONLY,
    "restore-lock": READS_ONLY,  # a lock, released when the run ends; rights read
    "restore": "none: the safety backup before it, and the database it replaced (kept, renamed), stay",
    "seed": "none: its one transaction never commits when it fails; once committed, the rows stay",
    "inspect": READS_ONLY,
    "check": READS_ONLY,
    "validate": READS_ONLY,
    "lint": READS_ONLY,
}


def reads_only(step: str) -> bool:
    """Whether a step (by its name in the report) only reads: a confirmation may come after it."""
    return UNDO_OF.get(step) == READS_ONLY
