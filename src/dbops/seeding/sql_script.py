"""A ``.sql`` seed read as psql reads a script: its statements, and the ``COPY ... FROM stdin``
blocks whose data lines follow them up to a line ``\\.`` (as ``pg_dump --data-only`` writes
them).

The text is split by dbops.backups.psql_lexer, psql's own rules for strings, quoted names,
dollar quotes and comments. dbops loads the seed itself, so a psql command (``\\connect``,
``\\i``, ``\\set``, ``\\!``...) cannot run: it is refused, naming its file and line, before
anything loads. pg_dump's own ``\\restrict KEY`` and ``\\unrestrict KEY`` lines are skipped,
and so is its ``SET transaction_timeout`` on a server before 17, which has no such setting.

A seed is a Jinja2 template, but the data of a ``COPY ... FROM stdin;`` line is not (data holds
``{{`` in arrays of arrays, ``{#`` in any text): protect() takes it out before rendering, as
template variables that give it back unchanged. A file pg_dump wrote (it begins with pg_dump's
``-- PostgreSQL database dump`` header) is not a template at all: its INSERT statements
(``--inserts``) hold the same data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dbops.backups.psql_lexer import Lexer, Refused
from dbops.migrations.scripts import TRANSACTION_CONTROL, Statement, code_of
from dbops.seeding.files import BadSeed

DATA = "_dbops_copy_data"  # the template variable holding the COPY data protect() took out
_COPY_LINE = re.compile(r"^[ \t]*COPY[ \t].*[ \t]FROM[ \t]+stdin[ \t]*;[ \t]*\r?$", re.I)
_COPY_FROM_STDIN = re.compile(r"^COPY\s.*\sFROM\s+STDIN\b", re.I | re.S)
_COPY_TO_STDOUT = re.compile(r"^COPY\s.*\sTO\s+STDOUT\b", re.I | re.S)
_RESTRICT = re.compile(rb"\\(?:un)?restrict [A-Za-z0-9]+[ \t]*\r?\n?$")  # matched at a line's start
_TIMEOUT = re.compile(r"^SET\s+transaction_timeout\b", re.I)
_CONFORMING = re.compile(r"standard_conforming_strings", re.I)
_CONFORMING_ON = re.compile(r"^SET\s+standard_conforming_strings\s*(=|TO)\s*'?on'?\s*;?\s*$", re.I)
_AFTER_COPY = re.compile(rb"[ \t]*(--[^\n]*)?\r?\n?$")  # what may follow COPY ... FROM stdin; on its line
_END = "\\."


@dataclass(frozen=True)
class Piece:
    """A statement of the seed; for COPY ... FROM stdin, with its data lines (up to \\.)."""

    statement: Statement
    data: bytes | None = None  # as the file holds it (UTF-8), for COPY to send as it is
    data_line: int = 0  # the file line of the first data line


_PG_DUMP_HEADER = re.compile(r"\A\ufeff?--\r?\n-- PostgreSQL database dump\r?\n")


def from_pg_dump(text: str) -> bool:
    """Whether pg_dump wrote this file (its header): then it is SQL as it stands, not a template."""
    return _PG_DUMP_HEADER.match(text) is not None


def protect(text: str) -> tuple[str, list[str]]:
    """The template with the data of each ``COPY ... FROM stdin;`` line replaced by a variable
    (DATA[i]), and the data; every line stays where it was. Data without its end line stays in
    the template: split() names the error."""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    data: list[str] = []
    i = 0
    while i < len(lines):
        out.append(lines[i])
        if _COPY_LINE.match(lines[i].rstrip("\n")):
            end = next((j for j in range(i + 1, len(lines)) if lines[j].rstrip("\r\n") == _END), None)
            if end is not None and end > i + 1:
                data.append("".join(lines[i + 1 : end]))
                out.append(f"{{{{ {DATA}[{len(data) - 1}] }}}}")
                i = end
                continue
        i += 1
    return "".join(out), data


def split(text: str, shown: str, server_major: int) -> list[Piece]:
    """The rendered seed as psql would run it; BadSeed (exit 2) for what cannot run in a seed."""
    raw = text.encode("utf-8")
    lexer = _Splitter()
    pieces: list[Piece] = []
    start = 0  # where the statement being read began (after the previous one)
    start_line = 1  # the line of `start`
    pos, line = 0, 0  # the line being read: its offset, its number
    while pos < len(raw):
        newline = raw.find(b"\n", pos)
        end = len(raw) if newline < 0 else newline + 1
        line += 1
        if (
            lexer.between_statements
            and _RESTRICT.match(raw, pos, end)
            and not code_of(raw[start:pos].decode("utf-8")).strip()
        ):
            start, start_line, pos = end, line + 1, end  # pg_dump's own \restrict lines
            continue
        lexer.ends = []
        try:
            lexer.line(raw[pos:end], copy_ok=True)
        except Refused as exc:
            raise _refused(shown, line, raw[pos + max(lexer.meta_at, 0) : end], exc) from None
        for ended in lexer.ends:
            piece = _piece(raw[start : pos + ended].decode("utf-8"), start_line, shown, server_major)
            start, start_line = pos + ended, line
            if piece is None:
                continue
            if _COPY_FROM_STDIN.match(code_of(piece.statement.sql)):
                if ended != lexer.ends[-1] or not _AFTER_COPY.match(raw, pos + ended, end):
                    raise _bad_copy(shown, piece, "ends its line: its data are the lines after it")
                data, after, lines = _copy_data(raw, end, shown, piece)
                pieces.append(Piece(piece.statement, data, line + 1))
                start, start_line, end = after, line + lines + 1, after
                line += lines
                break
            pieces.append(piece)
        pos = end
    rest = raw[start:].decode("utf-8")
    last = _piece(rest, start_line, shown, server_major) if code_of(rest).strip() else None
    return [*pieces, *([last] if last else [])]


class _Splitter(Lexer):
    """The lexer, telling where in the line each statement ended and where a psql command began."""

    def __init__(self) -> None:
        super().__init__()
        self.ends: list[int] = []  # offsets in the current line just after each ending semicolon
        self.meta_at = -1

    def _normal(self, text: bytes, pos: int) -> int:
        ended = self.ended
        try:
            after = super()._normal(text, pos)
        except Refused:
            self.meta_at = text.find(b"\\", pos)
            raise
        if self.ended != ended:
            self.ends.append(after)
        return after


def _piece(sql: str, line: int, shown: str, server_major: int) -> Piece | None:
    """A statement found, checked; None for nothing but comments and pg_dump's own leftovers."""
    code = code_of(sql)
    if not code.strip() or code.strip() == ";":
        return None
    line += sql[: len(sql) - len(code)].count("\n")
    statement = Statement(sql.strip(), line)
    if TRANSACTION_CONTROL.match(code):
        raise BadSeed(
            f"{shown}:{line}: {statement.summary}: one transaction",
            "Remove it: a seed may not commit or roll back part of itself",
        )
    if _CONFORMING.search(code) and not _CONFORMING_ON.match(code):
        raise BadSeed(
            f"{shown}:{line}: {statement.summary}: a seed is read with standard_conforming_strings on",
            "Remove it, and write strings with backslashes as E'...'",
        )
    if _COPY_TO_STDOUT.match(code):
        raise BadSeed(
            f"{shown}:{line}: {statement.summary}: COPY ... TO STDOUT has nowhere to go in a seed",
            "Remove it; a seed loads data with INSERT or COPY ... FROM stdin",
        )
    if server_major < 17 and _TIMEOUT.match(code):
        return None  # pg_dump 17+ writes it; older servers have no transaction_timeout
    return Piece(statement)


def _copy_data(raw: bytes, start: int, shown: str, piece: Piece) -> tuple[bytes, int, int]:
    """The data after COPY ... FROM stdin; at `start`: (the data, where the line after \\. begins,
    how many lines the data and its end take)."""
    at = start
    while at <= len(raw):
        found = raw.find(b"\\.", at)
        if found < 0:
            break
        line_end = raw.find(b"\n", found)
        line_end = len(raw) if line_end < 0 else line_end
        if (found == start or raw[found - 1 : found] == b"\n") and raw[found + 2 : line_end] in (b"", b"\r"):
            data = raw[start:found]
            after = min(line_end + 1, len(raw))
            return data, after, data.count(b"\n") + 1
        at = found + 2
    raise _bad_copy(shown, piece, f"has no end: no line {_END} after its data, before the end of the file")


def _bad_copy(shown: str, piece: Piece, problem: str) -> BadSeed:
    return BadSeed(
        f"{shown}:{piece.statement.line}: {piece.statement.summary}: COPY ... FROM stdin {problem}",
        f"Write it as pg_dump --data-only does: COPY ... FROM stdin; on a line, the rows, then a line {_END}",
    )


def _refused(shown: str, line: int, command: bytes, exc: Refused) -> BadSeed:
    said = command.decode("utf-8", "replace").strip()
    if exc.reason.startswith("the psql command"):
        said = said if len(said) <= 60 else said[:57] + "..."
        return BadSeed(
            f"{shown}:{line}: {said}: a psql command, which a seed cannot run",
            "Remove it: dbops loads a .sql seed itself, in one transaction; it holds SQL statements "
            "and COPY ... FROM stdin data, as pg_dump --data-only writes them",
        )
    return BadSeed(
        f"{shown}:{line}: {exc.reason}: psql and the server may read it differently",
        "Write it another way (a space between a number and a quote)",
    )


_NAME = r'(?:"(?:[^"]|"")+"|[^\s"(.;,]+)'
_TARGET = re.compile(rf"^(?:INSERT\s+INTO|COPY)\s+({_NAME}(?:\s*\.\s*{_NAME})?)", re.I)


def target(sql: str) -> str | None:
    """The table an INSERT or COPY writes to, named as the seed report names tables: as
    PostgreSQL reads the name (unquoted, folded to lower case), without the schema public."""
    found = _TARGET.match(code_of(sql))
    if found is None:
        return None
    parts = re.findall(_NAME, found.group(1))
    names = [p[1:-1].replace('""', '"') if p.startswith('"') else p.lower() for p in parts]
    return ".".join(names[1:] if names[0] == "public" and len(names) > 1 else names)
