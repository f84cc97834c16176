"""Restoring a backup without risking the live database.

``restore_file(ctx, path)``: check the file against its manifest (sha256, a full read), restore
it into a scratch database ``<db>__restore_<ts>`` (stopping at the first error), check the
scratch database (row counts and objects against the manifest), then swap: terminate the
sessions on the live database, and in one transaction rename live to ``<db>__pre_restore_<ts>``
(kept, so nothing is lost) and scratch to live. Before the swap the live database is never
touched; on any failure the scratch database is dropped.

A restore holds an advisory lock (on a maintenance connection) for its database: two restores
never overlap, and a scratch database found while holding it is a leftover of a killed run
(dropped). ``--in-place`` restores into the existing database in one transaction instead, for
users without CREATEDB.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbops.backups import store as backups
from dbops.backups.store import CHUNK, Manifest
from dbops.errors import DbopsError
from dbops.postgres import tools as pgtools

if TYPE_CHECKING:
    import psycopg

    from dbops.engine.context import RunContext
    from dbops.output.progress import Advance
    from dbops.postgres.connection import Target

NAME_MAX = 63  # PostgreSQL truncates longer identifiers


class RestoreFailed(DbopsError):
    """The restore stopped before the swap: the live database is as it was."""


@dataclass
class RestoreResult:
    database: str
    scratch: str | None = None
    kept_as: str | None = None  # the database as it was before, renamed
    terminated: int = 0
    load_s: float = 0.0
    verify_s: float = 0.0
    swap_s: float = 0.0
    rows: int = 0
    tables: int = 0
    in_place: bool = False


def restore_file(ctx: RunContext, path: Path) -> RestoreResult:
    """Restore the environment's database from `path` (verified first), non-interactively,
    without a safety backup: for other steps' undo actions. The database it replaces is kept
    (renamed, RestoreResult.kept_as), as in every restore: the caller says so."""
    manifest = check_file(ctx, path)
    return replace_database(ctx, path, manifest)


def check_file(ctx: RunContext, path: Path, progress: Advance | None = None) -> Manifest:
    """The manifest, the size and sha256 it records, and a full read of the file (exit 2 if not)."""
    shown = ctx.config.shown(path)
    manifest = backups.read_manifest(path, shown)
    tools = pgtools.toolbox(ctx.config)
    advance = (lambda done: progress("Checking backup", done, manifest.size)) if progress else None
    backups.verify(path, manifest, tools.pg_restore.path, shown, advance)
    return manifest


def derived_name(database: str, suffix: str) -> str:
    """<database><suffix>, the database part shortened to fit PostgreSQL's 63 bytes."""
    room = NAME_MAX - len(suffix.encode())
    head = database.encode()[:room].decode("utf-8", "ignore")
    return head + suffix


def replace_database(
    ctx: RunContext,
    path: Path,
    manifest: Manifest,
    *,
    jobs: int | None = None,
    progress: Advance | None = None,
    lock: RestoreLock | None = None,
) -> RestoreResult:
    """Scratch database, its check, the swap (the README's steps 5 to 7); on the connection of
    `lock` (taken by the restore-lock step, before the safety backup), or on one that takes the
    lock now."""
    live = ctx.target().dbname
    stamp = backups.utc_now().strftime("%Y%m%d_%H%M%S")
    result = RestoreResult(live)
    ctx.close()  # our own session on the live database would block the rename
    with contextlib.ExitStack() as stack:
        if lock is not None and lock.maintenance and not lock.conn.closed:
            admin = lock.conn
        else:
            admin = stack.enter_context(maintenance(ctx, live))
        drop_leftovers(admin, live)
        result.scratch = _unused_name(admin, live, f"__restore_{stamp}")
        create_scratch(admin, result.scratch, live, manifest.encoding)
        try:
            started = time.monotonic()
            load(ctx, path, manifest, result.scratch, _major_of(admin), jobs=jobs, progress=progress)
            result.load_s = time.monotonic() - started
            started = time.monotonic()
            result.rows, result.tables = check_restored(ctx, result.scratch, manifest)
            result.verify_s = time.monotonic() - started
            started = time.monotonic()
            result.kept_as, result.terminated = swap(admin, live, result.scratch, stamp)
            result.swap_s = time.monotonic() - started
        except BaseException:
            with contextlib.suppress(Exception):
                drop_database(admin, result.scratch)
            raise
    return result


def trial_restore(ctx: RunContext, path: Path, manifest: Manifest) -> None:
    """--verify=restore: restore into a scratch database, compare the row counts, drop it."""
    live = ctx.target().dbname
    with maintenance(ctx, live) as admin:
        scratch = _unused_name(admin, live, f"__verify_{backups.utc_now().strftime('%Y%m%d_%H%M%S')}")
        create_scratch(admin, scratch, live, manifest.encoding)
        try:
            load(ctx, path, manifest, scratch, _major_of(admin))
            check_restored(ctx, scratch, manifest)
        finally:
            drop_database(admin, scratch)


def restore_in_place(
    ctx: RunContext,
    path: Path,
    manifest: Manifest,
    progress: Advance | None = None,
    lock: RestoreLock | None = None,
) -> RestoreResult:
    """Empty the live database and load the backup, all in one transaction (no CREATEDB needed)."""
    live = ctx.target().dbname
    result = RestoreResult(live, in_place=True)
    conn = ctx.connection()
    if lock is None or not lock.maintenance or lock.conn.closed:
        _lock(conn, live)  # again if the lock step took it on this session: it counts twice
    started = time.monotonic()
    _run_script(ctx, path, manifest, live, _major_of(conn), clear_first=True, progress=progress)
    result.load_s = time.monotonic() - started
    started = time.monotonic()
    result.rows, result.tables = check_restored(ctx, live, manifest)
    result.verify_s = time.monotonic() - started
    return result


# --------------------------------------------------------------------------- the lock


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


def take_lock(ctx: RunContext, *, in_place: bool) -> RestoreLock:
    """Before anything is written (the safety backup included): the restore lock, or "Another
    restore of X is running"; and, for a restore through a scratch database, the rights it
    needs (CREATEDB, and owning the database it renames)."""
    from dbops.errors import ConnectionFailed

    live = ctx.target().dbname
    try:
        conn = _maintenance_connection(ctx)
    except ConnectionFailed:
        if not in_place:
            raise
        conn = None
    if conn is None:  # --in-place needs no maintenance database: lock on the live one
        _lock(ctx.connection(), live)
        return RestoreLock(live, ctx.connection(), maintenance=False)
    try:
        _lock(conn, live)
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


# --------------------------------------------------------------------------- databases


@contextlib.contextmanager
def maintenance(ctx: RunContext, live: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection to the server's maintenance database, holding the restore lock of `live`."""
    with _maintenance_connection(ctx) as conn:
        _lock(conn, live)
        yield conn


def _maintenance_connection(ctx: RunContext) -> psycopg.Connection[Any]:
    """postgres, else template1, on the environment's server."""
    from dbops.errors import ConnectionFailed
    from dbops.postgres.connection import connect

    target = ctx.target()
    for name in ("postgres", "template1"):
        try:
            return connect(target.with_dbname(name), ctx.env)
        except ConnectionFailed:
            if name == "template1":
                raise
    raise AssertionError("unreachable")


def _lock(conn: psycopg.Connection[Any], live: str) -> None:
    row = conn.execute(
        "SELECT pg_try_advisory_lock(hashtextextended('dbops restore ' || %s, 0))", (live,)
    ).fetchone()
    if not row or not row[0]:
        raise RestoreFailed(
            f"Another restore of {live} is running on this server", "Wait for it to finish, then try again"
        )


def drop_leftovers(admin: psycopg.Connection[Any], live: str) -> list[str]:
    """Scratch databases of killed runs (we hold the lock: no running restore owns them)."""
    import re

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
    from psycopg import sql

    if admin.info.server_version >= 130000:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        return
    _terminate(admin, name)
    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def _terminate(admin: psycopg.Connection[Any], name: str) -> int:
    row = admin.execute(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE datname = %s AND pid <> pg_backend_pid()",
        (name,),
    ).fetchone()
    return int(row[0]) if row else 0


def swap(admin: psycopg.Connection[Any], live: str, scratch: str, stamp: str) -> tuple[str | None, int]:
    """Terminate the live database's sessions, then both renames in one transaction.

    Returns the name the previous database is kept under (None if there was none) and how many
    sessions were terminated. A session that connects in between makes the rename fail: terminate
    and try again.
    """
    from psycopg import errors, sql

    exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (live,)).fetchone() is not None
    kept = _unused_name(admin, live, f"__pre_restore_{stamp}")
    terminated = 0
    for attempt in range(20):
        if exists:
            terminated += _terminate(admin, live)
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


def _unused_name(admin: psycopg.Connection[Any], live: str, suffix: str) -> str:
    """<live><suffix>, or with _2, _3 ... when a restore in the same second took that name."""
    serial = 1
    while True:
        name = derived_name(live, suffix if serial == 1 else f"{suffix}_{serial}")
        if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            return name
        serial += 1


def check_restored(ctx: RunContext, database: str, manifest: Manifest) -> tuple[int, int]:
    """Row counts and objects of the restored database against the manifest."""
    from dbops.backups import contents
    from dbops.postgres.connection import connect

    with connect(ctx.target().with_dbname(database), ctx.env) as conn:
        found = contents.read(conn)
    problems = contents.differences(manifest.tables, manifest.objects, found)
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise RestoreFailed(
            f"The restored database does not match the backup's manifest: {'; '.join(problems[:3])}{more}",
            "The live database was not touched; check the backup with dbops backup-list",
        )
    tables = contents.application(found.tables)
    return sum(t.rows for t in tables), len(tables)


# --------------------------------------------------------------------------- loading


def load(
    ctx: RunContext,
    path: Path,
    manifest: Manifest,
    database: str,
    server_major: int,
    *,
    jobs: int | None = None,
    progress: Advance | None = None,
) -> None:
    """The backup into an empty database, stopping at the first error."""
    target = ctx.target()
    if manifest.format == "plain" or server_major < 17 or _major(manifest.server_version) != server_major:
        # through ScriptFilter: SET transaction_timeout for servers before 17, and other servers'
        # column options, need taking out
        _run_script(ctx, path, manifest, database, server_major, progress=progress)
        return
    tools = pgtools.toolbox(ctx.config)
    args = [
        str(tools.pg_restore.path),
        f"--dbname={pgtools.conninfo(target, database)}",
        "--no-password",
        "--exit-on-error",
        "--verbose",
    ]
    if jobs and jobs > 1:
        args.append(f"--jobs={jobs}")
    _pg_restore([*args, str(path)], target, len(manifest.tables), progress)
    # The database's own settings, comment and grants (pg_restore applies them only with --create);
    # after the data, so that a setting such as default_transaction_read_only cannot get in its way.
    _run_script(ctx, path, manifest, database, server_major, head_only=True)


def _major(version: str) -> int:
    """'PostgreSQL 15.20' -> 15."""
    digits = version.split()[-1].split(".")[0]
    return int(digits) if digits.isdigit() else 0


def _major_of(conn: psycopg.Connection[Any]) -> int:
    return conn.info.server_version // 10000


def _pg_restore(args: list[str], target: Target, tables: int, progress: Advance | None) -> None:
    """pg_restore -d: its --verbose lines give the progress (one per table's data)."""
    with pgtools.child_env(target) as env:
        process = pgtools.spawn(
            args, env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        assert process.stderr is not None
        errors: list[str] = []
        done = 0
        try:
            for raw in process.stderr:
                line = raw.decode("utf-8", "replace").rstrip()
                if "processing data for table" in line:
                    done += 1
                    if progress is not None:
                        progress("Restoring tables", done, max(tables, done))
                elif "error" in line.lower() or line.startswith(("DETAIL", "Command was")):
                    errors.append(line)
            code = process.wait()
        except BaseException:
            pgtools.stop(process)
            raise
    if code != 0:
        detail = pgtools.error_text("\n".join(errors) or f"exit code {code}", target)
        raise RestoreFailed(f"pg_restore failed: {detail}", _LOAD_HINT)


_LOAD_HINT = "The live database was not touched; the scratch database was dropped"


def _run_script(
    ctx: RunContext,
    path: Path,
    manifest: Manifest,
    database: str,
    server_major: int,
    *,
    head_only: bool = False,
    clear_first: bool = False,
    progress: Advance | None = None,
) -> None:
    """The backup as an SQL script (the file itself, or pg_restore's rendering of it), adapted by
    ScriptFilter, into psql (stopping at the first error; one transaction when clearing first)."""
    from dbops.backups.script_filter import ScriptFilter

    target = ctx.target()
    tools = pgtools.toolbox(ctx.config)
    script_filter = ScriptFilter(database, server_major=server_major, head_only=head_only)
    psql = [
        str(tools.psql.path),
        "--no-psqlrc",
        "--quiet",
        "--no-password",
        "--set=ON_ERROR_STOP=1",
        f"--dbname={pgtools.conninfo(target, database)}",
    ]
    if clear_first:
        psql.append("--single-transaction")
    with (
        pgtools.child_env(target) as env,
        _source(tools, path, manifest, env, head_only) as (source, renderer, consumed),
    ):
        sink = pgtools.spawn(
            psql, env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        assert sink.stdin is not None
        pgtools.widen_pipe(sink.stdin.fileno())
        with pgtools.drained(sink) as stderr:
            with contextlib.suppress(BrokenPipeError):
                if clear_first:
                    sink.stdin.write(CLEAR_SQL.encode())
                for chunk in source:
                    out = script_filter.feed(chunk)
                    if out:
                        sink.stdin.write(out)
                    if head_only and not script_filter.in_head:
                        break
                    if progress is not None and consumed is not None:
                        progress("Restoring", consumed(), manifest.size)
                sink.stdin.write(script_filter.close())
                sink.stdin.close()
            code = sink.wait()
            # pg_restore's own verdict, before leaving _source stops it (unless psql failed first,
            # or only the head was wanted)
            render_error = renderer() if renderer is not None and code == 0 and not head_only else None
    if code != 0:
        detail = pgtools.error_text(stderr(), target) or f"psql exit code {code}"
        raise RestoreFailed(f"Restore failed: {detail}", _LOAD_HINT if not clear_first else _IN_PLACE_HINT)
    if render_error:
        raise RestoreFailed(f"pg_restore failed: {render_error}", _LOAD_HINT)


_IN_PLACE_HINT = "It ran in one transaction and was rolled back: the database is as it was"


@contextlib.contextmanager
def _source(
    tools: pgtools.Toolbox, path: Path, manifest: Manifest, env: dict[str, str], head_only: bool
) -> Iterator[tuple[Iterator[bytes], Callable[[], str | None] | None, Callable[[], int] | None]]:
    """The backup as SQL text in chunks; a function returning pg_restore's error (custom and
    directory), and one returning how many bytes of the file were read (plain)."""
    if manifest.format == "plain":
        read = 0

        def raw() -> Iterator[bytes]:
            nonlocal read
            with open(path, "rb", buffering=0) as handle:
                for chunk in iter(lambda: handle.read(CHUNK), b""):
                    read += len(chunk)
                    yield chunk

        chunks = backups.gunzip(raw()) if manifest.compression != "none" else raw()
        yield chunks, None, lambda: read
        return
    args = [str(tools.pg_restore.path), "--create", "--file=-", str(path)]
    if head_only:
        args.insert(2, "--schema-only")
    renderer = pgtools.spawn(
        args, env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert renderer.stdout is not None
    stdout = renderer.stdout
    with pgtools.drained(renderer) as stderr:

        def failure() -> str | None:
            code = renderer.wait()
            if code == 0:
                return None
            lines = stderr().decode("utf-8", "replace").strip().splitlines()
            return lines[-1] if lines else f"exit code {code}"

        try:
            yield iter(lambda: stdout.read(CHUNK), b""), failure, None
        finally:
            pgtools.stop(renderer)


# Everything of the application's, so the backup loads into an empty database: every schema but
# public (with what is in it), public's contents, extensions, large objects. Same transaction.
# What belongs to another object goes with it, and dropping it on its own fails ("cannot drop
# sequence ... because column ... requires it"): a sequence of an identity column (an internal
# dependency) or of a serial one (OWNED BY: auto), a range type's constructor functions
# (internal), an extension's members. Those are left out here, and dropped with their owner.
CLEAR_SQL = r"""
DO $dbops$
DECLARE r record;
BEGIN
  FOR r IN SELECT extname FROM pg_extension WHERE extname <> 'plpgsql' LOOP
    EXECUTE format('DROP EXTENSION IF EXISTS %I CASCADE', r.extname);
  END LOOP;
  FOR r IN SELECT nspname FROM pg_namespace
           WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'public')
             AND nspname !~ '^pg_(toast|temp_|toast_temp_)' LOOP
    EXECUTE format('DROP SCHEMA %I CASCADE', r.nspname);
  END LOOP;
  FOR r IN SELECT c.relname, c.relkind FROM pg_class c
           WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
             AND NOT c.relispartition
             AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                             AND d.objid = c.oid AND d.deptype IN ('i', 'a', 'e', 'x')) LOOP
    EXECUTE format('DROP %s IF EXISTS public.%I CASCADE',
      CASE r.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE'
                     WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END, r.relname);
  END LOOP;
  FOR r IN SELECT p.oid::regprocedure AS sig, p.prokind FROM pg_proc p
           WHERE p.pronamespace = 'public'::regnamespace
             AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                             AND d.objid = p.oid AND d.deptype IN ('i', 'e', 'x')) LOOP
    EXECUTE format('DROP %s IF EXISTS %s CASCADE',
      CASE r.prokind WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE' ELSE 'FUNCTION' END, r.sig);
  END LOOP;
  FOR r IN SELECT t.oid::regtype AS name, t.typtype FROM pg_type t
           WHERE t.typnamespace = 'public'::regnamespace AND t.typtype IN ('e', 'd', 'r', 'c')
             AND (t.typtype <> 'c' OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')
             AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_type'::regclass
                             AND d.objid = t.oid AND d.deptype IN ('i', 'e', 'x')) LOOP
    EXECUTE format('DROP %s IF EXISTS %s CASCADE',
      CASE r.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, r.name);
  END LOOP;
  PERFORM lo_unlink(oid) FROM pg_largeobject_metadata;
END
$dbops$;
"""
