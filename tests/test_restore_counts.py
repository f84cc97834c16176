"""A restore's row check without count(*): the rows pg_restore inserted into a new database, from
the server's statistics (dbops.backups.contents.inserted_by_load), taken only where they can
only mean that; anything else is counted."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from conftest import url_for
from dbops.backups.contents import inserted_by_load
from dbops.postgres.databases import wait_until_unused


@pytest.fixture
def new_database(admin_url: str) -> Iterator[str]:
    name = f"dbops_t_counts_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield url_for(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def test_only_counters_that_can_only_mean_the_loaded_rows_are_taken(new_database: str) -> None:
    with psycopg.connect(new_database, autocommit=True) as loader:  # as pg_restore loads
        for table in ("copied", "empty", "deleted_from", "updated", "truncated", "in_schema"):
            schema = "other." if table == "in_schema" else ""
            if schema:
                loader.execute("CREATE SCHEMA other")
            loader.execute(f"CREATE TABLE {schema}{table} (id int)")
        with loader.cursor().copy("COPY copied (id) FROM STDIN") as copy:
            for i in range(1000):
                copy.write_row((i,))
        loader.execute("INSERT INTO other.in_schema SELECT generate_series(1, 7)")
        loader.execute("INSERT INTO deleted_from SELECT generate_series(1, 5)")
        loader.execute("DELETE FROM deleted_from WHERE id = 1")  # 4 left: inserted 5
        loader.execute("INSERT INTO updated SELECT generate_series(1, 3)")
        loader.execute("UPDATE updated SET id = id + 1")
        loader.execute("INSERT INTO truncated SELECT generate_series(1, 9)")
        loader.execute("TRUNCATE truncated")  # none left: inserted 9
    with psycopg.connect(new_database, autocommit=True) as conn:
        assert wait_until_unused(conn, conn.info.dbname)  # the loader wrote its counters as it ended
        assert inserted_by_load(conn) == {("public", "copied"): 1000, ("other", "in_schema"): 7}
