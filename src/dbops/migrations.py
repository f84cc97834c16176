"""What migrations exist (the folder, read by yoyo's rules) and which are applied (yoyo's table).

Reading the folder does not import yoyo: status must stay fast. The rules are yoyo 9's:
``*.sql`` and ``*.py`` files, ``<id>.rollback.sql`` belongs to ``<id>``, ``post-apply*`` files
are hooks, yoyo's own temporary files are skipped, order is a plain string sort of the path.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

YOYO_TABLE = "_yoyo_migration"
YOYO_TABLES = ("_yoyo_migration", "_yoyo_log", "_yoyo_version", "yoyo_lock")
_YOYO_TEMP_PREFIX = "_tmp_yoyonew"


@dataclass(frozen=True)
class MigrationFile:
    id: str
    path: Path
    rollback: Path | None


@dataclass(frozen=True)
class AppliedMigration:
    id: str
    applied_at: datetime


@dataclass(frozen=True)
class MigrationState:
    folder: Path
    folder_exists: bool
    files: tuple[MigrationFile, ...]
    applied: tuple[AppliedMigration, ...]

    @property
    def pending(self) -> tuple[MigrationFile, ...]:
        done = {m.id for m in self.applied}
        return tuple(f for f in self.files if f.id not in done)

    @property
    def missing(self) -> tuple[str, ...]:
        """Applied migrations whose file is no longer in the folder."""
        present = {f.id for f in self.files}
        return tuple(m.id for m in self.applied if m.id not in present)

    @property
    def last_applied(self) -> AppliedMigration | None:
        return self.applied[-1] if self.applied else None


def discover(folder: Path) -> tuple[MigrationFile, ...]:
    if not folder.is_dir():
        return ()
    files = []
    for path in sorted(folder.iterdir(), key=str):
        name = path.name
        if path.suffix not in (".sql", ".py") or not path.is_file():
            continue
        if name.endswith(".rollback.sql") or name.startswith((_YOYO_TEMP_PREFIX, "post-apply")):
            continue
        migration_id = path.stem
        rollback = path.with_name(migration_id + ".rollback.sql") if path.suffix == ".sql" else None
        files.append(MigrationFile(migration_id, path, rollback if rollback and rollback.is_file() else None))
    return tuple(files)


def applied(conn: psycopg.Connection[Any]) -> tuple[AppliedMigration, ...]:
    """Applied migrations in the order they were applied; none when yoyo's table is absent."""
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (YOYO_TABLE,)).fetchone()
    if not row or not row[0]:
        return ()
    rows = conn.execute(
        f"SELECT migration_id, applied_at_utc FROM {YOYO_TABLE} ORDER BY applied_at_utc, migration_id"
    ).fetchall()
    return tuple(AppliedMigration(r[0], r[1]) for r in rows)


def state(conn: psycopg.Connection[Any], folder: Path) -> MigrationState:
    return MigrationState(folder, folder.is_dir(), discover(folder), applied(conn))
