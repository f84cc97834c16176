"""The parse cache of migrations (.dbops/parse-cache.json): a split is kept by content hash, read
back as yoyo's own split would be, and a cache that says anything else is ignored."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
import sqlparse
from yoyo.migrations import parse_metadata_from_sql_comments

from conftest import Run
from dbops.migrations import parse_cache
from dbops.migrations.files import discover
from dbops.migrations.parse_cache import ParseCache, key_of
from dbops.migrations.scripts import _directives, _split, load

TRICKY = (
    "-- leading comment\n-- depends: 001_a 001_b\n-- transactional: true\n\n"
    "CREATE TABLE t (id int, note text DEFAULT 'a; b');\n"
    "INSERT INTO t VALUES (1, E'it\\'s; fine'), (2, $$dollar; quoted$$), (3, $x$ tagged; $x$);\n"
    '/* a comment; */ CREATE TABLE "odd;name" (id int);\n'
    "-- a line comment; with a semicolon\n"
    "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $body$ SELECT 1; $body$;\n"
    "SELECT 1"
)


@pytest.mark.parametrize(
    "text",
    [
        TRICKY,
        "-- depends: a\n-- depends: b\nCREATE TABLE t (id int);",
        "  --   transactional :  false  \n\n   -- note\nCREATE INDEX CONCURRENTLY i ON t (id);",
        "CREATE TABLE t (id int); -- depends: not-a-directive",
        "-- only a comment\n",
        "-- transactional: false\r\n-- depends: x\r\nSELECT 1;\r\n",
        "-- depends: x\rSELECT 1;\r",
    ],
)
def test_the_directives_are_read_as_yoyo_reads_them(text: str) -> None:
    directives, _, rest = parse_metadata_from_sql_comments(text)
    assert _directives(text) == (directives, rest)


def test_a_split_is_kept_and_read_back_as_sqlparse_made_it(tmp_path: Path) -> None:
    cache = ParseCache(tmp_path)
    assert _split(TRICKY, cache) == _split(TRICKY)
    cache.save()
    again = ParseCache(tmp_path)
    assert again.get(TRICKY) is not None  # held, and passes the checks
    assert _split(TRICKY, again) == _split(TRICKY)
    assert (tmp_path / "parse-cache.json").stat().st_mode & 0o777 == 0o600


def test_load_uses_and_fills_the_cache(tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "001_a.sql").write_text(TRICKY.replace("-- depends: 001_a 001_b\n", ""))
    (folder / "002_b.sql").write_text("-- depends: 001_a\nCREATE TABLE u (id int);\n")
    files = discover(folder)
    state = tmp_path / ".dbops"
    first = load(files, cache=state)
    document = json.loads((state / "parse-cache.json").read_text())
    assert len(document["entries"]) == 2
    second = load(files, cache=state)
    assert second == first
    assert [s.sql for s in second["001_a"].statements] == [
        s for s in _split(TRICKY.replace("-- depends: 001_a 001_b\n", ""))[1]
    ]
    assert second["002_b"].depends == ("001_a",)


def spans_at(text: str, *cuts: int) -> list[list[int]]:
    """Spans [start, end] that cut `text` after each offset in `cuts` (stripped as sqlparse's)."""
    spans, start = [], 0
    for end in [*cuts, len(text)]:
        piece = text[start:end]
        left = len(piece) - len(piece.lstrip())
        spans.append([start + left, start + len(piece.rstrip())])
        start = end
    return spans


INJECTED = "SELECT 'a; DROP TABLE victim; --';\nCREATE TABLE y (id int);\n"


@pytest.mark.parametrize(
    "entry",
    [
        pytest.param(
            lambda t: spans_at(t, t.index(";") + 1, t.index("victim;") + 7), id="split-inside-a-string"
        ),
        pytest.param(lambda t: [[0, t.index("\n")]], id="leaves-a-statement-out"),
        pytest.param(lambda t: [[0, 5], [3, len(t.rstrip())]], id="overlapping"),
        pytest.param(lambda t: [[0, len(t) + 10]], id="beyond-the-text"),
        pytest.param(lambda t: [["0", "5"]], id="not-numbers"),
        pytest.param(lambda t: [[True, 5]], id="booleans"),
        pytest.param(lambda t: [[0, 1, 2]], id="three-numbers"),
        pytest.param(lambda t: {"a": 1}, id="not-a-list"),
        pytest.param(lambda t: [[1, len(t.rstrip())]], id="not-stripped-or-cut"),
    ],
)
def test_a_crafted_entry_is_ignored_and_the_file_split_again(tmp_path: Path, entry: object) -> None:
    assert callable(entry)
    document = {"version": parse_cache.VERSION, "entries": {key_of(INJECTED): entry(INJECTED)}}
    (tmp_path / "parse-cache.json").write_text(json.dumps(document))
    cache = ParseCache(tmp_path)
    assert cache.get(INJECTED) is None
    statements = _split(INJECTED, cache)[1]
    assert statements == sqlparse.split(INJECTED)
    assert statements[0] == "SELECT 'a; DROP TABLE victim; --';"
    cache.save()  # and the cache now holds the true split
    assert ParseCache(tmp_path).get(INJECTED) == [
        (0, len(statements[0])),
        (INJECTED.index("CREATE"), len(INJECTED.rstrip())),
    ]


@pytest.mark.parametrize(
    "content",
    ["not json", "[]", '{"version": 99, "entries": {}}', '{"version": 1, "entries": []}', "\x00\xff"],
)
def test_an_unreadable_cache_is_ignored(tmp_path: Path, content: str) -> None:
    (tmp_path / "parse-cache.json").write_text(content, errors="surrogateescape")
    cache = ParseCache(tmp_path)
    assert _split(INJECTED, cache) == _split(INJECTED)
    cache.save()
    assert ParseCache(tmp_path).get(INJECTED) is not None


@pytest.mark.parametrize(
    "text",
    [
        "SELECT /* nested /* comment; */ still; */ 1;\nSELECT 2;",  # a nested comment: not vouched for
        "SELECT 'unclosed; string;\nSELECT 2;",
    ],
)
def test_text_the_check_cannot_vouch_for_is_never_read_from_the_cache(tmp_path: Path, text: str) -> None:
    cache = ParseCache(tmp_path)
    assert _split(text, cache) == _split(text)
    cache.save()
    assert ParseCache(tmp_path).get(text) is None


def test_migrate_ignores_a_crafted_cache(project: Path, cli: Run, db: psycopg.Connection) -> None:
    """Split inside the string, the cache would run DROP TABLE victim on its own: ignored."""
    db.execute("CREATE TABLE victim (id int)")
    folder = project / "migrations"
    folder.mkdir(exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    (folder / "001_y.sql").write_text(INJECTED)
    state = project / ".dbops"
    state.mkdir(exist_ok=True)
    crafted = spans_at(INJECTED, INJECTED.index(";") + 1, INJECTED.index("victim;") + 7)
    document = {"version": parse_cache.VERSION, "entries": {key_of(INJECTED): crafted}}
    (state / "parse-cache.json").write_text(json.dumps(document))
    result = cli("migrate")
    assert result.code == 0, result.text
    assert db.execute(
        "SELECT to_regclass('victim') IS NOT NULL, to_regclass('y') IS NOT NULL"
    ).fetchone() == (
        True,
        True,
    )
    kept = json.loads((state / "parse-cache.json").read_text())["entries"][key_of(INJECTED)]
    assert kept != crafted and len(kept) == 2
