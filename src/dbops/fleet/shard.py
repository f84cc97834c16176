"""--shard K/N: the K-th of N disjoint slices of a fleet, by a stable hash of each target's name.

A target's slice depends on its name only: adding or removing targets never moves the others,
and N CI jobs (Azure DevOps parallel jobs, a GitHub Actions matrix, a Kubernetes Indexed Job)
cover the fleet exactly once with no coordination. --shard auto reads the job's position from
the variables those CI systems set (Azure DevOps; a Kubernetes Indexed Job, whose count comes
from --shard auto/N or DBOPS_SHARD_COUNT).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from typing import TypeVar

from dbops.errors import UsageError

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$", re.ASCII)

Named = TypeVar("Named")


_AUTO = re.compile(r"^\s*auto\s*(?:/\s*(\d+)\s*)?$", re.ASCII | re.IGNORECASE)

# --shard auto: where CI tells a job its position (1-based) and the count of jobs
AZURE = ("SYSTEM_JOBPOSITIONINPHASE", "SYSTEM_TOTALJOBSINPHASE")  # strategy: parallel: N
KUBERNETES = "JOB_COMPLETION_INDEX"  # an Indexed Job's pod: 0-based; its count is not told
COUNT = "DBOPS_SHARD_COUNT"  # the count of jobs, where CI does not tell it (--shard auto/N too)


def parse(text: str, environ: Mapping[str, str] | None = None) -> tuple[int, int]:
    """K/N, or auto (auto/N): the job's position from the CI's variables (`environ`)."""
    auto = _AUTO.match(text)
    if auto is not None:
        return _auto(auto.group(1), os.environ if environ is None else environ)
    match = _SHARD.match(text)
    if match is None or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise UsageError(
            f"--shard expects K/N with 1 <= K <= N, or auto, got {text!r}",
            "e.g. --shard=1/4 for the first of four slices",
        )
    return int(match.group(1)), int(match.group(2))


def _auto(given: str | None, environ: Mapping[str, str]) -> tuple[int, int]:
    """Azure DevOps' System.JobPositionInPhase / System.TotalJobsInPhase, else a Kubernetes
    Indexed Job's JOB_COMPLETION_INDEX (+1) with the count from auto/N or DBOPS_SHARD_COUNT."""
    if environ.get(AZURE[0]):
        position, total, where = environ[AZURE[0]], environ.get(AZURE[1], ""), "System.JobPositionInPhase"
    elif environ.get(KUBERNETES):
        index = environ[KUBERNETES].strip()
        position = str(int(index) + 1) if index.isascii() and index.isdigit() else index
        total, where = "", KUBERNETES
    else:
        raise UsageError(
            "--shard auto: this is not a parallel CI job (neither System.JobPositionInPhase of "
            "Azure DevOps nor JOB_COMPLETION_INDEX of a Kubernetes Indexed Job is set)",
            "Give the slice yourself, e.g. --shard 1/4, or run it as such a job",
        )
    total = given or total or environ.get(COUNT, "")
    if not total:
        raise UsageError(
            f"--shard auto: {where} gives this job's position but not the count of jobs",
            f"Give it: --shard auto/N (N: the Job's completions), or set {COUNT}",
        )
    shown = f"{position}/{total}"
    match = _SHARD.match(shown)
    if match is None or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise UsageError(
            f"--shard auto: {where} and the count of jobs make {shown!r}, not K/N with 1 <= K <= N",
            f"Check the job's variables ({where}) and the count of jobs (auto/N or {COUNT})",
        )
    return int(match.group(1)), int(match.group(2))


def slice_of(name: str, count: int) -> int:
    """The slice (1..count) a target's name falls in."""
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def pick(names: Sequence[str], shard: tuple[int, int]) -> list[str]:
    number, count = shard
    return [name for name in names if slice_of(name, count) == number]
