"""fixture_text reads the usual shape of large YAML fixtures exactly as PyYAML does, and hands
everything else back to PyYAML."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dbops.seeding import files as seeds
from dbops.seeding import fixture_text

# YAML 1.1 as PyYAML resolves it: each of these must come out exactly as yaml.safe_load says.
SCALARS = [
    "yes", "No", "on", "OFF", "y", "n", "~", "null", "NULL", "true", "False", "0", "012", "0o17",
    "0x1F", "0b101", "1_000", "-5", "+3", "190:20:30", "1.5", "1e3", "1.0e+3", "6.8523015e+5",
    ".inf", "-.Inf", "2025-01-01", "2025-01-01 10:00:00", "2001-12-14t21:59:43.10-05:00", "abc",
    "a b", "a:b", "http://x.y/z?q=1#top", "a#b", "-x", "?x", ":x", "'q'", "'it''s'", '"dq"',
    '""', "''", "é ü 日本", "O'Reilly", "x,y", "x]", "00", "09", "1__0", "-0", "trUe",
]  # fmt: skip


def both(text: str) -> tuple[object, object]:
    tables = fixture_text.split(text)
    assert tables is not None, "expected the fast reader to take this text"
    return {t.name: [dict(zip(t.columns, v, strict=True)) for v in t.values] for t in tables}, yaml.safe_load(
        text
    )


@pytest.mark.parametrize("scalar", SCALARS)
def test_each_scalar_resolves_as_pyyaml_does(scalar: str) -> None:
    text = f"t:\n  - id: 1\n    v: {scalar}\n  - id: 2\n    v: {scalar}\n"
    fast, slow = both(text)
    assert repr(fast) == repr(slow)  # repr: 1 == True and 0.0 == False must not pass for equal


def test_a_whole_column_of_mixed_scalars() -> None:
    text = "t:\n" + "".join(f"  - id: {i}\n    v: {s}\n    w: x{i}\n" for i, s in enumerate(SCALARS))
    fast, slow = both(text)
    assert repr(fast) == repr(slow)


def test_layout_that_the_fast_reader_takes() -> None:
    text = (
        "# generated\n\n"
        "organizations:\n"
        "  key: slug\n"
        "  rows:\n"
        "    -   id: 1\n"
        "        slug: a\n"
        "    -   id: 2\n"
        "        slug:\n"
        "\n# next\n"
        "_notes:\n"
        "- note: ignored\n"
        "users:\n"
        "- id: 1\n"
        "- id: 2\n"
    )
    tables = fixture_text.split(text)
    assert tables is not None
    orgs = tables[0]
    assert (orgs.name, orgs.line, orgs.columns, orgs.values, orgs.lines) == (
        "organizations",
        3,
        ["id", "slug"],
        [(1, "a"), (2, None)],
        [6, 8],
    )
    assert yaml.safe_load(orgs.head) == {"organizations": {"key": "slug"}}
    assert orgs.head.count("\n") == 4  # padded: PyYAML's errors in options keep their line
    assert [t.name for t in tables] == ["organizations", "_notes", "users"]
    assert tables[2].lines == [15, 16]


@pytest.mark.parametrize(
    "text",
    [
        "t:\n  - {id: 1}\n",  # flow
        "t:\n  - &a\n    id: 1\n  - *a\n",  # anchor and alias
        "base: &b\n  role: x\nt:\n  - <<: *b\n    id: 1\n",  # merge key
        "t:\n  - id: 1\n    v: !!str 5\n",  # tag
        "t:\n  - id: 1\n    v: |\n      block\n",  # block scalar
        "t:\n  - id: 1\n    v: two\n      lines\n",  # continued plain scalar
        't:\n  - id: 1\n    v: "esc\\n"\n',  # escapes
        "t:\n  - id: 1\n    v: x # comment\n",
        "t:\n  - id: 1\n    v: trailing \n  - id: 2\n    v: x\n",
        "t:\n  - id: 1\n    v: =\n",  # the value tag: PyYAML decides
        "t:\n  - id: 1\n    # comment inside\n  - id: 2\n",
        "t:\n  - id: 1\n    a: 1\n  - id: 2\n    b: 1\n",  # other columns
        "t:\n  - id: 1\n    id: 2\n",  # a repeated key
        "t:\n  - on: 1\n",  # a column named by a boolean
        "yes:\n  - id: 1\n",  # a table named by a boolean
        "t:\r\n  - id: 1\r\n",
        "t:\n  - id: 1\n    v: a\x07b\n",  # a control character: PyYAML refuses it
        "t:\n  - id: 1\n    v: \u00e9\x7f\n",
        "---\nt:\n  - id: 1\n",
        "t:\n  - id: 1\n    v: a: b\n",  # invalid YAML: PyYAML says so
        "t:\n  - id: 1\n    v: a::\n",  # "a:" then a colon: invalid YAML
        "t:\n  - id: 1\n    v: a :\n",
        "t:\n  key: id\n  accounts:\n    login: a\n  rows:\n    - id: 1\n",  # options on several lines
    ],
)
def test_other_shapes_go_to_pyyaml(text: str) -> None:
    assert fixture_text.split(text) is None


def test_seed_files_read_the_same_either_way(tmp_path: Path) -> None:
    """seeds.read: the fast reader for the usual shape, PyYAML for anchors and merge keys."""
    fast = tmp_path / "fast.yaml"
    fast.write_text(
        "users:\n  key: email\n  rows:\n    - email: a@x\n      admin: yes\n    - email: b@x\n      admin: no\n"
    )
    slow = tmp_path / "slow.yaml"
    slow.write_text(
        "_defaults: &d {admin: no}\nusers:\n  key: email\n  rows:\n"
        "    - {<<: *d, email: a@x, admin: yes}\n    - {<<: *d, email: b@x}\n"
    )
    read = [seeds.read(p).tables[0] for p in (fast, slow)]
    for rows in read:
        assert (rows.table, rows.key, rows.dicts()) == (
            "users",
            ("email",),
            [{"email": "a@x", "admin": True}, {"email": "b@x", "admin": False}],
        )
    assert read[0].lines == [4, 6] and read[1].lines == [5, 6]


def distinct_columns(count: int) -> dict[str, list[str]]:
    """Columns of distinct values, each of one scalar type in several of its YAML 1.1 forms,
    and the same with nulls among them (~, null, no value): the shapes of real exports."""
    zones = ["", "Z", "+00:00", "-00:00", "+05:30", "-11:00"]
    columns = {
        "ints": [f"{(-1) ** i * i * 7919}" for i in range(count)],
        "signed_ints": [f"+{i}" if i % 2 else f"-{i}" for i in range(count)],
        "yaml11_ints": [["0o17", "012", "0x1F", "0b101", "1_000", "190:20:30", "-0"][i % 7] for i in range(count)],
        "floats": [f"{i * 7919 % 100_000 / 100:.2f}" for i in range(count)],
        "repr_floats": [repr(i / 7.3) for i in range(count)],
        "exponents": [f"{i}.5e+{i % 30}" if i % 2 else f"-{i}.{i}E-{i % 12}" for i in range(count)],
        "numbers": [f"{i}" if i % 3 else f"{i}.{i}" for i in range(count)],
        "yaml11_floats": [
            ["1_000.5", ".5", "190:20:30.15", ".inf", "-.Inf", ".NaN", "1.", "+0.0", "-0.0", "6.8523015e+5"][i % 10]
            for i in range(count)
        ],
        "dates": [f"{1900 + i % 200:04d}-{1 + i % 12:02d}-{1 + i % 28:02d}" for i in range(count)],
        "datetimes": [
            f"{2000 + i % 30}-{1 + i % 12:02d}-{1 + i % 28:02d}{'Tt '[i % 3]}{i % 24:02d}:{i % 60:02d}:{i * 7 % 60:02d}"
            f"{'.' + str(i)[: 1 + i % 6] if i % 4 else ''}{zones[i % 6]}"
            for i in range(count)
        ],
        "yaml11_datetimes": [
            ["2001-12-14t21:59:43.10-05:00", "2001-12-14 21:59:43.10 -5", "2002-12-14", "2001-1-4 1:59:43",
             "2001-12-14T21:59:43.1234567Z"][i % 5]
            for i in range(count)
        ],
        "booleans": [["yes", "No", "on", "OFF", "ON", "Off", "true", "False", "TRUE"][i % 9] for i in range(count)],
        "strings": [f"customer.{i}@example.com" if i % 5 else f"'quoted {i}'" for i in range(count)],
        "string_lookalikes": [["1e3", "0x", "12:30", "2025-13", "1.2.3", "trUe", "x", "-.5x"][i % 8] + str(i) for i in range(count)],
    }  # fmt: skip
    for name in list(columns):
        columns[f"{name}_with_nulls"] = [
            ["~", "null", "", "NULL"][i % 4] if i % 5 == 2 else value for i, value in enumerate(columns[name])
        ]
    return columns


def test_distinct_value_columns_of_every_scalar_type() -> None:
    """Whole columns (numbers, dates, date-times converted at once, the rest value by value)
    give PyYAML's values, value for value."""
    columns = distinct_columns(300)
    text = "t:\n" + "".join(
        "  - "
        + "\n    ".join(f"{name}:{' ' + values[i] if values[i] else ''}" for name, values in columns.items())
        + "\n"
        for i in range(300)
    )
    tables = fixture_text.split(text)
    assert tables is not None
    slow = yaml.safe_load(text)["t"]
    for index, name in enumerate(tables[0].columns):
        fast = [row[index] for row in tables[0].values]
        assert repr(fast) == repr([row[name] for row in slow]), name
        if index in tables[0].strs:  # str() of each value, as the reader found it at once
            assert tables[0].strs[index] == [str(value) for value in fast], name
    assert {tables[0].columns[i] for i in tables[0].strs} == {"dates", "datetimes"}


@pytest.mark.parametrize("value", ["2025-13-01", "2025-02-30T10:00:00", "2025-01-01 10:00:60"])
def test_an_impossible_date_fails_as_with_pyyaml(value: str) -> None:
    text = "t:\n" + "".join(f"  - id: {i}\n    at: {value if i == 7 else '2025-01-01'}\n" for i in range(20))
    with pytest.raises(ValueError) as slow:
        yaml.safe_load(text)
    with pytest.raises(ValueError) as fast:
        fixture_text.split(text)
    assert str(fast.value) == str(slow.value)


@pytest.mark.parametrize("seed", range(40))
def test_date_time_texts_are_str_of_the_values_for_every_mix_of_fractions_and_zones(seed: int) -> None:
    """The plain replacements for the usual export (one fraction length, +hh:mm, Z or no zone)
    and the general path give str() of datetime.fromisoformat() of each, whatever the mix."""
    import datetime
    import random

    chosen = random.Random(seed)
    fractions = chosen.sample(["", ".5", ".12", ".123", ".1234", ".12345", ".123456", ".000", ".000000"], 2)
    zones = chosen.sample(["", "Z", "+00:00", "-00:00", "+05:30", "-03:00"], 2)
    uniform = seed % 2 == 0  # half of them of one form only: the fast path's case
    texts = []
    for i in range(50):
        fraction = fractions[0] if uniform else chosen.choice(fractions)
        zone = zones[0] if uniform else chosen.choice(zones)
        separator = chosen.choice("Tt ")
        texts.append(f"2025-0{1 + i % 9}-1{i % 10}{separator}1{i % 10}:2{i % 10}:3{i % 10}{fraction}{zone}")
    expected = [str(datetime.datetime.fromisoformat(text)) for text in texts]
    assert fixture_text._datetime_strs("\n".join(texts)) == expected
