"""Test databases made one test ahead and dropped one test behind, on a thread of their own.

CREATE and DROP DATABASE each wait for the disk (a forced WAL flush, even with
synchronous_commit off) and, for a clone, for a copy of the template: tens of milliseconds to
seconds on a busy machine. Tests mostly wait on other things (a child process, a socket, a
lock), so the thread makes the next test's database meanwhile and drops the last one's, and a
test waits only for what is not done yet. Each database is empty or a clone of a template.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg


class DatabasesAhead:
    def __init__(self, connect: Callable[[], psycopg.Connection[Any]], prefix: str) -> None:
        """connect: a new autocommit connection to the server's maintenance database (the
        thread's own); prefix: the new databases' names, before a random part."""
        self._connect = connect
        self._prefix = prefix
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="dbops-databases")
        self._conn: psycopg.Connection[Any] | None = None
        self._dropped: list[Future[None]] = []
        self._next: tuple[str | None, Future[str]] | None = None

    def _admin(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
        return self._conn

    def _create(self, template: str | None) -> str:
        from psycopg import sql  # lazy: psycopg's sql module is only needed once a database is made

        name = f"{self._prefix}{uuid.uuid4().hex[:12]}"
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        self._admin().execute(statement)
        return name

    def _drop(self, name: str) -> None:
        from dbops.postgres.databases import drop_database  # lazy: as in _create

        conn = self._admin()
        kept = conn.execute(  # and those made from its name (a restore keeps <name>__pre_restore_...)
            "SELECT datname FROM pg_database WHERE starts_with(datname, %s)", (f"{name}__",)
        ).fetchall()
        for other in [name, *(row[0] for row in kept)]:
            drop_database(conn, other)

    def take(self, template: str | None = None) -> str:
        """A new database's name: empty, or a clone of the template named. The next one (of the
        same kind) is started at once."""
        for done in [f for f in self._dropped if f.done()]:
            self._dropped.remove(done)
            done.result()  # a failed drop fails the next test, never silently
        if self._next is not None and self._next[0] == template:
            made = self._next[1]
        else:
            if self._next is not None:  # made ahead for another kind of test
                self.give_back(self._next[1].result())
            made = self._thread.submit(self._create, template)
        self._next = (template, self._thread.submit(self._create, template))
        return made.result()

    def give_back(self, name: str) -> None:
        """Drop it (and the databases named after it), after the test."""
        self._dropped.append(self._thread.submit(self._drop, name))

    def close(self) -> None:
        """Drop what was made ahead, wait for every drop; a failed one is raised here."""
        try:
            if self._next is not None:
                self.give_back(self._next[1].result())
                self._next = None
        finally:
            self._thread.shutdown(wait=True)
            if self._conn is not None:
                self._conn.close()
        for dropped in self._dropped:
            dropped.result()
