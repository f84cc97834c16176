"""Asking the person at the terminal: on stderr, since stdout carries the report (or the JSON).

What a question confirms is written right above it, in the same block, with the live view's
spinner (dbops.output.live) off the screen until the answer is in.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from dbops.output import live
from dbops.redact import clean


def has_terminal() -> bool:
    """Whether someone can answer: a prompt never waits on a pipe or in CI."""
    return sys.stdin.isatty()


def say(text: str) -> None:
    with live.paused():
        print(clean(text), file=sys.stderr)


def ask(question: str, above: Sequence[str] = ()) -> str:
    """Write `above` (what the answer confirms), ask, and read one line (stripped)."""
    with live.paused():
        sys.stderr.write(clean("".join(f"{line}\n" for line in above) + question))
        sys.stderr.flush()
        return sys.stdin.readline().strip()
