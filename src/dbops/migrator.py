"""Applying, rolling back and marking migrations on one connection, records included.

A transactional migration, yoyo's records of it (``_yoyo_migration``, ``_yoyo_log``) and its
checksum commit in one transaction: a kill at any instant leaves it applied and recorded, or
neither. A non-transactional one runs statement by statement in autocommit and is recorded
once all of them ran.
"""

from __future__ import annotations

import getpass
import hashlib
import re
import socket
import time
import uuid
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dbops.errors import DbopsError
from dbops.migrations import CHECKSUM_TABLE, DELETED, YOYO_TABLE, MigrationFile
from dbops.scripts import PythonStep, Script, Statement

if TYPE_CHECKING:
    import psycopg

    from dbops.db import Target

_CONCURRENT_INDEX = re.compile(
    r"^\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY\s+(?:IF\s+NOT\s+EXISTS\s+)?(\"[^\"]+\"|[\w.]+)",
    re.IGNORECASE,
)


# yoyo 9's internal schema at version 2 (yoyo/internalmigrations/v2.py and its lock table).
_YOYO_V2_SCHEMA = (
    "CREATE TABLE _yoyo_migration (migration_hash VARCHAR(64), migration_id VARCHAR(255),"
    " applied_at_utc TIMESTAMP, PRIMARY KEY (migration_hash))",
    "CREATE TABLE _yoyo_log (id VARCHAR(36), migration_hash VARCHAR(64), migration_id VARCHAR(255),"
    " operation VARCHAR(10), username VARCHAR(255), hostname VARCHAR(255), comment VARCHAR(255),"
    " created_at_utc TIMESTAMP, PRIMARY KEY (id))",
    "CREATE TABLE _yoyo_version (version INT NOT NULL PRIMARY KEY, installed_at_utc TIMESTAMP)",
    "INSERT INTO _yoyo_version VALUES (2, now() AT TIME ZONE 'UTC')",
    "CREATE TABLE IF NOT EXISTS yoyo_lock (locked INT DEFAULT 1, ctime TIMESTAMP, pid INT NOT NULL,"
    " PRIMARY KEY (locked))",
)


# Each migration commits atomically without waiting for its WAL to reach the disk; flush() then
# waits once for all of them. A server crash in between loses whole migrations with their
# records, never one without the other.
_NO_FLUSH_WAIT = "SET LOCAL synchronous_commit = off"


class MigrationFailed(DbopsError):
    """A migration's statement failed; the message names the file, line and PostgreSQL error."""

    def __init__(
        self, message: str, hint: str, *, ran: Sequence[Statement] = (), invalid: Sequence[str] = ()
    ):
        super().__init__(message, hint)
        self.ran = tuple(ran)
        self.invalid_indexes = tuple(invalid)


@dataclass
class Outcome:
    script: Script
    duration_s: float
    dropped_invalid: list[str] = field(default_factory=list)


class Migrator:
    def __init__(self, conn: psycopg.Connection[Any], target: Target) -> None:
        self.conn = conn
        self.target = target
        self.user = _user()
        self.host = socket.gethostname()

    # ------------------------------------------------------------------ bookkeeping tables

    def ensure_bookkeeping(self) -> None:
        """yoyo's internal schema (version 2, exactly as yoyo 9 makes it) and our checksums.

        A new database gets all of it in one transaction under our advisory lock: a kill leaves
        all or nothing, and never the stale row that yoyo's own table lock would leave behind.
        """
        row = self.conn.execute(
            "SELECT to_regclass('_yoyo_migration'), to_regclass('_yoyo_version'), to_regclass(%s)",
            (CHECKSUM_TABLE,),
        ).fetchone()
        assert row is not None
        has_migrations, has_version, has_checksums = (value is not None for value in row)
        if has_migrations and not has_version:
            self._yoyo_internal_schema()  # a database from yoyo < 6: let yoyo upgrade it
        with self.conn.transaction():
            if not has_migrations:
                for statement in _YOYO_V2_SCHEMA:
                    self.conn.execute(statement)
            if not has_checksums:
                self.conn.execute(
                    f"CREATE TABLE {CHECKSUM_TABLE} ("
                    " migration_id varchar(255) PRIMARY KEY, sha256 varchar(64) NOT NULL,"
                    " files text NOT NULL, recorded_at_utc timestamp NOT NULL)"
                )

    def _yoyo_internal_schema(self) -> None:
        from yoyo import get_backend

        backend = get_backend(self.target.yoyo_uri())
        try:
            backend.ensure_internal_schema_updated()
        finally:
            backend.connection.close()

    # ------------------------------------------------------------------ apply / rollback / mark

    def apply(self, script: Script) -> Outcome:
        started = time.monotonic()
        dropped: list[str] = []
        if script.transactional and not script.python_steps:
            self._apply_pipelined(script)
        elif script.transactional:
            with self.conn.transaction():
                self.conn.execute(_NO_FLUSH_WAIT)
                self._run(script, script.statements, script.python_steps, "apply")
                self._record(script, "apply")
        else:
            dropped = self._drop_invalid_leftovers(script)
            self._run(script, script.statements, script.python_steps, "apply")
            with self.conn.transaction():
                self._record(script, "apply")
        return Outcome(script, time.monotonic() - started, dropped)

    def _apply_pipelined(self, script: Script) -> None:
        """BEGIN, the statements, the records and COMMIT in one round trip to the server."""
        sent = []
        try:
            with self.conn.pipeline(), self.conn.transaction():
                self.conn.execute(_NO_FLUSH_WAIT)
                for statement in script.statements:
                    sent.append((statement, self.conn.execute(statement.sql)))
                self._insert_records(script.file, _yoyo_hash(script.id), "apply")
        except Exception as exc:
            done = [statement for statement, cursor in sent if cursor.pgresult is not None]
            failed = next((statement for statement, cursor in sent if cursor.pgresult is None), None)
            if failed is None:
                raise
            raise self._failure(script, failed, exc, done, "apply") from None

    def flush(self) -> None:
        """Wait once for the disk: a durable commit flushes every earlier one's WAL too."""
        if self.conn.closed or self.conn.info.transaction_status != 0:  # not idle: nothing sane to do
            return
        with self.conn.transaction():
            self.conn.execute("SELECT txid_current()")

    def rollback(self, script: Script) -> Outcome:
        started = time.monotonic()
        steps = tuple(reversed(script.python_steps))
        if script.transactional:
            with self.conn.transaction():
                self._run(script, script.rollback_statements, steps, "rollback")
                self._unrecord(script)
        else:
            self._run(script, script.rollback_statements, steps, "rollback")
            with self.conn.transaction():
                self._unrecord(script)
        return Outcome(script, time.monotonic() - started)

    def mark(self, file: MigrationFile) -> None:
        """Record as applied without running it (baseline)."""
        with self.conn.transaction():
            self._record_file(file, "mark")

    def accept(self, migration_id: str, file: MigrationFile | None) -> None:
        """Take the file as it is now (or its deletion) as the applied version."""
        with self.conn.transaction():
            self._save_checksum(migration_id, file)

    # ------------------------------------------------------------------ running statements

    def _run(
        self, script: Script, statements: Sequence[Statement], steps: Sequence[PythonStep], direction: str
    ) -> None:
        ran: list[Statement] = []
        for statement in statements:
            try:
                self.conn.execute(statement.sql)  # no parameters: sent as written, % and all
            except Exception as exc:
                raise self._failure(script, statement, exc, ran, direction) from None
            ran.append(statement)
        for number, step in enumerate(steps, 1):
            self._run_python_step(script, number, step, direction)

    def _run_python_step(self, script: Script, number: int, step: PythonStep, direction: str) -> None:
        action = step.apply if direction == "apply" else step.rollback
        if action is None:
            return
        ignore = step.ignore_errors in (direction, "all")
        try:
            with self.conn.transaction() if ignore else nullcontext():  # a savepoint keeps the rest alive
                if isinstance(action, str):
                    self.conn.execute(action)
                else:
                    action(self.conn)
        except Exception as exc:
            if ignore:
                return
            if isinstance(exc, DbopsError):
                raise
            raise MigrationFailed(
                f"Migration {script.name} failed in step {number}: {_pg_message(exc)}",
                _pg_hint(exc, script),
            ) from None

    def _failure(
        self, script: Script, statement: Statement, exc: Exception, ran: Sequence[Statement], direction: str
    ) -> MigrationFailed:
        line = statement.line + _lines_before(
            statement.sql, getattr(getattr(exc, "diag", None), "statement_position", None)
        )
        what = "Migration" if direction == "apply" else "Rollback of"
        where = script.name if direction == "apply" else (script.file.rollback or script.file.path).name
        message = f"{what} {where} failed at line {line}: {_pg_message(exc)}"
        if script.transactional:
            return MigrationFailed(message, "Nothing of it was applied. " + _pg_hint(exc, script))
        invalid = self._invalid_indexes(script)
        done = ", ".join(f"line {s.line}" for s in ran) or "none"
        hint = f"Not transactional: statements that ran and stay: {done}."
        if invalid:
            hint += f" INVALID index left behind: {', '.join(invalid)} (dropped before the next attempt)."
        return MigrationFailed(message, hint + " " + _pg_hint(exc, script), ran=ran, invalid=invalid)

    # ------------------------------------------------------------------ CREATE INDEX CONCURRENTLY leftovers

    def _concurrent_indexes(self, script: Script) -> list[str]:
        names = []
        for statement in script.statements:
            match = _CONCURRENT_INDEX.match(statement.sql)
            if match:
                names.append(match.group(1).strip('"'))
        return names

    def _invalid_indexes(self, script: Script) -> list[str]:
        names = self._concurrent_indexes(script)
        if not names:
            return []
        rows = self.conn.execute(
            "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE NOT i.indisvalid AND c.relname = ANY(%s) AND pg_table_is_visible(c.oid)",
            ([n.split(".")[-1] for n in names],),
        ).fetchall()
        return [r[0] for r in rows]

    def _drop_invalid_leftovers(self, script: Script) -> list[str]:
        from psycopg import sql

        invalid = self._invalid_indexes(script)
        for name in invalid:
            self.conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(name)))
        return invalid

    # ------------------------------------------------------------------ records

    def _record(self, script: Script, operation: str) -> None:
        self._record_file(script.file, operation)

    def _record_file(self, file: MigrationFile, operation: str) -> None:
        self._insert_records(file, _yoyo_hash(file.id), operation)

    def _insert_records(self, file: MigrationFile, migration_hash: str, operation: str) -> None:
        self.conn.execute(
            f"INSERT INTO {YOYO_TABLE} (migration_hash, migration_id, applied_at_utc) "
            "VALUES (%s, %s, clock_timestamp() AT TIME ZONE 'UTC')",
            (migration_hash, file.id),
        )
        self._log(migration_hash, file.id, operation)
        self._save_checksum(file.id, file)

    def _unrecord(self, script: Script) -> None:
        migration_hash = _yoyo_hash(script.id)
        self.conn.execute(f"DELETE FROM {YOYO_TABLE} WHERE migration_hash = %s", (migration_hash,))
        self.conn.execute(f"DELETE FROM {CHECKSUM_TABLE} WHERE migration_id = %s", (script.id,))
        self._log(migration_hash, script.id, "rollback")

    def _log(self, migration_hash: str, migration_id: str, operation: str) -> None:
        self.conn.execute(
            "INSERT INTO _yoyo_log (id, migration_hash, migration_id, operation, username, hostname, comment,"
            " created_at_utc) VALUES (%s, %s, %s, %s, %s, %s, %s, clock_timestamp() AT TIME ZONE 'UTC')",
            (str(uuid.uuid1()), migration_hash, migration_id, operation, self.user, self.host, "dbops"),
        )

    def _save_checksum(self, migration_id: str, file: MigrationFile | None) -> None:
        checksum = file.checksum() if file else DELETED
        files = ",".join(p.name for p in file.files) if file else ""
        self.conn.execute(
            f"INSERT INTO {CHECKSUM_TABLE} (migration_id, sha256, files, recorded_at_utc) "
            "VALUES (%s, %s, %s, clock_timestamp() AT TIME ZONE 'UTC') "
            "ON CONFLICT (migration_id) DO UPDATE SET sha256 = EXCLUDED.sha256, files = EXCLUDED.files, "
            "recorded_at_utc = EXCLUDED.recorded_at_utc",
            (migration_id, checksum, files),
        )


def _yoyo_hash(migration_id: str) -> str:
    """yoyo's migration_hash: a sha256 of the id, not of the content."""
    return hashlib.sha256(migration_id.encode()).hexdigest()


def _lines_before(sql: str, position: Any) -> int:
    """PostgreSQL's error position (1-based character) -> lines into the statement."""
    try:
        index = int(position) - 1
    except (TypeError, ValueError):
        return 0
    return sql.count("\n", 0, max(index, 0))


def _pg_message(exc: Exception) -> str:
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None)
    return primary or (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _pg_hint(exc: Exception, script: Script) -> str:
    diag = getattr(exc, "diag", None)
    hint = getattr(diag, "message_hint", None)
    detail = getattr(diag, "message_detail", None)
    parts = [p for p in (hint, detail) if p]
    parts.append(f"Fix {script.name} and run migrate again")
    return "; ".join(parts)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
