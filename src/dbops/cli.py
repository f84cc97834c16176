"""The standalone ``dbops`` command: an Invoke Program over the same ``db`` collection."""

from __future__ import annotations

import os
import sys

from invoke.exceptions import Exit, ParseError
from invoke.program import Program

from dbops import __version__

_USAGE_HINT = "Hint: dbops --list shows the tasks, dbops TASK --help their flags"


class DbopsProgram(Program):
    """Invoke's Program, with usage errors in dbops' form: Error/Hint lines and exit code 2."""

    def parse_core(self, argv: list[str] | None) -> None:
        try:
            super().parse_core(argv)
        except ParseError as exc:
            raise Exit(f"Error: {exc}\n{_USAGE_HINT}", code=2) from None

    def parse_tasks(self) -> None:
        try:
            super().parse_tasks()
        except ParseError as exc:
            raise Exit(f"Error: {exc}\n{_USAGE_HINT}", code=2) from None


def make_program() -> Program:
    from dbops.tasks import db

    return DbopsProgram(name="dbops", binary="dbops", namespace=db, version=__version__)


def main() -> None:
    try:
        make_program().run()
    except BrokenPipeError:
        # The reader went away (dbops status | head): nothing worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)
