"""The standalone ``dbops`` command: an Invoke Program over the same ``db`` collection."""

from __future__ import annotations

import gc
import sys

from invoke.exceptions import Exit, ParseError
from invoke.program import Program

from dbops import __version__
from dbops.cli import pipes
from dbops.cli.help import HELP_FLAGS, core_options
from dbops.cli.tasks import collection
from dbops.errors import DbopsError

_USAGE_HINT = "Hint: dbops --list shows the tasks, dbops TASK --help their flags"


# The command lines answered without Invoke's parser (it deep-copies every task's parser context
# twice, several milliseconds): what they print is what Invoke prints for them.
_AT_ONCE = {
    **dict.fromkeys(("--help", "-h"), "help"),
    **dict.fromkeys(("--list", "-l"), "list"),
    **dict.fromkeys(("--version", "-V"), "version"),
}


class DbopsProgram(Program):
    """Invoke's Program, with usage errors in dbops' form: Error/Hint lines and exit code 2."""

    def run(self, argv: list[str] | None = None, exit: bool = True) -> None:
        words = sys.argv if argv is None else argv
        what = _AT_ONCE.get(words[1]) if len(words) == 2 else None
        if what is None or self.namespace is None:
            super().run(argv, exit)
        elif what == "version":
            self.print_version()
        else:
            self.collection = self.scoped_collection = self.namespace
            self.list_root = self.list_depth = None
            self.list_format = "flat"
            self.argv = list(words)
            if what == "help":
                self.print_help()
            else:
                self.list_tasks()

    def parse_core(self, argv: list[str] | None) -> None:
        try:
            super().parse_core(_help_first(sys.argv if argv is None else argv))
        except ParseError as exc:
            raise Exit(f"Error: {exc}\n{_USAGE_HINT}", code=2) from None

    def print_help(self) -> None:
        """Invoke's, with only the core options that mean something for dbops."""
        print(f"Usage: {self.binary} [--core-opts] <subcommand> [--subcommand-opts] ...\n")
        print("Core options:\n")
        self.print_columns(core_options(self.initial_context.help_tuples()))
        self.list_tasks()

    def parse_tasks(self) -> None:
        try:
            super().parse_tasks()
        except ParseError as exc:
            raise Exit(f"Error: {exc}\n{_config_problem() or _USAGE_HINT}", code=2) from None


def _help_first(argv: list[str]) -> list[str]:
    """``dbops TASK ... --help`` as ``dbops --help TASK``: the task's full help, also for a task
    with a positional argument (which Invoke would hand the flag to)."""
    words = argv[1:]
    if words and not words[0].startswith("-") and any(w in HELP_FLAGS for w in words[1:]):
        return [argv[0], "--help", words[0]]
    return argv


def _config_problem() -> str | None:
    """Why dbops.yaml's pipelines are not tasks, if it does not load (an unknown task may be one)."""
    # lazy: only a command line that does not parse pays for loading dbops.yaml
    from dbops.config.loader import load_config
    from dbops.engine.catalog import RULES

    try:
        load_config(RULES)
    except DbopsError as exc:
        return f"Hint: dbops.yaml does not load, so its pipelines are not tasks: {exc.message}"
    return None


def make_program() -> Program:
    return DbopsProgram(name="dbops", binary="dbops", namespace=collection(), version=__version__)


def main() -> None:
    try:
        make_program().run()
    except BrokenPipeError:
        # The reader went away (dbops status | head): nothing worth a traceback.
        pipes.silence_stdout()
        sys.exit(pipes.EXIT_BROKEN_PIPE)
    finally:
        # The process ends here: the collector's passes at exit would walk every object of Invoke,
        # psycopg and dbops (about 40 ms) only to find what the exit frees anyway.
        gc.freeze()
