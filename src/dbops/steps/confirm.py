"""confirm: ask before a destructive step. Undo: none.

A protected environment asks the user to type the database name; with ``always``, other
environments ask yes/no. Never hangs on a prompt: without a terminal it refuses (exit 3)
unless --force was given.
"""

from __future__ import annotations

import sys

from dbops.context import RunContext
from dbops.errors import PolicyRefused
from dbops.pipeline import StepOutcome


class Confirm:
    name = "confirm"
    description = "ask for confirmation"

    def __init__(
        self, action: str, *, force: bool = False, always: bool = False, warning: str | None = None
    ) -> None:
        self.action = action
        self.force = force
        self.always = always  # ask (yes/no) even where the environment is not protected
        self.warning = warning or action  # the prompt's WARNING line

    def run(self, ctx: RunContext) -> StepOutcome:
        if not (ctx.env.protected or self.always):
            return StepOutcome(messages=["not a protected environment: no confirmation needed"])
        if self.force:
            return StepOutcome(messages=["confirmed by --force"])
        database = ctx.database()
        if not sys.stdin.isatty():
            raise PolicyRefused(
                f"{self.action} on {ctx.env.name} ({database}) needs confirmation: no terminal to ask on",
                "Run it on a terminal, or pass --force if you mean it",
            )
        print(f"⚠️ WARNING: {self.warning}", file=sys.stderr)
        print(f"Database: {database}\nEnvironment: {ctx.env.name}", file=sys.stderr)
        if ctx.env.protected:
            expected, question = database, f"Type the database name ({database}) to continue: "
            hint = "Type the database name exactly to confirm"
        else:
            expected, question = "yes", "Are you sure you want to continue? (yes/no): "
            hint = "Answer yes to confirm"
        try:
            answer = input(question)
        except EOFError:
            answer = ""
        if answer.strip() != expected:
            raise PolicyRefused("Not confirmed: nothing was changed", hint)
        return StepOutcome(messages=["confirmed on the terminal"])
