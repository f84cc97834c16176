"""Applying, rolling back and marking migrations on one connection, records included.

A transactional migration, yoyo's records of it (``_yoyo_migration``, ``_yoyo_log``) and its
checksum commit in one transaction, sent in one round trip: a kill at any instant leaves it
applied and recorded, or neither. A non-transactional one runs statement by statement in
autocommit and is recorded once all of them ran.

Each migration commits without waiting for its WAL to reach the disk; flush() then waits once
for all of them. A server crash in between loses whole migrations with their records, never
one without the other. After each migration the session is reset, so a ``SET search_path``
in one never leaks into the next (yoyo gives each migration a new connection).
"""

from __future__ import annotations

import getpass
import hashlib
import logging
import re
import socket
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from contextlib import nullcontext, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dbops.errors import EXIT_UNDO_FAILED, DbopsError
from dbops.migrations.files import CHECKSUM_TABLE, DELETED, YOYO_TABLE, MigrationFile
from dbops.migrations.scripts import PythonStep, Script, Statement, code_of
from dbops.postgres.guarded import refuse_statement, run_guarded
from dbops.postgres.locks import MigrationLock, lock_lost

if TYPE_CHECKING:
    import psycopg

    from dbops.postgres.connection import Target

# psycopg logs "error ignored terminating <Pipeline>" when a pipelined statement fails; the
# failure itself is reported as dbops' own one-line error.
logging.getLogger("psycopg").addHandler(logging.NullHandler())

_NO_FLUSH_WAIT = "SET LOCAL synchronous_commit = off"
_IN_TRANSACTION_BLOCK = "25001"  # active_sql_transaction: "... cannot run inside a transaction block"
_RESET_SESSION = ("RESET ALL", "RESET ROLE")
_CONCURRENT_INDEX = re.compile(r"^CREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY\b", re.IGNORECASE)

# What a Python step's connection says when it is asked to commit: (transactional?) -> (what, hint)
_GUARD = {
    True: ("a migration", ""),
    False: (
        "a non-transactional migration",
        "Remove it: each statement of a non-transactional migration commits on its own; "
        "group statements with: with db.transaction(): ...",
    ),
}


class MigrationFailed(DbopsError):
    """A migration's statement failed; the message names the file, line and PostgreSQL error."""


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
        self._tables: dict[str, str] = {}  # bookkeeping table -> its schema-qualified name
        self.lock: MigrationLock | None = None  # when set, checked before each commit of a record
        self._pipelined = False
        # told when a migration starts (outcome None) and once it is committed with its records
        # (apply and rollback alike): a live view shows it running, then done
        self.watch: Callable[[Script, Outcome | None], None] | None = None

    # ------------------------------------------------------------------ bookkeeping tables

    def ensure_bookkeeping(self) -> None:
        """yoyo's internal schema, made by yoyo's own code (yoyo_schema.py), and our checksums.

        Whatever is missing is made in one transaction, under our advisory lock: a kill leaves
        all or nothing, and never the stale row that yoyo's own table lock would leave behind.
        """
        row = self.conn.execute(
            "SELECT to_regclass('_yoyo_migration'), to_regclass('_yoyo_version'),"
            " to_regclass('yoyo_lock'), to_regclass(%s)",
            (CHECKSUM_TABLE,),
        ).fetchone()
        assert row is not None
        *yoyo_tables, checksums = (value is not None for value in row)
        with self.conn.transaction():
            if not all(yoyo_tables):  # a new database, or one from yoyo < 6
                # yoyo (about 0.1 s to import) only when its tables are missing
                from dbops.migrations.yoyo_schema import ensure_yoyo_schema

                ensure_yoyo_schema(self.conn)
            if not checksums:
                self.conn.execute(
                    f"CREATE TABLE {CHECKSUM_TABLE} ("
                    " migration_id varchar(255) PRIMARY KEY, sha256 varchar(64) NOT NULL,"
                    " files text NOT NULL, recorded_at_utc timestamp NOT NULL)"
                )
        self._qualify()

    def _qualify(self) -> None:
        """Name the bookkeeping tables with their schema: a migration may change search_path."""
        from psycopg import sql

        for table in (YOYO_TABLE, "_yoyo_log", CHECKSUM_TABLE):
            row = self.conn.execute(
                "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE c.oid = to_regclass(%s)",
                (table,),
            ).fetchone()
            assert row is not None, table
            self._tables[table] = sql.Identifier(row[0], table).as_string(self.conn)

    # ------------------------------------------------------------------ apply / rollback / mark

    def apply(self, script: Script) -> Outcome:
        started = time.monotonic()
        dropped: list[str] = []
        reset = True
        if self.watch is not None:
            self.watch(script, None)
        try:
            if script.transactional and not script.python_steps and self.conn.autocommit:
                reset = False  # the pipeline resets the session itself
                self._apply_pipelined(script)
            elif script.transactional:
                with self.conn.transaction():
                    self.conn.execute(_NO_FLUSH_WAIT)
                    self._run(script, script.statements, script.python_steps, "apply")
                    self._record(script.file, script.checksum, "apply", script.name)
            else:
                self._check_lock(script.name)  # before anything of it runs in autocommit
                dropped = self._drop_invalid_leftovers(script)
                self._run(script, script.statements, script.python_steps, "apply")
                with self.conn.transaction():
                    self._record(script.file, script.checksum, "apply", script.name, ran=True)
        except BaseException:
            reset = True
            raise
        finally:
            if reset:
                self._reset_session()
        return self._done(Outcome(script, time.monotonic() - started, dropped))

    def _apply_pipelined(self, script: Script) -> None:
        """BEGIN, the statements, the records, COMMIT and the session's reset in one round trip:
        sent together, then one Sync. A failure makes the server skip the rest up to the Sync,
        so nothing after it runs; the transaction it leaves open is rolled back here."""
        conn = self.conn
        sent = []
        self._pipelined = True
        try:
            with conn.pipeline():
                conn.execute("BEGIN")
                conn.execute(_NO_FLUSH_WAIT)
                for statement in script.statements:
                    sent.append((statement, conn.execute(statement.sql)))
                self._record(script.file, script.checksum, "apply")
                conn.execute("COMMIT")
                for reset in _RESET_SESSION:
                    conn.execute(reset)
        except BaseException as exc:  # Ctrl-C too: the transaction it interrupted is rolled back
            if not conn.closed and conn.info.transaction_status != 0:  # the failed transaction
                with suppress(Exception):  # a broken connection: the failure itself is what to report
                    conn.execute("ROLLBACK")
            if not isinstance(exc, Exception) or isinstance(exc, DbopsError):
                raise
            if not type(exc).__module__.startswith("psycopg"):
                raise
            if MigrationLock.lost(exc):
                raise lock_lost(script.name) from None
            failed = next((statement for statement, cursor in sent if cursor.pgresult is None), None)
            if failed is None:  # every statement ran: the records or the COMMIT failed
                raise MigrationFailed(
                    f"Migration {script.name} failed at commit: {_pg_message(exc)}",
                    "Nothing of it was applied (deferred constraints are checked at commit). "
                    + _pg_hint(exc, script, "apply"),
                ) from None
            done = [statement for statement, cursor in sent if cursor.pgresult is not None]
            raise self._failure(script, failed, exc, done, "apply") from None
        finally:
            self._pipelined = False

    def rollback(self, script: Script) -> Outcome:
        started = time.monotonic()
        steps = tuple(reversed(script.python_steps))
        if self.watch is not None:
            self.watch(script, None)
        try:
            if script.transactional:
                with self.conn.transaction():
                    self.conn.execute(_NO_FLUSH_WAIT)
                    self._run(script, script.rollback_statements, steps, "rollback")
                    self._unrecord(script)
            else:
                self._check_lock(script.name)
                self._run(script, script.rollback_statements, steps, "rollback")
                with self.conn.transaction():
                    self._unrecord(script, ran=True)
        finally:
            self._reset_session()
        return self._done(Outcome(script, time.monotonic() - started))

    def _done(self, outcome: Outcome) -> Outcome:
        if self.watch is not None:
            self.watch(outcome.script, outcome)
        return outcome

    def mark(self, file: MigrationFile) -> None:
        """Record as applied without running it (baseline)."""
        with self.conn.transaction():
            self._record(file, file.checksum(), "mark", file.path.name)

    def accept(self, migration_id: str, file: MigrationFile | None) -> None:
        """Take the file as it is now (or its deletion) as the applied version."""
        with self.conn.transaction():
            self._check_lock(migration_id)
            if file is not None:
                self._save_checksum(migration_id, file.checksum(), file)
                return
            # a deletion keeps the checksum as applied: should the file come back, it is checked
            kept = self.conn.execute(
                f"UPDATE {self._tables[CHECKSUM_TABLE]} SET files = '',"
                " recorded_at_utc = clock_timestamp() AT TIME ZONE 'UTC' WHERE migration_id = %s",
                (migration_id,),
            )
            if kept.rowcount == 0:  # applied by plain yoyo, its files never seen
                self._save_checksum(migration_id, DELETED, None)

    def flush(self) -> None:
        """Wait once for the disk: a durable commit flushes every earlier one's WAL too."""
        if self.conn.closed or self.conn.info.transaction_status != 0:  # not idle: nothing sane to do
            return
        with self.conn.transaction():
            self.conn.execute("SELECT txid_current()")

    def _reset_session(self) -> None:
        if not self.conn.closed and self.conn.info.transaction_status == 0:
            for statement in _RESET_SESSION:
                self.conn.execute(statement)

    # ------------------------------------------------------------------ running statements

    def _run(
        self, script: Script, statements: Sequence[Statement], steps: Sequence[PythonStep], direction: str
    ) -> None:
        ran: list[Statement] = []
        invalid_before = self._all_invalid() if not script.transactional else set()
        for statement in statements:
            try:
                self.conn.execute(statement.sql)  # no parameters: sent as written, % and all
            except Exception as exc:
                if not type(exc).__module__.startswith("psycopg"):
                    raise
                left = sorted(self._all_invalid() - invalid_before) if not script.transactional else []
                raise self._failure(script, statement, exc, ran, direction, left) from None
            ran.append(statement)
        count = len(steps)
        for index, step in enumerate(steps):
            number = count - index if direction == "rollback" else index + 1  # as written in the file
            self._run_python_step(script, number, step, direction)

    def _run_python_step(self, script: Script, number: int, step: PythonStep, direction: str) -> None:
        action = step.apply if direction == "apply" else step.rollback
        if action is None:
            return
        ignore = step.ignore_errors in (direction, "all")
        try:
            with self.conn.transaction() if ignore else nullcontext():  # a savepoint keeps the rest alive
                what, hint = _GUARD[script.transactional]
                if isinstance(action, str):
                    where = f"{script.name}: step {number}"
                    refuse_statement(action, self.conn, what=what, where=where, hint=hint)
                    self.conn.execute(action)
                else:
                    run_guarded(self.conn, action, what=what, root=script.file.path.parent.parent, hint=hint)
        except Exception as exc:
            if isinstance(exc, DbopsError):  # a refused COMMIT too: ignore_errors never hides it
                raise
            if ignore:
                return
            line = _line_in(exc, str(script.file.path))
            what = "Migration" if direction == "apply" else "Rollback of"
            where = f"line {line}, step {number}" if line else f"step {number}"
            raise MigrationFailed(
                f"{what} {script.name} failed at {where}: {_pg_message(exc)}",
                _pg_hint(exc, script, direction),
            ) from None

    def _failure(
        self,
        script: Script,
        statement: Statement,
        exc: Exception,
        ran: Sequence[Statement],
        direction: str,
        invalid: Sequence[str] = (),
    ) -> MigrationFailed:
        position = getattr(getattr(exc, "diag", None), "statement_position", None)
        line = statement.line + _lines_before(code_of(statement.sql), position, statement.sql)
        if direction == "apply":
            message = f"Migration {script.name} failed at line {line}: {_pg_message(exc)}"
        else:
            rollback = script.file.rollback.name if script.file.rollback else script.name
            message = f"Rollback of {script.id} failed at {rollback}:{line}: {_pg_message(exc)}"
        if script.transactional:
            undone = "Nothing of it was applied. " if direction == "apply" else "Nothing was rolled back. "
            return MigrationFailed(message, undone + _pg_hint(exc, script, direction))
        done = ", ".join(f"line {s.line}" for s in ran) or "none"
        hint = f"Not transactional: statements that ran and stay: {done}."
        if invalid:
            hint += f" INVALID index left behind: {', '.join(invalid)} (dropped before the next attempt)."
        failure = MigrationFailed(message, f"{hint} {_pg_hint(exc, script, direction)}")
        if ran or invalid:
            failure.exit_code = EXIT_UNDO_FAILED  # part of it stays: attention needed
        return failure

    # ------------------------------------------------------------------ CREATE INDEX CONCURRENTLY leftovers

    def _all_invalid(self) -> set[str]:
        """Every INVALID index, schema-qualified where its schema is not public."""
        rows = self.conn.execute(
            "SELECT n.nspname, c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT i.indisvalid"
        ).fetchall()
        return {_shown(schema, name) for schema, name in rows}

    def _drop_invalid_leftovers(self, script: Script) -> list[str]:
        """INVALID indexes named by this migration's CREATE INDEX CONCURRENTLY: an earlier attempt's.

        Matched by name and by the table the statement names (an index lives in its table's
        schema), so an index of that name in another schema, or a valid one, is never dropped."""
        from psycopg import sql

        dropped = []
        for index, table in _concurrent_indexes(script.statements):
            rows = self.conn.execute(
                "SELECT n.nspname, c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
                " JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE NOT i.indisvalid AND c.relname = %s AND i.indrelid = to_regclass(%s)",
                (index, table),
            ).fetchall()
            for schema, name in rows:
                self.conn.execute(
                    sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(schema, name))
                )
                dropped.append(_shown(schema, name))
        return sorted(dropped)

    # ------------------------------------------------------------------ records

    def _check_lock(self, name: str, *, ran: bool = False) -> None:
        """Fail loudly, before a commit, when the migration lock's session has ended. In a
        pipeline the statement is only queued: _apply_pipelined turns its failure into LockLost."""
        if self.lock is None:
            return
        if self._pipelined:
            self.conn.execute(self.lock.check_sql())
            return
        try:
            self.conn.execute(self.lock.check_sql())
        except Exception as exc:
            if not MigrationLock.lost(exc):
                raise
            failure = lock_lost(name)
            if ran:  # a non-transactional migration's statements ran in autocommit and stay
                failure.hint = (
                    "Its statements ran and stay, but it was not recorded; check the server log for "
                    "why the session ended, then run migrate again"
                )
                failure.exit_code = EXIT_UNDO_FAILED
            raise failure from None

    def _record(
        self, file: MigrationFile, checksum: str, operation: str, name: str = "", *, ran: bool = False
    ) -> None:
        self._check_lock(name or file.path.name, ran=ran)
        migration_hash = _yoyo_hash(file.id)
        self.conn.execute(
            f"INSERT INTO {self._tables[YOYO_TABLE]} (migration_hash, migration_id, applied_at_utc) "
            "VALUES (%s, %s, clock_timestamp() AT TIME ZONE 'UTC')",
            (migration_hash, file.id),
        )
        self._log(migration_hash, file.id, operation)
        self._save_checksum(file.id, checksum, file)

    def _unrecord(self, script: Script, *, ran: bool = False) -> None:
        self._check_lock(script.name, ran=ran)
        migration_hash = _yoyo_hash(script.id)
        self.conn.execute(
            f"DELETE FROM {self._tables[YOYO_TABLE]} WHERE migration_hash = %s", (migration_hash,)
        )
        self.conn.execute(f"DELETE FROM {self._tables[CHECKSUM_TABLE]} WHERE migration_id = %s", (script.id,))
        self._log(migration_hash, script.id, "rollback")

    def _log(self, migration_hash: str, migration_id: str, operation: str) -> None:
        self.conn.execute(
            f"INSERT INTO {self._tables['_yoyo_log']} (id, migration_hash, migration_id, operation, username,"
            " hostname, comment, created_at_utc)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, clock_timestamp() AT TIME ZONE 'UTC')",
            (str(uuid.uuid1()), migration_hash, migration_id, operation, self.user, self.host, "dbops"),
        )

    def _save_checksum(self, migration_id: str, checksum: str, file: MigrationFile | None) -> None:
        files = file.path.name if file else ""  # the checksum's file: the forward migration
        self.conn.execute(
            f"INSERT INTO {self._tables[CHECKSUM_TABLE]} (migration_id, sha256, files, recorded_at_utc) "
            "VALUES (%s, %s, %s, clock_timestamp() AT TIME ZONE 'UTC') "
            "ON CONFLICT (migration_id) DO UPDATE SET sha256 = EXCLUDED.sha256, files = EXCLUDED.files, "
            "recorded_at_utc = EXCLUDED.recorded_at_utc",
            (migration_id, checksum, files),
        )


def _concurrent_indexes(statements: Sequence[Statement]) -> list[tuple[str, str]]:
    """(index name, its table as a quoted, possibly schema-qualified name) of each named
    CREATE INDEX CONCURRENTLY, read from PostgreSQL's own parse tree."""
    from pglast import ast, parse_sql
    from pglast.parser import ParseError
    from psycopg import sql

    found = []
    for statement in statements:
        if not _CONCURRENT_INDEX.match(code_of(statement.sql)):
            continue  # parse only what can be one: pglast costs a few ms to import
        try:
            parsed = parse_sql(statement.sql)
        except ParseError:
            continue
        for raw in parsed:
            node = raw.stmt
            relation = node.relation if isinstance(node, ast.IndexStmt) else None
            if isinstance(node, ast.IndexStmt) and node.concurrent and node.idxname and relation:
                parts = [p for p in (relation.schemaname, relation.relname) if p]
                found.append((node.idxname, sql.Identifier(*parts).as_string()))
    return found


def _shown(schema: str, name: str) -> str:
    return name if schema == "public" else f"{schema}.{name}"


def _yoyo_hash(migration_id: str) -> str:
    """yoyo's migration_hash: a sha256 of the id, not of the content."""
    return hashlib.sha256(migration_id.encode()).hexdigest()


def _lines_before(code: str, position: Any, sql: str) -> int:
    """PostgreSQL's error position (1-based, in the statement as sent) -> lines past the code's start."""
    try:
        index = int(position) - 1
    except (TypeError, ValueError):
        return 0
    offset = len(sql) - len(code)  # the comments before the code
    return max(sql.count("\n", 0, max(index, 0)) - sql.count("\n", 0, offset), 0)


def _line_in(exc: Exception, path: str) -> int | None:
    """The line of the migration file where a Python step raised."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == path]
    return frames[-1].lineno if frames else None


def _pg_message(exc: Exception) -> str:
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None)
    return primary or (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _pg_hint(exc: Exception, script: Script, direction: str) -> str:
    diag = getattr(exc, "diag", None)
    parts = [p for p in (getattr(diag, "message_hint", None), getattr(diag, "message_detail", None)) if p]
    if script.transactional and getattr(exc, "sqlstate", None) == _IN_TRANSACTION_BLOCK:
        # CREATE INDEX CONCURRENTLY, VACUUM, ALTER SYSTEM...: never inside a transaction
        how = (
            "__transactional__ = False at its top level"
            if script.is_python
            else "-- transactional: false to its leading comment block"
        )
        parts.append(
            f"That statement cannot run in a transaction: add {how} ({script.name}; each statement "
            "then runs on its own, in autocommit), and run it again"
        )
    elif direction == "apply":
        parts.append(f"Fix {script.name} and run migrate again")
    else:
        rollback = script.file.rollback.name if script.file.rollback else script.name
        parts.append(f"Fix {rollback} and run migrate-rollback again")
    return "; ".join(parts)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
