"""Adapting a pg_dump SQL script on its way to psql.

The script's head is the part before the first schema object, where pg_dump puts its session
settings and the database's own entries (``CREATE DATABASE``, ``\\connect``, the owner,
``ALTER DATABASE ... SET``, its comment and grants). After it, only statements are looked at:
table data (``COPY ... FROM stdin`` up to ``\\.``) goes through unread, found with one search.

- ``CREATE DATABASE`` and ``\\connect`` are dropped: psql is already connected to the database
  being restored (a scratch database, or the live one in place).
- The database's own statements name the target database instead of the dumped one.
- ``SET transaction_timeout`` (pg_dump 17+) is dropped for servers older than 17, which
  reject it.
- Column options other than PostgreSQL's own (``n_distinct``, ``n_distinct_inherited``) are
  left out of ``ALTER COLUMN ... SET (...)``: some builds stamp every column with one of their
  own (``pg_attver``), which other servers reject.
"""

from __future__ import annotations

import re

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
_COPY_END = b"\n\\.\n"


def quote_ident(name: str) -> bytes:
    return ('"' + name.replace('"', '""') + '"').encode()


class ScriptFilter:
    def __init__(self, target_db: str, *, server_major: int, head_only: bool = False) -> None:
        self.target = quote_ident(target_db)
        self.drop_timeout = server_major < 17
        self.head_only = head_only  # keep only the database's own entries (and the settings)
        self.in_head = True
        self.in_copy = False
        self.pending = b""

    def feed(self, data: bytes) -> bytes:
        if self.head_only and not self.in_head:
            return b""
        buffer = self.pending + data if self.pending else data
        out = []
        pos = 0  # everything before it is handled
        while True:
            if self.in_copy:
                if buffer.startswith(_COPY_END[1:], pos):  # the marker is the first line: no rows
                    end = pos + len(_COPY_END) - 1
                else:
                    found = buffer.find(_COPY_END, pos)
                    end = found + len(_COPY_END) if found >= 0 else -1
                if end < 0:  # all but the last bytes, which may begin the end marker
                    stop = max(pos, len(buffer) - (len(_COPY_END) - 1))
                    out.append(buffer[pos:stop])
                    pos = stop
                    break
                out.append(buffer[pos:end])
                pos = end
                self.in_copy = False
                continue
            end = buffer.find(b"\n", pos)
            if end < 0 or (self.head_only and not self.in_head):
                break
            out.append(self._line(buffer[pos : end + 1]))
            pos = end + 1
        self.pending = buffer[pos:]
        return b"".join(out)

    def close(self) -> bytes:
        rest, self.pending = self.pending, b""
        if self.head_only and not self.in_head:
            return b""
        return rest if self.in_copy or not rest else self._line(rest)

    def _line(self, line: bytes) -> bytes:
        if self.in_head and self._ends_head(line):
            self.in_head = False
            if self.head_only:
                return b""
        if line.startswith(b"COPY ") and line.rstrip().endswith(b"FROM stdin;"):
            self.in_copy = True
            return line
        if self.in_head:
            return self._head_line(line)
        if line.startswith(b"ALTER TABLE ") and b" ALTER COLUMN " in line:
            return _known_column_options(line)
        return line

    def _head_line(self, line: bytes) -> bytes:
        if line.startswith((b"CREATE DATABASE ", b"\\connect ")):
            return b""
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


def _known_column_options(line: bytes) -> bytes:
    match = _COLUMN_OPTIONS.match(line)
    if match is None:
        return line
    head, options, tail = match.groups()
    kept = [o for o in options.split(b", ") if o.startswith(_KNOWN_COLUMN_OPTIONS)]
    if not kept:
        return b""
    return head + b", ".join(kept) + tail
