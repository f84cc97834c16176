"""Restoring a backup without risking the live database.

``restore_file(target, env, config, path)``: check the file against its manifest (its size and,
for an archive, its table of contents), restore it into a scratch database
``<db>__restore_<ts>`` (stopping at the first error) while its sha256 and a full read are checked
in the same pass (dbops.backups.filecheck), check the scratch database (row counts and objects
against the manifest), then swap: terminate the sessions on the live database, and in one
transaction rename live to ``<db>__pre_restore_<ts>`` (kept, so nothing is lost) and scratch to
live. Before the swap the live database is never touched; on any failure (the file's included)
the scratch database is dropped.

A restore holds an advisory lock (on a maintenance connection) for its database: two restores
never overlap, and a scratch database found while holding it is a leftover of a killed run
(dropped). ``--in-place`` restores into the existing database in one transaction instead, for
users without CREATEDB. The lock lives in dbops.postgres.locks, the statements that create,
drop and swap databases in dbops.postgres.databases; loading and checking the backup here.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbops.backups import contents
from dbops.backups import store as backups
from dbops.backups.filecheck import FileCheck
from dbops.backups.script_filter import ScriptFilter, ScriptRefused
from dbops.backups.store import CHUNK, Advance, Manifest
from dbops.errors import DbopsError, RestoreFailed
from dbops.postgres import tools as pgtools
from dbops.postgres.connection import Target, connect
from dbops.postgres.databases import (
    create_scratch,
    drop_database,
    drop_leftovers,
    swap,
    unused_name,
    wait_until_unused,
)
from dbops.postgres.locks import RestoreLock, locked_maintenance, restore_lock_on
from dbops.schema import drop

if TYPE_CHECKING:
    import psycopg

    from dbops.config.model import Config, Environment


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


def restore_file(target: Target, env: Environment, config: Config, path: Path) -> RestoreResult:
    """Restore `target`'s database from `path` (checked as it loads), non-interactively, without a
    safety backup: for other steps' undo actions. The caller closes its own sessions on that
    database first (they would block the swap). The database it replaces is kept (renamed,
    RestoreResult.kept_as), as in every restore: the caller says so."""
    manifest = check_file(path, config)
    return replace_database(target, env, pgtools.toolbox(config), path, manifest, shown=config.shown(path))


def check_file(
    path: Path, config: Config, progress: Advance | None = None, *, full: bool = False
) -> Manifest:
    """The manifest, and the file against it: its size and an archive's table of contents
    (exit 2 if not); the sha256 and the full read come with the load (dbops.backups.filecheck),
    or here too with `full`. With the pg_restore that config names."""
    shown = config.shown(path)
    manifest = backups.read_manifest(path, shown)
    tools = pgtools.toolbox(config)
    if full:
        advance = (lambda done: progress("Checking backup", done, manifest.size)) if progress else None
        backups.verify(path, manifest, tools.pg_restore.path, shown, advance)
    else:
        backups.precheck(path, manifest, tools.pg_restore.path, shown)
    return manifest


def replace_database(
    target: Target,
    env: Environment,
    tools: pgtools.Toolbox,
    path: Path,
    manifest: Manifest,
    *,
    jobs: int | None = None,
    progress: Advance | None = None,
    lock: RestoreLock | None = None,
    shown: str | None = None,
) -> RestoreResult:
    """Scratch database, its check, the swap (the README's steps 5 to 7); on the connection of
    `lock` (taken by the restore-lock step, before the safety backup), or on one that takes the
    lock now. The caller's own sessions on `target` must be closed: they would block the rename."""
    stamp = backups.utc_now().strftime("%Y%m%d_%H%M%S")
    with contextlib.ExitStack() as stack:
        if lock is not None and lock.maintenance and not lock.conn.closed:
            admin = lock.conn
        else:
            admin = stack.enter_context(locked_maintenance(target, env))
        result = load_scratch(
            target, env, tools, path, manifest, admin, stamp, jobs=jobs, progress=progress, shown=shown
        )
        swap_in(admin, result, stamp)
    return result


def load_scratch(
    target: Target,
    env: Environment,
    tools: pgtools.Toolbox,
    path: Path,
    manifest: Manifest,
    admin: psycopg.Connection[Any],
    stamp: str,
    *,
    jobs: int | None = None,
    progress: Advance | None = None,
    stop: threading.Event | None = None,
    shown: str | None = None,
) -> RestoreResult:
    """A scratch database beside `target`'s, the backup loaded into it and checked, the file's
    sha256 and full read too (the live database untouched); on any failure it is dropped.
    `admin` holds the restore lock; `stop` set ends the load (LoadStopped)."""
    live = target.dbname
    result = RestoreResult(live)
    drop_leftovers(admin, live)
    result.scratch = unused_name(admin, live, f"__restore_{stamp}")
    create_scratch(admin, result.scratch, live, manifest.encoding)
    try:
        started = time.monotonic()
        loaded = load(
            target,
            tools,
            path,
            manifest,
            result.scratch,
            _major_of(admin),
            jobs=jobs,
            progress=progress,
            stop=stop,
            shown=shown,
        )
        result.load_s = time.monotonic() - started
        started = time.monotonic()
        result.rows, result.tables = check_restored(target, env, result.scratch, manifest, loaded, new=True)
        result.verify_s = time.monotonic() - started
    except BaseException:
        with contextlib.suppress(Exception):
            drop_database(admin, result.scratch)
        raise
    return result


def swap_in(admin: psycopg.Connection[Any], result: RestoreResult, stamp: str) -> None:
    """The loaded and checked scratch database becomes the live one (the live one kept, renamed);
    on failure the scratch database is dropped."""
    assert result.scratch is not None
    started = time.monotonic()
    try:
        result.kept_as, result.terminated = swap(admin, result.database, result.scratch, stamp)
    except BaseException:
        with contextlib.suppress(Exception):
            drop_database(admin, result.scratch)
        raise
    result.swap_s = time.monotonic() - started


class LoadStopped(DbopsError):
    """A load in the background was told to stop (the run failed or was interrupted meanwhile)."""


class BackgroundLoad:
    """The scratch database loaded and checked by a thread of its own, while the run takes the
    safety backup of the live database (two databases; both need only the server). The swap
    comes after both, and only when both succeeded. The restore lock's maintenance connection
    is this thread's until finish() or abandon() returns."""

    def __init__(
        self,
        target: Target,
        env: Environment,
        tools: pgtools.Toolbox,
        path: Path,
        manifest: Manifest,
        admin: psycopg.Connection[Any],
        *,
        jobs: int | None = None,
        shown: str | None = None,
    ) -> None:
        self.admin = admin
        self.stamp = backups.utc_now().strftime("%Y%m%d_%H%M%S")
        self.stop = threading.Event()
        self.result: RestoreResult | None = None
        self.error: BaseException | None = None

        def work() -> None:
            try:
                self.result = load_scratch(
                    target,
                    env,
                    tools,
                    path,
                    manifest,
                    admin,
                    self.stamp,
                    jobs=jobs,
                    stop=self.stop,
                    shown=shown,
                )
            except BaseException as exc:  # raised by finish(), in the step that waits for it
                self.error = exc

        self.thread = threading.Thread(target=work, name="dbops-restore-load", daemon=True)
        self.thread.start()

    def finish(self) -> RestoreResult:
        """Wait for the load and its check; their failure is raised here (scratch dropped)."""
        self.thread.join()
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result

    def swap(self) -> RestoreResult:
        """finish(), then the scratch database becomes the live one (after the safety backup)."""
        result = self.finish()
        self.result = None  # swapped in, or dropped by swap_in: nothing left to abandon
        swap_in(self.admin, result, self.stamp)
        return result

    def abandon(self) -> None:
        """Stop the load (if it still runs) and drop the scratch database it left; idempotent."""
        self.stop.set()
        self.thread.join()
        if self.result is not None and self.result.scratch:
            with contextlib.suppress(Exception):
                drop_database(self.admin, self.result.scratch)
        self.result = None


def trial_restore(
    target: Target, env: Environment, tools: pgtools.Toolbox, path: Path, manifest: Manifest
) -> None:
    """--verify=restore: restore into a scratch database beside `target`'s, compare the row
    counts, drop it."""
    live = target.dbname
    with locked_maintenance(target, env) as admin:
        scratch = unused_name(admin, live, f"__verify_{backups.utc_now().strftime('%Y%m%d_%H%M%S')}")
        create_scratch(admin, scratch, live, manifest.encoding)
        try:
            loaded = load(target, tools, path, manifest, scratch, _major_of(admin))
            check_restored(target, env, scratch, manifest, loaded, new=True)
        finally:
            drop_database(admin, scratch)


def restore_in_place(
    conn: psycopg.Connection[Any],
    target: Target,
    env: Environment,
    tools: pgtools.Toolbox,
    path: Path,
    manifest: Manifest,
    progress: Advance | None = None,
    lock: RestoreLock | None = None,
    shown: str | None = None,
) -> RestoreResult:
    """Empty the live database and load the backup, all in one transaction (no CREATEDB needed);
    a file that fails its check as it loads rolls it back (psql never gets the end of its input).
    `conn` is the caller's connection to `target` (the restore lock is taken on it unless `lock`
    holds it on a connection of its own); it stays open."""
    live = target.dbname
    result = RestoreResult(live, in_place=True)
    if lock is None or not lock.maintenance or lock.conn.closed:
        restore_lock_on(conn, live)  # again if the lock step took it on this session: it counts twice
    started = time.monotonic()
    with _checked(path, manifest, tools, shown) as check:
        loaded = _run_script(
            target,
            tools,
            path,
            manifest,
            live,
            _major_of(conn),
            clear_first=True,
            progress=progress,
            check=check,
        )
    result.load_s = time.monotonic() - started
    started = time.monotonic()
    result.rows, result.tables = check_restored(target, env, live, manifest, loaded)
    result.verify_s = time.monotonic() - started
    return result


def check_restored(
    target: Target,
    env: Environment,
    database: str,
    manifest: Manifest,
    loaded: dict[tuple[str, str], int] | None = None,
    *,
    new: bool = False,
) -> tuple[int, int]:
    """Row counts and objects of the restored database (on `target`'s server) against the manifest.
    The rows are those `loaded` (each table's COPY block, counted as psql was given it: psql
    stops at the first error, so each loaded whole), else, in a `new` database this restore made
    (nobody else's sessions in it), those the server's statistics say pg_restore inserted; counted
    in the database (count(*)) when there are none or they differ."""
    with connect(target.with_dbname(database), env) as conn:
        if loaded is None and new:
            wait_until_unused(conn, database)  # pg_restore's sessions write their counters as they end
            loaded = contents.inserted_by_load(conn)
        if loaded is None:
            found = contents.read(conn)
        else:
            found = contents.read(conn, count_rows=False)
            for table in found.tables:
                table.rows = loaded.get((table.schema, table.name), 0)
        problems = contents.differences(manifest.tables, manifest.objects, found)
        if problems and loaded is not None:
            contents.count_rows_of(conn, found.tables)
            problems = contents.differences(manifest.tables, manifest.objects, found)
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise RestoreFailed(
            f"The restored database does not match the backup's manifest: {'; '.join(problems[:3])}{more}",
            "The live database was not touched; restore another backup (dbops backup-list lists them)",
        )
    tables = contents.application(found.tables)
    return sum(t.rows for t in tables), len(tables)


# --------------------------------------------------------------------------- loading


# A load into a new database commits each statement without waiting for the disk (a few
# milliseconds each, thousands of them for a big schema). Nothing is lost by it: the database
# is used only once the swap (or the check of a trial) has committed, and that commit's flush
# writes out every earlier commit with it. An in-place restore is one transaction anyway.
NEW_DATABASE = "-c synchronous_commit=off"


def load(
    target: Target,
    tools: pgtools.Toolbox,
    path: Path,
    manifest: Manifest,
    database: str,
    server_major: int,
    *,
    jobs: int | None = None,
    progress: Advance | None = None,
    stop: threading.Event | None = None,
    shown: str | None = None,
) -> dict[tuple[str, str], int] | None:
    """The backup into an empty database on `target`'s server, stopping at the first error
    (and when `stop` is set: LoadStopped); the file's sha256 and full read checked in the same
    pass (BackupInvalid, `shown` naming the file, before the load is complete). Returns the rows
    psql loaded into each table, when the script went through this process (else None)."""
    with _checked(path, manifest, tools, shown) as check:
        if manifest.format == "plain" or server_major < 17 or _major(manifest.server_version) != server_major:
            # through ScriptFilter: SET transaction_timeout for servers before 17, and other
            # servers' column options, need taking out
            return _run_script(
                target,
                tools,
                path,
                manifest,
                database,
                server_major,
                progress=progress,
                stop=stop,
                check=check,
            )
        _restore_archive(target, tools, path, manifest, database, server_major, jobs, progress, stop, check)
        return None


@contextlib.contextmanager
def _checked(
    path: Path, manifest: Manifest, tools: pgtools.Toolbox, shown: str | None
) -> Iterator[FileCheck]:
    """The file check of one load; when the load fails, whether the file was the cause first."""
    with FileCheck(path, manifest, shown or str(path), tools.pg_restore.path) as check:
        try:
            yield check
        except (RestoreFailed, UnsafeBackup):
            check.settle()  # BackupInvalid instead, when the file is bad
            raise


def _restore_archive(
    target: Target,
    tools: pgtools.Toolbox,
    path: Path,
    manifest: Manifest,
    database: str,
    server_major: int,
    jobs: int | None,
    progress: Advance | None,
    stop: threading.Event | None,
    check: FileCheck,
) -> None:
    """pg_restore -d (the archive's own server major), its file hashed beside it."""
    args = [
        str(tools.pg_restore.path),
        f"--dbname={pgtools.conninfo(target.with_settings(NEW_DATABASE), database)}",
        "--no-password",
        "--exit-on-error",
        "--verbose",
    ]
    if jobs and jobs > 1:
        args.append(f"--jobs={jobs}")
    _pg_restore([*args, str(path)], target, len(manifest.tables), progress, stop)
    check.confirm()
    # The database's own settings, comment and grants (pg_restore applies them only with --create);
    # after the data, so that a setting such as default_transaction_read_only cannot get in its way.
    _run_script(target, tools, path, manifest, database, server_major, head_only=True, stop=stop)


def _major(version: str) -> int:
    """'PostgreSQL 15.20' -> 15."""
    digits = version.split()[-1].split(".")[0]
    return int(digits) if digits.isdigit() else 0


def _major_of(conn: psycopg.Connection[Any]) -> int:
    return conn.info.server_version // 10000


def _pg_restore(
    args: list[str],
    target: Target,
    tables: int,
    progress: Advance | None,
    stop: threading.Event | None = None,
) -> None:
    """pg_restore -d: its --verbose lines give the progress (one per table's data)."""
    with pgtools.child_env(target) as env:
        process = pgtools.spawn(
            args, env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        assert process.stderr is not None
        errors: list[str] = []  # the error, then its own DETAIL, HINT and statement
        entry = ""  # the archive entry the error is in
        done = 0
        try:
            for raw in process.stderr:
                if stop is not None and stop.is_set():
                    raise LoadStopped("The restore's load was stopped", _LOAD_HINT)
                line = raw.decode("utf-8", "replace").rstrip()
                if "processing data for table" in line:
                    done += 1
                    if progress is not None:
                        progress("Restoring tables", done, max(tables, done))
                elif line.startswith("pg_restore: from TOC entry ") and not errors:
                    entry = line.removeprefix("pg_restore: from ")
                elif line.startswith("pg_restore: error: ") and not errors:
                    errors.append(" ".join(line.removeprefix("pg_restore: error: ").split()))
                elif errors and line.startswith(("DETAIL:", "HINT:", "Command was:")):
                    errors.append(" ".join(line.split()))
            code = process.wait()
        except BaseException:
            pgtools.stop(process)
            raise
    if code != 0:
        detail = target.scrub(" ".join(errors)) or f"exit code {code}"
        raise RestoreFailed(f"pg_restore failed: {f'{entry}: ' if entry else ''}{detail}", _LOAD_HINT)


_LOAD_HINT = "The live database was not touched; the scratch database was dropped"


def _run_script(
    target: Target,
    tools: pgtools.Toolbox,
    path: Path,
    manifest: Manifest,
    database: str,
    server_major: int,
    *,
    head_only: bool = False,
    clear_first: bool = False,
    progress: Advance | None = None,
    stop: threading.Event | None = None,
    check: FileCheck | None = None,
) -> dict[tuple[str, str], int]:
    """The backup as an SQL script (the file itself, or pg_restore's rendering of it), adapted by
    ScriptFilter, into psql (stopping at the first error; one transaction when clearing first);
    returns the rows of each table's COPY block it loaded."""
    script_filter = _LineMap(database, server_major=server_major, head_only=head_only)
    into = target if clear_first else target.with_settings(NEW_DATABASE)  # in place: one transaction
    psql = [
        str(tools.psql.path),
        "--no-psqlrc",
        "--quiet",
        "--no-password",
        "--set=ON_ERROR_STOP=1",
        "--echo-errors",  # the failing statement's text, after its error
        "--file=-",  # the script on stdin, each message prefixed psql:<stdin>:LINE:
        f"--dbname={pgtools.conninfo(into, database)}",
    ]
    if clear_first:
        psql.append("--single-transaction")
    try:
        code, stderr, render_error = _pipe(
            psql, target, tools, path, manifest, script_filter, head_only, clear_first, progress, stop, check
        )
    except ScriptRefused as exc:  # psql was stopped before it got that line
        raise UnsafeBackup(exc, in_place=clear_first) from None
    if code != 0:
        prelude = _prelude(tools, clear_first).count(b"\n")
        failed = _failed_statement(stderr, script_filter, prelude, plain=manifest.format == "plain")
        detail = target.scrub(failed) if failed else pgtools.error_text(stderr, target)
        raise RestoreFailed(
            f"Restore failed: {detail or f'psql exit code {code}'}",
            _LOAD_HINT if not clear_first else _IN_PLACE_HINT,
        )
    if render_error:
        raise RestoreFailed(f"pg_restore failed: {render_error}", _LOAD_HINT)
    return script_filter.rows


class UnsafeBackup(DbopsError):
    """A backup whose script holds what pg_dump never writes (a psql command, a foreign COPY)."""

    exit_code = 2

    def __init__(self, refused: ScriptRefused, *, in_place: bool) -> None:
        super().__init__(
            f"Refused to restore this backup: line {refused.line} of its SQL script holds "
            f"{refused.reason}, which pg_dump never writes",
            "A backup may hold only the SQL and COPY data pg_dump writes; nothing from that line on "
            "ran, and "
            + (
                "the one transaction was rolled back: the database is as it was"
                if in_place
                else "the live database was not touched (the scratch database was dropped)"
            ),
        )


def _has_restrict(psql: pgtools.Tool) -> bool:
    """psql's \\restrict (which refuses every backslash command until \\unrestrict with the same
    key): psql 18, 17.6, 16.10, 15.14, 14.19, 13.22 and later."""
    major, minor = psql.version
    first = {17: 6, 16: 10, 15: 14, 14: 19, 13: 22}
    return major >= 18 or (major in first and minor >= first[major])


def _pipe(
    psql: list[str],
    target: Target,
    tools: pgtools.Toolbox,
    path: Path,
    manifest: Manifest,
    script_filter: ScriptFilter,
    head_only: bool,
    clear_first: bool,
    progress: Advance | None,
    stop: threading.Event | None = None,
    check: FileCheck | None = None,
) -> tuple[int, bytes, str | None]:
    """The script, filtered, into psql: psql's exit code and stderr, and pg_restore's error.
    With `check`, psql's input is closed (which commits --single-transaction) only once the
    file checked out."""
    with (
        pgtools.child_env(target) as env,
        _source(tools, path, manifest, env, head_only, check) as (source, renderer, consumed),
    ):
        sink = pgtools.spawn(
            psql, env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        assert sink.stdin is not None
        pgtools.widen_pipe(sink.stdin.fileno())
        with pgtools.drained(sink, keep=1 << 20) as stderr:  # --echo-errors: the statement too
            with contextlib.suppress(BrokenPipeError):
                sink.stdin.write(_prelude(tools, clear_first))
                for chunk in source:
                    if stop is not None and stop.is_set():
                        pgtools.stop(sink)
                        raise LoadStopped("The restore's load was stopped", _LOAD_HINT)
                    sink.stdin.writelines(script_filter.parts(chunk))
                    if head_only and not script_filter.in_head:
                        break
                    if progress is not None and consumed is not None:
                        progress("Restoring", consumed(), manifest.size)
                sink.stdin.write(script_filter.close())
                if check is not None:
                    check.confirm()  # BackupInvalid: psql is stopped without the end of its input
                sink.stdin.close()
            code = sink.wait()
            # pg_restore's own verdict, before leaving _source stops it (unless psql failed first,
            # or only the head was wanted)
            render_error = renderer() if renderer is not None and code == 0 and not head_only else None
    return code, stderr(), render_error


_IN_PLACE_HINT = "It ran in one transaction and was rolled back: the database is as it was"


def _prelude(tools: pgtools.Toolbox, clear_first: bool) -> bytes:
    """What psql reads before the script: a \\restrict of the restore's own (psql itself then
    refuses any backslash command), and the emptying of the database for --in-place."""
    restrict = b"\\restrict " + secrets.token_hex(24).encode() + b"\n" if _has_restrict(tools.psql) else b""
    return restrict + (CLEAR_SQL.encode() if clear_first else b"")


# --------------------------------------------------------------------------- naming the failure


class _LineMap(ScriptFilter):
    """The filter, remembering the script's lines it left out and where each COPY began: psql
    numbers the lines it was given, the user wants those of the backup's script."""

    def __init__(self, target_db: str, *, server_major: int, head_only: bool = False) -> None:
        super().__init__(target_db, server_major=server_major, head_only=head_only)
        self.dropped: list[int] = []  # lines of the script psql did not get, ascending
        self.copies: list[int] = []  # the lines of the script's COPY ... FROM stdin statements

    def _line(self, line: bytes) -> bytes:
        out = super()._line(line)
        if not out:
            self.dropped.append(self.lines)
        elif self.in_copy:
            self.copies.append(self.lines)
        return out

    def script_line(self, given: int) -> int:
        """The line of the script that psql's line `given` (of what it got, after the prelude) is."""
        line = given
        for dropped in self.dropped:
            if dropped > line:
                break
            line += 1
        return line


_PSQL_MESSAGE = re.compile(r"^psql:<stdin>:(\d+): ([A-Z]+):  (.*)$")
_COPY_ROW = re.compile(r"^COPY .*, line (\d+)")


def _failed_statement(stderr: bytes, script: _LineMap, prelude: int, *, plain: bool) -> str | None:
    """psql's error as the user needs it: the failing statement's line in the backup's script, its
    first line, PostgreSQL's message with the error's own DETAIL and HINT (not an earlier notice's);
    None when psql gave no such error (it could not connect, it was killed)."""
    messages = _psql_messages(stderr)
    errors = [i for i, m in enumerate(messages) if m[1] in ("ERROR", "FATAL", "PANIC")]
    if not errors:
        return None
    at = errors[-1]
    given, _, message, more = messages[at]
    own = ("DETAIL", "HINT", "CONTEXT")  # the lines of this message (a DETAIL's later lines are left out)
    fields = {key: value.strip() for key, _, value in (x.partition(":") for x in more) if key in own}
    statement = messages[at + 1] if at + 1 < len(messages) and messages[at + 1][1] == "STATEMENT" else None
    text = [statement[2], *statement[3]] if statement else []
    if given <= prelude:
        where = "while emptying the database"
    else:
        end = script.script_line(given - prelude)  # psql names the line a statement ends on
        row = _COPY_ROW.match(fields.get("CONTEXT", ""))
        copies = [c for c in script.copies if c < end]
        if row and copies:  # psql names the line of \. : the row is the server's CONTEXT
            line, first = copies[-1] + int(row.group(1)), f"row {row.group(1)} of {_first_line(text)}"
        else:
            line, first = end - max(len(text) - 1, 0), _first_line(text)
        source = "the backup" if plain else "the backup's SQL script (as pg_restore writes it)"
        where = f"line {line} of {source}" + (f", {first}" if first else "")
    own_words = "".join(f" {key}: {fields[key]}" for key in ("DETAIL", "HINT") if fields.get(key))
    return f"{where}: {message}{own_words}"


def _psql_messages(stderr: bytes) -> list[tuple[int, str, str, list[str]]]:
    """psql's messages (line, level, text, the lines after it): 'psql:<stdin>:9: ERROR:  ...'
    with its DETAIL, HINT, CONTEXT and LINE lines, 'psql:<stdin>:9: STATEMENT:  ...' with the
    statement's other lines."""
    messages: list[tuple[int, str, str, list[str]]] = []
    for said in stderr.decode("utf-8", "replace").splitlines():
        head = _PSQL_MESSAGE.match(said)
        if head is not None:
            messages.append((int(head.group(1)), head.group(2), head.group(3), []))
        elif messages:
            messages[-1][3].append(said)
    return messages


def _first_line(statement: list[str]) -> str:
    first = statement[0].strip() if statement else ""
    return first if len(first) <= 80 else first[:77] + "..."


@contextlib.contextmanager
def _source(
    tools: pgtools.Toolbox,
    path: Path,
    manifest: Manifest,
    env: dict[str, str],
    head_only: bool,
    check: FileCheck | None = None,
) -> Iterator[tuple[Iterator[bytes], Callable[[], str | None] | None, Callable[[], int] | None]]:
    """The backup as SQL text in chunks; a function returning pg_restore's error (custom and
    directory), and one returning how many bytes of the file were read (plain)."""
    if manifest.format == "plain":
        read = 0

        def seen(done: int) -> None:
            nonlocal read
            read = done

        check = check or FileCheck(path, manifest, str(path), tools.pg_restore.path)
        # read, hashed and inflated by a thread of its own, while this one filters and writes to psql
        chunks = backups.read_ahead(check.plain_text(seen))
        with contextlib.closing(chunks):
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


# Everything of the application's, so the backup loads into an empty database: the one
# drop-everything program (dbops.schema.drop, as reset runs it), extensions included. Same
# transaction.
CLEAR_SQL = drop.program(keep_extensions=False)
