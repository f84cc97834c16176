"""The scratch database validate builds its expected schema in: created, used, always dropped.

It lives on the environment's own server when the role may create databases there, else on
the project's embedded PostgreSQL. Creating and dropping it happen with Ctrl-C and SIGTERM held
back for those few milliseconds, so an interruption never leaves one behind; one left by a
killed run (kill -9) is dropped by the next validate on that server once it is an hour old and
nobody is connected to it.
"""

from __future__ import annotations

import re
import secrets
import signal
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from dbops.postgres.connection import Target, connect, server_version

if TYPE_CHECKING:
    import psycopg

    from dbops.config.model import Environment
    from dbops.postgres.embedded import EmbeddedServer

PREFIX = "dbops_validate_"
STALE_AFTER = timedelta(hours=1)
_STAMP = re.compile(r"_(\d{14})_[0-9a-f]{6}$")


@dataclass(frozen=True)
class Scratch:
    target: Target
    location: str  # "same server" or "embedded"
    server_version: str


@contextmanager
def scratch_database(
    conn: psycopg.Connection[Any], target: Target, env: Environment, embedded: EmbeddedServer
) -> Iterator[Scratch]:
    """A new, empty database next to `target`'s, created on `conn` (the caller's connection to
    it, left open), or on the `embedded` server (started if need be) when that role may not."""
    from psycopg import sql

    name = scratch_name(target.dbname)
    admin, server, location = _create(conn, target, env, embedded, name)
    try:
        yield Scratch(server.with_dbname(name), location, server_version(admin))
    finally:
        try:
            force = " WITH (FORCE)" if admin.info.server_version >= 130000 else ""
            with _signals_held():
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}" + force).format(sql.Identifier(name)))
        finally:
            if location == "embedded":
                admin.close()


def scratch_name(database: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    base = re.sub(r"[^a-z0-9_]", "_", database.lower())[:24]
    return f"{PREFIX}{base}_{stamp}_{secrets.token_hex(3)}"


def can_create_databases(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT rolsuper OR rolcreatedb FROM pg_roles WHERE rolname = current_user").fetchone()
    return bool(row and row[0])


def _create(
    conn: psycopg.Connection[Any], target: Target, env: Environment, embedded: EmbeddedServer, name: str
) -> tuple[psycopg.Connection[Any], Target, str]:
    """Create the database where allowed: the connection that made it, its server, where."""
    from psycopg import errors

    if can_create_databases(conn):
        try:
            _create_on(conn, name)
            return conn, target, "same server"
        except errors.InsufficientPrivilege:
            pass  # a managed service's own policy: as if the role could not
    state = embedded.ensure_running()
    params = {"host": str(state.socket_dir), "port": "5432", "user": "postgres", "dbname": "postgres"}
    server = Target(params=params, embedded_data=state.data_dir)
    admin = connect(server, env)
    try:
        _create_on(admin, name)
    except BaseException:
        admin.close()
        raise
    return admin, server, "embedded"


def _create_on(admin: psycopg.Connection[Any], name: str) -> None:
    from psycopg import sql

    _drop_stale(admin)
    with _signals_held():
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def _drop_stale(admin: psycopg.Connection[Any]) -> None:
    """Scratch databases of killed runs: an hour old, nobody connected. Others' are left alone."""
    from psycopg import errors, sql

    rows = admin.execute(
        "SELECT d.datname FROM pg_database d WHERE d.datname LIKE %s"
        " AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname)",
        (PREFIX.replace("_", "\\_") + "%",),
    ).fetchall()
    now = datetime.now(UTC)
    for (name,) in rows:
        match = _STAMP.search(name)
        if not match:
            continue
        created = datetime.strptime(match.group(1), "%Y%m%d%H%M%S").replace(tzinfo=UTC)
        if now - created > STALE_AFTER:
            with suppress(errors.InsufficientPrivilege, errors.ObjectInUse):
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


@contextmanager
def _signals_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait until the block is done, then arrive as usual."""
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
