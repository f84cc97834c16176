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
from dbops.migrations.migrator import Migrator
from dbops.postgres.connection import connect
from dbops.schema.snapshot import read_schema

if TYPE_CHECKING:
    import psycopg

    from dbops.config.model import Environment
    from dbops.migrations.scripts import Script
    from dbops.postgres.databases import Scratch
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


def _apply(conn: psycopg.Connection[Any], scratch: Scratch, scripts: Sequence[Script]) -> None:
    migrator = Migrator(conn, scratch.target)
    migrator.ensure_bookkeeping()
    for script in scripts:
        try:
            migrator.apply(script)
        except DbopsError as exc:
            where = "on the embedded server" if scratch.location == "embedded" else "on the same server"
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
