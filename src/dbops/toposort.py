"""Dependency order with the standard library's graphlib, stable where the graph leaves a choice.

Any layer may import this module (it imports nothing of dbops): migrations order their files
with it and seeds their tables.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from graphlib import CycleError, TopologicalSorter
from typing import TypeVar

Node = TypeVar("Node")

__all__ = ["CycleError", "stable_order"]


def stable_order(nodes: Sequence[Node], depends: Mapping[Node, Iterable[Node]]) -> list[Node]:
    """Every node after the nodes it depends on; of the nodes free to go next, the one given
    first (yoyo orders migrations so). Dependencies on nodes not given are ignored.

    A cycle raises graphlib.CycleError with the cycle as its second argument, in dependency
    order and from the node given first: ``[a, b, a]`` where a depends on b and b on a.
    """
    rank = {node: i for i, node in enumerate(nodes)}
    graph = {node: [d for d in depends.get(node, ()) if d in rank and d != node] for node in nodes}
    sorter = TopologicalSorter(graph)
    try:
        sorter.prepare()
    except CycleError as exc:
        raise CycleError("nodes are in a cycle", _as_depends(exc.args[1], rank)) from None
    free: list[int] = []
    placed: list[Node] = []
    while sorter.is_active():
        for node in sorter.get_ready():
            heapq.heappush(free, rank[node])
        node = nodes[heapq.heappop(free)]
        placed.append(node)
        sorter.done(node)
    return placed


def _as_depends(cycle: list[Node], rank: Mapping[Node, int]) -> list[Node]:
    """graphlib names a cycle along its edges from a node to those that depend on it: turn it
    round, and start it at the node given first."""
    around = list(reversed(cycle[:-1]))
    first = min(range(len(around)), key=lambda i: rank[around[i]])
    around = around[first:] + around[:first]
    return [*around, around[0]]
