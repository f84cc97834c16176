"""confirm: ask once for all that the pipeline will do, where the policy asks for it. Undo: none.

The policy (dbops.engine.policy) decides whether a confirmation is needed and where it goes;
this step asks on the terminal, or refuses (exit 3) where there is none to ask on and no
--force.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from dbops.engine.context import RunContext
from dbops.engine.pipeline import StepOutcome
from dbops.errors import PolicyRefused
from dbops.output import prompt

if TYPE_CHECKING:
    from dbops.engine.policy import Policy

WARNINGS = {
    "reset": "This will delete ALL data in the database!",
    "rollback": "This rolls back applied migrations, and the data of what they created!",
    "restore": "This will replace all current data!",
}


class Guard:
    """Confirm once for all that the pipeline will do, where the policy asks for it."""

    name = "confirm"
    undo = "none: it changes nothing"
    policy_action: str | None = None

    def __init__(
        self,
        policy: Policy,
        actions: Sequence[str],
        *,
        force: bool,
        refusal: PolicyRefused | None = None,
        notes: Sequence[Callable[[], str | None]] = (),
        details: Sequence[Callable[[RunContext], list[str]]] = (),
    ) -> None:
        self.policy = policy
        self.notes = list(notes)  # what earlier steps found that the question must say
        self.details = list(details)  # what the steps will do, shown above the question
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
        notes = [note for note in (n() for n in self.notes) if note]
        if not prompt.has_terminal():
            flag = (
                "or pass --force if you mean it"
                if self.policy.allow_force
                else f"--force is not accepted in {self.policy.environment} (allow_force: false)"
            )
            raise PolicyRefused(
                f"{' and '.join(self.to_confirm).capitalize()} on {ctx.env.name} ({database}) "
                f"needs confirmation: no terminal to ask on{''.join(f' ({n})' for n in notes)}",
                f"Run it on a terminal, {flag}",
            )
        details = [line for detail in self.details for line in detail(ctx)]  # may refuse before asking
        self._ask(ctx.env.name, database, notes, details)
        return StepOutcome(messages=["confirmed on the terminal"])

    def _ask(
        self, environment: str, database: str, notes: Sequence[str] = (), details: Sequence[str] = ()
    ) -> None:
        """The spec's question, with everything it confirms above it, in one block."""
        above = [f"⚠️ WARNING: {WARNINGS[action]}" for action in self.to_confirm]
        above += [f"⚠️ WARNING: {note[:1].upper()}{note[1:]}" for note in notes]
        above += [f"Database: {database}", f"Environment: {environment}", *details]
        if self.policy.confirm == "name":
            question = f"Type the database name ({database}) to continue: "
            answer, expected = prompt.ask(question, above), database
        else:
            question = "Are you sure you want to continue? (yes/no): "
            answer, expected = prompt.ask(question, above).lower(), "yes"
        if answer != expected:
            hint = "Type the database name exactly" if expected == database else "Answer yes"
            raise PolicyRefused("Not confirmed: nothing was changed", f"{hint} to confirm")
