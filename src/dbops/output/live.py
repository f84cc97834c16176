"""The live view: what a run shows while it works.

It follows the run (dbops.engine.context.Watcher): each time a step ends or the running step's
report grows (a migration applied), the operation's report is made from the run's results as
they stand, by the same function that makes the final one, and its new lines are written
(Output.stream). The final report then writes only what is left: the screen and the report
cannot disagree. Plain output (a pipe, a CI log, NO_COLOR) streams these lines too; JSON waits
for its one document.

On a colour terminal a transient line sits below those lines: a spinner, the step (or the
migration, the table, the undo) that is running and for how long, and the progress bars of
dbops.output.progress. Rich is imported only then.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from dbops.engine.results import PipelineResult
from dbops.output.render import Output, Report

ReportOf = Callable[[PipelineResult], Report | None]  # the operation's report from results so far

_active: LiveView | None = None  # the view on the terminal now (progress bars and prompts join it)


class LiveView:
    """Follows a run (dbops.engine.context.Watcher): streams its report, draws the spinner."""

    def __init__(self, output: Output, report_of: ReportOf) -> None:
        self.output = output
        self.report_of = report_of
        self.step = ""  # what the running step does, as the spinner says it
        self._live: Any = None  # rich's Live, when animated
        self._spinner: Any = None  # the Progress holding the spinner's task
        self._task: Any = None
        self._bars: list[Any] = []  # the Progress of each bar shown now

    # ------------------------------------------------------------------ the run's events

    def started(self, number: int, total: int, step: str, description: str) -> None:
        counter = f"{number}/{total} " if total > 1 else ""
        self.step = f"{counter}{step}: {description}" if description else f"{counter}{step}"
        self.working(None)

    def progressed(self, so_far: PipelineResult) -> None:
        self.output.stream(self.report_of(so_far))

    def working(self, what: str | None) -> None:
        if self._spinner is None:
            return
        text = f"{self.step} · {what}" if what else self.step
        self._spinner.reset(self._task, description=text)  # the clock starts again

    # ------------------------------------------------------------------ the animated part

    def start(self) -> None:
        from rich.console import Console, Group  # lazy: only a colour terminal draws a live view
        from rich.live import Live
        from rich.progress import Progress, SpinnerColumn, TextColumn

        console = Console(file=self.output.stdout, highlight=False, soft_wrap=True)
        columns = (SpinnerColumn(), TextColumn("{task.description}"), _Elapsed())
        self._spinner = Progress(*columns, console=console)
        self._task = self._spinner.add_task(self.step)
        self._live = Live(
            get_renderable=lambda: Group(self._spinner, *self._bars),
            console=console,
            transient=True,
            refresh_per_second=8,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._live.start()
        self.output.console = console

    def stop(self) -> None:
        if self._live is not None:
            self._live.stop()
        self.output.console = None

    @property
    def animated(self) -> bool:
        return self._live is not None

    def add_bar(self, bar: Any) -> None:
        self._bars.append(bar)

    def remove_bar(self, bar: Any) -> None:
        if bar in self._bars:
            self._bars.remove(bar)
        if self._live is not None:
            self._live.refresh()  # gone now, not at the next tick: lines printed next sit above no bar

    @contextmanager
    def paused(self) -> Iterator[None]:
        """The spinner off the screen while someone is asked something."""
        live = self._live
        if live is None:
            yield
            return
        live.stop()
        try:
            yield
        finally:
            live.start()


@contextmanager
def follow(output: Output, report_of: ReportOf) -> Iterator[LiveView]:
    """A live view of a run for as long as it lasts; animated on a colour terminal."""
    global _active
    view = LiveView(output, report_of)
    if output.animated:
        view.start()
    _active = view
    try:
        yield view
    finally:
        _active = None
        view.stop()


def active() -> LiveView | None:
    """The live view on the terminal now, if it is animated."""
    return _active if _active is not None and _active.animated else None


@contextmanager
def paused() -> Iterator[None]:
    """Stop drawing the live view (if one is shown) while the terminal asks a question."""
    view = active()
    if view is None:
        yield
        return
    with view.paused():
        yield


def _elapsed_text(seconds: float | None) -> str:
    seconds = seconds or 0.0
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest:02d}s"


def _Elapsed() -> Any:
    """A column: how long the running thing has been running (3.2s, 12m05s)."""
    from rich.progress import ProgressColumn  # lazy: only a colour terminal draws a live view
    from rich.text import Text

    class Elapsed(ProgressColumn):
        def render(self, task: Any) -> Text:
            return Text(_elapsed_text(task.elapsed), style="dim")

    return Elapsed()
