"""Backup files on disk: names, manifests, atomic publishing, integrity checks, listing.

A backup is a file (``.sql.gz``/``.sql`` plain SQL, ``.dump`` custom) or a folder (``.dir``,
pg_dump's directory format) with a manifest ``<name>.json`` beside it. Manual backups live in
``backups/db/``, automatic ones (taken before a destructive step) in ``backups/db/automated/``.
Nothing is ever visible under a final name before it is complete, and nothing is overwritten:
writers use dbops.atomic (a hidden temporary name ``.<name>.tmp-<host>-<pid>``, fsync, link or
rename-noreplace, then fsync the folder).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
import zlib
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from dbops import atomic
from dbops.backups.formats import FORMATS, Format
from dbops.config.model import shown as shown_path
from dbops.errors import DbopsError
from dbops.postgres.embedded import process_alive
from dbops.postgres.tools import base_env, drained, spawn

AUTOMATED = "automated"
TRAILER = b"-- PostgreSQL database dump complete"
CHUNK = 1 << 20
_TEMP = re.compile(r"^\.(?P<name>.+)\.tmp-(?:(?P<host>.+)-)?(?P<pid>\d+)$")
# A temporary file of another host's writer (a folder shared between containers or runners),
# or of an older dbops that did not record its host: dbops cannot tell whether its writer still
# runs, and leaves it alone until it is this old.
FOREIGN_TEMP_AGE_S = 24 * 3600
_SUFFIXES = (".sql.gz", ".sql", ".dump", ".dir")

Progress = Callable[[int], None]  # bytes done so far
Advance = Callable[[str, int, int | None], None]  # a progress bar's (what, done, total or None)


class BackupInvalid(DbopsError):
    """A backup that fails its checks: corrupt, truncated, the wrong format, or without manifest."""

    exit_code = 2

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(
            f"Invalid backup file format: {path}: {reason}",
            "Use a different backup, or restore from the automatic ones: "
            "ls backups/db/automated/ then dbops restore latest",
        )


@dataclass
class TableCount:
    schema: str
    name: str
    rows: int


@dataclass
class Manifest:
    file: str
    database: str
    environment: str
    server_version: str
    pg_dump_version: str
    format: Format
    compression: str
    created: str  # ISO 8601, UTC
    kind: Literal["manual", "automatic"]
    reason: str | None = None
    keep: bool = False
    size: int = 0
    sha256: str = ""
    files: dict[str, str] = field(default_factory=dict)  # directory format: sha256 of each file
    encoding: str = "UTF8"
    tables: list[TableCount] = field(default_factory=list)
    rows_exact: bool = True  # counted in the dump's own snapshot
    rows_total: int = 0  # in the application's tables (contents.counted): without the bookkeeping
    tables_total: int = 0  # the application's tables, as counted for rows_total
    objects: dict[str, int] = field(default_factory=dict)
    last_migration: str | None = None
    dbops_version: str = ""

    @property
    def created_at(self) -> datetime:
        return datetime.fromisoformat(self.created.replace("Z", "+00:00"))

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        raw = json.loads(text)
        if not isinstance(raw, dict):
            raise ValueError("not a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        required = [
            f.name
            for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        missing = [name for name in required if name not in raw]
        if missing:
            raise ManifestIncomplete(missing, empty=not raw)
        values = {k: v for k, v in raw.items() if k in known}
        values["tables"] = [TableCount(**t) for t in values.get("tables", [])]
        manifest = cls(**values)
        if manifest.format not in FORMATS or not re.fullmatch(r"[0-9a-f]{64}", manifest.sha256):
            raise ValueError("unknown format or checksum")
        manifest.created_at  # noqa: B018  (raises ValueError on a bad time)
        return manifest


class ManifestIncomplete(ValueError):
    """A manifest without the keys every dbops manifest has."""

    def __init__(self, missing: list[str], *, empty: bool) -> None:
        super().__init__("it is an empty object ({})" if empty else f"it lacks {', '.join(missing)}")
        self.missing = missing


def manifest_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def read_manifest(path: Path, shown: str) -> Manifest:
    try:
        return Manifest.from_json(manifest_path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        reason = f"no manifest ({manifest_path(path).name}) beside it to check it against"
        raise BackupInvalid(shown, reason) from None
    except ManifestIncomplete as exc:
        reason = f"its manifest ({manifest_path(path).name}) is not one dbops writes: {exc}"
        raise BackupInvalid(shown, reason) from None
    except (OSError, ValueError, TypeError) as exc:
        raise BackupInvalid(shown, f"unreadable manifest: {type(exc).__name__}: {exc}") from None


# --------------------------------------------------------------------------- names and folders


def extension(fmt: Format, method: str) -> str:
    if fmt == "plain":
        return ".sql" if method == "none" else ".sql.gz"
    return ".dump" if fmt == "custom" else ".dir"


def new_path(folder: Path, database: str, fmt: Format, method: str, now: datetime) -> Path:
    """<folder>/<database>_<UTC YYYYMMDD_HHMMSS><ext>; a second one in the same second gets _2
    (and so on: see next_path)."""
    stem = f"{database}_{now.strftime('%Y%m%d_%H%M%S')}"
    candidate = folder / f"{stem}{extension(fmt, method)}"
    while candidate.exists() or manifest_path(candidate).exists():
        candidate = next_path(candidate)
    return candidate


_SERIAL = re.compile(r"^(?P<stem>.*_\d{8}_\d{6})(?:_(?P<serial>\d+))?(?P<ext>\.sql\.gz|\.sql|\.dump|\.dir)$")


def next_path(path: Path) -> Path:
    """The name after `path` in the same second: <stem>_2<ext>, then _3, ..."""
    match = _SERIAL.match(path.name)
    if match is None:
        stem, _, ext = path.name.partition(".")
        return path.with_name(f"{stem}_2.{ext}")
    serial = int(match.group("serial") or 1) + 1
    return path.with_name(f"{match.group('stem')}_{serial}{match.group('ext')}")


def ensure_folder(folder: Path) -> None:
    """The folder, and each parent dbops makes for it, 0700 (mkdir(parents=True) would give the
    parents the default mode); folders that exist already are left as their owner set them."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:  # another dbops made it meanwhile
            continue
        path.chmod(0o700)  # whatever the umask


def publish(temp: Path, final: Path, manifest: Manifest) -> None:
    """Manifest first, then the backup: a crash between leaves only an orphan manifest, never an
    unverifiable backup under its final name. Never overwrites: FileExistsError when either name
    is taken (then neither name is left holding this backup's files)."""
    atomic.write_new(manifest_path(final), manifest.to_json(), mode=0o600)
    try:
        atomic.publish(temp, final)
    except FileExistsError:
        manifest_path(final).unlink()  # ours: write_new created it just now
        raise


def publish_unique(temp: Path, final: Path, manifest: Manifest, attempts: int = 1000) -> Path:
    """publish() under `final`, or, when another backup took that name meanwhile (two runs in the
    same second), under the next free one (next_path); returns the name it got."""
    for _ in range(attempts):
        manifest.file = final.name
        try:
            publish(temp, final, manifest)
            return final
        except FileExistsError:
            final = next_path(final)
    raise FileExistsError(f"no free name after {attempts} attempts: {final}")


def remove(path: Path) -> None:
    """A backup (file or folder) or a temporary; missing is fine."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


# --------------------------------------------------------------------------- integrity


def sha256_file(path: Path, progress: Progress | None = None) -> str:
    digest = hashlib.sha256()
    done = 0
    with open(path, "rb", buffering=0) as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
            done += len(chunk)
            if progress:
                progress(done)
    return digest.hexdigest()


def directory_digest(folder: Path) -> tuple[str, dict[str, str]]:
    """One sha256 over the sorted 'name sha256' lines of every file, and each file's own."""
    files = {p.name: sha256_file(p) for p in sorted(folder.iterdir()) if p.is_file()}
    combined = "".join(f"{name} {digest}\n" for name, digest in files.items())
    return hashlib.sha256(combined.encode()).hexdigest(), files


def size_of(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.iterdir() if p.is_file())
    return path.stat().st_size


def read_through(
    path: Path, fmt: Format, method: str, pg_restore: Path, shown: str, progress: Progress | None = None
) -> tuple[str, dict[str, str]]:
    """Read a backup completely, decompressing as needed; returns its sha256 (and, for the
    directory format, each file's).

    Plain: gunzip in-process and look for pg_dump's "dump complete" trailer. Custom: stream it
    into ``pg_restore -f /dev/null``, which decodes every entry and data block. Directory:
    each file's checksum, and ``pg_restore -f /dev/null`` over the folder.
    """
    if fmt in ("custom", "directory"):
        return _pg_restore_reads(pg_restore, path, shown, progress)
    return _read_plain(path, method == "gzip", shown, progress), {}


def gunzip(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Decompress a gzip stream of one or more members (pigz-style); zlib.error or EOFError when
    it is corrupt, truncated or empty. ISA-L's inflate (isal), about 2.5 times zlib's speed."""
    from isal import isal_zlib  # lazy: only reading a plain backup needs it

    inflate = isal_zlib.decompressobj(wbits=31)
    inside = False  # a member has begun and not ended
    members = 0
    for chunk in chunks:
        while chunk:
            inside = True
            try:
                yield inflate.decompress(chunk)
            except Exception as exc:  # isal's error (not a zlib.error) as zlib's, which callers know
                if type(exc).__module__.startswith(("isal", "igzip")) or "Isal" in type(exc).__name__:
                    raise zlib.error(str(exc)) from None
                raise
            if not inflate.eof:
                break
            members += 1
            inside = False
            chunk = inflate.unused_data  # the next member begins here
            inflate = isal_zlib.decompressobj(wbits=31)
    if inside or members == 0:
        raise EOFError("the gzip stream is truncated" if inside else "the file is empty")


def read_ahead(chunks: Iterator[bytes], depth: int = 4) -> Generator[bytes]:
    """`chunks`, produced by a thread of their own up to `depth` ahead: reading and inflating
    (which release the GIL) overlap with what the caller does with each chunk. An exception of
    the producer is raised here, where its chunk would have come; closing this generator
    stops the producer."""
    import queue
    import threading

    handoff: queue.Queue[tuple[bytes | None, BaseException | None]] = queue.Queue(depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for chunk in chunks:
                while not stop.is_set():
                    try:
                        handoff.put((chunk, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            handoff.put((None, None))
        except BaseException as exc:  # handed to the consumer, which raises it
            handoff.put((None, exc))

    producer = threading.Thread(target=produce, name="dbops-read-ahead", daemon=True)
    producer.start()
    try:
        while True:
            chunk, error = handoff.get()
            if error is not None:
                raise error
            if chunk is None:
                return
            yield chunk
    finally:
        stop.set()
        while producer.is_alive():  # unblock a producer waiting for room
            with contextlib.suppress(queue.Empty):
                handoff.get(timeout=0.1)
        producer.join()


def _read_plain(path: Path, gzipped: bool, shown: str, progress: Progress | None) -> str:
    digest = hashlib.sha256()
    for _ in plain_text(path, gzipped, shown, digest, progress):
        pass
    return digest.hexdigest()


def plain_text(
    path: Path, gzipped: bool, shown: str, digest: Any, progress: Progress | None = None
) -> Iterator[bytes]:
    """A plain backup's SQL text, in chunks, each byte of the file fed to `digest` as it is read.
    BackupInvalid for a corrupt or truncated gzip stream (where it is found), and after the last
    chunk for a script without pg_dump's "dump complete" trailer."""
    done = 0

    def raw() -> Iterator[bytes]:
        nonlocal done
        with open(path, "rb", buffering=0) as handle:
            for chunk in iter(lambda: handle.read(CHUNK), b""):
                digest.update(chunk)
                done += len(chunk)
                if progress:
                    progress(done)
                yield chunk

    tail = b""
    try:
        for text in gunzip(raw()) if gzipped else raw():
            if text:
                tail = (tail + text)[-4096:] if len(text) < 4096 else text[-4096:]
                yield text
    except zlib.error as exc:
        raise BackupInvalid(shown, f"not a valid gzip stream ({exc})") from None
    except EOFError as exc:
        raise BackupInvalid(shown, str(exc)) from None
    if TRAILER not in tail:
        raise BackupInvalid(shown, "no 'PostgreSQL database dump complete' trailer: not a complete pg_dump")


def _pg_restore_reads(
    pg_restore: Path, archive: Path, shown: str, progress: Progress | None = None
) -> tuple[str, dict[str, str]]:
    """pg_restore -f /dev/null over the archive (it decodes every block), while this process
    hashes the file beside it; returns the sha256 (of the file; the combined one of a folder)."""
    process = spawn(
        [str(pg_restore), "-f", os.devnull, str(archive)],
        base_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    with drained(process) as stderr:
        digest, files = (
            directory_digest(archive) if archive.is_dir() else (sha256_file(archive, progress), {})
        )
        code = process.wait()
    if code != 0:
        detail = stderr().decode("utf-8", "replace").strip().splitlines()
        reason = next((line for line in detail if "error" in line), detail[-1] if detail else "")
        raise BackupInvalid(shown, f"pg_restore cannot read it: {reason.removeprefix('pg_restore: ')}")
    return digest, files


# The kinds of entry pg_dump writes in an archive of one database (pg_dump 13 to 18); pg_dumpall's
# (ROLE, TABLESPACE, ...) and anything else are not a backup of one database.
ENTRY_KINDS = frozenset(
    (
        "ACCESS METHOD", "ACL", "AGGREGATE", "BLOB", "BLOB COMMENTS", "BLOB METADATA", "BLOBS", "CAST",
        "CHECK CONSTRAINT", "COLLATION", "COMMENT", "CONSTRAINT", "CONVERSION", "DATABASE",
        "DATABASE PROPERTIES", "DEFAULT", "DEFAULT ACL", "DOMAIN", "ENCODING", "EVENT TRIGGER",
        "EXTENSION", "FK CONSTRAINT", "FOREIGN DATA WRAPPER", "FOREIGN SERVER", "FOREIGN TABLE",
        "FUNCTION", "INDEX", "INDEX ATTACH", "LARGE OBJECT", "LARGE OBJECTS", "MATERIALIZED VIEW",
        "MATERIALIZED VIEW DATA", "OPERATOR", "OPERATOR CLASS", "OPERATOR FAMILY", "POLICY",
        "PROCEDURAL LANGUAGE", "PROCEDURE", "PUBLICATION", "PUBLICATION TABLE",
        "PUBLICATION TABLES IN SCHEMA", "ROW SECURITY", "RULE", "SCHEMA", "SEARCHPATH",
        "SECURITY LABEL", "SEQUENCE", "SEQUENCE OWNED BY", "SEQUENCE SET", "SERVER", "SHELL TYPE",
        "STATISTICS", "STATISTICS DATA", "STDSTRINGS", "SUBSCRIPTION", "SUBSCRIPTION TABLE", "TABLE",
        "TABLE ATTACH", "TABLE DATA", "TEXT SEARCH CONFIGURATION", "TEXT SEARCH DICTIONARY",
        "TEXT SEARCH PARSER", "TEXT SEARCH TEMPLATE", "TRANSFORM", "TRIGGER", "TYPE", "USER MAPPING",
        "VIEW",
    )
)  # fmt: skip
_ENTRY = re.compile(r"^\d+; \d+ \d+ (?P<rest>.*)$")


def check_entries(pg_restore: Path, archive: Path, shown: str) -> None:
    """Custom and directory formats: `pg_restore --list` holds only the kinds of entry pg_dump
    writes for one database (BackupInvalid naming the first other one)."""
    done = subprocess.run(
        [str(pg_restore), "--list", str(archive)], env=base_env(), capture_output=True, check=False
    )
    if done.returncode != 0:
        detail = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise BackupInvalid(shown, f"pg_restore cannot list it: {detail[-1] if detail else done.returncode}")
    for number, raw in enumerate(done.stdout.decode("utf-8", "replace").splitlines(), 1):
        match = _ENTRY.match(raw)
        if raw.startswith(";") or not raw.strip():
            continue
        rest = match.group("rest") if match else ""
        words = rest.split(" ")
        if not any(" ".join(words[:n]) in ENTRY_KINDS for n in range(1, min(len(words), 5) + 1)):
            raise BackupInvalid(
                shown, f"entry {number} of its table of contents is not one pg_dump writes: {raw[:120]}"
            )


def precheck(path: Path, manifest: Manifest, pg_restore: Path, shown: str) -> None:
    """What a restore checks before anything else, at no cost: the file is there, of the format and
    size its manifest says, and an archive's table of contents holds only what pg_dump writes.
    The full read and the sha256 come with the load (dbops.backups.filecheck), or verify()."""
    if not path.exists():
        raise BackupInvalid(shown, "no such file")
    fmt = manifest.format
    if fmt == "directory" and not path.is_dir():
        raise BackupInvalid(shown, "the manifest says directory format, but this is not a folder")
    if fmt != "directory" and not path.is_file():
        raise BackupInvalid(shown, f"the manifest says {fmt} format, but this is not a file")
    size = size_of(path)
    if size < manifest.size:
        raise BackupInvalid(shown, f"{size:,} bytes where the manifest says {manifest.size:,} (truncated?)")
    if size > manifest.size:
        raise BackupInvalid(
            shown,
            f"{size:,} bytes, larger than the {manifest.size:,} its manifest says: something was "
            "added to it or it was replaced since it was written",
        )
    if fmt != "plain":
        check_entries(pg_restore, path, shown)


def verify(
    path: Path, manifest: Manifest, pg_restore: Path, shown: str, progress: Progress | None = None
) -> None:
    """The whole check, on its own: precheck(), then a full read whose sha256 matches the manifest."""
    precheck(path, manifest, pg_restore, shown)
    method = manifest.compression.partition(":")[0]
    digest, _ = read_through(path, manifest.format, method, pg_restore, shown, progress)
    if digest != manifest.sha256:
        raise mismatch(shown)


def mismatch(shown: str) -> BackupInvalid:
    """The file is not the one its manifest describes."""
    return BackupInvalid(shown, "its sha256 does not match the manifest: the file was changed or corrupted")


def checksum_matches(path: Path, manifest: Manifest) -> bool:
    """The cheap check for listings: size, then sha256 (no decompression)."""
    try:
        if size_of(path) != manifest.size:
            return False
        if manifest.format == "directory":
            return directory_digest(path)[0] == manifest.sha256
        return sha256_file(path) == manifest.sha256
    except OSError:
        return False


# --------------------------------------------------------------------------- what is on disk


@dataclass
class BackupEntry:
    path: Path
    manifest: Manifest | None
    exists: bool

    @property
    def kind(self) -> str:
        if self.manifest is not None:
            return self.manifest.kind
        return "automatic" if self.path.parent.name == AUTOMATED else "manual"

    @property
    def created(self) -> datetime:
        if self.manifest is not None:
            return self.manifest.created_at
        try:
            return datetime.fromtimestamp(self.path.stat().st_mtime, UTC)
        except OSError:
            return datetime.fromtimestamp(0, UTC)


def is_backup_name(name: str) -> bool:
    return not name.startswith(".") and name.endswith(_SUFFIXES)


def discover(root: Path) -> list[BackupEntry]:
    """Every backup in root and root/automated/ (with or without manifest), oldest first."""
    entries: dict[Path, BackupEntry] = {}
    for folder in (root, root / AUTOMATED):
        if not folder.is_dir():
            continue
        for item in folder.iterdir():
            name = item.name
            if name.startswith(".") or item.is_symlink():
                continue
            if name.endswith(".json") and is_backup_name(name[: -len(".json")]):
                backup = item.with_name(name[: -len(".json")])
                entries.setdefault(backup, BackupEntry(backup, None, backup.exists()))
            elif is_backup_name(name):
                entries.setdefault(item, BackupEntry(item, None, True))
    for entry in entries.values():
        if manifest_path(entry.path).is_file():
            with contextlib.suppress(OSError, ValueError, TypeError):
                entry.manifest = Manifest.from_json(manifest_path(entry.path).read_text(encoding="utf-8"))
    return sorted(entries.values(), key=lambda e: (e.created, e.path.name))


def leftovers(root: Path, now: float | None = None) -> list[Path]:
    """Temporary files and folders of writers that are gone: on this host, their pid no longer
    runs; another host's (or one without a host), older than FOREIGN_TEMP_AGE_S."""
    found = []
    here = atomic.host()
    moment = time.time() if now is None else now
    for folder in (root, root / AUTOMATED):
        if not folder.is_dir():
            continue
        for item in folder.iterdir():
            match = _TEMP.match(item.name)
            if match is None:
                continue
            gone = False
            if match.group("host") == here:
                gone = not process_alive(int(match.group("pid")))
            else:
                with contextlib.suppress(OSError):
                    gone = moment - item.lstat().st_mtime > FOREIGN_TEMP_AGE_S
            if gone:
                found.append(item)
    return sorted(found)


def newest_automatic(root: Path, database: str | None = None) -> BackupEntry | None:
    candidates = [
        e
        for e in discover(root)
        if e.exists
        and e.kind == "automatic"
        and e.manifest is not None
        and (database is None or e.manifest.database == database)
    ]
    return candidates[-1] if candidates else None


def resolve(argument: str, root: Path, project: Path, cwd: Path, *, database: str) -> Path:
    """FILE as given (from the working directory, else the project), or 'latest' (also the spec's
    backups/db/automated/latest.sql.gz): the newest automatic backup of `database` (the
    environment's), as its manifest says; never another database's."""
    given = Path(argument).expanduser()
    for candidate in (cwd / given, project / given):
        if candidate.exists():
            return candidate.resolve()
    stem = given.name.split(".", 1)[0]
    if stem == "latest":
        newest = newest_automatic(root, database)
        if newest is None:
            raise DbopsError(
                f"No automatic backup of {database} in {shown_path(root / AUTOMATED, project)}/ "
                f"to restore as '{argument}'",
                _others(root),
                exit_code=2,
            )
        return newest.path
    raise DbopsError(
        f"Backup file not found: {argument}", "dbops backup-list shows the backups there are", exit_code=2
    )


def _others(root: Path) -> str:
    """What there is instead: the databases the automatic backups there are of."""
    counts: dict[str, int] = {}
    for entry in discover(root):
        if entry.exists and entry.kind == "automatic" and entry.manifest is not None:
            counts[entry.manifest.database] = counts.get(entry.manifest.database, 0) + 1
    if not counts:
        return "There are no automatic backups at all (dbops backup-list shows the manual ones)"
    found = ", ".join(f"{name} ({n})" for name, n in sorted(counts.items()))
    return (
        f"The automatic backups there are of: {found}; restore another database's backup only by "
        "its file name, on purpose (dbops backup-list shows them)"
    )


def utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def utc_now_precise() -> datetime:
    """For a manifest's `created`: backups taken in the same second still sort by time."""
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
