"""Seed files -> tables of rows, each row knowing its file and line.

``seeds/`` holds files for every environment; ``seeds/<environment>/`` adds files for that one.
Kinds: ``.sql`` (a Jinja2 template), ``.yaml``/``.yml`` (table -> rows), ``.csv`` (one table,
header row; the table is the file name without a leading ``NN_``), ``.py`` (``def seed(db)``).

A YAML table is either a list of rows or a mapping with options::

    users:
      key: email                      # natural key for the upsert (default: the primary key)
      hash: {password: scrypt}        # columns stored hashed (deterministic per row)
      accounts: {login: email, password: password}   # listed as test accounts after seeding
      rows:
        - {email: admin@exfabrica.com, password: Admin123!, role: admin}
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dbops.errors import DbopsError

SEED_KINDS = (".sql", ".yaml", ".yml", ".csv", ".py")
_TABLE_OPTIONS = ("key", "hash", "accounts", "rows")
_CSV_PREFIX = re.compile(r"^\d+[_-]")


class BadSeed(DbopsError):
    """A seed file that cannot be read or does not have the expected shape."""

    exit_code = 2


@dataclass
class Rows:
    """Rows of one table from one file."""

    table: str
    file: Path
    line: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # the line of each row in its file
    key: tuple[str, ...] = ()
    hashed: dict[str, str] = field(default_factory=dict)
    accounts: tuple[str, str] | None = None  # (login column, password column)


@dataclass
class SeedFile:
    path: Path
    kind: str  # sql | yaml | csv | py
    tables: list[Rows] = field(default_factory=list)
    text: str = ""


def discover(folder: Path, environment: str, environments: tuple[str, ...]) -> list[Path]:
    """Common files first, then the environment's own folder; file-name order within each."""
    if not folder.is_dir():
        return []
    common = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in SEED_KINDS)
    own = folder / environment
    extra = sorted(p for p in own.iterdir() if p.is_file() and p.suffix in SEED_KINDS) if own.is_dir() else []
    del environments  # other environments' folders are simply not read
    return [*common, *extra]


def read(path: Path) -> SeedFile:
    kind = {".yml": "yaml"}.get(path.suffix, path.suffix.lstrip("."))
    if kind == "csv":  # streamed to COPY as it is, when it loads
        return SeedFile(path, kind, [Rows(_CSV_PREFIX.sub("", path.stem), path, 1)])
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadSeed(f"Cannot read {path.name}: {exc}", "Seed files are UTF-8 text") from None
    if kind == "yaml":
        return SeedFile(path, kind, _yaml_tables(path, text))
    return SeedFile(path, kind, [], text)


# --------------------------------------------------------------------------- YAML


def _yaml_tables(path: Path, text: str) -> list[Rows]:
    import yaml

    loader_class = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loader = loader_class(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return []
        if not isinstance(root, yaml.MappingNode):
            raise _bad(path, root, "expected a mapping of table names to rows")
        loader.flatten_mapping(root)
        tables = []
        for key_node, value_node in root.value:
            name = loader.construct_object(key_node)
            if not isinstance(name, str):
                raise _bad(path, key_node, "table names must be strings")
            if name.startswith("_"):
                continue  # reserved for notes
            tables.append(_table(loader, path, name, key_node, value_node))
        return tables
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path.name}:{mark.line + 1}:{mark.column + 1}" if mark else path.name
        raise BadSeed(f"{where}: invalid YAML: {exc.problem or exc.context}", "Fix the YAML syntax") from None
    finally:
        loader.dispose()


def _table(loader: Any, path: Path, name: str, key_node: Any, node: Any) -> Rows:
    import yaml

    rows = Rows(name, path, key_node.start_mark.line + 1)
    rows_node = node
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        options = {loader.construct_object(k): v for k, v in node.value}
        unknown = sorted(set(options) - set(_TABLE_OPTIONS))
        if unknown:
            raise _bad(
                path, node, f"{name}: unknown option {unknown[0]!r} (known: {', '.join(_TABLE_OPTIONS)})"
            )
        rows_node = options.get("rows")
        if "key" in options:
            key = loader.construct_object(options["key"], deep=True)
            rows.key = tuple([key] if isinstance(key, str) else key)
        if "hash" in options:
            rows.hashed = dict(loader.construct_object(options["hash"], deep=True))
        if "accounts" in options:
            accounts = loader.construct_object(options["accounts"], deep=True)
            rows.accounts = (accounts["login"], accounts["password"])
    if rows_node is None:
        return rows
    if not isinstance(rows_node, yaml.SequenceNode):
        raise _bad(path, rows_node, f"{name}: expected a list of rows")
    for item in rows_node.value:
        row = loader.construct_object(item, deep=True)
        if not isinstance(row, dict) or not all(isinstance(k, str) for k in row):
            raise _bad(path, item, f"{name}: each row must be a mapping of column names to values")
        rows.rows.append(row)
        rows.lines.append(item.start_mark.line + 1)
    return rows


def _bad(path: Path, node: Any, message: str) -> BadSeed:
    return BadSeed(
        f"{path.name}:{node.start_mark.line + 1}: {message}", "See the seeds section of the README"
    )
