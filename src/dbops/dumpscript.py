"""Adapting a pg_dump SQL script on its way to psql.

Only the script's head is touched: the part before the first schema object, where pg_dump puts
its session settings and the database's own entries (``CREATE DATABASE``, ``\\connect``, the
owner, ``ALTER DATABASE ... SET``, its comment and grants). Table data never passes through
the line logic: once the head is over, bytes go through unchanged.

- ``CREATE DATABASE`` and ``\\connect`` are dropped: psql is already connected to the database
  being restored (a scratch database, or the live one in place).
- The database's own statements name the target database instead of the dumped one.
- ``SET transaction_timeout`` (pg_dump 17+) is dropped for servers older than 17, which
  reject it.
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


def quote_ident(name: str) -> bytes:
    return ('"' + name.replace('"', '""') + '"').encode()


class ScriptFilter:
    def __init__(self, target_db: str, *, server_major: int, head_only: bool = False) -> None:
        self.target = quote_ident(target_db)
        self.drop_timeout = server_major < 17
        self.head_only = head_only  # keep only the database's own entries (and the settings)
        self.in_head = True
        self.pending = b""

    def feed(self, data: bytes) -> bytes:
        if not self.in_head:
            return b"" if self.head_only else data
        self.pending += data
        out = []
        while self.in_head:
            end = self.pending.find(b"\n")
            if end < 0:
                break
            line, self.pending = self.pending[: end + 1], self.pending[end + 1 :]
            out.append(self._line(line))
        if not self.in_head and not self.head_only:
            out.append(self.pending)
            self.pending = b""
        return b"".join(out)

    def close(self) -> bytes:
        rest, self.pending = self.pending, b""
        if self.in_head:
            return self._line(rest) if rest else b""
        return b"" if self.head_only else rest

    def _line(self, line: bytes) -> bytes:
        if self._ends_head(line):
            self.in_head = False
            return b"" if self.head_only else line
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
