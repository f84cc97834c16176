"""The live line of a fleet run on a terminal: done, failed, running, and the slowest running
target. rich is imported only when it is drawn."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from dbops.fleet.runner import Progress


def describe(title: str, progress: Progress) -> str:
    with progress.lock:
        done, failed, running = progress.done, progress.failed, len(progress.running)
    text = f"{title}: {done}/{progress.total} done, {failed} failed, {running} running"
    slowest = progress.slowest()
    if slowest is not None:
        text += f" (slowest: {slowest[0]}, {slowest[1]:.1f}s)"
    return text


@contextmanager
def live(show: bool, title: str, progress: Progress, stream: TextIO) -> Iterator[None]:
    if not show:
        yield
        return
    from rich.console import Console  # rich costs start-up time: only when the line is drawn
    from rich.live import Live
    from rich.text import Text

    class View:
        def __rich__(self) -> Text:
            return Text(describe(title, progress), style="dim")

    with Live(View(), console=Console(file=stream), refresh_per_second=4, transient=True):
        yield
