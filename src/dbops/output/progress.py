"""The one transient progress bar (backups, restores, seeds), on a terminal only: below the
live view's spinner while one is shown (dbops.output.live), else on its own."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

from dbops.output import live

Advance = Callable[[str, int, int | None], None]  # (what, done, total or None)


@contextmanager
def bar(
    show: bool, *, counting: Literal["bytes", "rows"] = "bytes", label: str = "{}"
) -> Iterator[Advance | None]:
    """Yields advance(what, done, total), one task of the bar per `what` (shown as
    label.format(what)); None when not on a terminal (nothing is drawn).

    bytes: the size done so far and the time taken (a dump's total is unknown); rows: counts of
    anything (rows, or bytes of a CSV file) and the time left.
    """
    if not show:
        yield None
        return
    from rich.progress import (  # rich costs start-up time: only when a bar is drawn
        BarColumn,
        DownloadColumn,
        Progress,
        ProgressColumn,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns: tuple[ProgressColumn, ...] = (
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
    )
    if counting == "bytes":
        columns += (DownloadColumn(), TimeElapsedColumn())
    else:
        columns += (TimeRemainingColumn(),)
    tasks: dict[str, Any] = {}
    view = live.active()
    if view is not None:  # one more line of the live view, drawn by it
        progress = Progress(*columns, console=view.output.console)
        view.add_bar(progress)
        try:
            yield _advance(progress, tasks, label)
        finally:
            view.remove_bar(progress)
        return
    with Progress(*columns, transient=True) as progress:
        yield _advance(progress, tasks, label)


def _advance(progress: Any, tasks: dict[str, Any], label: str) -> Advance:
    def advance(what: str, done: int, total: int | None) -> None:
        if what not in tasks:
            tasks[what] = progress.add_task(label.format(what), total=total)
        progress.update(tasks[what], completed=done, total=total)

    return advance
