"""The built-in operations, each a pipeline of steps plus the step whose data is its report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dbops.errors import UsageError
from dbops.pipeline import Step

if TYPE_CHECKING:
    from dbops.steps.server import Action


@dataclass(frozen=True)
class Operation:
    name: str
    build: Callable[..., list[Step]]
    report_step: str


def _status(check: bool = False) -> list[Step]:
    from dbops.steps.connect import Connect
    from dbops.steps.gate import HealthGate
    from dbops.steps.inspect import Inspect

    steps: list[Step] = [Connect(), Inspect()]
    if check:
        steps.append(HealthGate("inspect"))
    return steps


def _server(start: bool = False, stop: bool = False) -> list[Step]:
    from dbops.steps.server import ServerControl

    if start and stop:
        raise UsageError("Choose one of --start and --stop", "dbops server --help")
    action: Action = "stop" if stop else "start" if start else "show"
    return [ServerControl(action)]


OPERATIONS: dict[str, Operation] = {
    "status": Operation("status", _status, "inspect"),
    "server": Operation("server", _server, "server"),
}


def build(name: str, options: dict[str, Any]) -> tuple[Operation, list[Step]]:
    operation = OPERATIONS[name]
    return operation, operation.build(**options)
