"""A fast reader for the common shape of large YAML fixtures, with PyYAML's exact results.

PyYAML's C loader still builds a Python node per scalar and reads about 7k rows/s of
block-style YAML. Large fixtures, though, are nearly always exported or generated: every row
of a table names the same columns in the same order, one plain or simply quoted scalar per
line::

    users:
      - id: 1
        email: user1@example.com
        active: true

For such a table one regular expression, built from its first row, matches every row in C;
each plain scalar then goes through PyYAML's own implicit resolvers and constructors (YAML
1.1: ``yes``/``no``/``on``/``off`` are booleans, ``~`` is null, ``2025-01-01`` a date,
``0o17``/``017`` octal, ``1_000`` an int ...), so the values are exactly those PyYAML gives.

Anything outside that shape (flow rows, anchors and aliases, merge keys, tags, block or
escaped scalars, comments inside a table, rows with other columns) makes ``split`` answer
None, and the caller reads the file with PyYAML.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# A scalar on one line: double-quoted without escapes, single-quoted, or plain (not starting
# with an indicator, no ": " or " #" inside, no trailing blank). The quotes stay in the match.
# The plain form comes first, as words: the first one not starting with an indicator, none
# after a blank starting with "#" (a comment), none ending with ":" (a key), no blank at the end.
_SCALAR = (
    r"(?:[^\s\-?:,\[\]{}#&*!|>'\"%@`]|[-?:](?=\S))(?:\S*[^\s:])?(?:[ \t]+(?:[^\s#]\S*[^\s:]|[^\s#:]))*"
    r"|\"[^\"\\\n]*\""
    r"|'(?:[^'\n]|'')*'"
)
# A column of them, or of no value. Atomic groups and possessive repeats (no backtracking:
# several times faster) can only reject more, never accept more: the fast paths stay exact.
_SCALARS = re.compile(rf"(?>{_SCALAR})?+(?:\n(?>{_SCALAR})?+)*+")
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.$]*")
_TABLE_LINE = re.compile(r"([A-Za-z_][A-Za-z0-9_.$]*):[ \t]*\n")
_ROW_LINE = re.compile(r"( *)(- +)(" + _KEY.pattern + r"):(?: (?:" + _SCALAR + r"))?\n")
_NEXT_LINE = re.compile(r"( +)(" + _KEY.pattern + r"):(?: (?:" + _SCALAR + r"))?\n")
_NEXT_TABLE = re.compile(r"\n[^\s#-]")  # a top-level key (rows may start in column 0)
_BLANK_OR_COMMENT = re.compile(r"(?:[ \t]*(?:#[^\n]*)?\n)*")


_INTEGERS = re.compile(r"(?>-?(?:0|[1-9][0-9]*))(?:\n(?>-?(?:0|[1-9][0-9]*)))*+")


def _whole_column(scalar: str) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """Every line of a joined column is this scalar; or this scalar or a null (~, null, or no
    value at all)."""
    nullable = rf"(?>{scalar}|~|null|Null|NULL|)"
    return re.compile(rf"(?>{scalar})(?:\n(?>{scalar}))*+"), re.compile(rf"{nullable}(?:\n{nullable})*+")


_NULL_WORDS = frozenset(("", "~", "null", "Null", "NULL"))
_NULL_FIRSTS = frozenset(("", "~", "n", "N"))
# The common forms of YAML 1.1 numbers and timestamps, each a subset of PyYAML's resolver for
# that type (which is tried before any other for these first characters), and each converted
# by Python to exactly the value PyYAML's constructor gives: decimal ints (int()), floats with
# a point and an optional signed exponent (float(): PyYAML computes sign * float(rest), the
# same value, -0.0 included), dates (date.fromisoformat), and date-times with 1-6 fraction
# digits (padded as PyYAML pads them) and Z or a +hh:mm zone (datetime.fromisoformat, which
# gives the same timezone objects, timezone.utc for Z and +00:00).
_NUMBERS = _whole_column(r"[-+]?(?:[0-9]+\.[0-9]*(?:[eE][-+][0-9]+)?|0|[1-9][0-9]*)")
_DATES = _whole_column(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DATETIMES = _whole_column(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(?:\.[0-9]{1,6})?(?:Z|[-+](?:[01][0-9]|2[0-3]):[0-5][0-9])?"
)


def _number(text: str) -> int | float:
    return float(text) if "." in text else int(text)


_SEPARATOR = str.maketrans("Tt", "  ")
_FRACTION = re.compile(r"\.([0-9]+)")
# n digits -> zeros after them (a literal replacement: re.sub expands a template in Python)
_FRACTIONS = {n: (re.compile(rf"(?<=\.[0-9]{{{n}}})(?![0-9])"), "0" * (6 - n)) for n in range(1, 6)}


def _datetime_strs(joined: str) -> list[str]:
    """str() of datetime.fromisoformat() of each line (of _DATETIMES' first form), from the
    text at once: a blank between date and time, six fraction digits or none if they are all
    zeros, and +00:00 for Z and for -00:00."""
    text = joined.translate(_SEPARATOR)  # the only letters are the separator and Z
    if "." in text:
        lengths = set(map(len, _FRACTION.findall(text)))
        lines = text.count("\n") + 1
        zones = text.count("+") + text.count("Z")
        usual = len(lengths) == 1 and text.count(".") == lines and text.count("-") == 2 * lines
        lengths.discard(6)
        if usual and lengths:
            # the usual export: a fraction of one length in every value, no "-hh:mm" zone: the
            # zeros go just before each "+hh:mm" or "Z" (all have one), or each line's end
            zeros = "0" * (6 - lengths.pop())
            if zones == lines:
                text = text.replace("+", zeros + "+").replace("Z", zeros + "Z")
            elif zones == 0:
                text = text.replace("\n", zeros + "\n") + zeros
            else:
                pattern, zeros = _FRACTIONS[6 - len(zeros)]
                text = pattern.sub(zeros, text)
        else:
            for digits in lengths:
                pattern, zeros = _FRACTIONS[digits]
                text = pattern.sub(zeros, text)
        text = text.replace(".000000", "")
    return text.replace("Z", "+00:00").replace("-00:00", "+00:00").split("\n")


def _converted(
    texts: tuple[str, ...],
    joined: str,
    pattern: re.Pattern[str],
    convert: Callable[[str], Any],
) -> list[Any] | None:
    """A whole column with nulls through one converter, if its values all have this form; None
    if not, or when a value is out of range (PyYAML's constructor then raises as it always did)."""
    if not pattern.fullmatch(joined):
        return None
    try:
        return [None if text in _NULL_WORDS else convert(text) for text in texts]
    except ValueError:
        return None


class OutsideShape(Exception):
    """The text is not of the shape this reader knows; PyYAML reads it."""


@dataclass
class TableText:
    """One top-level key: its options text (for PyYAML) and its rows, already read."""

    name: str
    line: int  # of the table name
    head: str  # its options as YAML text, padded to their real lines; "" for a bare list
    columns: list[str]
    values: list[tuple[Any, ...]]  # a tuple a row
    lines: list[int]
    strs: dict[int, list[str]]  # column index -> str() of each value, where the text gave it at once
    by_column: list[list[Any]]  # the values again, a list a column


def split(text: str) -> list[TableText] | None:
    """The tables of a fixture file, or None when PyYAML must read it."""
    if not text.endswith("\n"):
        text += "\n"
    if text.startswith("\ufeff") or "\r" in text or not _printable(text):
        return None
    import gc

    collecting = gc.isenabled()
    gc.disable()  # millions of new objects, none of them in a cycle: a third of the time otherwise
    try:
        return list(_tables(text, _Scalars()))
    except OutsideShape:
        return None
    finally:
        if collecting:
            gc.enable()


# ASCII's characters PyYAML refuses (Reader.NON_PRINTABLE): all controls but tab and newline
_CONTROLS = bytes([*range(9), 11, 12, *range(14, 32), 127])


def _printable(text: str) -> bool:
    """No character PyYAML refuses; ASCII text checked by bytes.translate, 4x faster."""
    import yaml.reader

    if text.isascii():
        return len(text.encode("ascii").translate(None, _CONTROLS)) == len(text)
    return not yaml.reader.Reader.NON_PRINTABLE.search(text)


def _tables(text: str, scalars: _Scalars) -> Any:
    pos = _BLANK_OR_COMMENT.match(text, 0).end()  # type: ignore[union-attr]
    while pos < len(text):
        header = _TABLE_LINE.match(text, pos)
        if header is None:
            raise OutsideShape
        name, line = header.group(1), text.count("\n", 0, pos) + 1
        if not isinstance(scalars.plain(name), str):
            raise OutsideShape  # e.g. "yes:" is the boolean True for PyYAML
        end = _table_end(text, header.end())
        body = text[header.end() : end]
        head, rows_at = _head(body)
        first_row_line = line + 1 + body.count("\n", 0, rows_at)
        columns, values, lines, strs, by_column = _rows(
            body[rows_at:].rstrip(" \t\n") + "\n", first_row_line, scalars
        )
        if head:
            head = "\n" * (line - 1) + header.group(0) + head
        yield TableText(name, line, head, columns, values, lines, strs, by_column)
        pos = _BLANK_OR_COMMENT.match(text, end).end()  # type: ignore[union-attr]


def _table_end(text: str, start: int) -> int:
    """The next line that starts in column 0 with a key (not a blank, comment or "- ")."""
    found = _NEXT_TABLE.search(text, start - 1)
    end = found.start() + 1 if found else len(text)
    # blank and comment lines just before the next table belong to neither
    while True:
        previous = text.rfind("\n", start, end - 1)
        line = text[previous + 1 : end]
        if previous < start or (line.strip() and not line.lstrip().startswith("#")):
            return end
        end = previous + 1


def _head(body: str) -> tuple[str, int]:
    """Split a table's body into its options (for PyYAML) and where its rows start."""
    if _ROW_LINE.match(body):
        return "", 0
    rows = re.compile(r"^( +)rows:[ \t]*\n", re.M).search(body)
    if rows is None:
        raise OutsideShape
    head = body[: rows.start()]
    if not all(re.fullmatch(r"( +)[A-Za-z_]+:[^\n]*|[ \t]*(#[^\n]*)?", ln) for ln in head.splitlines()):
        raise OutsideShape  # options span lines: PyYAML reads the whole file
    indent = len(rows.group(1))
    if any(len(ln) - len(ln.lstrip(" ")) != indent for ln in head.splitlines() if ln.strip()):
        raise OutsideShape
    return head, rows.end()


def _rows(
    body: str, first_line: int, scalars: _Scalars
) -> tuple[list[str], list[tuple[Any, ...]], list[int], dict[int, list[str]], list[list[Any]]]:
    if body == "\n":
        return [], [], [], {}, []
    pattern, columns = _row_pattern(body)
    found = pattern.findall(body)
    if not found:
        raise OutsideShape
    step = len(columns)
    # Each match is whole lines (anchored at a line start, ending with a newline, values are
    # single-line): they cover the body exactly when they hold all of its lines.
    if len(found) * step != body.count("\n"):
        raise OutsideShape
    # a column a slice of the matches laid end to end (zip(*found) takes twice as long)
    flat = found if step == 1 else list(itertools.chain.from_iterable(found))
    converted: list[list[Any]] = []
    strs = {}  # column index -> str() of each value
    for index in range(step):
        texts = tuple(flat[index::step])
        column, column_strs = scalars.column(texts)
        converted.append(column)
        if column_strs is not None:
            strs[index] = column_strs
    values = list(zip(*converted, strict=True))
    lines = list(range(first_line, first_line + step * len(values), step))
    return [scalars.key(c) for c in columns], values, lines, strs, converted


def _row_pattern(body: str) -> tuple[re.Pattern[str], list[str]]:
    """The first row's layout, as a pattern every row must match; and its columns."""
    first = _ROW_LINE.match(body)
    if first is None:
        raise OutsideShape
    indent, dash = first.group(1), first.group(2)
    columns = [first.group(3)]
    pos = first.end()
    inner = indent + " " * len(dash)
    while (more := _NEXT_LINE.match(body, pos)) and more.group(1) == inner:
        columns.append(more.group(2))
        pos = more.end()
    if len(set(columns)) != len(columns):
        raise OutsideShape  # PyYAML keeps the last of a repeated key
    value = r"(?: (.+))?\n"  # any one-line text: column() checks that it is a scalar
    parts = [re.escape(f"{indent}{dash}{columns[0]}:") + value]
    parts += [re.escape(f"{inner}{c}:") + value for c in columns[1:]]
    return re.compile("^" + "".join(parts), re.M), columns


class _Scalars:
    """PyYAML SafeLoader's scalar semantics: implicit resolvers, then the tag's constructor."""

    _DIRECT = ("tag:yaml.org,2002:str",)
    _KNOWN = (
        "tag:yaml.org,2002:bool",
        "tag:yaml.org,2002:int",
        "tag:yaml.org,2002:float",
        "tag:yaml.org,2002:null",
        "tag:yaml.org,2002:timestamp",
    )

    def __init__(self) -> None:
        import yaml

        self._resolvers = yaml.SafeLoader.yaml_implicit_resolvers
        self._constructor = yaml.SafeLoader("")
        self._constructors: dict[str | None, Callable[..., Any]] = yaml.SafeLoader.yaml_constructors
        self._node = yaml.ScalarNode
        self._cache: dict[str, Any] = {}
        self._specials: dict[frozenset[str], re.Pattern[str]] = {}

    def column(self, texts: tuple[str, ...]) -> tuple[list[Any], list[str] | None]:
        """A column's values, and str() of each when the text gave it at once (else None).
        One regular expression tells when none of them needs a resolver; another when all of
        them are numbers, dates or date-times of the common forms."""
        joined = "\n".join(texts)
        if _INTEGERS.fullmatch(joined):
            return list(map(int, texts)), None
        typed = self._typed(texts, joined, False)
        if typed is not None:
            return typed
        firsts = {text[:1] for text in texts}
        typed = self._typed(texts, joined, True) if not firsts.isdisjoint(_NULL_FIRSTS) else None
        if typed is not None:
            return typed
        if not _SCALARS.fullmatch(joined):  # (the forms above are all plain scalars)
            raise OutsideShape
        special = self._special(firsts)
        if special is None or not special.search(joined):
            if "'" not in firsts and '"' not in firsts:
                return list(texts), None
            return [self.value(text) for text in texts], None
        distinct = set(texts)
        if len(distinct) * 4 <= len(texts):
            known = {text: self.value(text) for text in distinct}
            return [known[text] for text in texts], None
        return [self.value(text) for text in texts], None

    @staticmethod
    def _typed(texts: tuple[str, ...], joined: str, nulls: bool) -> tuple[list[Any], list[str] | None] | None:
        """A column of numbers, dates or date-times in their common forms (with nulls among
        them, or not), converted at once; with str() of each value when the text gives it at
        once (dates and date-times without nulls)."""
        import datetime

        if nulls:
            for patterns, convert in (
                (_NUMBERS, _number),
                (_DATETIMES, datetime.datetime.fromisoformat),
                (_DATES, datetime.date.fromisoformat),
            ):
                converted = _converted(texts, joined, patterns[1], convert)
                if converted is not None:
                    return converted, None
            return None
        try:
            if _NUMBERS[0].fullmatch(joined):
                if joined.count(".") == len(texts):  # no int among them
                    return list(map(float, texts)), None
                return list(map(_number, texts)), None
            if _DATETIMES[0].fullmatch(joined):
                return list(map(datetime.datetime.fromisoformat, texts)), _datetime_strs(joined)
            if _DATES[0].fullmatch(joined):
                return list(map(datetime.date.fromisoformat, texts)), list(texts)
        except ValueError:  # out of range: PyYAML's constructor raises as it always did
            return None
        return None

    def _special(self, firsts: set[str]) -> re.Pattern[str] | None:
        """The implicit resolvers for scalars starting with these characters, at once, one
        scalar per line: no match means every one of them is a string."""
        patterns = {regexp.pattern for first in firsts for _, regexp in self._resolvers.get(first, [])}
        if not patterns:
            return None
        key = frozenset(patterns)
        if key not in self._specials:
            union = "|".join(f"(?:{p})" for p in sorted(patterns))
            self._specials[key] = re.compile(union, re.M | re.X)
        return self._specials[key]

    def value(self, text: str) -> Any:
        if not text:
            return None
        first = text[0]
        if first == '"':
            return text[1:-1]
        if first == "'":
            return text[1:-1].replace("''", "'")
        if first not in self._resolvers:
            return text
        if text.isdigit() and text.isascii() and (first != "0" or len(text) == 1):
            return int(text)
        return self.plain(text)

    def key(self, text: str) -> str:
        value = self.plain(text)
        if not isinstance(value, str):
            raise OutsideShape
        return value

    def plain(self, text: str) -> Any:
        try:
            return self._cache[text]
        except KeyError:
            pass
        tag = "tag:yaml.org,2002:str"
        for candidate, regexp in self._resolvers.get(text[:1], []):
            if regexp.match(text):
                tag = candidate
                break
        if tag == "tag:yaml.org,2002:str":
            value: Any = text
        elif tag in self._KNOWN:
            value = self._constructors[tag](self._constructor, self._node(tag, text))
        else:
            raise OutsideShape  # "<<", "=", ... as values: PyYAML decides
        if len(self._cache) < 10_000:
            self._cache[text] = value
        return value
