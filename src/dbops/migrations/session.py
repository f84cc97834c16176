"""What the migration steps share: a session (migrator, lock, state read under it), the
integrity check of applied migrations, accepting changed files, and the plan of a --from/--to
range in the order migrate applies it.

migrate, migrate-rollback, migrate-baseline, migrate-repair and lint use these; each step keeps
its own report.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbops.errors import DbopsError, UsageError
from dbops.migrations import files as migrations
from dbops.migrations.files import MigrationFile, MigrationState
from dbops.migrations.migrator import Migrator
from dbops.migrations.scripts import Script, load, order, refuse_empty
from dbops.postgres.locks import migration_lock, work_lock

if TYPE_CHECKING:
    import psycopg

    from dbops.config.model import Environment
    from dbops.postgres.connection import Target


class ChecksumMismatch(DbopsError):
    """Applied migrations were edited or deleted since: refuse until the change is accepted."""

    exit_code = 2


@dataclass
class Session:
    migrator: Migrator
    state: MigrationState


@contextmanager
def migration_session(
    conn: psycopg.Connection[Any], target: Target, env: Environment, migrations_dir: Path, *, write: bool
) -> Iterator[Session]:
    """A migrator on `conn` (the caller's connection to `target`, left open), the migration lock
    (when writing) and the state of `migrations_dir` read under it."""
    migrator = Migrator(conn, target)
    if not write:
        yield Session(migrator, migrations.state(conn, migrations_dir))
        return
    wait_s = env.lock_wait_ms / 1000
    with migration_lock(target, env, wait_s) as lock, work_lock(conn, target, wait_s):
        migrator.lock = lock
        migrator.ensure_bookkeeping()
        yield Session(migrator, migrations.state(conn, migrations_dir))


def check_integrity(state: MigrationState, *, accept: bool) -> None:
    """Edited or deleted applied migrations stop everything, unless accepted explicitly."""
    changed = [
        *(f"{i} (edited)" for i in state.edited),
        *(f"{i} (deleted)" for i in state.unaccepted_missing),
    ]
    if changed and not accept:
        raise ChecksumMismatch(
            f"Applied migrations changed since they were applied: {', '.join(changed)}",
            "Restore the files, or accept them: dbops migrate-repair (or migrate --accept-changes)",
        )


def record_checksums(session: Session, adopted: list[str], *, all_deleted: bool = False) -> list[str]:
    """Accept changed files (when asked) and adopt migrations yoyo applied, appending their ids
    to `adopted` as it goes; returns the accepted. Every applied migration deleted at once is
    more likely a wrong folder than a decision: refused unless `all_deleted`."""
    state = session.state
    files = state.by_id
    deleted = state.unaccepted_missing
    if deleted and not all_deleted and not any(m.id in files for m in state.applied):
        raise UsageError(
            f"Every applied migration ({len(deleted)}) is missing from {state.folder.name}/: refusing to "
            "record them all as deleted",
            "Check migrations: in dbops.yaml; if they really are all gone: "
            "dbops migrate-repair --all-deleted",
        )
    accepted = [*state.edited, *deleted]
    for migration_id in accepted:
        session.migrator.accept(migration_id, files.get(migration_id))
    for applied in state.applied:  # applied by plain yoyo: take the files as they are now
        if applied.checksum is None and applied.id in files:
            session.migrator.accept(applied.id, files[applied.id])
            adopted.append(applied.id)
    return accepted


def select_range(
    pending: tuple[MigrationFile, ...], known: set[str], start: str | None, end: str | None
) -> list[MigrationFile]:
    """--from/--to: ids in that range; an id prefix (--to=005) counts as the ids it starts."""
    for flag, bound in (("--from", start), ("--to", end)):
        if bound is not None and not any(i == bound or i.startswith(bound) for i in known):
            raise UsageError(
                f"{flag} {bound}: no migration has that id or starts with it", "dbops status lists them"
            )
    return [
        f
        for f in pending
        if (start is None or f.id >= start) and (end is None or f.id <= end or f.id.startswith(end))
    ]


def plan(session: Session, start: str | None, end: str | None, *, cache: Path | None = None) -> list[Script]:
    """The pending migrations of the range, parsed (only they are), in the order to apply them;
    `cache`: the parse cache's folder (scripts.load)."""
    state = session.state
    chosen = select_range(state.pending, set(state.by_id), start, end)
    scripts = order(list(load(state.files, [f.id for f in chosen], cache=cache).values()))
    refuse_empty(scripts)
    if start is not None or end is not None:
        left_out = {f.id for f in state.pending} - {s.id for s in scripts}
        for script in scripts:
            skipped = sorted(set(script.depends) & left_out)
            if skipped:
                raise UsageError(
                    f"{script.name} depends on {', '.join(skipped)}, which --from/--to leave out",
                    "Widen the range to include the dependency",
                )
    return scripts
