"""Writing files atomically: nothing is ever visible under a final name before it is complete.

Every writer works the same way: a hidden temporary name in the same folder
(``.<name>.tmp-<host>-<pid>``, so a sweeper can tell a dead writer's leftovers by the pid, and
leave alone what a writer on another host (a shared folder) is writing), fsync, then
the final name is given with link(2) for a file and rename-noreplace for a folder, and the
folder is fsynced. An existing file or folder is never overwritten: publishing raises
FileExistsError and the caller decides what that means. Only a cache (the task index), which
any process may rebuild at any time, replaces what is there, through ``write_replacing``.

Any layer may import this module (it imports nothing of dbops); it stays cheap to import,
as the task listing uses it.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path


def temp_path(final: Path) -> Path:
    """The temporary name beside `final` that this process writes before publishing."""
    return final.with_name(f".{final.name}.tmp-{host()}-{os.getpid()}")


def host() -> str:
    """This host's name as temporary names carry it (letters, digits, '.', '-', '_' only)."""
    return "".join(c if c.isascii() and (c.isalnum() or c in ".-_") else "_" for c in os.uname().nodename)


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(path: Path) -> None:
    """A file, or a folder with every file in it, then the folder itself."""
    if path.is_dir():
        for child in path.iterdir():
            fsync_path(child)
    fsync_path(path)


def publish(temp: Path, final: Path) -> None:
    """Give a complete, fsynced temporary file or folder its final name, then fsync the folder.

    Never overwrites: FileExistsError when `final` exists, and `temp` is left for the caller to
    remove.
    """
    if temp.is_dir() and not temp.is_symlink():
        _rename_noreplace(temp, final)
    else:
        os.link(temp, final)
        os.unlink(temp)
    fsync_path(final.parent)


def write_new(path: Path, data: str | bytes, *, mode: int = 0o644) -> None:
    """Write a new file atomically; FileExistsError (and nothing written) when it exists."""
    temp = _write_temp(path, data, mode)
    try:
        publish(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def write_replacing(path: Path, data: str | bytes, *, mode: int = 0o644) -> None:
    """For caches only: write atomically, replacing whatever `path` holds."""
    temp = _write_temp(path, data, mode)
    try:
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_path(path.parent)


def _write_temp(final: Path, data: str | bytes, mode: int) -> Path:
    temp = temp_path(final)
    temp.unlink(missing_ok=True)  # this process's own, or a dead writer's of the same pid
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)  # exactly `mode`, whatever the umask
            handle.write(data.encode("utf-8") if isinstance(data, str) else data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return temp


_AT_FDCWD = -100
_RENAME_NOREPLACE = 1


def _rename_noreplace(source: Path, target: Path) -> None:
    """rename(2) that fails with FileExistsError instead of replacing an (empty) folder: Linux's
    renameat2(RENAME_NOREPLACE); where that is missing, mkdir(2) reserves the name (it is
    exclusive) and the rename then replaces only that empty folder of ours."""
    import ctypes  # only folders (directory-format backups) need it: keep the listing path cheap

    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is not None:
        done = renameat2(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target), _RENAME_NOREPLACE)
        if done == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.ENOSYS, errno.EINVAL):  # else the file system cannot: reserve instead
            raise OSError(code, os.strerror(code), str(source), None, str(target))
    os.mkdir(target, 0o700)
    try:
        os.rename(source, target)
    except BaseException:
        os.rmdir(target)
        raise
