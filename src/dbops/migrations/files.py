"""What migrations exist (the folder, read by yoyo's rules) and which are applied (yoyo's table).

Reading the folder does not import yoyo: status must stay fast. The rules are yoyo 9's:
``*.sql`` and ``*.py`` files, ``<id>.rollback.sql`` belongs to ``<id>``, ``post-apply*`` files
are hooks, yoyo's own temporary files are skipped, order is a plain string sort of the path.

dbops keeps one table of its own beside yoyo's: the sha256 of each applied migration's file,
so an edited or deleted file is noticed (yoyo's hash covers only the id). The checksum covers the
forward migration only: a rollback script written or fixed after the migration was applied is not
an edit of what ran. Databases recorded by older dbops hold the sha256 of the migration and its
rollback script together; that form still validates while the rollback script is unchanged.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbops.errors import DbopsError

if TYPE_CHECKING:
    import psycopg

YOYO_TABLE = "_yoyo_migration"
CHECKSUM_TABLE = "_dbops_migration_checksum"
YOYO_TABLES = ("_yoyo_migration", "_yoyo_log", "_yoyo_version", "yoyo_lock", CHECKSUM_TABLE)
DELETED = "deleted"  # the checksum recorded when a deleted file was accepted (before: kept, files '')
_YOYO_TEMP_PREFIX = "_tmp_yoyonew"


@dataclass(frozen=True)
class MigrationFile:
    id: str
    path: Path
    rollback: Path | None

    @property
    def files(self) -> tuple[Path, ...]:
        return (self.path, self.rollback) if self.rollback else (self.path,)

    def checksum(self) -> str:
        """sha256 of the forward migration, as recorded when applied (the rollback script is not in it)."""
        return checksum_of([(self.path.name, self.path.read_bytes())])

    def matches(self, recorded: str) -> bool:
        """The file is the one applied: its checksum, or the older form that took the rollback
        script in too (recorded by dbops before the rollback script stopped counting)."""
        if self.checksum() == recorded:
            return True
        return self.rollback is not None and recorded == checksum_of(
            [(path.name, path.read_bytes()) for path in self.files]
        )


def checksum_of(files: list[tuple[str, bytes]]) -> str:
    digest = hashlib.sha256()
    for name, content in files:
        digest.update(name.encode() + b"\0" + content + b"\0")
    return digest.hexdigest()


@dataclass(frozen=True)
class AppliedMigration:
    id: str
    applied_at: datetime
    checksum: str | None  # None: applied without dbops (plain yoyo), nothing recorded yet
    deleted: bool = False  # its deletion was accepted; checksum is then the files' as applied


@dataclass(frozen=True)
class MigrationState:
    folder: Path
    folder_exists: bool
    files: tuple[MigrationFile, ...]
    applied: tuple[AppliedMigration, ...]
    orphans: tuple[Path, ...] = ()  # rollback scripts without a migration beside them

    @property
    def by_id(self) -> dict[str, MigrationFile]:
        return {f.id: f for f in self.files}

    @property
    def pending(self) -> tuple[MigrationFile, ...]:
        done = {m.id for m in self.applied}
        return tuple(f for f in self.files if f.id not in done)

    @property
    def missing(self) -> tuple[str, ...]:
        """Applied migrations whose file is no longer in the folder (accepted ones too)."""
        present = self.by_id
        return tuple(m.id for m in self.applied if m.id not in present)

    @property
    def edited(self) -> tuple[str, ...]:
        """Applied migrations whose files differ from the checksum recorded when they were applied."""
        present = self.by_id
        return tuple(
            m.id
            for m in self.applied
            if m.id in present
            and m.checksum is not None
            and not present[m.id].matches(m.checksum)  # a file back after its deletion too
        )

    @property
    def unaccepted_missing(self) -> tuple[str, ...]:
        present = self.by_id
        return tuple(m.id for m in self.applied if m.id not in present and not m.deleted)

    @property
    def last_applied(self) -> AppliedMigration | None:
        return self.applied[-1] if self.applied else None


class DuplicateMigration(DbopsError):
    """Two files with one migration id (yoyo would silently skip one of them)."""

    exit_code = 2


def discover(folder: Path) -> tuple[MigrationFile, ...]:
    if not folder.is_dir():
        return ()
    files: dict[str, MigrationFile] = {}
    for path in sorted(folder.iterdir(), key=str):
        name = path.name
        if path.suffix not in (".sql", ".py") or not path.is_file():
            continue
        if name.endswith(".rollback.sql") or name.startswith((_YOYO_TEMP_PREFIX, "post-apply")):
            continue
        migration_id = path.stem
        if migration_id in files:
            raise DuplicateMigration(
                f"Two migrations have the id {migration_id}: {files[migration_id].path.name} and {name}",
                "Rename or remove one of them (a migration's id is its file name without .sql/.py)",
            )
        rollback = path.with_name(migration_id + ".rollback.sql") if path.suffix == ".sql" else None
        files[migration_id] = MigrationFile(
            migration_id, path, rollback if rollback and rollback.is_file() else None
        )
    return tuple(files.values())


def orphan_rollbacks(folder: Path, files: tuple[MigrationFile, ...]) -> tuple[Path, ...]:
    """Rollback scripts that belong to no migration (a renamed or deleted one, a typo)."""
    if not folder.is_dir():
        return ()
    owned = {f.rollback for f in files if f.rollback is not None}
    return tuple(
        path
        for path in sorted(folder.glob("*.rollback.sql"), key=str)
        if path.is_file() and path not in owned and not path.name.startswith(_YOYO_TEMP_PREFIX)
    )


def applied(conn: psycopg.Connection[Any]) -> tuple[AppliedMigration, ...]:
    """Applied migrations in the order they were applied; none when yoyo's table is absent."""
    row = conn.execute("SELECT to_regclass(%s), to_regclass(%s)", (YOYO_TABLE, CHECKSUM_TABLE)).fetchone()
    if not row or not row[0]:
        return ()
    checksum = "c.sha256, c.files = ''" if row[1] else "NULL, false"
    join = f"LEFT JOIN {CHECKSUM_TABLE} c USING (migration_id)" if row[1] else ""
    rows = conn.execute(
        f"SELECT m.migration_id, m.applied_at_utc, {checksum} FROM {YOYO_TABLE} m {join} "
        "ORDER BY m.applied_at_utc, m.migration_id"
    ).fetchall()
    return tuple(AppliedMigration(r[0], r[1], r[2], bool(r[3]) or r[2] == DELETED) for r in rows)


def state(conn: psycopg.Connection[Any], folder: Path) -> MigrationState:
    files = discover(folder)
    return MigrationState(folder, folder.is_dir(), files, applied(conn), orphan_rollbacks(folder, files))


def orphan_warnings(state: MigrationState) -> list[str]:
    return [
        f"⚠ {path.name} has no migration beside it ({path.name.removesuffix('.rollback.sql')}.sql): "
        "it is never run"
        for path in state.orphans
    ]
