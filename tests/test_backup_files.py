"""Backup files on disk: manifests read with their own words, names that never collide, and
temporary files of other hosts left alone (issue 12, items 6, 12 and 18)."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from conftest import Run


def backup(cli: Run, *args: str) -> Path:
    result = cli("backup", "--json", *args)
    assert result.code == 0, result.text
    return Path(json.loads(result.out)["report"]["path"])


@pytest.mark.parametrize("manifest", ["{}", '{"file": "x.sql.gz"}'], ids=["empty", "partial"])
def test_a_manifest_that_is_not_dbops_is_named_so(
    project: Path, cli: Run, db: psycopg.Connection, manifest: str
) -> None:
    db.execute("CREATE TABLE notes (id int)")
    path = backup(cli)
    path.with_name(path.name + ".json").write_text(manifest)
    result = cli("restore", str(path), "--force")
    assert result.code == 2, result.text
    assert "TypeError" not in result.err and "Traceback" not in result.err
    expected = "it is an empty object ({})" if manifest == "{}" else "it lacks database, environment"
    assert f"its manifest ({path.name}.json) is not one dbops writes: {expected}" in result.err
    assert "Hint: Use a different backup" in result.err


def test_a_file_larger_than_its_manifest_says_is_not_called_truncated(
    project: Path, cli: Run, db: psycopg.Connection
) -> None:
    db.execute("CREATE TABLE notes (id int)")
    path = backup(cli)
    size = path.stat().st_size
    with path.open("ab") as handle:
        handle.write(b"\0" * 10)
    result = cli("restore", str(path), "--force")
    assert result.code == 2, result.text
    assert "truncated" not in result.err
    assert f"{size + 10:,} bytes, larger than the {size:,} its manifest says" in result.err
