"""Help that Invoke does not give: a task's full help when its positional argument took the
--help flag (``invoke db.restore --help``), and a core-options listing without Invoke's own
options that do nothing for dbops."""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from invoke.exceptions import Exit
from invoke.parser.context import ParserContext
from invoke.program import Program
from invoke.tasks import Task

HELP_FLAGS = ("--help", "-h")
# Invoke's core options that mean something for dbops; the rest (--echo, --hide, --pty, -f
# runtime config files, ...) configure Invoke's own run() and sudo(), which dbops never uses.
CORE_OPTIONS = ("--complete", "--help", "--list", "--list-format", "--print-completion-script", "--version")


def core_options(tuples: Sequence[tuple[str, str | None]]) -> list[tuple[str, str | None]]:
    """Invoke's help lines of the core options, without those that do nothing for dbops."""
    return [(spec, text) for spec, text in tuples if _long_flags(spec) & set(CORE_OPTIONS)]


def _long_flags(spec: str) -> set[str]:
    """The long flags of a help spec such as ``-l [STRING], --list[=STRING]`` (no regular
    expression: compiling one is a good part of what dbops --help costs beyond Invoke)."""
    words = spec.replace(",", " ").replace("[", " ").replace("=", " ").split()
    return {word for word in words if word.startswith("--")}


def task_help(task: Task[Any]) -> NoReturn:
    """Print a task's full help, as ``dbops --help TASK`` does, and exit 0. For a task whose
    positional argument received --help: Invoke hands the flag to it instead of showing help."""
    binary = os.path.basename(sys.argv[0]) or "dbops"
    binary = "inv[oke]" if binary in ("inv", "invoke") else binary  # as Invoke's own help says it
    words = sys.argv[1:]
    at = next((i for i, word in enumerate(words) if word in HELP_FLAGS), len(words))
    name = next((w for w in reversed(words[:at]) if not w.startswith("-")), task.name or "")
    program = Program(binary=binary)
    tuples = ParserContext(name=name, args=task.get_arguments()).help_tuples()
    print(f"Usage: {binary} [--core-opts] {name} [--options] [other tasks here ...]\n")
    print("Docstring:")
    for line in (inspect.getdoc(task.body) or "none").splitlines():
        print(program.leading_indent + line if line.strip() else "")
    print("\nOptions:")
    program.print_columns(tuples)
    raise Exit(code=0)
