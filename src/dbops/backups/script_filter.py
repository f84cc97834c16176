"""Adapting a pg_dump SQL script on its way to psql.

The script's head is the part before the first schema object, where pg_dump puts its session
settings and the database's own entries (``CREATE DATABASE``, ``\\connect``, the owner,
``ALTER DATABASE ... SET``, its comment and grants). After it, only statements are looked at:
table data (``COPY ... FROM stdin`` up to ``\\.``) goes through unread and uncopied (views of the
chunk it came in, nothing held back), its end found with memchr and its rows counted with one
``bytes.count`` per chunk.

- ``CREATE DATABASE``, ``DROP DATABASE`` (``--clean``) and the ``\\connect`` lines after them
  (pg_dump writes the same one again after the database's settings) are dropped: psql is
  already connected to the database being restored (a scratch database, or the live one in
  place), and must not leave it.
- The script is input, and psql runs backslash commands wherever they stand: every line psql
  will see is read by dbops.backups.psql_lexer first. pg_dump's own ``\\restrict KEY`` and
  ``\\unrestrict KEY`` lines are dropped (the restore wraps the whole script in a
  ``\\restrict`` of its own), the head's ``\\connect`` is dropped, ``\\.`` ends COPY
  data; any other backslash command, a COPY other than pg_dump's ``COPY ... FROM stdin;`` line,
  or a change of ``standard_conforming_strings`` raises ScriptRefused, naming the line, before
  psql gets a byte of that line.
- The database's own statements name the target database instead of the dumped one.
- ``SET transaction_timeout`` (pg_dump 17+) is dropped for servers older than 17, which
  reject it.
- The rows of each table's COPY block are counted on the way (its lines: text format writes a
  row per line), for the check after the load: psql loaded each block whole or stopped.
- Column options other than PostgreSQL's own (``n_distinct``, ``n_distinct_inherited``) are
  left out of ``ALTER COLUMN ... SET (...)``: some builds stamp every column with one of their
  own (``pg_attver``), which other servers reject.
"""

from __future__ import annotations

import re

from dbops.backups.psql_lexer import Lexer, Refused
from dbops.backups.rowcount import copy_table

_DB_STATEMENTS = (
    b"ALTER DATABASE ",
    b"COMMENT ON DATABASE ",
    b"GRANT ",
    b"REVOKE ",
    b"ALTER ROLE ",
    b"SECURITY LABEL ",
)
_DATABASE_NAME = re.compile(rb'(DATABASE )("(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)')
_HEADER = re.compile(rb"^-- Name: (.*?); Type: (.*?);")
_COLUMN_OPTIONS = re.compile(rb"^(ALTER TABLE .* ALTER COLUMN .* SET \()(.*)(\);\n?)$", re.S)
_KNOWN_COLUMN_OPTIONS = (b"n_distinct=", b"n_distinct_inherited=")
_RESTRICT = re.compile(rb"^\\(?:un)?restrict [A-Za-z0-9]+\r?\n?$")
_COPY_LINE = re.compile(rb"^COPY .* FROM stdin;\r?\n$", re.S)
_CONFORMING = re.compile(rb"standard_conforming_strings", re.I)
_CONFORMING_ON = b"SET standard_conforming_strings = on;\n"


class ScriptRefused(Exception):
    """A line that pg_dump never writes and psql must not see."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.reason = reason


def quote_ident(name: str) -> bytes:
    return ('"' + name.replace('"', '""') + '"').encode()


class ScriptFilter:
    def __init__(self, target_db: str, *, server_major: int, head_only: bool = False) -> None:
        self.target = quote_ident(target_db)
        self.drop_timeout = server_major < 17
        self.head_only = head_only  # keep only the database's own entries (and the settings)
        self.in_head = True
        self.in_copy = False
        self.rows: dict[tuple[str, str], int] = {}  # (schema, table) -> rows of its COPY blocks
        self._copy: tuple[tuple[str, str] | None, int] = (None, 0)  # the open block's table, first line
        self._line_start = True  # the COPY data still to read begins a line
        self._marker = b""  # the COPY data given so far ends in a line's "\\", "\\." or "\\.\\r"
        self.pending = b""
        self.lines = 0  # lines of the script read so far
        self.lexer = Lexer()
        self.created = False  # CREATE DATABASE seen (the \\connect after it is pg_dump's)
        self.connect_line = b""  # pg_dump's \\connect line: it may come again, the same

    def feed(self, data: bytes) -> bytes:
        return b"".join(self.parts(data))

    def parts(self, data: bytes) -> list[bytes | memoryview]:
        """What psql gets of `data`, in pieces: COPY data as views of `data` itself (not copied),
        the script's other lines one by one."""
        out: list[bytes | memoryview] = []
        if self.head_only and not self.in_head:
            return out
        buffer = self.pending + data if self.pending else data
        self.pending = b""
        pos = 0  # everything before it is handled
        while True:
            if self.in_copy:
                pos = self._copy_data(buffer, pos, out)
                if pos < 0:
                    return out  # all of it COPY data: nothing held back
                continue
            end = buffer.find(b"\n", pos)
            if end < 0 or (self.head_only and not self.in_head):
                break
            out.append(self._line(buffer[pos : end + 1]))
            pos = end + 1
        self.pending = buffer[pos:]
        return out

    def _copy_data(self, buffer: bytes, pos: int, out: list[bytes | memoryview]) -> int:
        """The COPY data that goes on at `pos`, into `out` as it is: where it ends (after its
        line "\\."; psql also takes "\\.\\r\\n"), or -1 when all of the buffer is data (a
        marker's beginning at its end remembered, the rest of its line to come)."""
        size = len(buffer)
        if self._marker or self._line_start:  # a line begins at `pos` (or began before it)
            probe = self._marker + buffer[pos : pos + 4]
            length = _marker_length(probe)
            if length > 0:
                return self._copy_ended(buffer, pos, pos + length - len(self._marker), out)
            if length < 0:  # all of the buffer's rest, and a marker's beginning
                self._marker = probe
                self._emit(buffer, pos, size, out)
                return -1
            self._marker = b""
        search = pos
        while True:
            found = _find_marker(buffer, search)
            if found < 0:
                break
            probe = buffer[found + 1 : found + 5]
            length = _marker_length(probe)
            if length > 0:
                return self._copy_ended(buffer, pos, found + 1 + length, out)
            if length < 0:  # the buffer ends in the marker's beginning
                self._marker = probe
                self._emit(buffer, pos, size, out)
                return -1
            search = found + 1
        self._emit(buffer, pos, size, out)
        if size > pos:  # a marker's "\\." would have been found: its "\\" may end the buffer
            self._line_start = buffer[size - 1] == 0x0A
            self._marker = b"\\" if buffer.endswith(b"\n\\", pos) else b""
        return -1

    def _emit(self, buffer: bytes, start: int, stop: int, out: list[bytes | memoryview]) -> None:
        if stop > start:
            out.append(memoryview(buffer)[start:stop] if stop - start > 4096 else buffer[start:stop])
            self.lines += buffer.count(b"\n", start, stop)

    def _copy_ended(self, buffer: bytes, pos: int, end: int, out: list[bytes | memoryview]) -> int:
        self._emit(buffer, pos, end, out)
        self.in_copy = False
        self._marker = b""
        table, first = self._copy
        if table is not None:  # its lines, but the one of \\.
            self.rows[table] = self.rows.get(table, 0) + self.lines - first
        return end

    def close(self) -> bytes:
        rest, self.pending = self.pending, b""
        if self.head_only and not self.in_head:
            return b""
        return rest if self.in_copy or not rest else self._line(rest)

    def _line(self, line: bytes) -> bytes:
        self.lines += 1
        if self.in_head and self._ends_head(line):
            self.in_head = False
            if self.head_only:
                return b""
        between = self.lexer.between_statements
        if between and _RESTRICT.match(line):
            return b""  # pg_dump's own \\restrict: the restore has one of its own
        if between and _COPY_LINE.match(line):
            self._check(line, copy=True)
            self.in_copy = True
            self._line_start = True
            self._marker = b""
            self._copy = (copy_table(line), self.lines + 1)
            return line
        if self.in_head and between:
            line = self._head_line(line)
        elif line.startswith(b"ALTER TABLE ") and b" ALTER COLUMN " in line:
            line = _known_column_options(line)
        self._check(line)
        return line

    def _check(self, line: bytes, *, copy: bool = False) -> None:
        """What psql will see of this line: no backslash command, no COPY but pg_dump's."""
        if _CONFORMING.search(line) and line != _CONFORMING_ON:
            raise ScriptRefused(self.lines, "a change of standard_conforming_strings")
        ended = self.lexer.ended
        try:
            self.lexer.line(line, copy_ok=copy)
        except Refused as exc:
            raise ScriptRefused(self.lines, exc.reason) from None
        if copy and (self.lexer.ended != ended + 1 or not self.lexer.between_statements):
            raise ScriptRefused(self.lines, "a COPY statement other than pg_dump's COPY ... FROM stdin;")

    def _head_line(self, line: bytes) -> bytes:
        if line.startswith((b"CREATE DATABASE ", b"DROP DATABASE ")):
            self.created = True
            return b""
        if line.startswith(b"\\connect ") and self.created and self.connect_line in (b"", line):
            self.connect_line = line  # pg_dump --create's (again after the database's settings)
            return b""  # psql stays where it is
        if self.drop_timeout and line.startswith(b"SET transaction_timeout"):
            return b""
        if line.startswith(_DB_STATEMENTS):
            return _DATABASE_NAME.sub(lambda m: m.group(1) + self.target, line, count=1)
        return line

    @staticmethod
    def _ends_head(line: bytes) -> bool:
        header = _HEADER.match(line)
        if header is not None:
            name, kind = header.groups()
            return not (kind.startswith(b"DATABASE") or name.startswith(b"DATABASE "))
        return line.startswith((b"COPY ", b"CREATE ", b"ALTER TABLE ")) and not line.startswith(
            b"CREATE DATABASE "
        )


def _find_marker(buffer: bytes, start: int) -> int:
    """Where the first "\\n\\\\." at or after `start` is, or -1. COPY data holds few backslashes
    (an escape, a NULL's "\\\\N"): the first few are looked at one by one, found with memchr,
    ten times the speed of a search for the three bytes; then that search."""
    seek = start + 1  # where its backslash may be
    for _ in range(8):
        slash = buffer.find(b"\\", seek)
        if slash < 0:
            return -1
        if buffer[slash - 1] == 0x0A and buffer.startswith(b".", slash + 1):
            return slash - 1
        seek = slash + 1
    return buffer.find(b"\n\\.", seek - 1)


def _marker_length(probe: bytes) -> int:
    """`probe`, from a line's start: the length of the COPY end marker's line it begins with
    ("\\.\\n", or "\\.\\r\\n" as psql also takes), -1 when it is (all of what there is and) only
    that line's beginning, 0 when it is no marker."""
    if probe.startswith(b"\\.\n"):
        return 3
    if probe.startswith(b"\\.\r\n"):
        return 4
    return -1 if probe in (b"", b"\\", b"\\.", b"\\.\r") else 0


def _known_column_options(line: bytes) -> bytes:
    match = _COLUMN_OPTIONS.match(line)
    if match is None:
        return line
    head, options, tail = match.groups()
    kept = [o for o in options.split(b", ") if o.startswith(_KNOWN_COLUMN_OPTIONS)]
    if not kept:
        return b""
    return head + b", ".join(kept) + tail
