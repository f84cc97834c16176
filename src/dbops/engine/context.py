"""RunContext: what every step gets: config, environment, target, connection, flags."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from dbops.errors import ConfigError, DatabaseMissing, DbopsError
from dbops.postgres.connection import ServerFacts, Target, connect, ensure_database, read_facts
from dbops.postgres.embedded import EmbeddedServer
from dbops.redact import clean

if TYPE_CHECKING:
    import psycopg

    from dbops.config.model import Config, Environment
    from dbops.engine.pipeline import Undo
    from dbops.engine.restore_point import RestorePoint
    from dbops.engine.results import PipelineResult


class Watcher(Protocol):
    """Who follows a run as it goes: the live view of a terminal (dbops.output.live), which shows
    the report's lines as the run's results grow, and what the running step is doing."""

    def started(self, number: int, total: int, step: str, description: str) -> None:
        """Step `number` of `total` begins."""

    def progressed(self, so_far: PipelineResult) -> None:
        """A step ended, or the running step's report grew: the run's results as they stand
        (the running step with its report so far), the objects the final report renders."""

    def working(self, what: str | None) -> None:
        """What the running step is doing now (a migration, a table, an undo); None: nothing in
        particular."""


class _Quiet:
    def started(self, number: int, total: int, step: str, description: str) -> None:
        pass

    def progressed(self, so_far: PipelineResult) -> None:
        pass

    def working(self, what: str | None) -> None:
        pass


class RunContext:
    def __init__(self, config: Config, env: Environment, *, interactive: bool = False) -> None:
        self.config = config
        self.env = env
        self.interactive = interactive  # a person at a terminal: progress bars are welcome
        self._target: Target | None = None
        self._conn: psycopg.Connection[Any] | None = None
        self._facts: ServerFacts | None = None
        self._step: tuple[str, int] = ("", 0)  # the running step's name and position
        self.partial: Any = None  # the running step's report so far (shown if it fails)
        self.undos: list[tuple[str, int, Undo]] = []  # registered so far, in order
        self.restore_point: RestorePoint | None = None  # the last backup this pipeline completed
        self.restored_to: int | None = None  # an undo restored the backup of this step
        self._held: list[Callable[[], None]] = []  # releases of what steps hold until the run ends
        self.watch: Watcher = _Quiet()  # the live view, on a terminal
        self._so_far: Callable[[], PipelineResult] | None = None  # the runner's results as they stand

    # ------------------------------------------------------------------ where to connect

    def embedded_server(self) -> EmbeddedServer:
        return EmbeddedServer(self.config.state_dir / "pg")

    def database_name(self) -> str:
        """The embedded server's database for this environment."""
        return self.env.database or f"{self.config.project}_{self.env.name}"

    def database(self) -> str:
        """The database this run works on, as far as known without connecting or starting a
        server: the connection's, else the URL's (or dbops.yaml's database: when the URL names
        none; two names that disagree are refused), else the embedded server's naming (only for
        an environment without a URL)."""
        if self._target is not None:
            return self._target.dbname
        try:
            url = self.env.resolved_url()
        except DbopsError:
            return self.env.database or "(from the URL, once it is set)"
        if url:
            try:
                Target.from_url(url)
            except DbopsError:  # reported when the run connects, by target()
                return self.env.database or "(from the URL)"
            return Target.of_environment(url, self.env).dbname  # refuses two names that disagree
        return self.database_name()

    def target(self) -> Target:
        """The environment's database: its URL, or the embedded server (started on demand)."""
        if self._target is not None:
            return self._target
        url = self.env.resolved_url()
        if url:
            self._target = Target.of_environment(url, self.env)
        elif self.env.embedded:
            state = self.embedded_server().ensure_running()
            params = {"host": str(state.socket_dir), "port": "5432", "user": "postgres"}
            self._target = Target(
                params={**params, "dbname": self.database_name()}, embedded_data=state.data_dir
            )
        else:
            raise self._no_url()
        return self._target

    def _no_url(self) -> ConfigError:
        name = self.env.name
        where = self.env.where()
        if self.env.protected:
            return ConfigError(
                f"{where}: no database URL; a protected environment never uses the embedded server",
                f"Set url: for {name} in dbops.yaml (e.g. url: ${{DATABASE_URL}}) or its env_file",
            )
        return ConfigError(
            f"{where}: no database URL",
            "Set url: (or env_file: with DATABASE_URL), or embedded: true to use the built-in server",
        )

    def target_if_known(self) -> Target | None:
        return self._target

    # ------------------------------------------------------------------ the connection

    def connection(self) -> psycopg.Connection[Any]:
        """One autocommit connection for the run, opened on first use."""
        if self._conn is None or self._conn.closed:
            target = self.target()
            try:
                self._conn = connect(target, self.env)
            except DatabaseMissing:
                if target.embedded_data is None:
                    raise
                ensure_database(target, self.env)
                self._conn = connect(target, self.env)
        return self._conn

    def begin_step(self, name: str, number: int, of: tuple[int, str] = (0, "")) -> None:
        """The runner starts a step (of: how many steps, what this one does): the undos
        registered from now on are its own."""
        self._step = (name, number)
        self.partial = None
        total, description = of
        self._tell(lambda: self.watch.started(number, total, name, description))

    def add_undo(self, undo: Undo) -> None:
        """Register how to take back what the running step has changed so far.

        Call it as soon as something is changed, not at the end: if the step then fails or is
        interrupted, its own partial work is undone too, in the same reverse chain.
        """
        self.undos.append((*self._step, undo))

    def report_so_far(self, report: Any) -> None:
        """The running step's report as it stands: the run shows it even if the step then fails
        (a migrate that applied two of three migrations reports those two)."""
        self.partial = report

    def follow(self, so_far: Callable[[], PipelineResult]) -> None:
        """The runner says where its results so far are (for report_grew)."""
        self._so_far = so_far

    def report_grew(self) -> None:
        """The running step's report has new lines, final ones (a migration applied): the live
        view shows them now. A failing view never fails the step."""
        if self._so_far is not None:
            so_far = self._so_far
            self._tell(lambda: self.watch.progressed(so_far()))

    def undoing(self, step: str, number: int, description: str) -> None:
        """The runner takes back what step `number` did (the live view says so)."""
        self._tell(lambda: self.watch.started(number, 0, f"undo of step {number} ({step})", description))

    def working(self, what: str | None) -> None:
        """What the running step is doing now, for the live view (a migration, a table)."""
        self._tell(lambda: self.watch.working(what))

    def _tell(self, event: Callable[[], None]) -> None:
        try:
            event()
        except Exception as exc:  # the display is never a reason to fail (and undo) a step
            self.debug(f"live view: {type(exc).__name__}: {exc}")

    @property
    def running_step(self) -> int:
        """The position of the step running now, from 1."""
        return self._step[1]

    def facts(self) -> ServerFacts:
        """Who and where we are connected, read once per run."""
        if self._facts is None:
            self._facts = read_facts(self.connection(), self.target())
        return self._facts

    def hold(self, release: Callable[[], None]) -> None:
        """Something a step keeps for the steps after it (the restore lock): released by
        release_held() when the pipeline ends, however it ends, if not before."""
        self._held.append(release)

    def release_held(self) -> None:
        while self._held:
            release = self._held.pop()
            try:
                release()
            except Exception as exc:  # a failed release must not hide the run's outcome
                self.debug(f"release: {type(exc).__name__}: {exc}")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # ------------------------------------------------------------------ secrets and debugging

    def scrub(self, text: str) -> str:
        return clean(self._target.scrub(text) if self._target is not None else text)

    def debug(self, text: str) -> None:
        if os.environ.get("DBOPS_DEBUG"):
            print(self.scrub(text), file=sys.stderr)
