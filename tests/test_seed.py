"""seed against a real PostgreSQL: order, idempotence, all-or-nothing, sequences, environments."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import psycopg
import pytest

from conftest import REPO, Run, write_config

# a test that takes `migrated` starts from a clone of the migrated sample (conftest.database_url)
MIGRATED_SAMPLE = True


def write_seeds(folder: Path, files: dict[str, str]) -> None:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.fixture
def migrated(project: Path, cli: Run) -> Path:
    """The sample project, migrated, with its sample seeds."""
    shutil.copytree(REPO / "seeds", project / "seeds")
    assert cli("migrate").code == 0
    return project


def count(db: psycopg.Connection, table: str) -> int:
    row = db.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


def test_the_sample_seed_as_in_the_spec(
    migrated: Path, cli: Run, db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("dbops.output.render._is_tty", lambda stream: True)  # the spec's display
    result = cli("seed")
    assert result.code == 0, result.text
    lines = result.out.splitlines()
    assert lines[0] == "🌱 Seeding Database"
    for line in (
        "✓ Users: 10 records created",
        "✓ Organizations: 3 records created",
        "✓ Projects: 15 records created",
        "✓ Workflows: 23 records created",
        "✓ API Keys: 5 created, 1 updated",  # the Python seed's update, counted too
        "✓ Workflow Permissions: 69 records created",  # the SQL seed's rows
        "Test Accounts:",
        "- admin@exfabrica.com / Admin123!",
        "- user@exfabrica.com / User123!",
    ):
        assert line in lines, result.out
    password = db.execute("SELECT password FROM users WHERE email = 'admin@exfabrica.com'").fetchone()
    assert password is not None and password[0].startswith("scrypt$") and "Admin123!" not in password[0]
    key = db.execute("SELECT key_hash FROM api_keys WHERE prefix = 'efk_live_ci1'").fetchone()
    assert key is not None and len(key[0]) == 64
    assert count(db, "workflow_permissions") == 69  # the development-only SQL seed ran


def test_reseeding_changes_nothing(migrated: Path, cli: Run, db: psycopg.Connection) -> None:
    assert cli("seed").code == 0
    before = db.execute("SELECT md5(string_agg(u::text, ',' ORDER BY id)) FROM users u").fetchone()
    again = cli("seed")
    assert again.code == 0
    assert "✓ Users: 10 unchanged" in again.out and "✓ Workflows: 23 unchanged" in again.out
    assert "✓ API Keys: 5 unchanged" in again.out  # the Python seed's UPDATE changed nothing this time
    assert db.execute("SELECT md5(string_agg(u::text, ',' ORDER BY id)) FROM users u").fetchone() == before
    assert count(db, "users") == 10 and count(db, "workflow_permissions") == 69


def test_sequences_move_past_seeded_ids(migrated: Path, cli: Run, db: psycopg.Connection) -> None:
    assert cli("seed").code == 0
    row = db.execute("INSERT INTO users (email, password) VALUES ('new@x', 'p') RETURNING id").fetchone()
    assert row == (11,)
    assert db.execute("INSERT INTO workflows (project_id, name) VALUES (1, 'n') RETURNING id").fetchone() == (
        24,
    )


def test_clear_replants(migrated: Path, cli: Run, db: psycopg.Connection) -> None:
    assert cli("seed").code == 0
    db.execute("UPDATE organizations SET name = 'Renamed' WHERE id = 1")
    db.execute("INSERT INTO organizations (name, slug) VALUES ('Extra', 'extra')")
    result = cli("seed", "--clear")
    assert result.code == 0, result.text
    assert "Cleared the seeded tables first (--clear)" in result.out
    assert "✓ Organizations: 3 records created" in result.out
    assert count(db, "organizations") == 3
    assert db.execute("SELECT name FROM organizations WHERE id = 1").fetchone() == ("ExFabrica",)


def test_a_failing_row_in_the_middle_leaves_nothing(migrated: Path, cli: Run, db: psycopg.Connection) -> None:
    rows = "".join(f"  - {{id: {i}, name: Org {i}, slug: org-{i}}}\n" for i in range(1, 7))
    rows += "  - {id: 7, name: Dup, slug: org-3}\n" + "".join(
        f"  - {{id: {i}, name: Org {i}, slug: org-{i}}}\n" for i in range(8, 10)
    )
    write_seeds(migrated / "seeds", {"01_orgs.yaml": "# organizations\norganizations:\n" + rows})
    result = cli("seed")
    assert result.code == 1
    assert result.err.splitlines()[0] == (
        "Error: seeds/01_orgs.yaml:9 (row 7): organizations: duplicate key value violates unique constraint "
        '"organizations_slug_key": slug=org-3'
    )
    assert "Traceback" not in result.text
    assert count(db, "organizations") == 0


def test_foreign_key_order_across_files_not_file_names(
    migrated: Path, cli: Run, db: psycopg.Connection
) -> None:
    write_seeds(
        migrated / "seeds",
        {
            "a_projects.yaml": "projects:\n  - {id: 1, organization_id: 1, name: P}\n",
            "b_members.yaml": "organization_members:\n  - {organization_id: 1, user_id: 1}\n",
            "c_users.yaml": "users:\n  - {id: 1, email: u@x, password: p}\n",
            "z_orgs.yaml": "organizations:\n  - {id: 1, name: O, slug: o}\n",
        },
    )
    result = cli("seed")
    assert result.code == 0, result.text
    order = [line.split(":")[0] for line in result.out.splitlines() if line.startswith("✓ ")]
    assert order.index("✓ Organizations") < order.index("✓ Projects")
    assert order.index("✓ Users") < order.index("✓ Organization Members")


def test_a_cycle_is_refused_by_name_unless_deferrable(
    migrated: Path, cli: Run, db: psycopg.Connection
) -> None:
    db.execute("CREATE TABLE hens (id int PRIMARY KEY, egg_id int)")
    db.execute("CREATE TABLE eggs (id int PRIMARY KEY, hen_id int REFERENCES hens)")
    db.execute("ALTER TABLE hens ADD FOREIGN KEY (egg_id) REFERENCES eggs")
    write_seeds(
        migrated / "seeds", {"farm.yaml": "hens:\n  - {id: 1, egg_id: 1}\neggs:\n  - {id: 1, hen_id: 1}\n"}
    )
    refused = cli("seed")
    assert refused.code == 2
    assert "Seeded tables reference each other in a cycle: " in refused.err and "hens" in refused.err
    db.execute("ALTER TABLE hens DROP CONSTRAINT hens_egg_id_fkey")
    db.execute("ALTER TABLE eggs DROP CONSTRAINT eggs_hen_id_fkey")
    db.execute("ALTER TABLE hens ADD FOREIGN KEY (egg_id) REFERENCES eggs DEFERRABLE")
    db.execute("ALTER TABLE eggs ADD FOREIGN KEY (hen_id) REFERENCES hens DEFERRABLE")
    result = cli("seed")
    assert result.code == 0, result.text
    assert count(db, "hens") == 1 and count(db, "eggs") == 1


def test_self_reference_in_row_order(migrated: Path, cli: Run, db: psycopg.Connection) -> None:
    db.execute("CREATE TABLE staff (id int PRIMARY KEY, manager_id int REFERENCES staff)")
    write_seeds(
        migrated / "seeds",
        {"staff.yaml": "staff:\n  - {id: 1, manager_id: null}\n  - {id: 2, manager_id: 1}\n"},
    )
    assert cli("seed").code == 0 and count(db, "staff") == 2


def test_per_environment_folders_templates_and_python(
    migrated: Path, cli: Run, database_url: str, db: psycopg.Connection
) -> None:
    write_config(
        migrated,
        f'environments:\n  development:\n    url: "{database_url}"\n  test:\n    url: "{database_url}"\n',
    )
    write_seeds(
        migrated / "seeds",
        {
            "01_orgs.yaml": "organizations:\n  - {id: 1, name: Shared, slug: shared}\n",
            "test/02_organizations.csv": "id,name,slug\n2,Test only,test-only\n",
            "development/02_orgs.sql": (
                "{% for i in range(2, 5) %}\n"
                "INSERT INTO organizations (id, name, slug) VALUES ({{ i }}, {{ ('Dev ' ~ env ~ ' ' ~ i) | literal }}, 'dev-{{ i }}');\n"
                "{% endfor %}\n"
            ),
            "development/03_custom.py": (
                "def seed(db):\n"
                "    db.execute(\"INSERT INTO users (email, password) VALUES ('py@x', 'p')\")\n"
            ),
        },
    )
    assert cli("seed", "--env=test").code == 0
    assert [r[0] for r in db.execute("SELECT slug FROM organizations ORDER BY id").fetchall()] == [
        "shared",
        "test-only",
    ]
    db.execute("DELETE FROM organizations")
    result = cli("seed", "--env=development")
    assert result.code == 0, result.text
    names = [r[0] for r in db.execute("SELECT name FROM organizations ORDER BY id").fetchall()]
    assert names == ["Shared", "Dev development 2", "Dev development 3", "Dev development 4"]
    assert db.execute("SELECT count(*) FROM users WHERE email = 'py@x'").fetchone() == (1,)


def test_failures_in_sql_python_and_csv_seeds_name_the_line(
    migrated: Path, cli: Run, db: psycopg.Connection
) -> None:
    write_seeds(
        migrated / "seeds",
        {"01.sql": "INSERT INTO organizations (id, name, slug) VALUES (1, 'A', 'a');\n\nSELECT 1/0;\n"},
    )
    result = cli("seed")
    assert result.code == 1 and result.err.startswith("Error: seeds/01.sql:3: division by zero")
    assert count(db, "organizations") == 0
    write_seeds(migrated / "seeds", {"01.py": "def seed(db):\n    x = 1\n    raise RuntimeError('boom')\n"})
    assert cli("seed").err.startswith("Error: seeds/01.py:3: boom")
    write_seeds(migrated / "seeds", {"01_organizations.csv": "id,name,slug\n1,A,a\n2,B\n"})
    csv = cli("seed")
    assert csv.code == 1 and csv.err.startswith(
        "Error: seeds/01_organizations.csv:3 (row 2): organizations: missing data for column"
    )
    write_seeds(migrated / "seeds", {"01.yaml": "organizations:\n  - {id: 1, name: A, slug: a\n"})
    bad = cli("seed")
    assert bad.code == 2 and bad.err.startswith("Error: seeds/01.yaml:3:1: invalid YAML")


def test_refusals(migrated: Path, cli: Run, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBOPS_TEST_PROD_URL", database_url)
    refused = cli("seed", "--env=production")
    assert refused.code == 3
    assert (
        "Seeding is refused in the protected environment production" in refused.err
        and "allow_seed" in refused.err
    )
    (migrated / "migrations" / "20991231000000_later.sql").write_text("CREATE TABLE later (id int);\n")
    pending = cli("seed")
    assert pending.code == 1 and "1 migration(s) pending" in pending.err


def test_csv_reseed_upserts_by_primary_key(migrated: Path, cli: Run, db: psycopg.Connection) -> None:
    write_seeds(migrated / "seeds", {"01_organizations.csv": "id,name,slug\n1,A,a\n2,B,b\n"})
    first = cli("seed")
    assert first.code == 0 and "✓ Organizations: 2 records created" in first.out
    (migrated / "seeds" / "01_organizations.csv").write_text("id,name,slug\n1,A,a\n2,B2,b\n3,C,c\n")
    second = cli("seed")
    assert second.code == 0, second.text
    assert "✓ Organizations: 1 created, 1 updated, 1 unchanged" in second.out
    assert count(db, "organizations") == 3


def test_json_report(migrated: Path, cli: Run) -> None:
    doc = json.loads(cli("seed", "--json").out)
    assert doc["ok"] and doc["report"]["accounts"][0] == {"login": "admin@exfabrica.com"}
    assert "Admin123!" not in json.dumps(doc)  # passwords are shown on a terminal only
    tables = {t["table"]: t for t in doc["report"]["tables"]}
    assert tables["workflows"]["declared"] == 23 and tables["workflows"]["created"] == 23


def test_progress_is_reported_per_table(migrated: Path, database_url: str, db: psycopg.Connection) -> None:
    """What the terminal's progress bar is fed: rows of YAML tables, bytes of CSV files."""
    from dbops.seeding import files as seeds
    from dbops.seeding.loader import Seeder
    from dbops.steps.seed import _progress_bar

    rows = "".join(f"  - {{id: {i}, name: Org {i}, slug: org-{i}}}\n" for i in range(1, 2501))
    write_seeds(
        migrated / "seeds",
        {
            "01_organizations.yaml": "organizations:\n" + rows,
            "02_users.csv": "id,email,password\n" + "".join(f"{i},u{i}@x,p\n" for i in range(1, 101)),
        },
    )
    calls: list[tuple[str, int, int]] = []
    files = [seeds.read(p) for p in seeds.discover(migrated / "seeds", "development")]
    with db.transaction():
        Seeder(db, migrated, {}, lambda *call: calls.append(call)).load(files, clear=False)
    assert [c for c in calls if c[0] == "organizations"] == [
        ("organizations", 1000, 2500),
        ("organizations", 2000, 2500),
        ("organizations", 2500, 2500),
    ]
    size = (migrated / "seeds" / "02_users.csv").stat().st_size
    assert [c for c in calls if c[0] == "users"] == [("users", size, size)]
    with _progress_bar(True) as advance:  # the bar itself, drawn to a non-terminal: it must not fail
        assert advance is not None
        advance("organizations", 10, 20)
    with _progress_bar(False) as nothing:
        assert nothing is None


def test_a_row_that_omits_a_column_keeps_its_value(migrated: Path, cli: Run, db: psycopg.Connection) -> None:
    """Upserts set only the columns a row names: never back to the default, never to NULL."""
    write_seeds(
        migrated / "seeds",
        {
            "users.yaml": (
                "users:\n  key: email\n  rows:\n"
                "    - {email: a@x, password: p, role: admin}\n"
                "    - {email: b@x, password: p}\n"
                "    - {email: c@x, password: p, role: viewer}\n"
            ),
        },
    )
    assert cli("seed").code == 0
    db.execute("UPDATE users SET role = 'admin' WHERE email = 'b@x'")
    again = cli("seed")
    assert again.code == 0 and "✓ Users: 3 unchanged" in again.out
    roles: dict[str, str] = dict(db.execute("SELECT email, role FROM users").fetchall())
    assert roles == {"a@x": "admin", "b@x": "admin", "c@x": "viewer"}


def test_the_terminal_gets_a_progress_bar(migrated: Path, cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    from contextlib import contextmanager

    from dbops.output import render as output
    from dbops.steps import seed as seed_step

    shown: list[bool] = []
    calls: list[tuple[str, int, int]] = []

    @contextmanager
    def recorder(show: bool):  # type: ignore[no-untyped-def]
        shown.append(show)
        yield (lambda *call: calls.append(call)) if show else None

    monkeypatch.setattr(seed_step, "_progress_bar", recorder)
    monkeypatch.setattr(seed_step, "PROGRESS_FROM_BYTES", 0)
    monkeypatch.setattr(output, "_is_tty", lambda stream: True)
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert cli("seed").code == 0
    assert shown == [True] and ("workflows", 23, 23) in calls
    assert cli("seed", "--json").code == 0 and shown[-1] is False  # never with --json


def test_what_review_found(migrated: Path, cli: Run, db: psycopg.Connection) -> None:
    db.execute('CREATE TABLE "Docs" (id int PRIMARY KEY, body json, at_ jsonb, note text)')
    db.execute("CREATE TABLE always (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text)")
    db.execute("CREATE TABLE counters (id serial PRIMARY KEY, v text)")
    write_seeds(
        migrated / "seeds",
        {
            "01_docs.yaml": (
                "Docs:\n"
                "  - {id: 1, body: {a: 1}, at_: {when: 2025-01-02}, note: x}\n"
                "always:\n  - {id: 7, v: a}\n"
            ),
            "02.sql": 'INSERT INTO counters (id, v) VALUES (41, {{ none | literal }}), (42, {{ "it\'s" | literal }}) ON CONFLICT (id) DO NOTHING;\n',
        },
    )
    first = cli("seed")
    assert first.code == 0, first.text
    again = cli("seed")
    assert again.code == 0 and "✓ Docs: 1 unchanged" in again.out  # json compared as text
    assert db.execute('SELECT at_ FROM "Docs"').fetchone() == ({"when": "2025-01-02"},)
    assert db.execute("SELECT v FROM counters ORDER BY id").fetchall() == [(None,), ("it's",)]
    assert db.execute("INSERT INTO counters (v) VALUES ('next') RETURNING id").fetchone() == (
        43,
    )  # SQL-seeded too
    assert db.execute("INSERT INTO always (v) VALUES ('next') RETURNING id").fetchone() == (8,)
    db.execute("SELECT setval('counters_id_seq', 500)")
    assert cli("seed").code == 0
    assert db.execute("SELECT last_value FROM counters_id_seq").fetchone() == (500,)  # never moved back


def test_bad_seed_files_are_refused_clearly(migrated: Path, cli: Run, db: psycopg.Connection) -> None:
    cases = {
        "a.yaml": (
            "organizations:\n  - {id: 1, name: A, slug: a}\norganizations:\n  - {id: 2, name: B, slug: b}\n",
            "seeds/a.yaml:3: organizations appears twice in this file",
        ),
        "b.yaml": (
            "organizations:\n  hash: pw\n  rows: []\n",
            "seeds/b.yaml:2: organizations: hash: a mapping",
        ),
        "c.yaml": (
            "organizations:\n  key: 5\n  rows: []\n",
            "seeds/c.yaml:2: organizations: key: a column name",
        ),
        "c2.yaml": (
            "organizations:\n  key: nosuch\n  rows:\n    - {id: 1, name: A, slug: a}\n",
            "seeds/c2.yaml:1: organizations: key: no column nosuch in the table",
        ),
        "d.sql": (
            "INSERT INTO organizations (id, name, slug) VALUES (1, 'a', 'a');\nCOMMIT;\n",
            "seeds/d.sql:2: COMMIT: one transaction",
        ),
        "e.sql": ("SELECT {{ 1 / 0 }};\n", "seeds/e.sql:1: template: ZeroDivisionError"),
        "f.py": ("import sys\n\ndef seed(db):\n    sys.exit(3)\n", "seeds/f.py:4: 3"),
    }
    for name, (text, message) in cases.items():
        write_seeds(migrated / "seeds", {name: text})
        result = cli("seed")
        assert result.code in (1, 2), (name, result.text)
        assert result.err.startswith(f"Error: {message}"), (name, result.err)
        assert "Traceback" not in result.text and count(db, "organizations") == 0


def test_duplicate_keys_across_files_are_refused(migrated: Path, cli: Run, db: psycopg.Connection) -> None:
    write_seeds(
        migrated / "seeds",
        {
            "01.yaml": "organizations:\n  - {id: 1, name: A, slug: a}\n  - {id: 2, name: B, slug: b}\n",
            "02.yaml": "organizations:\n  - {id: 1, name: C, slug: c}\n",
        },
    )
    result = cli("seed")
    assert result.code == 2
    assert result.err.startswith(
        "Error: seeds/02.yaml:2: organizations: id=1 is already seeded at seeds/01.yaml:2"
    )
    assert count(db, "organizations") == 0


def test_the_check_after_loading_catches_rows_that_vanished(
    migrated: Path, cli: Run, db: psycopg.Connection
) -> None:
    """A trigger that silently drops rows: the counts by key no longer match what the files declare."""
    db.execute(
        "CREATE FUNCTION drop_b() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN IF NEW.slug = 'b' THEN RETURN NULL; END IF; RETURN NEW; END $$"
    )
    db.execute("CREATE TRIGGER drop_b BEFORE INSERT ON organizations FOR EACH ROW EXECUTE FUNCTION drop_b()")
    write_seeds(
        migrated / "seeds",
        {"01.yaml": "organizations:\n  - {id: 1, name: A, slug: a}\n  - {id: 2, name: B, slug: b}\n"},
    )
    result = cli("seed")
    assert result.code == 1
    assert result.err.startswith(
        "Error: Seed check failed for organizations: 2 rows declared, 1 found by their key"
    )
    assert count(db, "organizations") == 0


def test_clear_blocked_bom_and_a_committing_python_seed(
    migrated: Path, cli: Run, db: psycopg.Connection
) -> None:
    write_seeds(migrated / "seeds", {"01_organizations.csv": "\ufeffid,name,slug\n1,A,a\n"})
    assert cli("seed").code == 0  # the BOM is not part of the first column's name
    db.execute("CREATE TABLE audits (organization_id bigint REFERENCES organizations)")  # no CASCADE
    db.execute("INSERT INTO audits VALUES (1)")
    blocked = cli("seed", "--clear")
    assert blocked.code == 1
    assert blocked.err.startswith("Error: --clear cannot empty organizations: update or delete on table")
    assert "clear that one first" in blocked.err and count(db, "organizations") == 1
    write_seeds(migrated / "seeds", {"01.py": "def seed(db):\n    db.execute('COMMIT')\n"})
    committed = cli("seed")
    assert committed.code == 1  # refused before it reached the server (more in test_guarded.py)
    assert committed.err.startswith("Error: seeds/01.py:2: COMMIT: a seed may not end or start a transaction")


def org_rows(count: int, slug: dict[int, str] | None = None) -> str:
    """Generated block-style rows, the shape large exported fixtures have (3 lines a row)."""
    slug = slug or {}
    return "".join(
        f"  - id: {i}\n    name: Org {i}\n    slug: {slug.get(i, f'org-{i}')}\n" for i in range(1, count + 1)
    )


def test_a_large_fixture_loads_through_copy_and_reseeds(
    migrated: Path, cli: Run, db: psycopg.Connection
) -> None:
    write_seeds(migrated / "seeds", {"01_orgs.yaml": "organizations:\n" + org_rows(3000)})
    result = cli("seed")
    assert result.code == 0, result.text
    assert "✓ Organizations: 3,000 records created" in result.out
    assert count(db, "organizations") == 3000
    write_seeds(
        migrated / "seeds", {"01_orgs.yaml": "organizations:\n" + org_rows(3000, {7: "renamed", 9: "'yes'"})}
    )
    result = cli("seed")
    assert result.code == 0, result.text
    assert "✓ Organizations: 2 updated, 2,998 unchanged" in result.out
    assert db.execute("SELECT slug FROM organizations WHERE id IN (7, 9) ORDER BY id").fetchall() == [
        ("renamed",),
        ("yes",),  # quoted: a string, where plain yes would be the boolean true
    ]
    assert db.execute("SELECT nextval('organizations_id_seq')").fetchone() == (3001,)


def test_a_bad_row_of_a_large_fixture_is_named_and_nothing_stays(
    migrated: Path, cli: Run, db: psycopg.Connection
) -> None:
    # rejected while copying (too long for varchar(100)), then while merging (a unique slug)
    write_seeds(migrated / "seeds", {"01_orgs.yaml": "organizations:\n" + org_rows(2500, {2001: "x" * 101})})
    result = cli("seed")
    assert result.code == 1
    assert result.err.splitlines()[0] == (
        "Error: seeds/01_orgs.yaml:6002 (row 2001): organizations: value too long for type character varying(100)"
    )
    assert count(db, "organizations") == 0
    write_seeds(migrated / "seeds", {"01_orgs.yaml": "organizations:\n" + org_rows(2500)})
    assert cli("seed").code == 0
    write_seeds(migrated / "seeds", {"01_orgs.yaml": "organizations:\n" + org_rows(2500, {2400: "org-5"})})
    result = cli("seed")
    assert result.code == 1
    assert result.err.splitlines()[0] == (
        "Error: seeds/01_orgs.yaml:7199 (row 2400): organizations: duplicate key value violates unique "
        'constraint "organizations_slug_key": slug=org-5'
    )
    assert "Traceback" not in result.text
    assert db.execute("SELECT slug FROM organizations WHERE id = 2400").fetchone() == ("org-2400",)


def test_rows_naming_their_columns_in_another_order(migrated: Path, cli: Run, db: psycopg.Connection) -> None:
    write_seeds(
        migrated / "seeds",
        {
            "01_orgs.yaml": "organizations:\n  - {id: 1, name: One, slug: one}\n  - {slug: two, name: Two, id: 2}\n"
        },
    )
    assert cli("seed").code == 0
    assert db.execute("SELECT id, name, slug FROM organizations ORDER BY id").fetchall() == [
        (1, "One", "one"),
        (2, "Two", "two"),
    ]


@pytest.mark.parametrize("count", [3, 2500])  # INSERT for short runs, COPY for long ones
def test_a_value_lands_the_same_whichever_way_its_row_goes(
    migrated: Path, cli: Run, db: psycopg.Connection, count: int
) -> None:
    rows = "".join(
        f"  - id: {i}\n    email: u{i}@x\n    password: p\n    first_name: yes\n    last_name: {v}\n"
        for i, v in zip(
            range(1, count + 1), [".inf", "1.0e+15", "0.5", "-.INF", ".nan"] * count, strict=False
        )
    )
    write_seeds(migrated / "seeds", {"01_users.yaml": "users:\n" + rows})
    result = cli("seed")
    assert result.code == 0, result.text
    got = db.execute("SELECT first_name, last_name FROM users WHERE id <= 3 ORDER BY id").fetchall()
    assert got == [("true", "Infinity"), ("true", "1e+15"), ("true", "0.5")]


# Each YAML kind into a text column and into the typed columns it usually fills.
KINDS = {
    "ints": ["bigint", "numeric", "float8"],
    "floats": ["float8", "numeric", "real"],
    "exponents": ["float8", "numeric"],
    "yaml11_floats": ["float8"],
    "numbers": ["float8", "numeric"],
    "dates": ["date", "timestamptz", "timestamp"],
    "datetimes": ["timestamptz", "timestamp"],
    "booleans": ["boolean"],
    "strings": ["varchar(40)"],
}


def test_copy_text_lands_as_write_row_and_insert_did(db: psycopg.Connection) -> None:
    """copy_text (a column at a time, str() from the reader for dates and date-times) puts in
    every column exactly what write_row with the INSERT casts, and an INSERT, put there."""
    from psycopg import sql

    from dbops.seeding import fixture_text, loader
    from test_fixture_text import distinct_columns

    count = 240
    special_floats = [
        "1.0e-5",
        "123456789012345.6",
        "1234567890123456.0",
        "0.0001",
        "-0.0",
        "1.5e+20",
        "2.50",
    ]
    special_strings = ["'a\tb'", "'back\\slash'", "'x\u00e9y'", "'it''s'", "plain", "'\\N'"]
    source = distinct_columns(count) | {
        "floats": [special_floats[i % 7] if i % 3 else f"{i}.{i}" for i in range(count)],
        "strings": [special_strings[i % 6] + (str(i) if i % 6 == 4 else "") for i in range(count)],
    }
    names = [n for kind in KINDS for n in (kind, f"{kind}_with_nulls")]
    text = "t:\n" + "".join(
        "  - " + "\n    ".join(f"{n}:{' ' + source[n][i] if source[n][i] else ''}" for n in names) + "\n"
        for i in range(count)
    )
    tables = fixture_text.split(text)
    assert tables is not None and tables[0].strs
    values = tables[0].values
    columns = [
        (f"{name}_{i}", kind_type)
        for name in names
        for i, kind_type in enumerate(["text", *KINDS[name.removesuffix("_with_nulls")]])
    ]
    spread = [
        [n, *(row[names.index(c.rsplit("_", 1)[0])] for c, _ in columns)] for n, row in enumerate(values)
    ]
    for table in ("by_text", "by_row", "by_insert"):
        db.execute(
            sql.SQL("CREATE TABLE {} (n int, {})").format(
                sql.Identifier(table),
                sql.SQL(", ").join(sql.SQL(f"{{}} {t}").format(sql.Identifier(c)) for c, t in columns),
            )
        )
    index = {c: names.index(c.rsplit("_", 1)[0]) for c, _ in columns}
    texts = loader.copy_text(tables[0].by_column, tables[0].strs)
    assert texts is not None
    spread_texts = [[str(n) for n in range(count)], *(texts[index[c]] for c, _ in columns)]
    with db.cursor().copy("COPY by_text FROM STDIN") as copy:
        copy.write("".join("\t".join(line) + "\n" for line in zip(*spread_texts, strict=True)))
    with db.cursor().copy("COPY by_row FROM STDIN") as copy:
        loader._as_insert_casts(copy.cursor.adapters)
        for row in spread:
            copy.write_row(row)
    db.cursor().executemany(
        sql.SQL("INSERT INTO by_insert VALUES ({})").format(
            sql.SQL(", ").join(sql.Placeholder() * (len(columns) + 1))
        ),
        spread,
    )
    every = sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c)) for c, _ in columns)
    got = {
        table: db.execute(
            sql.SQL("SELECT {} FROM {} ORDER BY n").format(every, sql.Identifier(table))
        ).fetchall()
        for table in ("by_text", "by_row", "by_insert")
    }
    assert len(got["by_text"]) == count
    for i, (column, _) in enumerate(columns):
        assert [r[i] for r in got["by_text"]] == [r[i] for r in got["by_row"]], column
    # An INSERT casts its parameter (float8, timestamptz) to the column's type: where that
    # differs from reading the text, it differed before COPY took text a column at a time.
    differ = [
        c
        for i, (c, _) in enumerate(columns)
        if [r[i] for r in got["by_text"]] != [r[i] for r in got["by_insert"]]
    ]
    assert differ == [
        "floats_2",  # numeric from float8 keeps 15 digits; from the text, all 16
        "datetimes_0",  # text: str(datetime) as COPY takes it, timestamptz's output from INSERT
        "datetimes_2",  # timestamp: COPY drops the zone, INSERT converts to the session's zone
        "datetimes_with_nulls_0",
        "datetimes_with_nulls_2",
    ]


def test_the_check_after_loading_sends_any_key_text(db: psycopg.Connection) -> None:
    from dbops.seeding.loader import _text_array

    for keys in (
        ["a", 'b"c', "d\\e", "", "NULL", " sp ", "{x,y}", "é日", "tab\there", "nl\nx", '\\"'],
        [],
        ["1"],
    ):
        assert db.execute("SELECT %s::text[]", [_text_array(keys)]).fetchone() == (keys,)


def test_a_value_yaml_cannot_read_is_the_files_error_at_its_line(migrated: Path, cli: Run) -> None:
    """An impossible date (PyYAML's own ValueError) or a list as a key: one line with file:line,
    exit 2, no 'bug in dbops'."""
    for body, said in (
        (
            "users:\n  - id: 1\n    email: a@b.c\n    created_at: 2025-13-01\n",
            "seeds/01_users.yaml:2: users: a value YAML cannot read: month must be in 1..12",
        ),
        (
            "users:\n  - id: 1\n  - ? [a]\n    : 1\n",
            "seeds/01_users.yaml:3:7: invalid YAML: found unhashable key",
        ),
    ):
        write_seeds(migrated / "seeds", {"01_users.yaml": body})
        result = cli("seed")
        assert result.code == 2, result.text
        assert result.err.splitlines()[0] == f"Error: {said}", result.err
        assert "bug in dbops" not in result.text


def test_an_unchanged_hashed_value_is_not_hashed_again(
    migrated: Path, cli: Run, db: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib
    import stat

    real = hashlib.scrypt
    calls: list[int] = []

    def counting(*args: object, **kwargs: object) -> bytes:
        calls.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(hashlib, "scrypt", counting)
    assert cli("seed").code == 0 and len(calls) == 10  # the sample's 10 users
    cache = migrated / ".dbops" / "cache" / "seed-hashes.json"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600 and "Admin123!" not in cache.read_text()
    stored = db.execute("SELECT email, password FROM users ORDER BY id").fetchall()
    calls.clear()
    again = cli("seed")
    assert again.code == 0 and "✓ Users: 10 unchanged" in again.out and calls == []
    users = migrated / "seeds" / "02_users.yaml"
    users.write_text(users.read_text().replace("'User123!'", "'Changed123!'"))
    changed = cli("seed")
    assert changed.code == 0 and "✓ Users: 1 updated, 9 unchanged" in changed.out and len(calls) == 1
    users.write_text(users.read_text().replace("'Changed123!'", "'User123!'"))
    cache.unlink()  # a cache only: without it the same hashes are made again
    calls.clear()
    rebuilt = cli("seed")
    assert rebuilt.code == 0 and len(calls) == 10 and "✓ Users: 1 updated, 9 unchanged" in rebuilt.out
    assert db.execute("SELECT email, password FROM users ORDER BY id").fetchall() == stored
