"""A backup file is input: restore runs only the SQL and COPY data pg_dump writes (issue 12.1)."""

from __future__ import annotations

import gzip
import re
import subprocess
from pathlib import Path

import psycopg
import pytest

from backup_helpers import build_rich, fingerprint, schema_dump
from conftest import Run
from dbops.backups.restore import _has_restrict
from dbops.backups.script_filter import ScriptFilter, ScriptRefused
from dbops.postgres.embedded import bin_dir
from dbops.postgres.tools import Tool
from test_backup import backup, refresh_manifest, side_databases


def state_of(url: str) -> tuple[str, dict[str, str]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return schema_dump(url), fingerprint(conn)


def insert_after(text: str, marker: str, payload: str) -> str:
    """`payload` after the statement that begins with `marker` (at the blank line after it)."""
    at = text.index("\n\n", text.index(marker)) + 2
    return text[:at] + payload + text[at:]


PAYLOADS = {
    "shell": "\\! touch {pwned}\n",
    "shell mid-line": "SELECT 1; \\! touch {pwned}\n",
    "connect live": "\\connect {live}\nCREATE TABLE pwned_live (a int);\nDROP TABLE public.notes;\nSELECT 1/0;\n",
    "output file": "\\o {pwned}\nSELECT 1;\n",
    "copy program": "\\copy public.notes to program 'touch {pwned}'\n",
    "server copy": "COPY public.notes TO PROGRAM 'touch {pwned}';\n",
    "include": "\\i {pwned}\n",
    "set and gexec": "\\set x 1\nSELECT 'SELECT 1' \\gexec\n",
}


@pytest.mark.parametrize("in_place", [False, True], ids=["scratch", "in-place"])
@pytest.mark.parametrize("payload", list(PAYLOADS))
def test_a_crafted_plain_backup_is_refused_and_nothing_runs(
    project: Path,
    cli: Run,
    admin_url: str,
    database_url: str,
    db: psycopg.Connection,
    tmp_path: Path,
    payload: str,
    in_place: bool,
) -> None:
    build_rich(db)
    path = backup(cli)
    db.execute("DELETE FROM public.notes WHERE id > 3")
    before = state_of(database_url)
    pwned = tmp_path / "pwned_shell"
    text = gzip.decompress(path.read_bytes()).decode()
    key = re.search(r"^\\restrict (\w+)$", text, re.M)
    # pg_dump's own \restrict key is in the file: an attacker lifts it first
    unrestrict = f"\\unrestrict {key.group(1)}\n" if key else ""
    bad = PAYLOADS[payload].format(pwned=pwned, live=db.info.dbname)
    crafted = insert_after(text, "CREATE TABLE public.notes", unrestrict + bad)
    path.write_bytes(gzip.compress(crafted.encode()))
    refresh_manifest(path)
    line = crafted[: crafted.index(bad)].count("\n") + 1
    result = cli("restore", str(path), "--force", *(["--in-place"] if in_place else []))
    assert result.code == 2, result.text
    lines = [x for x in result.err.splitlines() if x.startswith("Error:")]
    assert len(lines) == 1 and f"line {line}" in lines[0] and "pg_dump never writes" in lines[0], result.err
    assert "Traceback" not in result.err
    assert not pwned.exists()
    assert state_of(database_url) == before
    assert side_databases(admin_url, database_url) == []  # no scratch database, nothing swapped


def test_a_custom_archive_with_a_foreign_entry_kind_is_refused(
    project: Path, cli: Run, admin_url: str, database_url: str, db: psycopg.Connection
) -> None:
    db.execute("CREATE TABLE notes (id int); INSERT INTO notes VALUES (1); COMMENT ON TABLE notes IS 'n'")
    path = backup(cli, "--format=custom")
    data = path.read_bytes()
    kind = b"\x00\x07\x00\x00\x00COMMENT"  # a length-prefixed string of the archive's TOC
    assert kind in data
    path.write_bytes(data.replace(kind, b"\x00\x07\x00\x00\x00PWNKIND"))
    refresh_manifest(path)
    before = state_of(database_url)
    result = cli("restore", str(path), "--force")
    assert result.code == 2, result.text
    assert "is not one pg_dump writes" in result.err and "PWNKIND" in result.err
    assert state_of(database_url) == before
    assert side_databases(admin_url, database_url) == []


def test_a_clean_create_dump_does_not_drop_the_live_database(
    project: Path, cli: Run, admin_url: str, database_url: str, db: psycopg.Connection
) -> None:
    """pg_dump --clean --create writes DROP DATABASE <live> and \\connect <live>: both are the
    head's, and left out (psql stays in the scratch database)."""
    db.execute("CREATE TABLE notes (id int); INSERT INTO notes VALUES (1), (2)")
    path = backup(cli, "--compress=none")
    done = subprocess.run(
        [str(bin_dir() / "pg_dump"), "--clean", "--create", "--dbname", database_url],
        capture_output=True,
        check=True,
    )
    assert b"DROP DATABASE" in done.stdout and b"\\connect" in done.stdout
    path.write_bytes(done.stdout)
    refresh_manifest(path)
    result = cli("restore", str(path), "--force")
    assert result.code == 0, result.text
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM notes").fetchone() == (2,)


def filtered(script: bytes) -> bytes | str:
    script_filter = ScriptFilter("target", server_major=18)
    try:
        return script_filter.feed(script) + script_filter.close()
    except ScriptRefused as exc:
        return str(exc)


@pytest.mark.parametrize(
    ("script", "verdict"),
    [
        (b"SELECT 1;\n\\! touch x\n", "line 2: the psql command \\!"),
        (b"SELECT 1 \\gexec\n", "line 1: the psql command \\gexec"),
        (b"CREATE TABLE t (a int);\n\\connect live\n", "line 2: the psql command \\connect"),
        (b"COPY t (a) FROM stdin;\n1\n\\.\r\n\\! x\n", "line 4: the psql command \\!"),
        (b"copy t from stdin;\n'\n\\.\n\\! x\n", "line 1: a COPY statement other than pg_dump's"),
        (b"/*\nCOPY t FROM stdin;\n*/ \\! x\n\\.\n", "line 3: the psql command \\!"),
        (
            b"CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1;\nCOPY t FROM stdin;\n\\! x\n\\.\n",
            "line 3: the psql command \\!",
        ),
        (b"SELECT set_config('standard_conforming_strings', 'off', false);\n", "line 1: a change of"),
        (b"SELECT $1e'\\' \\! x ';\n", "line 1: a quote right after $1e"),
        (b"SELECT a$b$ FROM x; \\o /tmp/x\n", "line 1: the psql command \\o"),
    ],
)
def test_the_script_filter_refuses_what_psql_would_run(script: bytes, verdict: str) -> None:
    assert str(filtered(script)).startswith(verdict)


def test_the_script_filter_passes_what_pg_dump_writes() -> None:
    script = (
        b"\\restrict abc\nSET standard_conforming_strings = on;\nCREATE DATABASE x;\n\\unrestrict abc\n"
        b"\\connect x\n\\restrict abc\nCREATE TABLE t (a text);\n"
        b"SELECT '\\! no'; SELECT $$ \\! $$, $q$ \\o $q$, E'\\' \\! ', \"a\\b\";\n-- \\! comment\n"
        b"/* /* \\! */ \\! */ SELECT 1;\nCOPY public.t (a) FROM stdin;\n\\! data\n\\\\N\n\\.\n"
        b"CREATE FUNCTION f() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n SELECT 1;\nEND;\n\\unrestrict abc\n"
    )
    out = filtered(script)
    assert isinstance(out, bytes), out
    assert b"\\restrict" not in out and b"\\connect" not in out and b"CREATE DATABASE" not in out
    assert b"\\! data\n" in out


def test_psql_restrict_is_used_where_psql_has_it() -> None:
    def psql(version: tuple[int, int]) -> Tool:
        return Tool("psql", Path("psql"), version)

    assert _has_restrict(psql((18, 0))) and _has_restrict(psql((15, 14))) and _has_restrict(psql((17, 6)))
    assert (
        not _has_restrict(psql((15, 13)))
        and not _has_restrict(psql((16, 9)))
        and not _has_restrict(psql((12, 22)))
    )


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 64, 1 << 20])
def test_the_script_filter_counts_the_rows_of_each_copy_block(size: int) -> None:
    """Whatever the chunks: a row per line of COPY data, '\\.' not one of them, nor a value that
    ends in an (escaped) backslash and a dot; quoted names."""
    script = (
        b"CREATE TABLE public.a (x text);\n"
        b"COPY public.a (x) FROM stdin;\n1\n\\\\.\nthree \\\\.\n\\.\n\n"
        b'COPY "my ""schema"".x"."Tab le" (x) FROM stdin;\n\\.\r\n'
        b"COPY public.b (x) FROM stdin;\nCOPY public.a (x) FROM stdin;\n\\.\n"
        b"COPY public.a (x) FROM stdin;\n5\n\\.\n-- PostgreSQL database dump complete\n"
    )
    script_filter = ScriptFilter("target", server_major=18)
    out = b"".join(script_filter.feed(script[i : i + size]) for i in range(0, len(script), size))
    assert out + script_filter.close() == script
    assert script_filter.rows == {("public", "a"): 4, ('my "schema".x', "Tab le"): 0, ("public", "b"): 1}


@pytest.mark.parametrize("size", range(1, 24))
def test_the_script_filter_finds_the_end_of_copy_data_across_chunks(size: int) -> None:
    """COPY data goes through in views of the chunks, nothing held back: the end of its block
    ('\\.' at a line's start) is found wherever the chunks split it, among many backslashes
    (NULLs, escapes, values that begin with '\\.'), and what follows it is checked again."""
    rows = b"".join(b"%d\t\\N\t\\\\.x\t\\.y\ta\\\\\n" % i for i in range(12)) + b"\\.z\n\\.\rq\n"
    script = b"COPY public.a (x) FROM stdin;\n" + rows + b"\\.\n" + b"SELECT 1;\n\\! touch x\n"
    whole = filtered(script)
    assert str(whole).startswith("line 18: the psql command \\!"), whole
    script_filter = ScriptFilter("target", server_major=18)
    out = b""
    with pytest.raises(ScriptRefused) as refused:
        for i in range(0, len(script), size):
            out += b"".join(script_filter.parts(script[i : i + size]))
    assert refused.value.line == 18
    assert script.startswith(out) and b"\\!" not in out  # all before the refused line's chunk
    assert script_filter.rows == {("public", "a"): 14}
