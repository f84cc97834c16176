"""What psql would make of a SQL script, line by line: strings, comments, statements, and the
backslash commands (psql meta-commands) among them.

psql runs a backslash command wherever one appears outside a string, a quoted identifier or a
comment, at the start of a line or in the middle of one. This lexer follows psql's own
(``psqlscan.l``) as far as telling those apart needs: standard and ``E''`` strings, quoted
identifiers, dollar quotes, nested block comments, line comments, and where a statement ends
(a semicolon outside parentheses and outside a ``BEGIN ... END`` body of ``CREATE FUNCTION``
or ``PROCEDURE``). It assumes ``standard_conforming_strings = on``, as every pg_dump script
sets; a script that changes it is refused elsewhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_IDENT = rb"[A-Za-z_\x80-\xff][A-Za-z0-9_$\x80-\xff]*"
_NORMAL = re.compile(
    rb"(?P<comment>--)|(?P<block>/\*)|(?P<estring>[eE]')|(?P<string>(?:[uU]&|[bBxXnN])?')"
    rb"|(?P<quoted>(?:[uU]&)?\")|(?P<dollar>\$(?:[A-Za-z_\x80-\xff][A-Za-z0-9_\x80-\xff]*)?\$)"
    rb"|(?P<param>\$[0-9][0-9A-Za-z_]*)|(?P<number>[0-9][0-9A-Za-z_.]*)|(?P<ident>" + _IDENT + rb")"
    rb"|(?P<meta>\\)|(?P<semi>;)|(?P<open>\()|(?P<close>\))"
)
_STRING_END = re.compile(rb"''|'")
_ESTRING_END = re.compile(rb"\\.|''|'", re.S)
_QUOTED_END = re.compile(rb'""|"')
_BLOCK = re.compile(rb"/\*|\*/")
_HEAD_WORDS = (b"create", b"function", b"procedure", b"or", b"replace")
_META_NAME = re.compile(rb"\\([A-Za-z_?!.;:\\]*[A-Za-z_?!.;:\\]|.?)")


class Refused(Exception):
    """What psql would do here is a backslash command, or unclear: the reason, in words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Statement:
    """The statement being read: its first word, and what psql needs to find its end."""

    first: bytes = b""
    words: int = 0
    heads: list[str] = field(default_factory=list)  # first letters of CREATE/OR/REPLACE/FUNCTION...
    parens: int = 0
    begins: int = 0

    def word(self, word: bytes) -> None:
        lower = word.lower()
        if self.words == 0:
            self.first = lower
        if lower in _HEAD_WORDS and len(self.heads) == self.words:
            self.heads.append(chr(lower[0]))
        self.words += 1
        if self._routine() and self.parens == 0:
            if lower == b"begin" or (lower == b"case" and self.begins >= 1):
                self.begins += 1
            elif lower == b"end" and self.begins > 0:
                self.begins -= 1

    def _routine(self) -> bool:
        h = "".join(self.heads)
        return h.startswith(("cf", "cp", "corf", "corp"))


class Lexer:
    """Feed it whole lines (outside COPY data); it raises Refused where psql would run a
    backslash command (or where psql versions read the text differently), and counts the
    statements that end."""

    def __init__(self) -> None:
        self.state = "normal"  # normal, string, estring, quoted, dollar, block
        self.tag = b""  # the dollar quote's delimiter
        self.depth = 0  # nested block comments
        self.statement = Statement()
        self.ended = 0  # statements ended so far
        self.copy_ok = False

    @property
    def between_statements(self) -> bool:
        return self.state == "normal" and self.statement.words == 0 and self.statement.parens == 0

    def line(self, text: bytes, *, copy_ok: bool = False) -> None:
        """One line as psql reads it; `copy_ok`: it is pg_dump's ``COPY ... FROM stdin;`` line
        (a statement that begins with COPY is refused anywhere else: COPY FROM stdin makes psql
        read the lines after it as data, and COPY TO/FROM a file or a program is not pg_dump's)."""
        self.copy_ok = copy_ok
        pos = 0
        end = len(text)
        while pos < end:
            pos = self._step(text, pos)

    def _step(self, text: bytes, pos: int) -> int:
        if self.state == "normal":
            return self._normal(text, pos)
        if self.state == "dollar":
            found = text.find(self.tag, pos)
            if found < 0:
                return len(text)
            self.state = "normal"
            return found + len(self.tag)
        if self.state == "block":
            while True:
                match = _BLOCK.search(text, pos)
                if match is None:
                    return len(text)
                pos = match.end()
                self.depth += 1 if match.group() == b"/*" else -1
                if self.depth == 0:
                    self.state = "normal"
                    return pos
        pattern = {"string": _STRING_END, "estring": _ESTRING_END, "quoted": _QUOTED_END}[self.state]
        closing = b'"' if self.state == "quoted" else b"'"
        while True:
            match = pattern.search(text, pos)
            if match is None:
                return len(text)
            pos = match.end()
            if match.group() == closing:
                self.state = "normal"
                return pos

    def _normal(self, text: bytes, pos: int) -> int:
        match = _NORMAL.search(text, pos)
        if match is None:
            return len(text)
        kind = match.lastgroup
        if kind == "comment":
            return len(text)
        if kind == "meta":
            name = _META_NAME.match(text, match.start())
            command = name.group().decode("utf-8", "replace") if name else "\\"
            raise Refused(f"the psql command {command}")
        if kind == "block":
            self.state, self.depth = "block", 1
        elif kind in ("string", "estring", "quoted"):
            self.state = kind
        elif kind == "dollar":
            self.state, self.tag = "dollar", match.group()
        elif kind == "ident":
            self.statement.word(match.group())
            if self.statement.words == 1 and self.statement.first == b"copy" and not self.copy_ok:
                raise Refused("a COPY statement other than pg_dump's COPY ... FROM stdin;")
        elif kind == "open":
            self.statement.parens += 1
        elif kind == "close":
            self.statement.parens = max(0, self.statement.parens - 1)
        elif kind == "semi" and self.statement.parens == 0 and self.statement.begins == 0:
            self.statement = Statement()
            self.ended += 1
        elif kind in ("number", "param") and text[match.end() : match.end() + 1] in (b"'", b'"'):
            # psql versions differ on whether '1e' or '$1e' before a quote begins an E'' string
            raise Refused(f"a quote right after {match.group().decode('utf-8', 'replace')}")
        return match.end()
