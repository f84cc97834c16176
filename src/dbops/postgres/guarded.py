"""The connection user code gets (a Python seed, a Python migration's steps): it may not end the
transaction dbops runs it in.

``COMMIT``, ``ROLLBACK``, ``END``, ``ABORT``, ``BEGIN``, ``PREPARE TRANSACTION``, ``COMMIT``/
``ROLLBACK PREPARED``, ``commit()``, ``rollback()``, ``autocommit``, the two-phase ``tpc_*``
calls, ``close()`` and ``with db:`` (which commits) are refused before anything reaches the
server, with the file and line of the call. Savepoints stay usable: ``SAVEPOINT``, ``RELEASE``,
``ROLLBACK TO SAVEPOINT`` and psycopg's ``with db.transaction():`` blocks. A refusal the code
catches and ignores still fails the run once the code returns.

This guards against mistakes, not against code set on harm: the psycopg connection underneath
is reachable (``pgconn``), as is any other connection the code opens itself.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from dbops.errors import DbopsError

T = TypeVar("T")

_REFUSED_METHODS = frozenset(
    {
        "commit",
        "rollback",
        "set_autocommit",
        "tpc_begin",
        "tpc_prepare",
        "tpc_commit",
        "tpc_rollback",
        "close",
    }
)
_REFUSED_SETTINGS = frozenset({"autocommit", "isolation_level", "read_only", "deferrable"})
_ENDS = frozenset({"COMMIT", "END_P", "ABORT_P", "BEGIN_P", "START"})  # a statement's first word
_COMMENTS = frozenset({"SQL_COMMENT", "C_COMMENT"})
# every statement that starts or ends a transaction has one of these words, anywhere in any case
_MAY_CONTROL = re.compile(r"commit|end|abort|begin|start|rollback|prepare", re.IGNORECASE)


class TransactionControlRefused(DbopsError):
    """User code tried to end (or start) the transaction dbops runs it in."""


def run_guarded(
    conn: Any, code: Callable[[GuardedConnection], T], *, what: str, root: Path, hint: str = ""
) -> T:
    """code(guarded conn); a refusal it swallowed is raised when it returns (or raises).

    what names the code in messages ("a seed"); root is the folder paths are shown from."""
    guarded = GuardedConnection(conn, what, root, hint)
    try:
        result = code(guarded)
    except BaseException:
        if guarded.refused is not None:
            raise guarded.refused from None
        raise
    if guarded.refused is not None:
        raise guarded.refused
    return result


def refuse_statement(query: Any, conn: Any, *, what: str, where: str, hint: str = "") -> None:
    """Refuse SQL text (str, bytes or psycopg.sql) that ends or starts a transaction."""
    statement = transaction_control(_text(query, conn))
    if statement is not None:
        raise _refusal(where, _short(statement), what, hint)


@lru_cache(maxsize=512)
def transaction_control(sql: str) -> str | None:
    """The first statement of sql that starts or ends a transaction, as written; else None.

    Read with PostgreSQL's own scanner (pglast), so quoted text, comments and dollar-quoted
    bodies never count, and ``BEGIN ATOMIC ... END`` bodies are not statements of their own.
    """
    if not _MAY_CONTROL.search(sql):  # no such word anywhere: no need to load the scanner (~50 ms)
        return None
    from pglast import parser

    try:
        tokens = parser.scan(sql)
    except parser.ParseError:
        return None  # the server refuses the whole text before running any of it
    statement: list[Any] = []
    depth = 0  # BEGIN ATOMIC ... END (and CASE ... END inside it)
    for token in [*tokens, None]:
        if token is not None and token.name in _COMMENTS:
            continue
        if token is None or (token.name == "ASCII_59" and depth == 0):
            if statement and _ends_transaction([t.name for t in statement[:4]]):
                return sql[statement[0].start : statement[-1].end + 1]
            statement = []
            continue
        if (statement and token.name == "BEGIN_P") or (depth and token.name == "CASE"):
            depth += 1
        elif depth and token.name == "END_P":
            depth -= 1
        statement.append(token)
    return None


def _ends_transaction(names: list[str]) -> bool:
    first, rest = names[0], names[1:]
    if first == "ROLLBACK":  # ROLLBACK [WORK | TRANSACTION] TO [SAVEPOINT] name is a savepoint's
        to_savepoint = rest[:1] == ["TO"] or (rest[:1] in (["WORK"], ["TRANSACTION"]) and rest[1:2] == ["TO"])
        return not to_savepoint
    if first == "PREPARE":
        return rest[:1] == ["TRANSACTION"]
    return first in _ENDS


class GuardedConnection:
    """A psycopg connection for user code: everything but transaction control passes through."""

    refused: TransactionControlRefused | None

    def __init__(self, conn: Any, what: str, root: Path, hint: str = "") -> None:
        for name, value in (
            ("_conn", conn),
            ("_what", what),
            ("_root", root),
            ("_hint", hint),
            ("refused", None),
        ):
            object.__setattr__(self, name, value)

    # statements
    def execute(self, query: Any, *args: Any, **kwargs: Any) -> GuardedCursor:
        self._check(query)
        return GuardedCursor(self._conn.execute(query, *args, **kwargs), self)

    def cursor(self, *args: Any, **kwargs: Any) -> GuardedCursor:
        return GuardedCursor(self._conn.cursor(*args, **kwargs), self)

    # what ends the transaction
    def __getattr__(self, name: str) -> Any:
        if name in _REFUSED_METHODS:
            return lambda *args, **kwargs: self._refuse(f"{name}()")
        return getattr(self._conn, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _REFUSED_SETTINGS:
            self._refuse(f"{name} = {value!r}")
        setattr(self._conn, name, value)

    def __enter__(self) -> GuardedConnection:
        self._refuse("with db: (its end commits)")
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self._conn!r}>"

    # the checks
    def _check(self, query: Any) -> None:
        statement = transaction_control(_text(query, self._conn))
        if statement is not None:
            self._refuse(_short(statement))

    def _refuse(self, call: str) -> None:
        refusal = _refusal(_caller(self._root), call, self._what, self._hint)
        if self.refused is None:
            object.__setattr__(self, "refused", refusal)
        raise refusal


class GuardedCursor:
    """A cursor of a GuardedConnection: its statements are checked, its connection is guarded."""

    def __init__(self, cursor: Any, guard: GuardedConnection) -> None:
        self._cursor = cursor
        self._guard = guard

    @property
    def connection(self) -> GuardedConnection:
        return self._guard

    def execute(self, query: Any, *args: Any, **kwargs: Any) -> GuardedCursor:
        self._guard._check(query)
        self._cursor.execute(query, *args, **kwargs)
        return self

    def executemany(self, query: Any, *args: Any, **kwargs: Any) -> None:
        self._guard._check(query)
        self._cursor.executemany(query, *args, **kwargs)

    def stream(self, query: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
        self._guard._check(query)
        return self._cursor.stream(query, *args, **kwargs)  # type: ignore[no-any-return]

    def copy(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        self._guard._check(statement)
        return self._cursor.copy(statement, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._cursor)

    def __enter__(self) -> GuardedCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self._cursor.close()


def _text(query: Any, conn: Any) -> str:
    if isinstance(query, str):
        return query
    if isinstance(query, bytes | bytearray | memoryview):
        return bytes(query).decode("utf-8", "replace")
    as_string = getattr(query, "as_string", None)  # psycopg.sql.Composable
    return str(as_string(conn)) if callable(as_string) else str(query)


def _short(statement: str) -> str:
    flat = " ".join(statement.split())
    return flat if len(flat) <= 60 else flat[:57] + "..."


def _caller(root: Path) -> str:
    """file:line of the innermost frame that is neither this module nor psycopg: the user's call."""
    import psycopg

    library = str(Path(psycopg.__file__).parent)
    frame = sys._getframe(1)
    while frame.f_back is not None and (
        frame.f_code.co_filename == __file__ or frame.f_code.co_filename.startswith(library)
    ):
        frame = frame.f_back
    path = Path(frame.f_code.co_filename)
    shown = path.relative_to(root) if path.is_relative_to(root) else path
    return f"{shown}:{frame.f_lineno}"


def _refusal(where: str, call: str, what: str, hint: str) -> TransactionControlRefused:
    return TransactionControlRefused(
        f"{where}: {call}: {what} may not end or start a transaction itself",
        hint
        or f"Remove it: dbops runs {what} in one transaction and commits it when all of it succeeded; "
        "to undo a part, use a savepoint (with db.transaction(): ...)",
    )
