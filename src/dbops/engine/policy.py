"""Safety policies per environment, and the one check point that applies them.

What ``protected: true`` implies, each key settable on its own in dbops.yaml:

- ``confirm: name``: confirming a destructive operation means typing the database name
  (elsewhere ``yes``: answer yes/no);
- ``allow_reset: false`` and ``allow_seed: false``: reset and seed are refused;
- ``backup_before: [reset, rollback, restore]``: an automatic backup is taken before them
  (elsewhere before reset and restore), which ``--no-backup`` may not skip. ``migrate`` may
  be added to the list.

``allow_force`` (default true) says whether ``--force`` is accepted at all.

Which operations need a confirmation: reset and restore everywhere; rollback where the
environment is protected. arm() applies the policy to a pipeline's steps as a whole before
it starts: what the policy forbids is refused then, and a guard step that asks for one
confirmation goes after connecting (and the steps that only read), before the first step
that changes something. The guard
never waits at a prompt without a terminal: without --force it refuses, exit 3, naming the flag.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dbops.engine.pipeline import StepOutcome
from dbops.errors import PolicyRefused

if TYPE_CHECKING:
    from dbops.config.model import Environment
    from dbops.engine.context import RunContext
    from dbops.engine.pipeline import Step

# a step's name -> the policy action it counts as
ACTIONS = {
    "drop": "reset",
    "rollback": "rollback",
    "restore": "restore",
    "seed": "seed",
    "migrate": "migrate",
}
REASONS = {  # an automatic backup's reason, in its manifest
    "reset": "before reset",
    "rollback": "before migrate-rollback",
    "restore": "before restore",
    "migrate": "before migrate",
}
WARNINGS = {
    "reset": "This will delete ALL data in the database!",
    "rollback": "This rolls back applied migrations, and the data of what they created!",
    "restore": "This will replace all current data!",
}

_NOUN = {"reset": "Reset", "seed": "Seeding"}
_PAST = {"reset": "reset", "seed": "seeded"}


@dataclass(frozen=True)
class Policy:
    environment: str
    protected: bool
    confirm: str  # "name" or "yes"
    allow_force: bool
    allow_reset: bool
    allow_seed: bool
    backup_before: frozenset[str]
    lint_before_migrate: bool = False  # validate_before_migrate

    @classmethod
    def of(cls, env: Environment) -> Policy:
        def default(value: bool | None) -> bool:
            return (not env.protected) if value is None else value

        return cls(
            environment=env.name,
            protected=env.protected,
            confirm=env.confirm or ("name" if env.protected else "yes"),
            allow_force=env.allow_force,
            allow_reset=default(env.allow_reset),
            allow_seed=default(env.allow_seed),
            backup_before=frozenset(
                env.backup_before
                if env.backup_before is not None
                else ("reset", "rollback", "restore")
                if env.protected
                else ("reset", "restore")
            ),
            lint_before_migrate=env.lints_before_migrate,
        )

    def needs_confirmation(self, action: str) -> bool:
        return action in ("reset", "restore") or (self.protected and action == "rollback")

    def refusal(self, actions: Sequence[str], force: bool, no_backup: bool = False) -> PolicyRefused | None:
        """The first rule these actions (and flags) break here, if any."""
        env = self.environment
        backed_up = [a for a in actions if a in self.backup_before]
        if no_backup and backed_up and self.protected:
            return PolicyRefused(
                f"--no-backup is refused in the protected environment {env}: "
                f"it takes a backup before {', '.join(dict.fromkeys(backed_up))}",
                "Run it without --no-backup",
            )
        for action, allowed in (("reset", self.allow_reset), ("seed", self.allow_seed)):
            if action in actions and not allowed:
                where = (
                    f"the protected environment {env}"
                    if self.protected
                    else f"the environment {env} (allow_{action}: false)"
                )
                return PolicyRefused(
                    f"{_NOUN[action]} is refused in {where}",
                    f"Set allow_{action}: true for {env} in dbops.yaml if it really may be {_PAST[action]}",
                )
        if force and not self.allow_force:
            return PolicyRefused(
                f"--force is not accepted in the environment {env} (allow_force: false)",
                "Run it on a terminal without --force, and confirm when asked",
            )
        return None


class Guard:
    """Confirm once for all that the pipeline will do, where the policy asks for it."""

    name = "confirm"

    def __init__(
        self, policy: Policy, actions: Sequence[str], *, force: bool, refusal: PolicyRefused | None = None
    ) -> None:
        self.policy = policy
        self.actions = list(dict.fromkeys(actions))
        self.force = force
        self.to_confirm = [a for a in self.actions if policy.needs_confirmation(a)]
        self.refusal = refusal  # what a dry run's plan shows; a real run never gets here with one
        self.description = self._describe(refusal)

    def _describe(self, refusal: PolicyRefused | None) -> str:
        """What it will do, as a dry run's plan shows it (with the refusal a real run would meet)."""
        if refusal is not None:
            return f"refuse: {refusal.message}"
        if self.force:
            return "confirmation given by --force"
        how = "type the database name" if self.policy.confirm == "name" else "answer yes"
        return f"ask for confirmation of {', '.join(self.to_confirm)}: {how}"

    def run(self, ctx: RunContext) -> StepOutcome:
        if self.force:
            return StepOutcome(messages=["confirmed by --force"])
        database = ctx.database()
        if not sys.stdin.isatty():
            flag = (
                "or pass --force if you mean it"
                if self.policy.allow_force
                else f"--force is not accepted in {self.policy.environment} (allow_force: false)"
            )
            raise PolicyRefused(
                f"{' and '.join(self.to_confirm).capitalize()} on {ctx.env.name} ({database}) "
                "needs confirmation: no terminal to ask on",
                f"Run it on a terminal, {flag}",
            )
        self._ask(ctx.env.name, database)
        return StepOutcome(messages=["confirmed on the terminal"])

    def _ask(self, environment: str, database: str) -> None:
        for action in self.to_confirm:
            print(f"⚠️ WARNING: {WARNINGS[action]}", file=sys.stderr)
        print(f"Database: {database}\nEnvironment: {environment}", file=sys.stderr)
        if self.policy.confirm == "name":
            answer, expected = _prompt(f"Type the database name ({database}) to continue: "), database
        else:
            answer, expected = _prompt("Are you sure you want to continue? (yes/no): ").lower(), "yes"
        if answer != expected:
            hint = "Type the database name exactly" if expected == database else "Answer yes"
            raise PolicyRefused("Not confirmed: nothing was changed", f"{hint} to confirm")


def _prompt(question: str) -> str:
    """Ask on stderr (stdout carries the report, or the JSON document) and read one line."""
    sys.stderr.write(question)
    sys.stderr.flush()
    return sys.stdin.readline().strip()


def arm(
    steps: list[Step], policy: Policy, *, force: bool, no_backup: bool = False, dry_run: bool = False
) -> list[Step]:
    """Refuse now what the policy forbids (before even connecting); else add the automatic
    backup it asks for, and the confirmation after connecting and the steps that only read,
    before anything that changes the database. A dry run refuses nothing: its plan shows it."""
    from dbops.engine.catalog import reads_only

    actions = [ACTIONS[s.name] for s in steps if s.name in ACTIONS]
    refusal = policy.refusal(actions, force, no_backup)
    if refusal is not None and not dry_run:
        raise refusal
    if not no_backup:
        steps = _with_backup(steps, policy)
    at = next((i for i, step in enumerate(steps) if not reads_only(step.name)), len(steps))
    lint = _lint_first(steps, policy)
    guard = Guard(policy, actions, force=force, refusal=refusal)
    if not guard.to_confirm and refusal is None:
        return [*steps[:at], *lint, *steps[at:]]
    return [*steps[:at], *lint, guard, *steps[at:]]


def _lint_first(steps: list[Step], policy: Policy) -> list[Step]:
    """validate_before_migrate: the lint of what migrate will apply runs with the other checks,
    before anything changes (and before asking for a confirmation), not when migrate starts.
    After a reset's drop there is nothing left for a migration to lock: no lint then."""
    from dbops.steps.lint import Lint
    from dbops.steps.migrate import Migrate

    if not policy.lint_before_migrate:
        return []
    for step in steps:
        if step.name == "drop":
            return []
        if isinstance(step, Migrate):
            step.lint = False
            return [Lint(start=step.start, end=step.end, accept=step.accept, policy=True)]
    return []


def _with_backup(steps: list[Step], policy: Policy) -> list[Step]:
    """An automatic backup right before the first step the policy names in backup_before,
    unless the pipeline takes a backup before it anyway. Undos of the steps after it may
    restore it."""
    for at, step in enumerate(steps):
        if step.name == "backup":
            return steps
        action = ACTIONS.get(step.name)
        if action in policy.backup_before:
            from dbops.steps.backup import Backup

            return [*steps[:at], Backup(automatic=True, reason=REASONS[action]), *steps[at:]]
    return steps
