"""Counting the rows of a plain pg_dump script as it streams by.

In ``COPY ... FROM stdin`` text format every row is one line (a newline inside a value is
written as ``\\n``), and the block ends with a line ``\\.``. So the rows of a table are the
newlines of its block: counted with one ``bytes.count`` per chunk, the end found with one
search. Outside the blocks only the ``COPY`` lines themselves are looked at, to name the table.
"""

from __future__ import annotations

import re

_COPY_END = b"\n\\.\n"
_IDENT = rb'(?:"(?:[^"]|"")*"|[^\s."(]+)'
_COPY_LINE = re.compile(rb"COPY (" + _IDENT + rb")\.(" + _IDENT + rb")[ (].*FROM stdin;$")


def copy_table(line: bytes) -> tuple[str, str] | None:
    """The (schema, table) of pg_dump's ``COPY schema.table (...) FROM stdin;`` line."""
    match = _COPY_LINE.match(line.rstrip(b"\r\n"))
    return (_unquote(match.group(1)), _unquote(match.group(2))) if match else None


def _unquote(ident: bytes) -> str:
    if ident.startswith(b'"'):
        ident = ident[1:-1].replace(b'""', b'"')
    return ident.decode("utf-8", "replace")


class RowCounter:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], int] = {}
        self._table: tuple[str, str] | None = None  # inside this table's COPY block
        self._pending = b""

    def feed(self, data: bytes) -> None:
        buffer = self._pending + data if self._pending else data
        pos = 0
        while True:
            if self._table is not None:
                if buffer.startswith(_COPY_END[1:], pos):  # no rows at all
                    end = pos + len(_COPY_END) - 1
                else:
                    found = buffer.find(_COPY_END, pos)
                    if found < 0:  # count whole lines; keep what may begin the end marker
                        stop = max(pos, buffer.rfind(b"\n", pos, len(buffer) - len(_COPY_END) + 1) + 1)
                        self.rows[self._table] += buffer.count(b"\n", pos, stop)
                        pos = stop
                        break
                    self.rows[self._table] += buffer.count(b"\n", pos, found + 1)
                    end = found + len(_COPY_END)
                pos = end
                self._table = None
                continue
            end = buffer.find(b"\n", pos)
            if end < 0:
                break
            if buffer.startswith(b"COPY ", pos):
                match = _COPY_LINE.match(buffer, pos, end)
                if match is not None:
                    self._table = (_unquote(match.group(1)), _unquote(match.group(2)))
                    self.rows.setdefault(self._table, 0)
            pos = end + 1
        self._pending = buffer[pos:]
