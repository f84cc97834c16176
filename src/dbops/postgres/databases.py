"""Creating, dropping and renaming databases: the scratch databases of validate and restore,
and the swap that ends a restore.

Validate's scratch database, which it builds the expected schema in, is created, used and
always dropped. It lives on the environment's own server when the role may create databases
there, else on the project's embedded PostgreSQL. Creating and dropping it happen with Ctrl-C
and SIGTERM held back for those few milliseconds, so an interruption never leaves one behind;
one left by a killed run (kill -9) is dropped by the next validate on that server once it is an
hour old and nobody is connected to it.

A restore loads the backup into ``<db>__restore_<ts>`` (a trial restore into
``<db>__verify_<ts>``), from template0 in the backup's encoding, then swaps it in: terminate
the live database's sessions, and in one transaction rename live to ``<db>__pre_restore_<ts>``
and scratch to live. Those statements run on a connection to the maintenance database that
holds the restore lock (dbops.postgres.locks), so a scratch database found meanwhile is a
killed run's leftover.
"""

from __future__ import annotations

import re
import secrets
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from dbops.errors import RestoreFailed
from dbops.postgres.connection import Target, connect, server_version

if TYPE_CHECKING:
    import psycopg

    from dbops.config.model import Environment
    from dbops.postgres.embedded import EmbeddedServer

NAME_MAX = 63  # PostgreSQL truncates longer identifiers
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
    name = scratch_name(target.dbname)
    admin, server, location = _create(conn, target, env, embedded, name)
    try:
        yield Scratch(server.with_dbname(name), location, server_version(admin))
    finally:
        try:
            with signals_held():
                drop_database(admin, name)
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

    drop_stale(admin)
    with signals_held():
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_stale(admin: psycopg.Connection[Any]) -> None:
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
def signals_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait until the block is done, then arrive as usual."""
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


# --------------------------------------------------------------------------- restore


def derived_name(database: str, suffix: str) -> str:
    """<database><suffix>, the database part shortened to fit PostgreSQL's 63 bytes."""
    room = NAME_MAX - len(suffix.encode())
    head = database.encode()[:room].decode("utf-8", "ignore")
    return head + suffix


def drop_leftovers(admin: psycopg.Connection[Any], live: str) -> list[str]:
    """Scratch databases of killed runs (we hold the lock: no running restore owns them)."""
    dropped = []
    for kind in ("restore", "verify"):
        example = f"__{kind}_00000000_000000"
        head = derived_name(live, example)[: -len(example)]
        pattern = re.compile(re.escape(head) + f"__{kind}_" + r"[0-9]{8}_[0-9]{6}(_[0-9]+)?$")
        rows = admin.execute(
            "SELECT datname FROM pg_database WHERE starts_with(datname, %s)", (head,)
        ).fetchall()
        for (name,) in rows:
            if pattern.match(name):
                drop_database(admin, name)
                dropped.append(name)
    return dropped


@dataclass(frozen=True)
class KeptDatabase:
    """A database a restore kept (the live one it replaced): ``<db>__pre_restore_<ts>``."""

    name: str
    kept_at: datetime  # UTC, from its name: when the restore swapped it out
    size: int | None  # bytes; None when this role may not connect to it


_KEPT = "__pre_restore_"


def kept_databases(conn: psycopg.Connection[Any], live: str) -> list[KeptDatabase]:
    """The databases restores of `live` kept, oldest first (on any connection to its server)."""
    example = f"{_KEPT}00000000_000000"
    head = derived_name(live, example)[: -len(example)]
    pattern = re.compile(re.escape(head) + re.escape(_KEPT) + r"([0-9]{8}_[0-9]{6})(_[0-9]+)?$")
    rows = conn.execute(
        "SELECT datname, CASE WHEN has_database_privilege(oid, 'CONNECT') THEN pg_database_size(oid) END"
        " FROM pg_database WHERE starts_with(datname, %s)",
        (head,),
    ).fetchall()
    kept = []
    for name, size in rows:
        found = pattern.match(name)
        if found:
            at = datetime.strptime(found.group(1), "%Y%m%d_%H%M%S").replace(tzinfo=UTC)
            kept.append(KeptDatabase(name, at, size))
    return sorted(kept, key=lambda k: (k.kept_at, k.name))


def create_scratch(admin: psycopg.Connection[Any], scratch: str, live: str, encoding: str) -> None:
    """From template0, in the backup's encoding, with the live database's locale when they fit."""
    from psycopg import errors, sql

    row = admin.execute(
        "SELECT pg_encoding_to_char(encoding), datcollate, datctype FROM pg_database WHERE datname = %s",
        (live,),
    ).fetchone()
    statement = sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING {}").format(
        sql.Identifier(scratch), sql.Literal(encoding)
    )
    if row is not None and row[0] == encoding:
        statement += sql.SQL(" LC_COLLATE {} LC_CTYPE {}").format(sql.Literal(row[1]), sql.Literal(row[2]))
    elif encoding.upper() not in ("UTF8", "SQL_ASCII"):
        statement += sql.SQL(" LC_COLLATE 'C' LC_CTYPE 'C'")
    try:
        admin.execute(statement)
    except errors.InsufficientPrivilege:
        raise RestoreFailed(
            f"Cannot create the scratch database {scratch}: permission denied (CREATEDB)",
            "Grant CREATEDB to this user, or restore into the existing database: dbops restore --in-place",
        ) from None


def drop_database(admin: psycopg.Connection[Any], name: str) -> None:
    """Drop it, terminating its sessions first (and waiting, finely, for them to be gone)."""
    from psycopg import sql

    terminate_sessions(admin, name)
    force = " WITH (FORCE)" if admin.info.server_version >= 130000 else ""
    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}" + force).format(sql.Identifier(name)))


def terminate_sessions(admin: psycopg.Connection[Any], name: str) -> int:
    """Terminate every other session of the database (and an autovacuum worker in it), then
    wait until they are gone; how many sessions (client ones) there were.

    DROP and ALTER ... RENAME wait for a database's sessions to end themselves, but they look
    every 100 ms: a session that has just closed (the test's connection, the psql that loaded a
    scratch database) is still ending when they first look, and costs them 100 ms. Looking
    every 2 ms here costs a millisecond or two instead.
    """
    row = admin.execute(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid) AND backend_type = 'client backend')"
        " FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
        (name,),
    ).fetchone()
    wait_until_unused(admin, name, everyone=True)
    return int(row[0]) if row else 0


def wait_until_unused(
    admin: psycopg.Connection[Any], name: str, timeout: float = 5.0, *, everyone: bool = False
) -> bool:
    """Whether no other session is connected to the database, waited for up to `timeout` seconds.
    Client sessions only, unless `everyone`: an autovacuum worker that starts on a freshly loaded
    database is no one's session (DROP and RENAME stop it themselves)."""
    deadline = time.monotonic() + timeout
    query = "SELECT 1 FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
    if not everyone:
        query += " AND backend_type = 'client backend'"
    while admin.execute(query, (name,)).fetchone() is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def swap(admin: psycopg.Connection[Any], live: str, scratch: str, stamp: str) -> tuple[str | None, int]:
    """Terminate the live database's sessions, then both renames in one transaction.

    Returns the name the previous database is kept under (None if there was none) and how many
    sessions were terminated. A session that connects in between makes the rename fail: terminate
    and try again.
    """
    from psycopg import errors, sql

    exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (live,)).fetchone() is not None
    kept = unused_name(admin, live, f"__pre_restore_{stamp}")
    wait_until_unused(admin, scratch)  # the load's and the check's sessions may still be ending
    terminated = 0
    for attempt in range(20):
        if exists:
            terminated += terminate_sessions(admin, live)
        try:
            with admin.transaction():
                if exists:
                    admin.execute(
                        sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                            sql.Identifier(live), sql.Identifier(kept)
                        )
                    )
                admin.execute(
                    sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                        sql.Identifier(scratch), sql.Identifier(live)
                    )
                )
            return (kept if exists else None), terminated
        except errors.ObjectInUse:
            time.sleep(0.05 * (attempt + 1))
    raise RestoreFailed(
        f"Could not take over {live}: new sessions keep connecting to it",
        "Stop the application (or its connection pool) for a moment and restore again",
    )


def unused_name(admin: psycopg.Connection[Any], live: str, suffix: str) -> str:
    """<live><suffix>, or with _2, _3 ... when a restore in the same second took that name."""
    serial = 1
    while True:
        name = derived_name(live, suffix if serial == 1 else f"{suffix}_{serial}")
        if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            return name
        serial += 1
