"""Where sqlparse split each migration, kept in ``.dbops/parse-cache.json`` by content hash.

sqlparse costs about 25 ms to import and a millisecond or more per real migration; yoyo, whose
reader it is, about 70 ms more. An unchanged file is split once, then read from here.

The cache is input like any other file: it holds only offsets into the migration's own text,
never SQL, and an entry is used only when it passes every check below, else the file is split
again. The statements it gives are then the file's own text, in the file's order, with nothing
but whitespace left out, each ending on a semicolon that stands outside any string, quoted
identifier, dollar quote or comment (or at the end of the file). A cache that says otherwise,
is unreadable, or is not ours is ignored and rewritten.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path

from dbops import atomic

NAME = "parse-cache.json"
VERSION = 1
LIMIT = 20_000  # entries kept; the least recently used go first
Spans = list[tuple[int, int]]

# What PostgreSQL's lexer skips when it looks for a statement's end: strings (E'' with its
# backslash escapes), quoted identifiers, dollar quotes, comments. A semicolon matched on its own
# stands outside all of them. A dollar quote's tag starts with a letter, _ or any non-ASCII
# character, then digits too: written as the ASCII characters it excludes, because a class up to
# U+10FFFF takes re 4 ms to compile, on every run.
_SKIPPED = re.compile(
    r"(?<![\w$])[eE]'(?:[^'\\]|\\.|'')*'"
    r"|'(?:[^']|'')*'"
    r'|"(?:[^"]|"")*"'
    r"|(?<![\w$])\$(?P<tag>(?:[^\x00-\x40\x5b-\x5e\x60\x7b-\x7f][^\x00-\x2f\x3a-\x40\x5b-\x5e\x60\x7b-\x7f]*)?)\$.*?\$(?P=tag)\$"
    r"|--[^\n]*"
    r"|/\*(?P<body>.*?)\*/"
    r"|(?P<semi>;)",
    re.DOTALL,
)


def key_of(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class ParseCache:
    """The spans of each text's statements, read once per run and written back once."""

    def __init__(self, folder: Path | None) -> None:
        self.path = folder / NAME if folder is not None else None
        self.entries: dict[str, object] = {}
        self.changed = False
        if self.path is None:
            return
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        if isinstance(document, dict) and document.get("version") == VERSION:
            entries = document.get("entries")
            if isinstance(entries, dict):
                self.entries = entries

    def get(self, text: str) -> Spans | None:
        """The spans kept for `text`, if they pass every check; else None (split it again)."""
        key = key_of(text)
        spans = _checked(text, self.entries.get(key))
        if spans is None:
            return None
        self.entries[key] = self.entries.pop(key)  # most recently used last
        return spans

    def put(self, text: str, statements: Sequence[str]) -> None:
        """Keep where `statements` (sqlparse's, stripped, in order) stand in `text`."""
        spans, cursor = [], 0
        for statement in statements:
            start = text.find(statement, cursor)
            if start < 0:
                return  # not found as written: nothing to keep
            spans.append((start, start + len(statement)))
            cursor = start + len(statement)
        if _checked(text, spans) is None:  # what a later run would refuse is not kept
            return
        self.entries.pop(key_of(text), None)
        self.entries[key_of(text)] = spans
        self.changed = True

    def save(self) -> None:
        """Write the cache back when it changed; a folder dbops cannot write to goes without."""
        if self.path is None or not self.changed:
            return
        kept = dict(list(self.entries.items())[-LIMIT:])
        document = {"version": VERSION, "entries": kept}
        try:
            self.path.parent.mkdir(exist_ok=True)
            atomic.write_replacing(self.path, json.dumps(document, separators=(",", ":")), mode=0o600)
        except OSError:
            return
        self.changed = False


def _checked(text: str, spans: object) -> Spans | None:
    """`spans` as a list of (start, end) when it splits `text` as described above, else None."""
    if not isinstance(spans, list):
        return None
    out: Spans = []
    cursor = 0
    for span in spans:
        if not (isinstance(span, (list, tuple)) and len(span) == 2):
            return None
        start, end = span
        if type(start) is not int or type(end) is not int or not cursor <= start < end <= len(text):
            return None
        if text[cursor:start].strip() or text[start].isspace() or text[end - 1].isspace():
            return None  # something left out, or a span that is not stripped
        out.append((start, end))
        cursor = end
    if text[cursor:].strip():
        return None
    ends = _statement_ends(text)
    if ends is None:
        return None
    for _, end in out[:-1]:
        if end - 1 not in ends:  # every statement but the last ends on a free semicolon
            return None
    if out and text[out[-1][1] - 1] == ";" and out[-1][1] - 1 not in ends:
        return None
    return out


def _statement_ends(text: str) -> set[int] | None:
    """The offsets of the semicolons outside strings, identifiers, dollar quotes and comments;
    None for text this scan cannot vouch for (a nested block comment, an unclosed quote)."""
    ends = set()
    position = 0
    for match in _SKIPPED.finditer(text):
        gap = text[position : match.start()]
        if any(c in gap for c in "'\"$") and _opens_quote(gap):
            return None
        if match.group("semi"):
            ends.add(match.start())
        elif match.group("body") is not None and "/*" in match.group("body"):
            return None
        position = match.end()
    if _opens_quote(text[position:]):
        return None
    return ends


def _opens_quote(gap: str) -> bool:
    """Text between tokens with a quote or comment opener in it: one the scan did not close."""
    return any(c in gap for c in "'\"") or "/*" in gap or bool(re.search(r"(?<![\w$])\$(\w*)\$", gap))
