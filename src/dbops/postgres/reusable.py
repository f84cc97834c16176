"""Validate's reusable scratch database: ``dbops_validate_scratch_<role>``, kept empty on the
environment's own server between runs.

When every migration is plain SQL that runs in a transaction, validate builds the expected
schema in one transaction there, reads it, and rolls the transaction back. No CREATE DATABASE
and DROP DATABASE per run: each writes and removes a few hundred files, from tens of
milliseconds on a fast disk to seconds on a slow disk or a managed service.

- **Only this role's own.** Who owns a database of that name is looked up on the live
  connection first: one another role made could hold functions that would run as this role
  (an operator in public that a catalog query would pick, the migrations' own calls), so it
  is never connected to, used or dropped; validate takes a fresh database instead.
- **Claimed per run** with a transaction-level advisory lock: a second validation at the same
  time takes a fresh scratch database instead.
- **Checked before each use.** At creation its fingerprint is recorded in its comment: how
  many objects the per-database catalogs hold and their highest oid, the comments, the public
  schema's owner and privileges, the database's own settings, and template1's row counters
  (a fresh scratch database is a copy of template1 as it is now). It is read with search_path
  pinned to pg_catalog. A database whose fingerprint no longer matches (someone used it, or
  template1 changed) is dropped and made again.
- **As a commit would find it.** Deferred constraints are checked (SET CONSTRAINTS ALL
  IMMEDIATE) before the schema is read: what would fail at commit fails there too.
- **Nothing stays behind.** A run killed half-way is rolled back by the server, which notices
  the lost client within a second (``client_connection_check_interval``, PostgreSQL 14 and
  later) even in a long statement; migrations that end the transaction themselves (a COMMIT
  in a file) get a fresh database, and the reusable one is dropped after the run.

It is made only where the role may create databases (else validate goes on as before, in a
fresh one on the embedded server), from template1 as a fresh scratch database would be, with
CONNECT revoked from PUBLIC at once (and any session that came in before, ended).
``reuse_scratch: false`` in dbops.yaml turns it off for an environment; protected environments
do without it unless they say ``true``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

from dbops.errors import DatabaseMissing, DbopsError
from dbops.postgres.connection import Target, connect, server_version
from dbops.postgres.databases import (
    Scratch,
    can_create_databases,
    drop_stale,
    signals_held,
    terminate_sessions,
    wait_until_unused,
)

if TYPE_CHECKING:
    import psycopg

    from dbops.config.model import Environment

PREFIX = "dbops_validate_scratch_"
_LOCK = 0x64626F7073_5643  # "dbopsVC": one key, taken in that database only

# What a committed change to the database would move (rolled-back objects leave no row behind),
# and to template1, which a fresh scratch database would be copied from (its row counters).
_FINGERPRINT = """concat_ws('/',
  (SELECT count(*) || '.' || max(oid) FROM (
     SELECT oid FROM pg_class UNION ALL SELECT oid FROM pg_proc UNION ALL SELECT oid FROM pg_type
     UNION ALL SELECT oid FROM pg_namespace UNION ALL SELECT oid FROM pg_extension
     UNION ALL SELECT oid FROM pg_operator UNION ALL SELECT oid FROM pg_collation
     UNION ALL SELECT oid FROM pg_cast UNION ALL SELECT oid FROM pg_language
     UNION ALL SELECT oid FROM pg_event_trigger UNION ALL SELECT oid FROM pg_publication
     UNION ALL SELECT oid FROM pg_foreign_data_wrapper UNION ALL SELECT oid FROM pg_foreign_server
     UNION ALL SELECT oid FROM pg_default_acl UNION ALL SELECT oid FROM pg_ts_config) o),
  (SELECT count(*) FROM pg_description),
  (SELECT nspowner || coalesce(nspacl::text, '') FROM pg_namespace WHERE nspname = 'public'),
  (SELECT count(*) FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
    WHERE d.datname = current_database()),
  (SELECT concat_ws('.', tup_inserted, tup_updated, tup_deleted) FROM pg_stat_database
    WHERE datname = '{template}'))"""

TEMPLATE = "template1"  # what CREATE DATABASE copies (a name of dbops' own: no quoting needed)

_RECORDED = (
    "shobj_description((SELECT oid FROM pg_database WHERE datname = current_database()), 'pg_database')"
)
_MARK = "fingerprint "
_COMMENT = "dbops validate's reusable scratch database, kept empty between runs (safe to drop): "


def name_for(role: str) -> str:
    """One per role: what one role made, another may not connect to."""
    return PREFIX + re.sub(r"[^a-z0-9_]", "_", role.lower())[: 63 - len(PREFIX)]


class Claimed:
    """The reusable database, this run's while claimed() lasts: its transaction is open on `conn`."""

    def __init__(self, conn: psycopg.Connection[Any], scratch: Scratch) -> None:
        self.conn = conn
        self.scratch = scratch
        self.dirty = False  # the migrations ended the transaction: what followed may have stayed

    def ended(self) -> bool:
        """Whether the transaction begun at the claim is over (not merely failed)."""
        from psycopg.pq import TransactionStatus

        return self.conn.info.transaction_status == TransactionStatus.IDLE


@contextmanager
def claimed(conn: psycopg.Connection[Any], target: Target, env: Environment) -> Iterator[Claimed | None]:
    """The reusable scratch database next to `target`'s, made if need be, its transaction begun
    and its lock taken; None when it cannot be had (the caller makes a fresh one). `conn` is the
    caller's connection to the server, used (only) to make or drop the database: it must be idle.
    Afterwards the transaction is rolled back, and a database the run left dirty is dropped."""
    name = name_for(conn.info.user)
    drop_stale(conn)  # fresh ones of killed runs, as creating one would
    claim = _claim(conn, target, env, name)
    try:
        yield claim
    finally:
        if claim is not None:
            claim.conn.close()  # an open transaction ends with the session: rolled back
            if claim.dirty:
                _drop(conn, name)


def _claim(conn: psycopg.Connection[Any], target: Target, env: Environment, name: str) -> Claimed | None:
    server = _watching(target.with_dbname(name), conn.info.server_version)
    for attempt in range(2):
        owner = _owner(conn, name)
        if owner == "another role":  # what it holds could run as this role: never connected to
            return None
        if owner is None:
            if attempt or not _create(conn, server, env, name):
                return None
            continue
        try:
            kept = connect(server, env)
        except DbopsError:  # dropped meanwhile, or the server refuses more sessions
            return None
        try:
            state = _begin(kept)
        except Exception as exc:  # its session ended under it (dropped by a run that found it changed)
            if not type(exc).__module__.startswith("psycopg"):
                raise
            kept.close()
            return None
        if state == "ours":
            return Claimed(kept, Scratch(server, "same server", server_version(kept)))
        kept.close()
        if state == "busy" or attempt or not _drop(conn, name) or not _create(conn, server, env, name):
            return None
    return None


def _fingerprint() -> str:
    return _FINGERPRINT.format(template=TEMPLATE)


def _owner(conn: psycopg.Connection[Any], name: str) -> str | None:
    """Who owns the database: "this role", "another role", or None when there is none."""
    row = conn.execute(
        "SELECT d.datdba = r.oid FROM pg_catalog.pg_database d, pg_catalog.pg_roles r"
        " WHERE d.datname = %s AND r.rolname = current_user",
        (name,),
    ).fetchone()
    if row is None:
        return None
    return "this role" if row[0] else "another role"


def _watching(server: Target, version: int) -> Target:
    """A killed run's session ends within a second, even in a long statement: the server checks
    that its client is still there (PostgreSQL 14 and later). A startup option, so that the
    migrations' RESET ALL between them keeps it."""
    if version < 140000:
        return server
    return server.with_settings("-c client_connection_check_interval=1000")


def _begin(kept: psycopg.Connection[Any]) -> str:
    """BEGIN, the lock and the fingerprint in one round trip: ours, busy or changed. The
    fingerprint is read with search_path pinned to pg_catalog (the migrations' own RESET ALL
    puts it back), so nothing in the database stands in for the functions it calls."""
    with kept.pipeline():
        kept.execute("BEGIN")
        kept.execute("SET LOCAL search_path = pg_catalog, pg_temp")
        query = f"SELECT pg_try_advisory_xact_lock({_LOCK}), {_fingerprint()}, {_RECORDED}"
        row = kept.execute(query).fetchone()
    assert row is not None
    locked, fingerprint, recorded = row
    if not locked:
        return "busy"
    if not recorded or recorded.rpartition(_MARK)[2] != fingerprint:
        return "changed"
    return "ours"


def _create(conn: psycopg.Connection[Any], server: Target, env: Environment, name: str) -> bool:
    """Make it (where the role may) and record its fingerprint; False if it cannot be made."""
    from psycopg import errors, sql

    if not can_create_databases(conn):
        return False
    database = sql.Identifier(name)
    try:
        with signals_held():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(database))
            conn.execute(sql.SQL("REVOKE CONNECT ON DATABASE {} FROM PUBLIC").format(database))
    except (errors.InsufficientPrivilege, errors.DuplicateDatabase, errors.UniqueViolation):
        return False  # a managed service's policy, or another run made it a moment ago
    try:
        terminate_sessions(conn, name)  # anyone who came in before the REVOKE
        try:
            kept = connect(server, env)
        except DatabaseMissing:  # another run found it without its comment yet, and dropped it
            return False
        try:
            kept.execute("SET search_path = pg_catalog, pg_temp")
            fingerprint = kept.execute(f"SELECT {_fingerprint()}").fetchone()
            assert fingerprint is not None
            comment = sql.Literal(_COMMENT + _MARK + str(fingerprint[0]))
            kept.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(database, comment))
        finally:
            kept.close()
    except BaseException:
        _drop(conn, name)
        raise
    return True


def _drop(conn: psycopg.Connection[Any], name: str) -> bool:
    """Drop it unless someone is connected (a run that claimed it meanwhile keeps it)."""
    from psycopg import errors, sql

    if not wait_until_unused(conn, name, timeout=1.0):  # this run's own session may still be ending
        return False
    with suppress(errors.InsufficientPrivilege, errors.ObjectInUse), signals_held():
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        return True
    return False
