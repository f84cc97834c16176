"""--shard K/N: the K-th of N disjoint slices of a fleet, by a stable hash of each target's name.

A target's slice depends on its name only: adding or removing targets never moves the others,
and N CI jobs (Azure DevOps parallel jobs, a GitHub Actions matrix, a Kubernetes Indexed Job)
cover the fleet exactly once with no coordination.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import TypeVar

from dbops.errors import UsageError

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$", re.ASCII)

Named = TypeVar("Named")


def parse(text: str) -> tuple[int, int]:
    match = _SHARD.match(text)
    if match is None or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise UsageError(
            f"--shard expects K/N with 1 <= K <= N, got {text!r}",
            "e.g. --shard=1/4 for the first of four slices",
        )
    return int(match.group(1)), int(match.group(2))


def slice_of(name: str, count: int) -> int:
    """The slice (1..count) a target's name falls in."""
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def pick(names: Sequence[str], shard: tuple[int, int]) -> list[str]:
    number, count = shard
    return [name for name in names if slice_of(name, count) == number]
