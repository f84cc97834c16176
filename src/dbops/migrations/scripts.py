"""Migration files -> runnable scripts, parsed exactly as yoyo parses them.

SQL files are read as yoyo's reader reads them (sqlparse split, the ``-- depends:`` and
``-- transactional:`` directives of the leading comment block; the split is cached by content
hash in .dbops/, see parse_cache.py); each statement keeps the line
it starts on, so a failure can name it. Python files are loaded by yoyo (``step()``), and
their steps are flattened into apply/rollback pairs that dbops runs on its own connection.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from dbops.errors import DbopsError
from dbops.migrations.files import MigrationFile, checksum_of
from dbops.migrations.parse_cache import ParseCache
from dbops.toposort import CycleError, stable_order


class BadMigration(DbopsError):
    """A migration file that cannot be read, parsed or ordered."""

    exit_code = 2


@dataclass(frozen=True)
class Statement:
    sql: str
    line: int  # the line of its file where the statement starts

    @property
    def summary(self) -> str:
        first = " ".join(code_of(self.sql).rstrip().rstrip(";").split())
        return first if len(first) <= 70 else first[:67] + "..."


@dataclass(frozen=True)
class PythonStep:
    apply: str | Callable[[Any], Any] | None
    rollback: str | Callable[[Any], Any] | None
    ignore_errors: str | None = None


@dataclass(frozen=True)
class Script:
    file: MigrationFile
    depends: tuple[str, ...]
    transactional: bool
    statements: tuple[Statement, ...] = ()
    python_steps: tuple[PythonStep, ...] = field(default=(), repr=False)
    checksum: str = ""  # of the bytes that were parsed: what runs is what gets recorded

    @cached_property
    def rollback_statements(self) -> tuple[Statement, ...]:
        """The rollback script, parsed when first needed (applying never needs it)."""
        if self.file.rollback is None or self.is_python:
            return ()
        text = _decode(self.file.rollback, _read_bytes(self.file.rollback))
        return _locate(text, _split(text)[1])

    @property
    def id(self) -> str:
        return self.file.id

    @property
    def name(self) -> str:
        return self.file.path.name

    @property
    def is_python(self) -> bool:
        return self.file.path.suffix == ".py"

    @property
    def empty(self) -> bool:
        """Nothing to run: an untouched template, only comments (or a Python file without step())."""
        return not self.statements and not self.python_steps

    @property
    def reversible(self) -> bool:
        if self.is_python:
            return bool(self.python_steps) and all(s.rollback is not None for s in self.python_steps)
        return bool(self.rollback_statements)


def load(
    files: Sequence[MigrationFile], wanted: Iterable[str] | None = None, *, cache: Path | None = None
) -> dict[str, Script]:
    """Load the wanted migrations (all by default); every file is known for dependencies.
    `cache`: the folder of the parse cache (the project's .dbops/), where SQL files' splits are
    kept by content hash (parse_cache.py)."""
    ids = {f.id for f in files}
    chosen = set(ids if wanted is None else wanted)
    python = [f for f in files if f.path.suffix == ".py"]
    registry = _yoyo_registry(files) if any(f.id in chosen for f in python) else {}
    scripts = {}
    parses = ParseCache(cache) if cache is not None else None
    for file in files:
        if file.id not in chosen:
            continue
        script = _load_python(file, registry) if file.path.suffix == ".py" else _load_sql(file, parses)
        unknown = [d for d in script.depends if d not in ids]
        if unknown:
            folder = file.path.parent.name
            raise BadMigration(
                f"{file.path.name}: depends on {', '.join(unknown)}, which is not in {folder}/",
                "Fix the -- depends: line (ids are file names without .sql/.py)",
            )
        scripts[file.id] = script
    if parses is not None:
        parses.save()
    return scripts


def refuse_empty(scripts: Iterable[Script]) -> None:
    """An empty migration would be recorded as applied, doing nothing: refuse it, naming it."""
    for script in scripts:
        if script.empty:
            what = "calls no step()" if script.is_python else "holds no SQL statement, only comments"
            raise BadMigration(
                f"{script.name} is empty: it {what}",
                "Write the change in it, or delete the file (applied, it would be recorded doing nothing)",
            )


def order(scripts: Sequence[Script]) -> list[Script]:
    """Dependency order, file order where free (as yoyo does); a cycle is an error naming it."""
    in_file_order = sorted(scripts, key=lambda s: str(s.file.path))
    by_id = {s.id: s for s in in_file_order}
    try:
        ids = stable_order(list(by_id), {s.id: sorted(s.depends) for s in in_file_order})
    except CycleError as exc:
        raise BadMigration(
            f"Migration dependencies form a cycle: {' -> '.join(exc.args[1])}", "Break the cycle"
        ) from None
    return [by_id[i] for i in ids]


# --------------------------------------------------------------------------- SQL


TRANSACTION_CONTROL = re.compile(
    r"^(BEGIN|START\s+TRANSACTION|COMMIT|END|ABORT|ROLLBACK(?!\s+TO\b)|PREPARE\s+TRANSACTION)\b",
    re.IGNORECASE,
)
_RESTRICT = re.compile(r"^\\(?:un)?restrict [A-Za-z0-9]+[ \t]*$", re.MULTILINE)


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise BadMigration(
            f"Cannot read {path.name}: {exc.strerror}", "Check the file's permissions"
        ) from None


def _decode(path: Path, raw: bytes) -> str:
    """As yoyo reads it: UTF-8, universal newlines."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadMigration(
            f"{path.name}: not UTF-8 ({exc.reason} at byte {exc.start})", "Save it as UTF-8"
        ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _split(text: str, cache: ParseCache | None = None) -> tuple[dict[str, str], list[str]]:
    """yoyo's read_sql_migration, on text we already hold (so what runs is what we hash): the
    sqlparse split (from `cache` when it holds this text), then the leading comment block's
    directives."""
    spans = cache.get(text) if cache is not None else None
    if spans is not None:
        statements = [text[start:end] for start, end in spans]
    else:
        import sqlparse  # about 25 ms: only a file the cache does not hold pays for it

        statements = sqlparse.split(text)
        if cache is not None and all(statements):
            cache.put(text, statements)
    directives: dict[str, str] = {}
    if statements:
        directives, statements[0] = _directives(statements[0])
    return directives, [s for s in statements if s.strip()]


_DIRECTIVE = re.compile(r"^\s*--\s*(transactional|depends)\s*:\s*(.*)$")
_COMMENT_OR_EMPTY = re.compile(r"^(\s*|\s*--.*)$")


def _directives(sql: str) -> tuple[dict[str, str], str]:
    """yoyo's parse_metadata_from_sql_comments (yoyo 9), less the leading comment it also returns;
    kept here so that a cached split needs neither yoyo nor sqlparse (tests hold it to yoyo's)."""
    ending = re.search(r"\n|\r\n|\r", sql + "\n").group(0)  # type: ignore[union-attr]
    lines = iter(sql.split(ending))
    directives: dict[str, str] = {}
    rest = []
    for line in lines:
        match = _DIRECTIVE.match(line)
        if match:
            name, value = match.groups()
            directives[name] = f"{directives[name]} {value}" if name in directives else value
        elif not _COMMENT_OR_EMPTY.match(line):
            rest.append(line)
            break
    rest.extend(lines)
    return directives, ending.join(rest)


def _load_sql(file: MigrationFile, cache: ParseCache | None = None) -> Script:
    raw = _read_bytes(file.path)
    source = without_restrict(_decode(file.path, raw))
    directives, statements = _split(source, cache)
    transactional = directives.get("transactional", "true").strip().lower()
    if transactional not in ("true", "false"):
        raise BadMigration(f"{file.path.name}: -- transactional: must be true or false", "Fix the directive")
    located = _locate(source, statements)
    if transactional == "true":
        for statement in located:
            if TRANSACTION_CONTROL.match(code_of(statement.sql)):
                raise BadMigration(
                    f"{file.path.name}:{statement.line}: {statement.summary}: a migration runs in one "
                    "transaction with its record, and may not end or start one itself",
                    "Remove it, or add -- transactional: false to the leading comment block",
                )
    return Script(
        file=file,
        depends=tuple(d for d in directives.get("depends", "").split() if d),
        transactional=transactional == "true",
        statements=located,
        checksum=checksum_of([(file.path.name, raw)]),  # the forward migration only, as files.py says
    )


def without_restrict(text: str) -> str:
    """The text with psql's ``\\restrict KEY`` and ``\\unrestrict KEY`` lines blanked (pg_dump
    17.6 and later write them around a script; they guard psql and mean nothing to the server):
    a pg_dump schema file runs as a migration, its lines where they were."""
    return _RESTRICT.sub("", text) if "restrict " in text else text


def split_sql(text: str) -> tuple[Statement, ...]:
    """SQL text -> its statements, each with the line it starts on (as migrations are split)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _locate(text, _split(text)[1])


def code_of(sql: str) -> str:
    """The statement without its leading whitespace and comments."""
    return sql[_code_start(sql) :]


def _code_start(sql: str) -> int:
    """Where the code begins: after whitespace, -- comments and /* */ comments, which nest in
    PostgreSQL (``/* a /* b */ c */ COMMIT`` is a COMMIT)."""
    at, end = 0, len(sql)
    while at < end:
        if sql[at].isspace():
            at += 1
        elif sql.startswith("--", at):
            newline = sql.find("\n", at)
            at = end if newline < 0 else newline + 1
        elif sql.startswith("/*", at):
            depth, at = 1, at + 2
            while depth:
                close = sql.find("*/", at)
                if close < 0:
                    return end
                opened = sql.find("/*", at, close)
                depth, at = (depth + 1, opened + 2) if opened >= 0 else (depth - 1, close + 2)
        else:
            break
    return at


def _locate(source: str, statements: Sequence[str]) -> tuple[Statement, ...]:
    """Each statement with the line its code starts on (after any comment above it)."""
    located = []
    cursor = _code_start(source)
    for sql in statements:
        text = sql.strip()
        found = source.find(text, cursor)
        start = (found if found >= 0 else cursor) + (len(text) - len(code_of(text)))
        located.append(Statement(text, source.count("\n", 0, start) + 1))
        if found >= 0:
            cursor = found + len(text)
    return tuple(located)


# --------------------------------------------------------------------------- Python


def _yoyo_registry(files: Sequence[MigrationFile]) -> dict[str, Any]:
    """yoyo resolves a Python migration's __depends__ through its global registry of Migrations."""
    from yoyo.migrations import Migration

    return {f.id: Migration(f.id, str(f.path), str(f.path.parent)) for f in files}


_YOYO_LOAD = threading.Lock()


def _load_python(file: MigrationFile, registry: dict[str, Any]) -> Script:
    from yoyo import exceptions

    migration = registry[file.id]
    try:
        # the logger switch is process-wide: one load at a time (a fleet run loads in threads),
        # so that one thread's restore never switches it back on under another
        with _YOYO_LOAD, _yoyo_silenced():  # it logs the traceback of a file it cannot import
            migration.load()
    except exceptions.BadMigration as exc:
        cause = exc.args[1] if len(exc.args) > 1 else exc
        raise BadMigration(
            f"{file.path.name}: cannot be loaded: {type(cause).__name__}: {cause}",
            "Fix the Python migration; it must call step() at import",
        ) from None
    depends = tuple(sorted(m.id for m in migration.depends))
    return Script(
        file=file,
        depends=depends,
        transactional=bool(migration.use_transactions),
        python_steps=tuple(_flatten(migration.steps or [])),
        checksum=checksum_of([(file.path.name, _read_bytes(file.path))]),
    )


@contextmanager
def _yoyo_silenced() -> Iterator[None]:
    """yoyo's logger off for the duration (restored after, for an application that embeds dbops)."""
    logger = logging.getLogger("yoyo.migrations")  # the logger of Migration.load
    before = logger.disabled
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = before


def _flatten(steps: Iterable[Any], ignore: str | None = None) -> Iterable[PythonStep]:
    from yoyo.migrations import StepGroup

    for wrapper in steps:
        inner = getattr(wrapper, "step", wrapper)
        ignore_errors = getattr(wrapper, "ignore_errors", None) or ignore
        if isinstance(inner, StepGroup):
            yield from _flatten(inner.steps, ignore_errors)
        else:
            yield PythonStep(inner._apply, inner._rollback, ignore_errors)
