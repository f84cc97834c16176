"""Waves: which targets run when. A rollout lists ordered waves (dbops.yaml); a target goes to
the first wave that names it (or a pattern of it), else to the wave that takes the rest (the
one without targets:, or an implicit last wave "rest"). Without a rollout, one wave "all"
takes every target and goes on after a failure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from dbops.config.model import Wave
from dbops.fleet.targets import matches

Member = TypeVar("Member")

ALL = Wave("all", on_error="continue")
REST = Wave("rest", on_error="continue")


@dataclass
class Planned(Generic[Member]):
    wave: Wave
    members: list[Member]
    jobs: int  # targets at once in this wave
    budget: int = 0  # sessions per server at once in this wave (0: jobs)

    def __post_init__(self) -> None:
        self.budget = self.budget or self.jobs


def plan(
    names: Sequence[str], members: Sequence[Member], rollout: Sequence[Wave], jobs: int
) -> list[Planned[Member]]:
    """The waves in order, each with its targets (in fleet order) and its parallelism: the
    wave's jobs, never above the run's --jobs (the connection budget)."""
    if not rollout:
        return [Planned(ALL, list(members), _width(jobs, jobs, len(members)), jobs)]
    taken: dict[str, list[Member]] = {w.name: [] for w in rollout}
    catch_all = next((w for w in rollout if not w.targets), None)
    rest: list[Member] = []
    for name, member in zip(names, members, strict=True):
        wave = next((w for w in rollout if w.targets and matches(name, w.targets)), catch_all)
        if wave is None:
            rest.append(member)
        else:
            taken[wave.name].append(member)
    planned = [
        Planned(w, taken[w.name], _width(w.jobs or jobs, jobs, len(taken[w.name])), min(w.jobs or jobs, jobs))
        for w in rollout
    ]
    if rest:
        planned.append(Planned(REST, rest, _width(jobs, jobs, len(rest)), jobs))
    return planned


def _width(wanted: int, budget: int, targets: int) -> int:
    return max(1, min(wanted, budget, targets))
