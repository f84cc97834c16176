"""One migration run, and one restore, at a time per database: PostgreSQL advisory locks.

A lock lives as long as its connection: a killed dbops releases it when the server notices
the connection is gone, so no stale lock is ever left behind (unlike yoyo's lock table). The
migration lock's session turns the server's idle timeouts off for itself, and the migrator
checks before each commit that the lock is still held (MigrationLock.check_sql). The
migration lock is held on a connection to the database itself; the restore lock on one to the
server's maintenance database (the database it guards is renamed away by the swap).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dbops.errors import ConnectionFailed, DbopsError, RestoreFailed
from dbops.postgres.connection import connect

if TYPE_CHECKING:
    from typing import Any

    import psycopg

    from dbops.config.model import Environment
    from dbops.postgres.connection import Target

MIGRATION_LOCK = 0x64626F7073_4D47  # "dbops" "MG"


LOCK_LOST = "dbops: the migration lock is no longer held"  # in the error of MigrationLock.check_sql


@dataclass(frozen=True)
class MigrationLock:
    """The session that holds the migration lock: the advisory lock and, when yoyo's lock
    table exists, yoyo's row, uncommitted."""

    pid: int

    def check_sql(self) -> str:
        """A statement that fails, its error naming LOCK_LOST, when the lock is gone: run in a
        migration's own transaction just before its commit. The advisory lock is session-level
        and never released before the run ends, so it is held exactly while its session lives:
        one look at that backend's entry (pg_stat_get_activity(pid)), far cheaper than reading
        pg_locks, which copies the whole lock table. Only integers are formatted into it."""
        alive = f"EXISTS (SELECT 1 FROM pg_stat_get_activity({int(self.pid)}))"
        lost = f"('{LOCK_LOST} (pid ' || pg_backend_pid() || ')')::int"
        return f"SELECT CASE WHEN {alive} THEN 1 ELSE {lost} END"

    @staticmethod
    def lost(exc: BaseException) -> bool:
        """Whether `exc` is the failure of check_sql."""
        primary = getattr(getattr(exc, "diag", None), "message_primary", None) or ""
        return LOCK_LOST in primary


class LockBusy(DbopsError):
    """Another dbops holds the migration lock and did not let go within lock_wait."""


# Server timeouts that end a session: a lock session sets each it has to 0, so that neither the
# server, the database nor the role can end it while it holds a lock (idle_session_timeout
# exists from PostgreSQL 14, transaction_timeout from 17).
_SESSION_TIMEOUTS = ("idle_in_transaction_session_timeout", "idle_session_timeout", "transaction_timeout")


class LockLost(DbopsError):
    """The session holding the migration lock ended during the run: nothing excludes another run."""


def lock_lost(name: str) -> LockLost:
    return LockLost(
        f"The migration lock was lost before {name} was committed (its session ended): "
        "another run could be migrating this database",
        "Nothing of that migration was applied; check the server log for why the session ended, "
        "then run migrate again",
    )


@contextmanager
def migration_lock(
    target: Target, env: Environment, wait_s: float, *, yoyo_row: bool = True
) -> Iterator[MigrationLock]:
    """Hold the advisory lock, and yoyo's lock row too unless yoyo_row is False (for a run
    that drops yoyo's tables: the row held uncommitted would block that forever).

    Both on one session of their own (the run's work uses one more: two sessions per target
    in a fleet's connection budget), with the server's idle timeouts off for it: the advisory
    lock is a session-level one, taken outside any transaction, so that it outlives the
    transaction that then holds yoyo's row and is never committed."""
    conn = _lock_session(target, env)
    try:
        deadline = time.monotonic() + wait_s
        _take(
            conn,
            MIGRATION_LOCK,
            deadline,
            lambda: LockBusy(
                f"Another migration run holds the lock on {target.dbname}: {_holder(conn)}",
                f"Wait for it to finish, or raise lock_wait (now {wait_s:g}s) in dbops.yaml",
            ),
        )
        lock = MigrationLock(conn.info.backend_pid)
        if not yoyo_row or conn.execute("SELECT to_regclass('yoyo_lock')").fetchone() == (None,):
            yield lock
            return
        with _yoyo_lock_row(conn, max(deadline - time.monotonic(), 0.1)):
            yield lock
    finally:
        conn.close()  # releases the lock with the session


WORK_LOCK = 0x64626F7073_574B  # "dbops" "WK": held by the session that runs the migrations


@contextmanager
def work_lock(conn: psycopg.Connection[Any], target: Target, wait_s: float) -> Iterator[None]:
    """Taken on the run's own session once the migration lock is held, and held while it
    migrates: the session of a killed run may outlive its lock session and still be running
    what it had sent (a pipelined migration ends with its COMMIT); the next run waits for it to
    end (up to wait_s), then reads the state it left, instead of applying the same migration
    again beside it."""
    _take(
        conn,
        WORK_LOCK,
        time.monotonic() + wait_s,
        lambda: LockBusy(
            f"A session of an earlier migration run on {target.dbname} is still running: "
            f"{_holder(conn, WORK_LOCK)}",
            "It ends when the statement it runs ends; wait for it, or end it (pg_terminate_backend), "
            "then run migrate again",
        ),
    )
    try:
        yield
    finally:
        if not conn.closed and conn.info.transaction_status == 0:
            conn.execute("SELECT pg_advisory_unlock(%s)", (WORK_LOCK,))


def _take(conn: psycopg.Connection[Any], key: int, deadline: float, busy: Callable[[], LockBusy]) -> None:
    """The session-level advisory lock `key` on `conn`, tried until `deadline`, else busy()."""
    pause = 0.02
    while not conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]:  # type: ignore[index]
        if time.monotonic() >= deadline:
            raise busy()
        time.sleep(pause)
        pause = min(pause * 2, 0.25)


def _lock_session(target: Target, env: Environment) -> psycopg.Connection[Any]:
    """A session no server timeout ends: each of _SESSION_TIMEOUTS this server has, set to 0."""
    conn = connect(target, env)
    try:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM pg_settings WHERE name = ANY(%s)", (list(_SESSION_TIMEOUTS),)
            ).fetchall()
        ]
        for name in names:
            conn.execute("SELECT set_config(%s, '0', false)", (name,))
    except BaseException:
        conn.close()
        raise
    return conn


@contextmanager
def _yoyo_lock_row(conn: psycopg.Connection[Any], wait_s: float) -> Iterator[None]:
    """Hold yoyo's own lock row too, uncommitted: a plain `yoyo apply` waits for us meanwhile,
    and since the row is never committed, a killed dbops leaves no stale row behind."""
    from psycopg import errors

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


def _holder(conn: psycopg.Connection[Any], key: int = MIGRATION_LOCK) -> str:
    row = conn.execute(
        "SELECT a.pid, coalesce(nullif(a.application_name, ''), a.usename::text),"
        " to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS \"UTC\"')"
        " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
        " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        " AND ((l.classid::bigint << 32) | l.objid::bigint) = %s",
        (key,),
    ).fetchone()
    if row is None:
        return "holder unknown (it may just have finished)"
    return f"pid {row[0]} ({row[1]}), since {row[2]}"


# --------------------------------------------------------------------------- the restore lock


@dataclass
class RestoreLock:
    """The restore lock of a database, taken before the safety backup and held until the restore
    is done: on a connection of its own to the maintenance database (the one the swap then
    uses), or, for --in-place when that database is out of reach, on the run's own connection."""

    live: str
    conn: psycopg.Connection[Any]
    maintenance: bool  # the connection is its own (closing it releases the lock)

    def release(self) -> None:
        if self.maintenance:
            self.conn.close()
        # else it is the run's connection: the lock goes when the run closes it


def take_restore_lock(
    target: Target, env: Environment, live_conn: psycopg.Connection[Any], *, in_place: bool
) -> RestoreLock:
    """Before anything is written (the safety backup included): the restore lock, or "Another
    restore of X is running"; and, for a restore through a scratch database, the rights it
    needs (CREATEDB, and owning the database it renames). `live_conn` is the caller's connection
    to `target`: --in-place locks on it when the maintenance database is out of reach."""
    live = target.dbname
    try:
        conn = _maintenance_connection(target, env)
    except ConnectionFailed:
        if not in_place:
            raise
        conn = None
    if conn is None:  # --in-place needs no maintenance database: lock on the live one
        restore_lock_on(live_conn, live)
        return RestoreLock(live, live_conn, maintenance=False)
    try:
        restore_lock_on(conn, live)
        if not in_place:
            check_rights(conn, live)
    except BaseException:
        conn.close()
        raise
    return RestoreLock(live, conn, maintenance=True)


def check_rights(admin: psycopg.Connection[Any], live: str) -> None:
    """CREATEDB for the scratch database; for the swap's rename, owning the live database."""
    row = admin.execute(
        "SELECT current_user, r.rolsuper OR r.rolcreatedb,"
        " d.oid IS NULL OR r.rolsuper OR pg_has_role(d.datdba, 'USAGE'),"
        " pg_get_userbyid(d.datdba)"
        " FROM pg_roles r LEFT JOIN pg_database d ON d.datname = %s WHERE r.rolname = current_user",
        (live,),
    ).fetchone()
    if row is None:
        return
    user, createdb, owner, owned_by = row
    if not createdb:
        raise RestoreFailed(
            f"Cannot restore {live} through a scratch database: permission denied (CREATEDB) for {user}",
            "Grant CREATEDB to this user, or restore into the existing database: dbops restore --in-place",
        )
    if not owner:
        raise RestoreFailed(
            f"Cannot restore {live}: the swap renames it, and only its owner ({owned_by}) or a "
            f"superuser may; {user} is neither",
            "Restore as its owner, or into the existing database: dbops restore --in-place",
        )


@contextmanager
def locked_maintenance(target: Target, env: Environment) -> Iterator[psycopg.Connection[Any]]:
    """A connection to the server's maintenance database, holding the restore lock of `target`'s
    database."""
    with _maintenance_connection(target, env) as conn:
        restore_lock_on(conn, target.dbname)
        yield conn


def _maintenance_connection(target: Target, env: Environment) -> psycopg.Connection[Any]:
    """postgres, else template1, on the environment's server."""
    for name in ("postgres", "template1"):
        try:
            return connect(target.with_dbname(name), env)
        except ConnectionFailed:
            if name == "template1":
                raise
    raise AssertionError("unreachable")


def restore_lock_on(conn: psycopg.Connection[Any], live: str) -> None:
    """The restore lock of `live`, on that session (taken twice, it counts twice)."""
    row = conn.execute(
        "SELECT pg_try_advisory_lock(hashtextextended('dbops restore ' || %s, 0))", (live,)
    ).fetchone()
    if not row or not row[0]:
        raise RestoreFailed(
            f"Another restore of {live} is running on this server", "Wait for it to finish, then try again"
        )
