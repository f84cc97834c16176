"""The fleet report: one result per target, the waves, and what needs attention (dbops.fleet
builds it). On a terminal: the states and their counts, the failed targets with their one-line
errors, the targets status finds behind, and those that never started; --json: all of it,
with each target's own result document."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from dbops.engine.results import ErrorInfo
from dbops.output.render import Line, Style, heading

# a target's state, from its exit code (dbops.errors), or "not started"
STATES = {0: "ok", 1: "failed", 2: "usage error", 3: "refused", 4: "undo failed", 130: "interrupted"}
NOT_STARTED = "not started"


@dataclass
class TargetOutcome:
    name: str
    wave: str
    state: str
    exit_code: int
    duration_s: float = 0.0
    summary: str = ""  # one line: what it did, or its error
    attention: list[str] = field(default_factory=list)  # status: behind, edited, health failing
    error: ErrorInfo | None = None
    result: dict[str, Any] | None = None  # the target's own result document (as --json gives one)

    @property
    def failed(self) -> bool:
        return self.state not in ("ok", NOT_STARTED)


@dataclass
class WaveOutcome:
    name: str
    targets: int
    jobs: int
    state: str  # done, stopped (too many failures), not started
    failed: int = 0


@dataclass
class FleetReport:
    operation: str
    environment: str
    source: str  # where the targets came from
    jobs: int
    shard: str | None = None
    selected: str | None = None  # --targets
    retried: bool = False
    waves: list[WaveOutcome] = field(default_factory=list)
    targets: list[TargetOutcome] = field(default_factory=list)
    duration_s: float = 0.0

    def counts(self) -> dict[str, int]:
        return dict(Counter(t.state for t in self.targets))

    def failed(self) -> list[TargetOutcome]:
        return [t for t in self.targets if t.failed]

    def not_started(self) -> list[str]:
        return [t.name for t in self.targets if t.state == NOT_STARTED]

    def errors(self) -> list[str]:
        """For the CI's logging commands: a line per failed target."""
        return [f"{t.name}: {t.summary}" for t in self.failed()]

    def warnings(self) -> list[str]:
        return [f"{t.name}: {', '.join(t.attention)}" for t in self.targets if t.attention and not t.failed]

    def lines(self) -> list[Line]:
        lines = heading(f"🚢 Fleet: {self.operation} on {self.environment}")
        if not self.targets:
            nothing = (
                "Nothing to retry: the last run's targets all succeeded"
                if self.retried
                else "Nothing to run: no target selected"
            )
            return [*lines, ("ok", nothing)]
        scope = [f"{len(self.targets)} target(s) from {self.source}"]
        if self.selected:
            scope.append(f"--targets {self.selected}")
        if self.shard:
            scope.append(f"shard {self.shard}")
        if self.retried:
            scope.append("retrying the last run's failed targets")
        lines.append(
            ("", f"{', '.join(scope)}; up to {self.jobs} sessions per server; {self.duration_s:.1f}s")
        )
        if len(self.waves) > 1 or (self.waves and self.waves[0].name != "all"):
            for wave in self.waves:
                style: Style = "fail" if wave.failed else "ok" if wave.state == "done" else "dim"
                count = f", {wave.failed} failed" if wave.failed else ""
                what = f"{wave.targets} target(s), {wave.jobs} at once: {wave.state}{count}"
                lines.append((style, f"  wave {wave.name}: {what}"))
        lines.append(("", ""))
        lines.append(("key", f"{'State':<14} Targets"))
        for state, number in sorted(self.counts().items(), key=lambda item: (item[0] != "ok", item[0])):
            kind: Style = "ok" if state == "ok" else "dim" if state == NOT_STARTED else "fail"
            lines.append((kind, f"{state:<14} {number}"))
        failed = self.failed()
        if failed:
            lines += [("", ""), ("fail", f"Failed ({len(failed)}):")]
            lines += [("fail", f"  ✗ {t.name}: {t.summary}") for t in failed]
        attention = [t for t in self.targets if t.attention]
        if attention:
            lines += [("", ""), ("warn", f"Needs attention ({len(attention)}):")]
            lines += [("warn", f"  ⚠ {t.name}: {'; '.join(t.attention)}") for t in attention]
        never = self.not_started()
        if never:
            lines += [("", ""), ("dim", f"Never started ({len(never)}): {', '.join(never)}")]
        return lines + self._done_lines()

    def _done_lines(self) -> list[Line]:
        """What the targets that succeeded did: one line when they all did the same, else a
        line per kind of result (with its count), or per target when they all differ."""
        done = [t for t in self.targets if t.state == "ok"]
        kinds = Counter(t.summary for t in done if t.summary)
        if not kinds:
            return []
        if len(kinds) == 1 and len(done) == len(self.targets):
            return [("", ""), ("ok", f"✓ Every target: {next(iter(kinds))}")]
        lines: list[Line] = [("", ""), ("ok", f"Succeeded ({len(done)}):")]
        if any(count > 1 for count in kinds.values()) or len(done) > 50:
            shown = kinds.most_common(5)
            lines += [("ok", f"  ✓ {count} target(s): {summary}") for summary, count in shown]
            if len(kinds) > 5:
                lines.append(("dim", f"  ... and {len(kinds) - 5} other result(s) (--json has each)"))
            return lines
        return lines + [("ok", f"  ✓ {t.name}: {t.summary}") for t in done]
