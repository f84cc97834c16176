"""One exception family for every expected failure, each with its exit code and a hint.

Exit codes (documented in the README):
  0   ok
  1   the operation failed (anything it changed was undone), or a --check gate failed
  2   usage or configuration error
  3   refused by a safety policy (nothing touched)
  4   failed and an undo did not complete (attention needed)
  130 interrupted
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3
EXIT_UNDO_FAILED = 4
EXIT_INTERRUPTED = 130


class DbopsError(Exception):
    """An expected failure: a one-line message, a hint, an exit code."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, hint: str = "", *, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message


class ConfigError(DbopsError):
    """dbops.yaml is missing, malformed or names something unknown."""

    exit_code = EXIT_USAGE


class UsageError(DbopsError):
    """A flag or argument the command cannot accept."""

    exit_code = EXIT_USAGE


class ConnectionFailed(DbopsError):
    """The database could not be reached or refused us."""


class DatabaseMissing(ConnectionFailed):
    """The server answered, but the environment's database does not exist on it."""


class ServerError(DbopsError):
    """The embedded PostgreSQL could not be initialised, started or stopped."""


class PolicyRefused(DbopsError):
    """A safety policy refused the operation before anything was touched."""

    exit_code = EXIT_REFUSED


class CheckFailed(DbopsError):
    """A --check gate found a failing health check or pending migrations."""


class RestoreFailed(DbopsError):
    """The restore stopped before the swap: the live database is as it was."""
