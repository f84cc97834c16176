"""Test databases made a few tests ahead, and dropped behind, on threads of their own.

CREATE and DROP DATABASE each wait for the disk (a forced WAL flush, even with
synchronous_commit off) and, for a clone, for a copy of the template: tens of milliseconds to
seconds on a busy machine. Tests mostly wait on other things (a child process, a socket, a
lock), so a small pool keeps ``ahead`` databases made or being made, each by a thread with its
own connection (their CREATEs overlap each other's disk waits), and one more thread drops the
used ones on its own connection: a drop never queues in front of the next test's create, and
it waits while a CREATE runs (they share the disk) unless more than ``ahead`` drops are
queued, and for a second at most: yielding never piles up more used databases than that. A
test waits only for what is not done yet. Each database is empty or a clone of a template.

At most ``ahead`` CREATEs and one DROP run at a time, so ``ahead + 2`` connections per process
(the pool's, the dropper's, and the one that holds the lock below).

Leftovers of a killed run: every database's name is ``<prefix><token><6 hex>``, where the token
(8 hex) is this process's, and a connection held for the whole session keeps a session
advisory lock keyed by ``<prefix><token>``. When that process dies its lock goes with its
connection, so ``drop_orphans`` (on a connection to the same database: advisory locks are a
database's) drops the databases of any token whose lock it can take, and leaves those of live
processes alone, on this machine or another sharing the server.
"""

from __future__ import annotations

import re
import secrets
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from dbops.errors import DbopsError

if TYPE_CHECKING:
    import psycopg

TOKEN_HEX = 8
NAME_HEX = TOKEN_HEX + 6  # what follows the prefix in a database's name
_LOCK = "SELECT {}(hashtextextended(%s, 0))"


class DatabasesAhead:
    def __init__(self, connect: Callable[[], psycopg.Connection[Any]], prefix: str, ahead: int = 2) -> None:
        """connect: a new autocommit connection to the server's maintenance database (each
        thread's own); prefix: the new databases' names, before this process's token; ahead:
        how many databases to keep made or being made (0: made when asked for)."""
        self._connect = connect
        self.prefix = prefix
        self.token = secrets.token_hex(TOKEN_HEX // 2)
        self.ahead = max(0, ahead)
        self._holder = connect()  # holds the token's lock until close(): our databases are not orphans
        self._holder.execute(_LOCK.format("pg_advisory_lock"), (self.owner,))
        self._local = threading.local()
        self._opened: list[psycopg.Connection[Any]] = []
        self._opened_lock = threading.Lock()
        self._creators = ThreadPoolExecutor(max(1, self.ahead), thread_name_prefix="dbops-create")
        self._dropper = ThreadPoolExecutor(1, thread_name_prefix="dbops-drop")
        self._ready: deque[tuple[str | None, Future[str]]] = deque()
        self._dropped: list[Future[None]] = []
        self._quiet = threading.Condition()  # the counts below: drops yield to creates
        self._creating = 0
        self._drops_queued = 0

    @property
    def owner(self) -> str:
        """The part of our databases' names that the advisory lock is keyed by."""
        return self.prefix + self.token

    def _admin(self) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = self._local.conn = self._connect()
            with self._opened_lock:
                self._opened.append(conn)
        return conn

    def _create(self, template: str | None) -> str:
        import psycopg  # lazy: psycopg's sql module is only needed once a database is made
        from psycopg import sql

        name = f"{self.owner}{secrets.token_hex((NAME_HEX - TOKEN_HEX) // 2)}"
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        with self._quiet:
            self._creating += 1
        try:
            self._admin().execute(statement)
        except psycopg.Error as exc:
            what = f"a clone of {template}" if template else "an empty database"
            raise DbopsError(
                f"Could not create the test database {name} ({what}): {_first_line(exc)}",
                "Check the server's log and free disk space; a template needs nobody connected to it",
            ) from None
        finally:
            with self._quiet:
                self._creating -= 1
                self._quiet.notify_all()
        return name

    def _yield_to_creates(self) -> None:
        """Wait while a CREATE runs (they share the disk), unless drops pile up: at most `ahead`
        wait, and none for more than a second."""
        with self._quiet:
            self._quiet.wait_for(lambda: self._creating == 0 or self._drops_queued > self.ahead, timeout=1.0)
            self._drops_queued -= 1

    def _drop(self, name: str) -> None:
        import psycopg  # lazy: as in _create

        try:
            _drop_with_children(self._admin(), name)
        except psycopg.Error as exc:
            raise DbopsError(
                f"Could not drop the test database {name} (a previous test's): {_first_line(exc)}",
                f"Drop it by hand (DROP DATABASE {name} WITH (FORCE)); check the server's log",
            ) from None

    def take(self, template: str | None = None) -> str:
        """A new database's name: empty, or a clone of the template named. Databases of the
        same kind are started at once, to keep `ahead` of them made or being made. A drop that
        failed since the last call is raised here: it fails the next test, never silently."""
        for done in [f for f in self._dropped if f.done()]:
            self._dropped.remove(done)
            done.result()
        made: Future[str] | None = None
        kept: deque[tuple[str | None, Future[str]]] = deque()
        while self._ready:
            kind, future = self._ready.popleft()
            if kind == template and made is None:
                made = future
            elif kind == template:
                kept.append((kind, future))
            else:  # made ahead for another kind of test
                self._queue_drop(self._drop_made, future)
        self._ready = kept
        if made is None:
            made = self._creators.submit(self._create, template)
        while len(self._ready) < self.ahead:
            self._ready.append((template, self._creators.submit(self._create, template)))
        try:
            return made.result()
        except KeyboardInterrupt:
            self._queue_drop(self._drop_made, made)  # made all the same: close() drops it
            raise

    def _drop_made(self, future: Future[str]) -> None:
        try:
            name = future.result()
        except DbopsError:
            return  # never made: nothing to drop (and nobody took it to report it)
        self._drop(name)

    def give_back(self, name: str) -> None:
        """Drop it (and the databases named after it), after the test."""
        self._queue_drop(self._drop, name)

    def _queue_drop(self, drop: Callable[[Any], None], what: Any) -> None:
        with self._quiet:
            self._drops_queued += 1
        self._dropped.append(self._dropper.submit(self._dropping, drop, what))

    def _dropping(self, drop: Callable[[Any], None], what: Any) -> None:
        self._yield_to_creates()
        drop(what)

    def close(self) -> None:
        """Drop what was made ahead, wait for every drop; a failed one is raised here."""
        try:
            while self._ready:
                self._queue_drop(self._drop_made, self._ready.popleft()[1])
            self._creators.shutdown(wait=True)
            self._dropper.shutdown(wait=True)
        finally:
            with self._opened_lock:
                for conn in [*self._opened, self._holder]:
                    conn.close()  # the holder's: our token's lock goes with it
        for dropped in self._dropped:
            dropped.result()


def drop_orphans(admin: psycopg.Connection[Any], prefix: str) -> list[str]:
    """Drop the databases named ``<prefix><token>...`` whose token's lock nobody holds (their
    process is gone); return their names. `admin`: a connection to the database the holders
    are connected to (the server's maintenance database)."""
    query = "SELECT datname FROM pg_database WHERE starts_with(datname, %s)"
    rows = admin.execute(query, (prefix,)).fetchall()
    hexes = f"([0-9a-f]{{{TOKEN_HEX}}})[0-9a-f]{{{NAME_HEX - TOKEN_HEX}}}"
    shape = re.compile(re.escape(prefix) + hexes + "(__.*)?$")
    by_token: dict[str, list[str]] = {}
    for (name,) in rows:
        found = shape.match(name)
        if found:
            by_token.setdefault(found.group(1), []).append(name)
    dropped: list[str] = []
    for token, names in sorted(by_token.items()):
        row = admin.execute(_LOCK.format("pg_try_advisory_lock"), (prefix + token,)).fetchone()
        if not (row and row[0]):
            continue  # a live process's
        try:
            for name in sorted(names):
                _drop_with_children(admin, name)
                dropped.append(name)
        finally:
            admin.execute(_LOCK.format("pg_advisory_unlock"), (prefix + token,))
    return dropped


def _drop_with_children(conn: psycopg.Connection[Any], name: str) -> None:
    """Drop it, and the databases made from its name (a restore keeps <name>__pre_restore_...)."""
    from dbops.postgres.databases import drop_database  # lazy: only once a database is dropped

    kept = conn.execute(
        "SELECT datname FROM pg_database WHERE starts_with(datname, %s)", (f"{name}__",)
    ).fetchall()
    for other in [name, *(row[0] for row in kept)]:
        drop_database(conn, other)


def _first_line(exc: Exception) -> str:
    from dbops.postgres.connection import first_line  # lazy: only when a database fails

    return first_line(str(exc)) or type(exc).__name__
