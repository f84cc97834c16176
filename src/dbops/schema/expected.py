"""The expected schema: every migration applied to a scratch database (or SQLAlchemy models
created there, with ``models:`` in dbops.yaml), then read back like the live one.
"""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbops.errors import ConfigError, DbopsError
from dbops.postgres.connection import connect
from dbops.schema.snapshot import read_schema

if TYPE_CHECKING:
    import psycopg

    from dbops.config.model import Environment
    from dbops.migrations.migrator import Migrator
    from dbops.migrations.scripts import Script
    from dbops.postgres.databases import Scratch
    from dbops.postgres.reusable import Claimed
    from dbops.schema.snapshot import Schema


class ExpectedSchemaFailed(DbopsError):
    """The migrations (or models) could not be applied to the scratch database."""


@dataclass(frozen=True)
class ExpectedInfo:
    source: str  # "migrations" or "models: pkg.module:metadata"
    objects: int  # migrations applied, or tables created from the models
    scratch: str  # "same server" or "embedded"
    server: str  # the scratch database's server version
    duration_s: float
    reused: bool = False  # built in a rolled-back transaction in the reusable scratch database


def build(
    scratch: Scratch, env: Environment, scripts: Sequence[Script], *, models: str | None, root: Path
) -> tuple[Schema, ExpectedInfo]:
    """Apply the migrations (or create the models, ``models:`` of dbops.yaml, importable from the
    project's folder `root`) in the scratch database and read its schema."""
    started = time.monotonic()
    conn = connect(scratch.target, env)
    try:
        if models:
            count = _create_models(scratch, env, models, root)
        else:
            _apply(conn, scratch, scripts)
            count = len(scripts)
        schema = read_schema(conn)
    finally:
        conn.close()
    source = f"models: {models}" if models else "migrations"
    info = ExpectedInfo(source, count, scratch.location, scratch.server_version, time.monotonic() - started)
    return schema, info


def in_one_transaction(scripts: Sequence[Script]) -> bool:
    """Whether the migrations can build the expected schema in one transaction: every one of
    them plain SQL that runs in one."""
    return all(s.transactional and not s.is_python for s in scripts)


def build_reused(claim: Claimed, scripts: Sequence[Script]) -> tuple[Schema, ExpectedInfo] | None:
    """The migrations applied in the reusable scratch database's open transaction and read back
    there (rolled back when the claim ends); None when they fail or end the transaction
    themselves: the caller builds the schema in a fresh database instead, where a failure gets
    the migrator's precise error."""
    started = time.monotonic()
    conn = claim.conn
    try:
        if scripts:
            conn.execute(joined(scripts))  # no parameters: the simple protocol, as _apply_run
        conn.execute("SET CONSTRAINTS ALL IMMEDIATE")  # what would fail at commit fails here
    except Exception as exc:
        if not type(exc).__module__.startswith("psycopg"):
            raise
        claim.dirty = claim.ended()
        return None
    if claim.ended():  # a COMMIT or ROLLBACK in a migration: what followed it may have stayed
        claim.dirty = True
        return None
    schema = read_schema(conn)
    scratch = claim.scratch
    info = ExpectedInfo(
        "migrations", len(scripts), scratch.location, scratch.server_version, time.monotonic() - started, True
    )
    return schema, info


def _apply(conn: psycopg.Connection[Any], scratch: Scratch, scripts: Sequence[Script]) -> None:
    """Every migration, fast: runs of plain transactional SQL migrations go in one transaction
    and one query (the simple protocol takes many statements), without yoyo's records (nobody
    reads them here), each migration's session state reset after it as migrate does. Python and
    non-transactional migrations, and a run that fails (for its precise error, or because it
    needed its own commits, as a new enum value used by a later migration does), go one by one
    through the migrator."""
    slow = _Slow(conn, scratch)
    run: list[Script] = []
    for script in scripts:
        if script.transactional and not script.is_python:
            run.append(script)
            continue
        _apply_run(conn, run, slow)
        run = []
        slow.apply(script)
    _apply_run(conn, run, slow)


# After each migration, as migrate's session reset: its SET, SET ROLE, search_path are gone.
_RESET = "RESET ALL;\nRESET ROLE;\nSET LOCAL synchronous_commit = off;\n"


def joined(run: Sequence[Script]) -> str:
    """A run's statements as one text for the simple protocol, each ended by a semicolon on a
    line of its own when its own text does not end on one (it may end in a -- comment)."""
    parts = [_RESET]  # a scratch database: no waiting for the disk
    for script in run:
        for statement in script.statements:
            sql = statement.sql
            parts.append(sql + "\n" if sql.endswith(";") else sql + "\n;\n")
        parts.append(_RESET)
    return "".join(parts)


def _apply_run(conn: psycopg.Connection[Any], run: Sequence[Script], slow: _Slow) -> None:
    if not run:
        return
    try:
        with conn.transaction():
            conn.execute(joined(run))  # no parameters: the simple protocol, sent as written, % and all
    except Exception as exc:
        if not type(exc).__module__.startswith("psycopg"):
            raise
        for script in run:  # all of it was rolled back
            slow.apply(script)


class _Slow:
    """The migrator, with its bookkeeping made when first needed."""

    def __init__(self, conn: psycopg.Connection[Any], scratch: Scratch) -> None:
        self.conn = conn
        self.scratch = scratch
        self.migrator: Migrator | None = None

    def apply(self, script: Script) -> None:
        if self.migrator is None:
            from dbops.migrations.migrator import Migrator  # lazy: a run of plain SQL never needs it

            self.migrator = Migrator(self.conn, self.scratch.target)
            self.migrator.ensure_bookkeeping()
        try:
            self.migrator.apply(script)
        except DbopsError as exc:
            location = self.scratch.location
            where = "on the embedded server" if location == "embedded" else "on the same server"
            raise ExpectedSchemaFailed(
                f"Building the expected schema failed in a scratch database {where}: {exc.message}",
                exc.hint,
            ) from None


def _create_models(scratch: Scratch, env: Environment, spec: str, root: Path) -> int:
    """metadata.create_all() into the scratch database."""
    metadata = load_metadata(spec, str(root))
    try:
        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool
    except ImportError:  # pragma: no cover - load_metadata already needed it
        raise _no_sqlalchemy() from None
    engine = create_engine(
        "postgresql+psycopg://", creator=lambda: connect(scratch.target, env), poolclass=NullPool
    )
    try:
        metadata.create_all(engine)
    except Exception as exc:
        message = " ".join(str(getattr(exc, "orig", exc)).split())
        raise ExpectedSchemaFailed(
            f"Creating the models ({spec}) in a scratch database failed: {message}",
            "Fix the models; validate creates them with metadata.create_all()",
        ) from None
    finally:
        engine.dispose()
    return len(metadata.tables)


def load_metadata(spec: str, root: str) -> Any:
    """``package.module:attribute``: a MetaData, or a declarative base that has one."""
    try:
        from sqlalchemy import MetaData
    except ImportError:
        raise _no_sqlalchemy() from None
    module_name, _, attribute = spec.partition(":")
    sys.path.insert(0, root)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise ConfigError(
            f"models: cannot import {module_name}: {type(exc).__name__}: {exc}",
            "models: names package.module:metadata, importable from the project's folder",
        ) from None
    finally:
        with_root = sys.path.index(root) if root in sys.path else -1
        if with_root >= 0:
            del sys.path[with_root]
    value: Any = module
    for part in attribute.split("."):
        value = getattr(value, part, None)
    metadata = getattr(value, "metadata", value)
    if not isinstance(metadata, MetaData):
        raise ConfigError(
            f"models: {spec} is not a SQLAlchemy MetaData (found {type(value).__name__})",
            "Name the MetaData object, or a declarative base class that has .metadata",
        )
    return metadata


def _no_sqlalchemy() -> ConfigError:
    return ConfigError(
        "models: in dbops.yaml needs SQLAlchemy, which is not installed",
        "pip install 'invoke-dbops[models]' (or remove models: to compare against the migrations)",
    )
