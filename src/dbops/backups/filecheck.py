"""A backup file checked in the same pass as its restore's load.

Before the load a restore checks only what costs nothing (store.precheck: the manifest, the
file's size, an archive's table of contents). The full read and the sha256 come with the load:

- plain: the reader that feeds psql hashes each chunk of the file as it reads it and inflates
  it (store.plain_text); a corrupt gzip stream fails where it is found, a wrong sha256 or a
  missing "dump complete" trailer after the last chunk;
- custom and directory: a thread of its own hashes the file (from the page cache, as
  pg_restore reads it), and confirm() compares once the load has read it all.

A failure raises BackupInvalid before psql's input is closed: an in-place restore's one
transaction rolls back, a scratch database is dropped, and nothing is swapped in. When the
load fails first (psql or pg_restore stopped at an error the file may have caused), settle()
reads the file in full before that error is named: a damaged file is named as such (exit 2).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from dbops.backups import store
from dbops.backups.store import BackupInvalid, Manifest


class FileCheck:
    """The sha256 and full read of `path` (as its manifest describes it) during one load."""

    def __init__(self, path: Path, manifest: Manifest, shown: str, pg_restore: Path) -> None:
        self.path = path
        self.manifest = manifest
        self.shown = shown
        self.pg_restore = pg_restore
        self.passed = False  # the whole file read, its sha256 the manifest's
        self._digest: str | None = None  # an archive's, from the thread
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- plain

    def plain_text(self, progress: store.Progress | None = None) -> Iterator[bytes]:
        """The plain backup's SQL text, hashed and inflated as it is read; BackupInvalid where
        the file turns out bad (after the last chunk for a wrong sha256 or a missing trailer)."""
        digest = hashlib.sha256()
        gzipped = self.manifest.compression.partition(":")[0] != "none"
        yield from store.plain_text(self.path, gzipped, self.shown, digest, progress)
        if digest.hexdigest() != self.manifest.sha256:
            raise store.mismatch(self.shown)
        self.passed = True

    # ---------------------------------------------------------------- archives

    def __enter__(self) -> FileCheck:
        """An archive (custom, directory) starts being hashed, beside the load."""
        if self.manifest.format != "plain" and self._thread is None:
            self._thread = threading.Thread(target=self._hash, name="dbops-restore-hash", daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _hash(self) -> None:
        try:
            if self.path.is_dir():
                self._digest = store.directory_digest(self.path)[0]
            else:
                self._digest = store.sha256_file(self.path, self._stopped)
        except BaseException as exc:  # raised by confirm(), in the load
            self._error = exc

    def _stopped(self, done: int) -> None:
        if self._stop.is_set():
            raise _Stopped

    def confirm(self) -> None:
        """After the load read the whole file (and before psql's input is closed): the file
        checked out, or BackupInvalid."""
        if self.manifest.format == "plain":
            if not self.passed:  # the reader ends only after its checks: it did not get there
                raise BackupInvalid(self.shown, "it was not read to its end")
            return
        if self._thread is None:
            self.__enter__()
        assert self._thread is not None
        self._thread.join()
        if self._error is not None:
            reason = f"{type(self._error).__name__}: {self._error}"
            raise BackupInvalid(self.shown, f"it cannot be read ({reason})")
        if self._digest != self.manifest.sha256:
            raise store.mismatch(self.shown)
        self.passed = True

    # ---------------------------------------------------------------- after a failed load

    def settle(self) -> None:
        """The load failed: was it the file? The full check on its own (BackupInvalid if so)."""
        self.__exit__(None, None, None)
        store.verify(self.path, self.manifest, self.pg_restore, self.shown)


class _Stopped(Exception):
    """The load ended before the hashing thread did."""
