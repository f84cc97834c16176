"""One migration run at a time per database: a PostgreSQL advisory lock on its own connection.

The lock lives as long as that connection: a killed dbops releases it when the server notices
the connection is gone, so no stale lock is ever left behind (unlike yoyo's lock table).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from dbops.errors import DbopsError

if TYPE_CHECKING:
    from typing import Any

    import psycopg

    from dbops.config.model import Environment
    from dbops.postgres.connection import Target

MIGRATION_LOCK = 0x64626F7073_4D47  # "dbops" "MG"


class LockBusy(DbopsError):
    """Another dbops holds the migration lock and did not let go within lock_wait."""


@contextmanager
def migration_lock(
    target: Target, env: Environment, wait_s: float, *, yoyo_row: bool = True
) -> Iterator[None]:
    """Hold the advisory lock, and yoyo's lock row too unless yoyo_row is False (for a run
    that drops yoyo's tables: the row held uncommitted would block that forever)."""
    from dbops.postgres.connection import connect

    conn = connect(target, env)
    try:
        deadline = time.monotonic() + wait_s
        pause = 0.02
        while not conn.execute("SELECT pg_try_advisory_lock(%s)", (MIGRATION_LOCK,)).fetchone()[0]:  # type: ignore[index]
            if time.monotonic() >= deadline:
                raise LockBusy(
                    f"Another migration run holds the lock on {target.dbname}: {_holder(conn)}",
                    f"Wait for it to finish, or raise lock_wait (now {wait_s:g}s) in dbops.yaml",
                )
            time.sleep(pause)
            pause = min(pause * 2, 0.25)
        if not yoyo_row:
            yield
            return
        with _yoyo_lock_row(conn, max(deadline - time.monotonic(), 0.1)):
            yield
    finally:
        conn.close()  # releases the lock with the session


@contextmanager
def _yoyo_lock_row(conn: psycopg.Connection[Any], wait_s: float) -> Iterator[None]:
    """Hold yoyo's own lock row too, uncommitted: a plain `yoyo apply` waits for us meanwhile,
    and since the row is never committed, a killed dbops leaves no stale row behind."""
    from psycopg import errors

    if conn.execute("SELECT to_regclass('yoyo_lock')").fetchone() == (None,):
        yield
        return
    with conn.transaction(force_rollback=True):
        conn.execute(f"SET LOCAL lock_timeout = {int(wait_s * 1000)}")
        try:
            with conn.transaction():
                conn.execute(
                    "INSERT INTO yoyo_lock (locked, ctime, pid)"
                    " VALUES (1, now() AT TIME ZONE 'UTC', pg_backend_pid())"
                )
        except (errors.UniqueViolation, errors.LockNotAvailable):
            row = conn.execute("SELECT pid, ctime FROM yoyo_lock").fetchone()
            holder = f"pid {row[0]}, since {row[1]:%Y-%m-%d %H:%M:%S} UTC" if row else "a concurrent run"
            raise LockBusy(
                f"yoyo's own lock on this database is held ({holder})",
                "Wait for that yoyo to finish; if none is running, clear the stale lock: yoyo break-lock",
            ) from None
        yield


def _holder(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute(
        "SELECT a.pid, coalesce(nullif(a.application_name, ''), a.usename::text),"
        " to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS \"UTC\"')"
        " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
        " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        " AND ((l.classid::bigint << 32) | l.objid::bigint) = %s",
        (MIGRATION_LOCK,),
    ).fetchone()
    if row is None:
        return "holder unknown (it may just have finished)"
    return f"pid {row[0]} ({row[1]}), since {row[2]}"
