"""A hint that names a command is a promise: each test here provokes the error, then runs the
command its hint names, as a user would, and reaches success.

Hints followed elsewhere: migrate-repair (and --accept-changes, --all-deleted) in test_migrate.py
and test_migrate_safety.py; status --check's hints and migrate-rollback --steps N after a failed
migrate in test_migrate.py; backup-cleanup for databases restores kept in test_ux.py.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import psycopg
import pytest

from conftest import REPO, Run


def hint_of(err: str) -> str:
    hints = [line.removeprefix("Hint: ") for line in err.splitlines() if line.startswith("Hint: ")]
    assert hints, err
    return hints[0]


def command_in(hint: str, program: str = "dbops") -> list[str]:
    """The arguments of the `dbops ...` command a hint names (up to a comma, parenthesis or ';')."""
    found = re.search(rf"\b{program} ([^,;()]+)", hint)
    assert found, hint
    return found.group(1).split()


def take_backup(cli: Run, *args: str) -> Path:
    result = cli("backup", "--json", *args)
    assert result.code == 0, result.text
    return Path(json.loads(result.out)["report"]["path"])


# ----------------------------------------------------------------------------- usage


def test_no_config_hint_passes_config(project: Path, cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as elsewhere:  # no dbops.yaml there, nor above it
        monkeypatch.chdir(elsewhere)
        refused = cli("status")
        assert refused.code == 2 and "or pass --config PATH" in hint_of(refused.err)
        followed = cli("status", "--config", str(project / "dbops.yaml"))
        assert followed.code == 0, followed.text


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (("server", "--start", "--stop"), "--stop"),
        (("backup", "--format=zip"), "--format"),
        (("backup", "--jobs=2"), "--jobs"),
        (("backup", "--verify=twice"), "--verify"),
        (("restore", "latest", "--jobs=2", "--in-place"), "--in-place"),
    ],
)
def test_usage_hints_name_a_help_that_explains_the_flag(
    project: Path, cli: Run, args: tuple[str, ...], flag: str
) -> None:
    refused = cli(*args)
    assert refused.code == 2, refused.text
    command = command_in(hint_of(refused.err))
    assert command[-1] == "--help"
    shown = cli(*command)
    assert shown.code == 0 and flag in shown.out, shown.text


def test_a_step_count_below_one_hints_a_valid_rollback(project: Path, cli: Run) -> None:
    assert cli("migrate").code == 0
    refused = cli("migrate-rollback", "--steps", "0")
    assert refused.code == 2 and hint_of(refused.err) == "e.g. --steps=2"
    followed = cli("migrate-rollback", "--steps=2")
    assert followed.code == 0, followed.text
    assert followed.out.count("✓ 2025") == 2


def test_an_unknown_task_hints_the_listing_and_the_task_help(project: Path, cli: Run) -> None:
    refused = cli("status", "--bogus")
    assert refused.code == 2
    hint = hint_of(refused.err)  # dbops --list shows the tasks, dbops TASK --help their flags
    listing = cli("--list")
    assert listing.code == 0 and "status" in listing.out
    task_help = cli("status", "--help")
    assert task_help.code == 0 and "--check" in task_help.out and "TASK --help" in hint


def test_an_undeclared_pipeline_hints_the_listing(project: Path, cli: Run) -> None:
    from dbops.boundary import run_operation
    from dbops.engine.options import NoOptions, Safety

    assert run_operation("nosuchpipeline", NoOptions, safety=Safety()) == 2
    listing = cli(
        "--list"
    )  # the hint: Declare it under pipelines: in dbops.yaml; dbops --list shows the tasks
    assert listing.code == 0 and "migrate" in listing.out


# ----------------------------------------------------------------------------- migrations


def test_a_range_without_such_an_id_hints_status_which_lists_them(project: Path, cli: Run) -> None:
    refused = cli("migrate", "--to", "2024")
    assert refused.code == 2 and hint_of(refused.err) == "dbops status lists them"
    listed = cli("status")
    assert listed.code == 0
    pending = re.findall(r"^    - (\S+)$", listed.out, re.M)
    assert len(pending) == 7
    followed = cli("migrate", "--to", pending[1])
    assert followed.code == 0 and followed.out.count("✓ 2025") == 2, followed.text


def test_a_baseline_without_such_an_id_hints_status_which_lists_them(project: Path, cli: Run) -> None:
    refused = cli("migrate-baseline", "2024")
    assert refused.code == 2 and hint_of(refused.err) == "dbops status lists them"
    pending = re.findall(r"^    - (\S+)$", cli("status").out, re.M)
    followed = cli("migrate-baseline", pending[2])
    assert followed.code == 0, followed.text


def test_a_rollback_to_an_unknown_id_names_the_applied_ones(project: Path, cli: Run) -> None:
    assert cli("migrate").code == 0
    refused = cli("migrate-rollback", "--to", "2024")
    assert refused.code == 2
    hint = hint_of(refused.err)
    assert hint.startswith("Applied, newest first: 20251001090600_add_workflow_permissions, ")
    second = hint.removeprefix("Applied, newest first: ").split(", ")[1]
    followed = cli("migrate-rollback", "--to", second)
    assert followed.code == 0 and followed.out.count("✓ 2025") == 2, followed.text


def test_a_missing_migrations_folder_hints_migrate_create(project: Path, cli: Run) -> None:
    shutil.rmtree(project / "migrations")
    refused = cli("migrate")
    assert refused.code == 2
    command = command_in(hint_of(refused.err))
    assert command == ["migrate-create", "NAME"]
    created = cli("migrate-create", "add_notes")
    assert created.code == 0, created.text
    assert "Write the change, then: dbops migrate" in created.out
    (migration,) = (project / "migrations").glob("*_add_notes.sql")
    migration.write_text("CREATE TABLE notes (id int);\n")
    followed = cli("migrate")
    assert followed.code == 0, followed.text


def test_a_bad_migration_name_hints_a_good_one(project: Path, cli: Run) -> None:
    refused = cli("migrate-create", "add orgs!")
    assert refused.code == 2
    followed = cli(*command_in(hint_of(refused.err)))
    assert followed.code == 0 and any((project / "migrations").glob("*_add_orgs.sql")), followed.text


def test_policy_lint_hints_lint_which_lists_the_findings(project: Path, cli: Run) -> None:
    config = project / "dbops.yaml"
    config.write_text(
        config.read_text().replace(
            "    aliases: [dev]\n", "    aliases: [dev]\n    validate_before_migrate: true\n"
        )
    )
    assert cli("migrate").code == 0
    (project / "migrations" / "20251101000000_idx.sql").write_text(
        "CREATE INDEX idx_users_last_name ON users (last_name);\n"
    )
    refused = cli("migrate")
    assert refused.code == 3, refused.text
    assert "(and 1 more: dbops lint lists them)" in refused.err.splitlines()[0]
    listed = cli("lint")
    assert (
        "index-concurrently" in listed.out and "lock-timeout" in listed.out
    )  # the findings, each with its fix


def test_validate_hints_a_corrective_migration_that_fixes_it(
    project: Path, cli: Run, db: psycopg.Connection
) -> None:
    assert cli("migrate").code == 0
    db.execute("ALTER TABLE users DROP COLUMN last_name")
    refused = cli("validate", "--strict")
    assert refused.code == 1
    command = command_in(hint_of(refused.err))
    assert command == ["migrate-create", "fix_users_schema"]
    assert cli(*command).code == 0
    (migration,) = (project / "migrations").glob("*_fix_users_schema.sql")
    # the corrective migration: what validate found, brought back in line with the migrations
    migration.write_text("ALTER TABLE users ADD COLUMN IF NOT EXISTS last_name varchar(100);\n")
    assert cli("migrate").code == 0
    followed = cli("validate", "--strict")
    assert followed.code == 0, followed.text


def test_validate_with_pending_migrations_hints_migrate(project: Path, cli: Run) -> None:
    refused = cli("validate")
    assert refused.code == 1 and hint_of(refused.err).startswith(
        "Apply the 7 pending migration(s): dbops migrate"
    )
    assert cli("migrate").code == 0
    followed = cli("validate")
    assert followed.code == 0, followed.text


# ----------------------------------------------------------------------------- seeds


def test_seeding_before_migrating_hints_migrate(project: Path, cli: Run) -> None:
    shutil.copytree(REPO / "seeds", project / "seeds")
    refused = cli("seed")
    assert refused.code != 0 and hint_of(refused.err) == "Run dbops migrate first"
    assert cli("migrate").code == 0
    followed = cli("seed")
    assert followed.code == 0, followed.text


def test_a_seed_table_that_does_not_exist_hints_migrate(project: Path, cli: Run) -> None:
    """The table comes from a migration written after the seed: migrating makes it."""
    (project / "seeds").mkdir()
    (project / "seeds" / "notes.yaml").write_text("notes:\n  - {id: 1, body: hello}\n")
    assert cli("migrate").code == 0
    refused = cli("seed")
    assert refused.code == 2 and hint_of(refused.err).startswith("Migrate first (dbops migrate)")
    (project / "migrations" / "20251101000000_notes.sql").write_text(
        "CREATE TABLE notes (id int PRIMARY KEY, body text);\n"
    )
    assert cli(*command_in(hint_of(refused.err))).code == 0
    followed = cli("seed")
    assert followed.code == 0 and "✓ Notes: 1 records created" in followed.out, followed.text


# ----------------------------------------------------------------------------- backups


def test_a_backup_that_is_not_there_hints_backup_list(
    project: Path, cli: Run, db: psycopg.Connection
) -> None:
    db.execute("CREATE TABLE notes (id int)")
    taken = take_backup(cli)
    refused = cli("restore", "backups/db/nothing_here.sql.gz", "--force")
    assert refused.code == 2 and "dbops backup-list" in hint_of(refused.err)
    listed = cli("backup-list")
    assert listed.code == 0 and taken.name in listed.out
    db.close()
    followed = cli("restore", f"backups/db/{taken.name}", "--force")
    assert followed.code == 0, followed.text


def test_latest_without_automatic_backups_hints_backup_list(
    project: Path, cli: Run, db: psycopg.Connection
) -> None:
    db.execute("CREATE TABLE notes (id int)")
    taken = take_backup(cli)
    refused = cli("restore", "latest", "--force")
    assert refused.code == 2 and "dbops backup-list shows the manual ones" in hint_of(refused.err)
    assert taken.name in cli("backup-list").out
    db.close()
    followed = cli("restore", str(taken), "--force")
    assert followed.code == 0, followed.text


def test_an_invalid_backup_hints_restore_latest(project: Path, cli: Run, db: psycopg.Connection) -> None:
    db.execute("CREATE TABLE notes (id int)")
    good = take_backup(cli)
    db.close()
    assert cli("restore", str(good), "--force").code == 0  # leaves an automatic backup, as restores do
    broken = take_backup(cli)
    broken.write_bytes(b"not a backup at all")
    refused = cli("restore", str(broken), "--force")
    assert refused.code == 2 and hint_of(refused.err).endswith("dbops restore latest")
    followed = cli(*command_in(hint_of(refused.err)), "--force")
    assert followed.code == 0, followed.text


def test_a_manifest_that_does_not_match_hints_another_backup(
    project: Path, cli: Run, db: psycopg.Connection
) -> None:
    db.execute("CREATE TABLE notes (id int); INSERT INTO notes VALUES (1), (2)")
    good = take_backup(cli)
    bad = take_backup(cli, "--format=custom")
    manifest_file = bad.with_name(bad.name + ".json")
    manifest = json.loads(manifest_file.read_text())
    manifest["tables"][0]["rows"] = 3
    manifest_file.write_text(json.dumps(manifest))
    db.close()
    refused = cli("restore", str(bad), "--force")
    assert refused.code == 1 and "restore another backup (dbops backup-list lists them)" in hint_of(
        refused.err
    )
    listed = cli("backup-list")
    assert listed.code == 0 and good.name in listed.out
    followed = cli("restore", str(good), "--force")
    assert followed.code == 0, followed.text


def test_a_backup_that_fails_its_checksum_hints_a_new_backup(
    project: Path, cli: Run, db: psycopg.Connection
) -> None:
    db.execute("CREATE TABLE notes (id int)")
    damaged = take_backup(cli)
    with damaged.open("r+b") as file:
        file.seek(20)
        file.write(b"\0\0\0\0")
    refused = cli("backup-list")
    assert refused.code == 1 and "take a new backup (dbops backup), then delete them" in hint_of(refused.err)
    take_backup(cli)  # the hint, followed
    damaged.unlink()
    damaged.with_name(damaged.name + ".json").unlink()
    followed = cli("backup-list")
    assert followed.code == 0, followed.text


def test_no_createdb_hints_an_in_place_restore(
    project: Path, cli: Run, db: psycopg.Connection, admin_url: str, database_url: str
) -> None:
    """A role that owns its database but may not create one: restore --in-place needs neither."""
    from psycopg import sql

    dbname = db.info.dbname
    role = f"{dbname}_owner"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN NOCREATEDB").format(sql.Identifier(role)))
        admin.execute(
            sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(dbname), sql.Identifier(role))
        )
    db.execute(sql.SQL("GRANT ALL ON SCHEMA public TO {}").format(sql.Identifier(role)))
    db.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(sql.Identifier(role)))
    try:
        as_owner = re.sub(r"^postgresql://[^@/]*@", f"postgresql://{role}@", database_url)
        config = project / "dbops.yaml"
        config.write_text(config.read_text().replace(database_url, as_owner))
        assert cli("migrate").code == 0
        taken = take_backup(cli)
        db.close()
        refused = cli("restore", str(taken), "--force")
        assert refused.code != 0, refused.text
        command = command_in(hint_of(refused.err))
        assert command == ["restore", "--in-place"]
        followed = cli("restore", str(taken), "--in-place", "--force")
        assert followed.code == 0, followed.text
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(sql.SQL("ALTER DATABASE {} OWNER TO postgres").format(sql.Identifier(dbname)))
            admin.execute(sql.SQL("REASSIGN OWNED BY {} TO postgres").format(sql.Identifier(role)))
            with psycopg.connect(database_url, autocommit=True) as conn:
                conn.execute(sql.SQL("REASSIGN OWNED BY {} TO postgres").format(sql.Identifier(role)))
                conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


# ----------------------------------------------------------------------------- run it again


def test_a_failed_migration_fixed_and_migrated_again(project: Path, cli: Run) -> None:
    folder = project / "migrations"
    for old in folder.iterdir():
        old.unlink()
    (folder / "001_a.sql").write_text("CREATE TABLE a (id int);\nINSERT INTO a VALUES (oops);\n")
    refused = cli("migrate")
    assert refused.code == 1 and "Fix 001_a.sql and run migrate again" in hint_of(refused.err)
    (folder / "001_a.sql").write_text("CREATE TABLE a (id int);\nINSERT INTO a VALUES (1);\n")
    followed = cli("migrate")
    assert followed.code == 0, followed.text


def test_a_failed_rollback_fixed_and_rolled_back_again(project: Path, cli: Run) -> None:
    folder = project / "migrations"
    for old in folder.iterdir():
        old.unlink()
    (folder / "001_a.sql").write_text("CREATE TABLE a (id int);\n")
    (folder / "001_a.rollback.sql").write_text("DROP TABLE a;\nDROP TABLE not_there;\n")
    assert cli("migrate").code == 0
    refused = cli("migrate-rollback")
    assert refused.code == 1 and "Fix 001_a.rollback.sql and run migrate-rollback again" in hint_of(
        refused.err
    )
    (folder / "001_a.rollback.sql").write_text("DROP TABLE a;\n")
    assert cli("status", "--check").code == 0  # a rollback script fixed after its migration ran is no edit
    followed = cli("migrate-rollback")
    assert followed.code == 0, followed.text


def test_a_confirmation_without_a_terminal_hints_force(project: Path, cli: Run) -> None:
    assert cli("migrate").code == 0
    refused = cli("reset")  # pytest's stdin is no terminal
    assert refused.code == 3 and "pass --force if you mean it" in hint_of(refused.err)
    followed = cli("reset", "--force")
    assert followed.code == 0, followed.text


def test_no_backup_where_protected_hints_running_without_it(
    project: Path, cli: Run, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DBOPS_TEST_PROD_URL", database_url)
    with (project / "dbops.yaml").open("a") as config:
        config.write("pipelines:\n  undo-last:\n    steps: [rollback]\n")
    assert cli("migrate", "--env=production").code == 0
    refused = cli("undo-last", "--env=production", "--force", "--no-backup")
    assert refused.code == 3 and hint_of(refused.err) == "Run it without --no-backup"
    followed = cli("undo-last", "--env=production", "--force")
    assert followed.code == 0, followed.text
