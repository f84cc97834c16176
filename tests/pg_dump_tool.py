"""The real pg_dump a test runs against its server: the embedded one (18), or for an older
server the client of that server's own major (its plain output loads into servers of its own
version or newer: pg_dump 18's SET transaction_timeout fails on 15)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import psycopg
import pytest

from dbops.postgres.embedded import bin_dir
from dbops.postgres.tools import tool_version


def pg_dump_for(url: str) -> Path:
    with psycopg.connect(url) as conn:
        major = conn.info.server_version // 10000
    candidates = [bin_dir() / "pg_dump", Path(f"/usr/lib/postgresql/{major}/bin/pg_dump")]
    for path in candidates:
        if path.is_file() and tool_version(str(path))[0] == major:
            return path
    pytest.skip(f"no pg_dump {major} on this machine")  # the system server has its own client


def pg_dump(url: str, *args: str) -> str:
    """pg_dump's plain output of that database, as text."""
    done = subprocess.run(
        [str(pg_dump_for(url)), *args, f"--dbname={url}"], capture_output=True, check=True, timeout=120
    )
    return done.stdout.decode("utf-8")
