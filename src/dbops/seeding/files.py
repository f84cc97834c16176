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

from dbops.config import yaml_lines
from dbops.config.yaml_lines import YamlSyntaxError, line_of
from dbops.errors import DbopsError
from dbops.seeding import fixture_text

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
    # The fast reader's form: every row has these columns, in this order; values are scalars.
    columns: tuple[str, ...] = ()
    values: list[tuple[Any, ...]] = field(default_factory=list)
    strs: dict[int, list[str]] = field(default_factory=dict)  # column index -> str() of each value
    by_column: list[list[Any]] = field(default_factory=list)  # the values again, a list a column

    def __len__(self) -> int:
        return len(self.values) if self.columns else len(self.rows)

    def dicts(self) -> list[dict[str, Any]]:
        if self.columns:
            return [dict(zip(self.columns, row, strict=True)) for row in self.values]
        return self.rows


@dataclass
class SeedFile:
    path: Path
    kind: str  # sql | yaml | csv | py
    tables: list[Rows] = field(default_factory=list)
    text: str = ""


def discover(folder: Path, environment: str) -> list[Path]:
    """Common files first, then the environment's own folder; file-name order within each."""
    if not folder.is_dir():
        return []
    common = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in SEED_KINDS)
    own = folder / environment
    extra = sorted(p for p in own.iterdir() if p.is_file() and p.suffix in SEED_KINDS) if own.is_dir() else []
    return [*common, *extra]


def read(path: Path, shown: str | None = None) -> SeedFile:
    """shown: the path as messages name it (relative to the project)."""
    kind = {".yml": "yaml"}.get(path.suffix, path.suffix.lstrip("."))
    if kind == "csv":  # streamed to COPY as it is, when it loads
        return SeedFile(path, kind, [Rows(_CSV_PREFIX.sub("", path.stem), path, 1)])
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadSeed(f"Cannot read {shown or path.name}: {exc}", "Seed files are UTF-8 text") from None
    if kind == "yaml":
        return SeedFile(path, kind, _yaml_tables(path, text, shown or path.name))
    return SeedFile(path, kind, [], text)


# --------------------------------------------------------------------------- YAML


def _yaml_tables(path: Path, text: str, shown: str) -> list[Rows]:
    """Large fixtures of the usual shape are read by fixture_text; anything else by PyYAML."""
    try:
        fast = fixture_text.split(text)
    except (ValueError, TypeError):  # a value the fast reader cannot convert: PyYAML says where
        fast = None
    if fast is None:
        return _pyyaml_tables(path, text, shown)
    tables: list[Rows] = []
    for table in fast:
        if table.name.startswith("_"):
            continue
        if any(t.table == table.name for t in tables):
            raise BadSeed(
                f"{shown}:{table.line}: {table.name} appears twice in this file; put its rows together",
                "See the seeds section of the README",
            )
        rows = (
            _pyyaml_tables(path, table.head, shown)[0] if table.head else Rows(table.name, path, table.line)
        )
        if rows.accounts and table.values and not set(rows.accounts) <= set(table.columns):
            raise BadSeed(
                f"{shown}:{table.lines[0]}: {table.name}: the row lacks the accounts: columns "
                + ", ".join(rows.accounts),
                "See the seeds section of the README",
            )
        rows.columns, rows.values, rows.lines = tuple(table.columns), table.values, table.lines
        rows.strs, rows.by_column = table.strs, table.by_column
        tables.append(rows)
    return tables


def _pyyaml_tables(path: Path, text: str, shown: str) -> list[Rows]:
    import yaml  # for its node classes; yaml_lines has imported it already

    try:
        with yaml_lines.composed(text) as (loader, root):
            if root is None:
                return []
            if not isinstance(root, yaml.MappingNode):
                raise _bad(shown, root, "expected a mapping of table names to rows")
            loader.flatten_mapping(root)
            tables: list[Rows] = []
            for key_node, value_node in root.value:
                name = loader.construct_object(key_node)
                if not isinstance(name, str):
                    raise _bad(shown, key_node, "table names must be strings")
                if name.startswith("_"):
                    continue  # reserved for notes
                if any(t.table == name for t in tables):
                    raise _bad(shown, key_node, f"{name} appears twice in this file; put its rows together")
                tables.append(_table(loader, path, shown, name, key_node, value_node))
            return tables
    except YamlSyntaxError as exc:
        raise BadSeed(f"{exc.where(shown)}: invalid YAML: {exc.problem}", "Fix the YAML syntax") from None


def _table(loader: Any, path: Path, shown: str, name: str, key_node: Any, node: Any) -> Rows:
    import yaml

    rows = Rows(name, path, line_of(key_node))
    rows_node = node
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        options = {loader.construct_object(k): v for k, v in node.value}
        unknown = sorted(set(options) - set(_TABLE_OPTIONS), key=str)
        if unknown:
            raise _bad(
                shown, node, f"{name}: unknown option {unknown[0]!r} (known: {', '.join(_TABLE_OPTIONS)})"
            )
        rows_node = options.get("rows")
        if "key" in options:
            key = loader.construct_object(options["key"], deep=True)
            key = [key] if isinstance(key, str) else key
            if not isinstance(key, list) or not key or not all(isinstance(k, str) for k in key):
                raise _bad(shown, options["key"], f"{name}: key: a column name or a list of them")
            rows.key = tuple(key)
        if "hash" in options:
            hashed = loader.construct_object(options["hash"], deep=True)
            if not isinstance(hashed, dict) or not all(m in ("scrypt", "sha256") for m in hashed.values()):
                raise _bad(shown, options["hash"], f"{name}: hash: a mapping of column to scrypt or sha256")
            rows.hashed = {str(k): str(v) for k, v in hashed.items()}
        if "accounts" in options:
            accounts = loader.construct_object(options["accounts"], deep=True)
            if not isinstance(accounts, dict) or not {"login", "password"} <= set(accounts):
                raise _bad(
                    shown, options["accounts"], f"{name}: accounts: {{login: column, password: column}}"
                )
            rows.accounts = (str(accounts["login"]), str(accounts["password"]))
    if rows_node is None:
        return rows
    if not isinstance(rows_node, yaml.SequenceNode):
        raise _bad(shown, rows_node, f"{name}: expected a list of rows")
    for item in rows_node.value:
        row = _construct(loader, shown, name, item)
        if not isinstance(row, dict) or not all(isinstance(k, str) for k in row):
            raise _bad(shown, item, f"{name}: each row must be a mapping of column names to values")
        if rows.accounts and not set(rows.accounts) <= set(row):
            raise _bad(shown, item, f"{name}: the row lacks the accounts: columns {', '.join(rows.accounts)}")
        rows.rows.append(row)
        rows.lines.append(line_of(item))
    return rows


def _construct(loader: Any, shown: str, name: str, node: Any) -> Any:
    """A row as PyYAML builds it; a value it cannot build (an impossible date such as
    2025-13-01, a list as a key) is the file's error, at the row's line."""
    try:
        return loader.construct_object(node, deep=True)
    except (ValueError, TypeError) as exc:
        raise BadSeed(
            f"{shown}:{line_of(node)}: {name}: a value YAML cannot read: {exc}",
            "Fix the value, or quote it to load it as text",
        ) from None


def _bad(shown: str, node: Any, message: str) -> BadSeed:
    return BadSeed(f"{shown}:{line_of(node)}: {message}", "See the seeds section of the README")
