"""Asking the person at the terminal: on stderr, since stdout carries the report (or the JSON)."""

from __future__ import annotations

import sys


def has_terminal() -> bool:
    """Whether someone can answer: a prompt never waits on a pipe or in CI."""
    return sys.stdin.isatty()


def say(text: str) -> None:
    print(text, file=sys.stderr)


def ask(question: str) -> str:
    """Ask and read one line (stripped)."""
    sys.stderr.write(question)
    sys.stderr.flush()
    return sys.stdin.readline().strip()
