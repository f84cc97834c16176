"""A reader that goes away (``dbops status | head``, ``invoke --list | head``) ends the
program quietly, with the exit status of a process killed by SIGPIPE, as Unix tools do.

``dbops`` catches BrokenPipeError in its main(); under ``invoke`` the program is Invoke's, so
importing the ``db`` collection chains a sys.excepthook that does the same for an uncaught
BrokenPipeError, and hands every other exception to the hook that was there before.
"""

from __future__ import annotations

import os
import sys
from contextlib import suppress
from types import TracebackType

EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for `yes | head`


def silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush finds no closed pipe either."""
    with suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def quiet_broken_pipe() -> None:
    """Install the hook once per process (importing the collection twice changes nothing)."""
    previous = sys.excepthook
    if getattr(previous, "dbops_quiet_broken_pipe", False):
        return

    def hook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        if not issubclass(kind, BrokenPipeError):
            previous(kind, value, tb)
            return
        silence_stdout()
        with suppress(OSError, ValueError):
            sys.stderr.flush()
        os._exit(EXIT_BROKEN_PIPE)  # an exit status of our own: after the hook Python would give 1

    hook.dbops_quiet_broken_pipe = True  # type: ignore[attr-defined]
    sys.excepthook = hook
