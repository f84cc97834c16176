"""yoyo's internal schema, made by yoyo's own code inside dbops' transaction.

yoyo makes and upgrades its tables (``_yoyo_migration``, ``_yoyo_log``, ``_yoyo_version``) with
``yoyo.internalmigrations.upgrade`` and its lock table with ``create_lock_table``. Its own entry
point, ``DatabaseBackend.ensure_internal_schema_updated``, runs them on a connection of its own
under yoyo's lock row and commits: a kill between that commit and dbops' checksum table would
leave half the bookkeeping, and its lock row would wait forever behind the one dbops' migration
lock holds uncommitted. Here the same functions run on yoyo's PostgreSQL backend bound to dbops'
connection and told that it is inside a transaction already: yoyo's ``with
backend.transaction()`` then becomes a savepoint of dbops' transaction, so yoyo's DDL (whatever
its version makes, from nothing or from yoyo < 6) commits with the checksum table or not at all.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from yoyo import internalmigrations
from yoyo.backends.core.postgresql import PostgresqlPsycopgBackend
from yoyo.connections import DatabaseURI

from dbops.migrations.files import YOYO_TABLE


class _BoundBackend(PostgresqlPsycopgBackend):  # type: ignore[misc]  # yoyo has no type hints
    """yoyo's psycopg backend on a connection it did not open and never commits or closes."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._bound = conn
        uri = DatabaseURI("postgresql+psycopg", None, None, None, None, conn.info.dbname, {})
        super().__init__(uri, YOYO_TABLE)
        self._in_transaction = True  # yoyo's transaction() is then a savepoint in the caller's

    def connect(self, dburi: Any) -> psycopg.Connection[Any]:
        return self._bound


def ensure_yoyo_schema(conn: psycopg.Connection[Any]) -> None:
    """yoyo's tables, created or upgraded by yoyo to its current version, in `conn`'s transaction
    (which the caller commits). Tables are looked up as yoyo does: in the current schema."""
    if conn.info.transaction_status != TransactionStatus.INTRANS:
        raise AssertionError("ensure_yoyo_schema needs a transaction open on its connection")
    backend = _BoundBackend(conn)
    if internalmigrations.needs_upgrading(backend):
        internalmigrations.upgrade(backend)
    if backend.lock_table not in backend.list_tables():
        backend.create_lock_table()
