"""Running one operation over a fleet: wave after wave, each on a thread pool of at most its
jobs, every target through the same per-database code as a single run (dbops.boundary), in
this one process.

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
from dbops.fleet.rollout import Planned
from dbops.fleet.summary import attention, one_line
from dbops.fleet.targets import FleetMember
from dbops.output.render import OperationResult, Output
from dbops.output.reports.fleet import NOT_STARTED, STATES, TargetOutcome, WaveOutcome


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

    def run(self, waves: list[Planned[FleetMember]]) -> tuple[list[TargetOutcome], list[WaveOutcome]]:
        outcomes: dict[str, TargetOutcome] = {}
        wave_outcomes = []
        stopped = False
        for planned in waves:
            wave = WaveOutcome(planned.wave.name, len(planned.members), planned.jobs, "not started")
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
        with ThreadPoolExecutor(max_workers=planned.jobs, thread_name_prefix="dbops-fleet") as pool:
            running: dict[Future[TargetOutcome], FleetMember] = {}
            while queue or running:
                try:  # Ctrl-C (or SIGTERM) lands in this thread: no new target, the running ones finish
                    while queue and len(running) < planned.jobs and not failed and not self.stop.is_set():
                        member = queue[0]
                        running[pool.submit(self._target, member, wave.name)] = member
                        queue.pop(0)
                    if not running:
                        break
                    finished, _ = wait(running, timeout=0.2, return_when=FIRST_COMPLETED)
                    for future in finished:
                        outcome = future.result()
                        if running.pop(future, None) is None:
                            continue
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

    def _target(self, member: FleetMember, wave: str) -> TargetOutcome:
        started = time.monotonic()
        with self.progress.lock:
            self.progress.running[member.name] = started
        result = OperationResult(self.operation, self.environment.name)
        try:
            quiet = Output(json_mode=True)  # nothing streamed per target: the fleet report says it all
            execute_in(
                result, self.config, member.environment(self.environment), self.options, self.safety, quiet
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
