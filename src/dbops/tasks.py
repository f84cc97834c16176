"""The Invoke collection ``db``: thin typed tasks over dbops.boundary.

Importing this module must stay cheap (``invoke --list``): everything else is imported
inside the task bodies.
"""

from __future__ import annotations

import sys
from typing import Any

from invoke.collection import Collection
from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task

COMMON_HELP = {
    "env": "Environment from dbops.yaml (or an alias such as dev/prod). Default: $DBOPS_ENV, "
    "then default_env, then development",
    "json": "Print exactly one JSON document on stdout instead of the report",
    "config": "Path to dbops.yaml. Default: $DBOPS_CONFIG, else the nearest dbops.yaml upwards",
}


def _help(**extra: str) -> dict[str, str]:
    return {**COMMON_HELP, **extra}


def _run(operation: str, **options: Any) -> None:
    """Hand over to the boundary; a non-zero exit code leaves through invoke's Exit."""
    # invoke switches bytecode writing off for the whole process (meant for the project's
    # tasks.py); dbops' own modules, imported from here on, are cached as Python would.
    sys.dont_write_bytecode = bool(sys.flags.dont_write_bytecode)
    from dbops.boundary import run_operation

    code = run_operation(operation, **options)
    if code:
        raise Exit(code=code)


@task(
    auto_shortflags=False,
    help=_help(
        check="Exit 1 when a health check fails or migrations are pending (a CI gate)",
    ),
)
def status(
    c: Context, env: str | None = None, json: bool = False, config: str | None = None, check: bool = False
) -> None:
    """Show connection, migrations, schema, data, size and health of the database."""
    _run("status", env=env, config=config, json=json, check=check)


@task(
    auto_shortflags=False,
    help=_help(
        stop="Stop the embedded PostgreSQL",
        start="Start the embedded PostgreSQL without running anything else",
    ),
)
def server(
    c: Context,
    env: str | None = None,
    json: bool = False,
    config: str | None = None,
    stop: bool = False,
    start: bool = False,
) -> None:
    """Show, start or stop the project's embedded PostgreSQL (it stays up between commands)."""
    _run("server", env=env, config=config, json=json, start=start, stop=stop)


db = Collection("db", status, server)
