"""Taking a backup: pg_dump in an exported snapshot, counted in that snapshot, verified, published.

1. A REPEATABLE READ transaction exports its snapshot; pg_dump runs with ``--snapshot``, so
   the row counts taken meanwhile on this transaction (on a thread, while pg_dump works) are
   exactly the rows in the dump.
2. pg_dump writes under a temporary name (plain format through this process, which hashes
   it on the way; custom and directory formats itself). Files are private (umask 077).
3. fsync, then the verification: re-read everything, check the sha256 (plain) and decode it
   completely (gunzip and the dump's trailer, or pg_restore reading every block).
4. The manifest and the backup are published (dbops.atomic: never over an existing name) and
   the folder is fsynced. On any failure the temporary files are removed: nothing appears
   under the final name.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from dbops import __version__, atomic
from dbops.backups import contents as contents_module
from dbops.backups import store as backups
from dbops.backups.contents import Contents
from dbops.backups.formats import Format
from dbops.backups.rowcount import RowCounter
from dbops.backups.store import CHUNK, Advance, Manifest
from dbops.errors import DbopsError
from dbops.postgres import tools as pgtools
from dbops.postgres.connection import PROTECTED_LOCK_TIMEOUT_MS, Target, server_version

if TYPE_CHECKING:
    import psycopg

    from dbops.config.model import Environment

Kind = Literal["manual", "automatic"]


@dataclass(frozen=True)
class DumpOptions:
    fmt: Format = "plain"
    compress: str = "gzip"
    jobs: int | None = None


@dataclass
class DumpTimings:
    dump_s: float = 0.0
    verify_s: float = 0.0


class DumpFailed(DbopsError):
    """pg_dump itself failed; nothing was written under the final name."""


def preflight(conn: psycopg.Connection[Any], tools: pgtools.Toolbox, options: DumpOptions) -> str:
    """What refuses a backup before anything is written or announced: this pg_dump against this
    server, and the compression asked for (its build may lack lz4 or zstd). Returns pg_dump's -Z."""
    pgtools.check_dump_version(tools.pg_dump, conn.info.server_version // 10000)
    method, level = pgtools.parse_compression(options.compress)
    if options.fmt == "plain":
        pgtools.plain_compression(options.compress, method)
        # pg_dump writes SQL text, and this process counts its rows and gzips it on other cores
        return pgtools.compress_argument(tools.pg_dump, "none", None)
    return pgtools.compress_argument(tools.pg_dump, method, level)


def take(
    conn: psycopg.Connection[Any],
    target: Target,
    env: Environment,
    tools: pgtools.Toolbox,
    final: Path,
    options: DumpOptions,
    *,
    shown: str,
    kind: Kind,
    reason: str | None,
    keep: bool,
    progress: Advance | None = None,
    check: Callable[[Path, Manifest], None] | None = None,
) -> tuple[Manifest, DumpTimings]:
    """Write a verified backup of `target`'s database (on `conn`, the caller's connection to it,
    left open) at `final` (shown in messages as `shown`) with its manifest; `check` runs on the
    temporary copy. When another backup took `final` meanwhile, the next free name in that
    second is used (the manifest's `file` says which)."""
    z = preflight(conn, tools, options)
    method, level = pgtools.parse_compression(options.compress)
    created = backups.utc_now_precise()
    backups.ensure_folder(final.parent)
    temp = atomic.temp_path(final)
    timings = DumpTimings()
    try:
        started = time.monotonic()
        contents, streamed = _dump(
            conn, target, env, tools.pg_dump, temp, options, z, (method, level), progress
        )
        atomic.fsync_tree(temp)
        timings.dump_s = time.monotonic() - started
        started = time.monotonic()
        size = backups.size_of(temp)
        verify_progress = _scaled(progress, "Verifying", size)
        try:
            digest, files = backups.read_through(
                temp, options.fmt, method, tools.pg_restore.path, shown, verify_progress
            )
        except backups.BackupInvalid as exc:
            raise DbopsError(
                f"Backup {shown} failed its verification: {exc.message.split(': ', 2)[-1]}",
                "Nothing was kept under that name; check the disk and pg_dump's version, then try again",
            ) from None
        if streamed is not None and digest != streamed:
            raise DbopsError(
                f"Backup {shown}: the file read back differs from what pg_dump wrote",
                "Check the disk (dmesg, df); the backup was discarded",
            )
        rows_total, tables_total = contents_module.counted(contents.tables)
        manifest = Manifest(
            file=final.name,
            database=target.dbname,
            environment=env.name,
            server_version=server_version(conn),
            pg_dump_version=tools.pg_dump.version_text,
            format=options.fmt,
            compression=method if level is None else f"{method}:{level}",
            created=backups.iso(created),
            kind=kind,
            reason=reason,
            keep=keep,
            size=size,
            sha256=digest,
            files=files,
            encoding=contents.encoding,
            tables=contents.tables,
            rows_exact=True,
            rows_total=rows_total,
            tables_total=tables_total,
            objects=contents.objects,
            last_migration=contents.last_migration,
            dbops_version=__version__,
        )
        if check is not None:
            check(temp, manifest)
        timings.verify_s = time.monotonic() - started
        try:
            backups.publish_unique(temp, final, manifest)  # manifest.file: the name it got
        except FileExistsError:
            raise DbopsError(
                f"Backup {shown}: no free name beside it, not overwriting any",
                "A thousand backups took this second's names: wait a second, then run the backup again",
            ) from None
    except BaseException:
        backups.remove(temp)
        raise
    return manifest, timings


def _scaled(progress: Advance | None, label: str, total: int) -> Callable[[int], None] | None:
    if progress is None:
        return None
    return lambda done: progress(label, done, total)


def _dump(
    conn: psycopg.Connection[Any],
    target: Target,
    environment: Environment,
    pg_dump: pgtools.Tool,
    temp: Path,
    options: DumpOptions,
    z: str,
    compression: tuple[str, int | None],
    progress: Advance | None,
) -> tuple[Contents, str | None]:
    """pg_dump and the row counts in one snapshot; returns the counts and, for plain, the sha256.

    Plain: the rows are counted in the script itself as it streams by. Custom and directory:
    count(*) of every table on this transaction, on a thread, while pg_dump works.
    """
    plain = options.fmt == "plain"
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        row = conn.execute("SELECT pg_export_snapshot()").fetchone()
        assert row is not None
        args = _arguments(environment, pg_dump, target, options, z, row[0], temp)
        counted: list[Contents] = []
        failed: list[BaseException] = []

        def count() -> None:
            try:
                # one backend, no parallel workers: it runs beside pg_dump, and should not crowd it
                conn.execute("SET LOCAL max_parallel_workers_per_gather = 0")
                counted.append(contents_module.read(conn, count_rows=not plain))
            except BaseException as exc:  # reported once pg_dump is done
                failed.append(exc)

        with pgtools.child_env(target) as env:
            process = pgtools.spawn(
                args,
                env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if plain else subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            counter = threading.Thread(target=count, name="dbops-count", daemon=True)
            counter.start()
            rows = RowCounter()
            try:
                with pgtools.drained(process) as stderr:  # stops pg_dump on any failure
                    if plain:
                        streamed: str | None = _stream(process, temp, compression, rows, progress)
                    else:
                        _watch(process, temp, progress)
                        streamed = None
                    code = process.wait()
            except BaseException:
                _stop_counting(conn, counter)  # Ctrl-C never waits on a count(*) of every table
                raise
            counter.join()
        if code != 0:
            detail = pgtools.error_text(stderr(), target)
            raise DumpFailed(
                f"pg_dump failed (exit {code}): {detail}",
                "Nothing was written; fix the cause above and run the backup again",
            )
        if failed:
            raise failed[0]
        found = counted[0]
        if plain:
            unseen = [t for t in found.tables if (t.schema, t.name) not in rows.rows]
            for table in found.tables:
                table.rows = rows.rows.get((table.schema, table.name), 0)
            if unseen:  # no COPY block recognised for them: count them in the same snapshot
                contents_module.count_rows_of(conn, unseen)
    return found, streamed


def _stop_counting(conn: psycopg.Connection[Any], counter: threading.Thread, limit_s: float = 30) -> None:
    """Cancel the counting thread's query until the thread is done (each cancel ends the query
    running then; the thread gives up at the first), for `limit_s` at most."""
    deadline = time.monotonic() + limit_s
    while counter.is_alive() and time.monotonic() < deadline:
        try:
            conn.cancel_safe(timeout=2)
        except Exception:  # the connection is going away anyway
            return
        counter.join(timeout=0.2)


def _arguments(
    env: Environment,
    pg_dump: pgtools.Tool,
    target: Target,
    options: DumpOptions,
    z: str,
    snapshot: str,
    temp: Path,
) -> list[str]:
    args = [
        str(pg_dump.path),
        f"--dbname={pgtools.conninfo(target)}",
        "--no-password",
        f"--format={options.fmt}",
        f"--compress={z}",
        f"--snapshot={snapshot}",
    ]
    lock = env.lock_timeout_ms
    if lock is None and env.protected:
        lock = PROTECTED_LOCK_TIMEOUT_MS
    if lock:
        args.append(f"--lock-wait-timeout={lock}ms")
    if options.fmt == "plain":
        args.append("--create")  # the database's own settings, comment and grants come along
    else:
        args.append(f"--file={temp}")
    if options.fmt == "directory" and options.jobs:
        args.append(f"--jobs={options.jobs}")
    return args


def _watch(process: subprocess.Popen[bytes], temp: Path, progress: Advance | None) -> None:
    """Custom and directory formats: pg_dump writes the file itself; show it growing."""
    while True:
        if progress is not None:
            progress("Dumping", _written(temp), None)
        try:
            process.wait(timeout=0.2)  # returns as soon as pg_dump ends
            return
        except subprocess.TimeoutExpired:
            continue


def _stream(
    process: subprocess.Popen[bytes],
    temp: Path,
    compression: tuple[str, int | None],
    rows: RowCounter,
    progress: Advance | None,
) -> str:
    """Plain format: a thread reads pg_dump's output and counts its rows; blocks of it are gzipped
    on every core (one gzip member each, as pigz does; gunzip reads them as one stream), and this
    thread writes them in order, hashing them."""
    import queue
    from concurrent.futures import Future, ThreadPoolExecutor

    assert process.stdout is not None
    method, level = compression
    blocks: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=8)
    stop = threading.Event()
    source = process.stdout.fileno()
    pgtools.widen_pipe(source)

    def read() -> None:
        try:
            block: list[bytes] = []
            size = 0
            for chunk in iter(lambda: os.read(source, CHUNK), b""):
                rows.feed(chunk)
                block.append(chunk)
                size += len(chunk)
                if size >= BLOCK:
                    _put(blocks, b"".join(block), stop)
                    block, size = [], 0
            if block:
                _put(blocks, b"".join(block), stop)
            _put(blocks, None, stop)
        except BaseException as exc:
            _put(blocks, exc, stop)

    reader = threading.Thread(target=read, name="dbops-read", daemon=True)
    reader.start()
    digest = hashlib.sha256()
    written = 0
    workers = max(1, os.cpu_count() or 1)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with ThreadPoolExecutor(workers, thread_name_prefix="dbops-gzip") as pool:
            pending: list[Future[bytes]] = []
            while True:
                item = blocks.get()
                if isinstance(item, BaseException):
                    raise item
                if item is not None:
                    pending.append(
                        pool.submit(_gzip_member, item, level) if method == "gzip" else _done(item)
                    )
                while pending and (item is None or len(pending) > workers or pending[0].done()):
                    written += _write(fd, pending.pop(0).result(), digest)
                    if progress is not None:
                        progress("Dumping", written, None)
                if item is None:
                    break
    except BaseException:
        stop.set()
        pgtools.stop(process)  # the reader then sees the end of its pipe
        raise
    finally:
        os.close(fd)
        reader.join(timeout=30)
    return digest.hexdigest()


BLOCK = 4 << 20  # bytes of SQL per gzip member


def _gzip_member(data: bytes, level: int | None) -> bytes:
    """One gzip member. The default level: ISA-L's level 3 (isal), within a fraction of a percent
    of zlib 6's size at about a sixth of its CPU; an explicit gzip:LEVEL is zlib's own."""
    if level is None:
        from isal import isal_zlib  # lazy: only a plain gzip backup needs it

        fast = isal_zlib.compressobj(3, isal_zlib.DEFLATED, 31)
        return bytes(fast.compress(data) + fast.flush())
    import zlib

    deflate = zlib.compressobj(level, zlib.DEFLATED, 31)
    return deflate.compress(data) + deflate.flush()


def _done(data: bytes) -> Any:
    from concurrent.futures import Future

    future: Future[bytes] = Future()
    future.set_result(data)
    return future


def _put(blocks: Any, item: Any, stop: threading.Event) -> None:
    """Queue an item unless the writer has given up (then the reader just ends)."""
    import queue

    while not stop.is_set():
        try:
            blocks.put(item, timeout=0.2)
            return
        except queue.Full:
            continue


def _write(fd: int, data: bytes, digest: Any) -> int:
    digest.update(data)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    return len(data)


def _written(path: Path) -> int:
    try:
        return backups.size_of(path)
    except OSError:
        return 0
