"""Running one operation over a fleet: wave after wave, each on a thread pool of at most its
jobs, every target through the same per-database code as a single run (dbops.boundary), in
this one process. The jobs are a connection budget (dbops.postgres.budget): a target starts
once every session its operation holds at once fits in its server's share, and takes them
all together.

A failed wave (more failures than it tolerates) starts no further target, of its own or of
the waves after it; the targets it leaves are "not started". Ctrl-C (or SIGTERM) starts no
further target either; the running ones finish (each migration commits whole with its
record, so stopping harder would gain nothing).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from dbops.boundary import MakeOptions, execute_in
from dbops.config.model import Config, Environment
from dbops.engine.options import Safety
from dbops.errors import DbopsError
from dbops.fleet.rollout import Planned
from dbops.fleet.summary import attention, one_line
from dbops.fleet.targets import FleetMember
from dbops.output.render import OperationResult, Output
from dbops.output.reports.fleet import NOT_STARTED, STATES, TargetOutcome, WaveOutcome
from dbops.postgres.budget import Budget, Reservation
from dbops.postgres.budget import in_force as budget_in_force
from dbops.postgres.connection import Target

# The most sessions one target of an operation holds at once, its share of the connection
# budget (--jobs: sessions per server): its connection; migrate's migration lock session;
# pg_dump's; validate's scratch database, and the one that builds it from models:. A
# pipeline's steps run one after another on one connection: the most any step holds.
SESSIONS = {
    **{"status": 1, "lint": 1, "seed": 1, "backup-list": 1},
    **{"migrate": 2, "migrate-rollback": 2, "backup": 2},  # backup: pg_dump's (its leader)
}
SESSIONS_AT_MOST = 3  # validate, and pipelines


def sessions_per_target(operation: str, options: object = None) -> int:
    """`options`: the operation's; backup --jobs K makes pg_dump open K sessions more (workers)."""
    dump_jobs = getattr(options, "jobs", None) if operation == "backup" else None
    return SESSIONS.get(operation, SESSIONS_AT_MOST) + (dump_jobs or 0)


@dataclass
class Progress:
    """What the live display reads: counts, and the targets running with their start times."""

    total: int
    done: int = 0
    failed: int = 0
    running: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def slowest(self) -> tuple[str, float] | None:
        with self.lock:
            if not self.running:
                return None
            name, since = min(self.running.items(), key=lambda item: item[1])
        return name, time.monotonic() - since


@dataclass
class FleetRun:
    config: Config
    environment: Environment
    operation: str
    options: MakeOptions
    safety: Safety
    progress: Progress
    on_result: Callable[[FleetMember, str, OperationResult, float], None]  # the operation log's line
    stop: threading.Event = field(default_factory=threading.Event)
    _servers: dict[str, str] = field(default_factory=dict)

    def run(self, waves: list[Planned[FleetMember]]) -> tuple[list[TargetOutcome], list[WaveOutcome]]:
        outcomes: dict[str, TargetOutcome] = {}
        wave_outcomes = []
        stopped = False
        for planned in waves:
            at_once = max(1, min(planned.jobs, planned.budget // self._need()))
            wave = WaveOutcome(planned.wave.name, len(planned.members), at_once, "not started")  # on a server
            wave_outcomes.append(wave)
            if stopped or self.stop.is_set() or not planned.members:
                wave.state = "not started" if planned.members else "done"
                for member in planned.members:
                    outcomes[member.name] = TargetOutcome(member.name, wave.name, NOT_STARTED, 0)
                continue
            stopped = self._wave(planned, wave, outcomes)
        in_order = [outcomes[m.name] for planned in waves for m in planned.members]  # not as they finished
        return in_order, wave_outcomes

    def _wave(
        self, planned: Planned[FleetMember], wave: WaveOutcome, outcomes: dict[str, TargetOutcome]
    ) -> bool:
        """Run one wave; True when it failed (the later waves do not start)."""
        tolerated = planned.wave.tolerated
        queue = list(planned.members)
        failed = False
        budget = Budget(planned.budget)
        need = self._need()
        with ThreadPoolExecutor(max_workers=planned.jobs, thread_name_prefix="dbops-fleet") as pool:
            running: dict[Future[TargetOutcome], Reservation] = {}
            while queue or running:
                try:  # Ctrl-C (or SIGTERM) lands in this thread: no new target, the running ones finish
                    while queue and len(running) < planned.jobs and not failed and not self.stop.is_set():
                        started = self._start_one(queue, budget, need)  # the first whose server has room
                        if started is None:
                            break
                        member, reservation = started
                        running[pool.submit(self._target, member, wave.name, reservation)] = reservation
                    if not running:
                        break
                    finished, _ = wait(running, timeout=0.2, return_when=FIRST_COMPLETED)
                    for future in finished:
                        outcome = future.result()
                        budget.release(running.pop(future))  # the target's sessions are closed
                        outcomes[outcome.name] = outcome
                        if outcome.failed:
                            wave.failed += 1
                            failed = failed or (tolerated is not None and wave.failed > tolerated)
                except KeyboardInterrupt:
                    self.stop.set()
        for member in queue:  # left when the wave failed or a stop came
            outcomes[member.name] = TargetOutcome(member.name, wave.name, NOT_STARTED, 0)
        wave.state = "stopped" if failed or (queue and self.stop.is_set()) else "done"
        return failed

    def _need(self) -> int:
        return sessions_per_target(self.operation, self.options())

    def _start_one(
        self, queue: list[FleetMember], budget: Budget, need: int
    ) -> tuple[FleetMember, Reservation] | None:
        """Take from the queue the first target whose server has room for its whole need."""
        full: set[str] = set()
        for index, member in enumerate(queue):
            server = self._server(member)
            if server in full:
                continue
            reservation = budget.try_reserve(server, need)
            if reservation is not None:
                return queue.pop(index), reservation
            full.add(server)
        return None

    def _server(self, member: FleetMember) -> str:
        """Where the target's sessions go (a Target.location()), as connect() names it."""
        server = self._servers.get(member.name)
        if server is None:
            try:
                server = Target.from_url(member.url).location()
            except DbopsError:  # its run reports the URL; it opens no session
                server = f"(target {member.name})"
            self._servers[member.name] = server
        return server

    def _target(self, member: FleetMember, wave: str, reservation: Reservation) -> TargetOutcome:
        started = time.monotonic()
        with self.progress.lock:
            self.progress.running[member.name] = started
        result = OperationResult(self.operation, self.environment.name)
        try:
            quiet = Output(json_mode=True)  # nothing streamed per target: the fleet report says it all
            with budget_in_force(reservation):
                execute_in(
                    result,
                    self.config,
                    member.environment(self.environment),
                    self.options,
                    self.safety,
                    quiet,
                )
        finally:
            took = time.monotonic() - started
            with self.progress.lock:
                self.progress.running.pop(member.name, None)
                self.progress.done += 1
                self.progress.failed += result.exit_code != 0
        self.on_result(member, wave, result, took)
        return TargetOutcome(
            member.name,
            wave,
            STATES.get(result.exit_code, "failed"),
            result.exit_code,
            took,
            one_line(result),
            attention(result),
            result.error,
            result.to_json(),
        )
