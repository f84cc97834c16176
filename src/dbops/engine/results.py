"""What a pipeline run gives back: each step's result, each undo's, the error, the exit code.

The types the output renders (dbops.output imports nothing else of the engine).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from dbops.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_UNDO_FAILED, DbopsError

StepStatus = Literal["ok", "failed", "interrupted", "not run", "running"]  # running: a live snapshot


@dataclass
class ErrorInfo:
    message: str
    hint: str
    exit_code: int
    kind: str

    @classmethod
    def of(cls, error: DbopsError) -> ErrorInfo:
        return cls(error.message, error.hint, error.exit_code, type(error).__name__)


@dataclass
class StepResult:
    name: str
    description: str
    status: StepStatus
    duration_s: float = 0.0
    messages: list[str] = field(default_factory=list)
    error: ErrorInfo | None = None
    data: Any = field(default=None, repr=False)  # the operation's report carries it


@dataclass
class UndoResult:
    step: str
    number: int  # the step's position in the pipeline, from 1
    description: str
    ok: bool
    duration_s: float
    error: ErrorInfo | None = None
    note: str | None = None


@dataclass
class PipelineResult:
    name: str
    steps: list[StepResult]
    undos: list[UndoResult]
    error: ErrorInfo | None
    interrupted: bool
    duration_s: float
    running: bool = field(default=False, repr=False)  # a snapshot of a run still going (the live view's)

    @property
    def ok(self) -> bool:
        return self.error is None and not self.interrupted

    @property
    def exit_code(self) -> int:
        if any(not undo.ok for undo in self.undos):
            return EXIT_UNDO_FAILED
        if self.interrupted:
            return EXIT_INTERRUPTED
        return self.error.exit_code if self.error else EXIT_OK
