"""The Invoke collection ``db``: thin typed tasks over dbops.boundary.

Importing this module must stay cheap (``invoke --list``): everything else is imported
inside the task bodies. The one exception is dbops.yaml itself, read once here so that each
pipeline it declares becomes a task of its own.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from invoke.collection import Collection
from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import Task, task

from dbops.cli import pipes
from dbops.cli.help import HELP_FLAGS, task_help
from dbops.cli.task_index import declared

pipes.quiet_broken_pipe()  # invoke --list | head: Invoke's program, our exit (dbops.cli.pipes)

if TYPE_CHECKING:
    from dbops.boundary import MakeOptions
    from dbops.engine.options import Safety

COMMON_HELP = {
    "env": "Environment from dbops.yaml (or an alias such as dev/prod). Default: $DBOPS_ENV, "
    "then default_env, then development",
    "json": "Print exactly one JSON document on stdout instead of the report",
    "config": "Path to dbops.yaml. Default: $DBOPS_CONFIG, else the nearest dbops.yaml upwards",
}


FLEET_HELP = {
    "targets": "On a fleet: only these targets (names or glob patterns, comma-separated)",
    "jobs": "On a fleet: at most N sessions per server at once, a connection budget (default: the fleet's "
    "jobs: in dbops.yaml)",
    "shard": "On a fleet: only the K-th of N stable slices of the targets (e.g. --shard=2/4); "
    "auto: this CI job's (Azure DevOps parallel jobs, a Kubernetes Indexed Job with auto/N)",
    "retry_failed": "On a fleet: only the targets that failed (or never started) in its last run",
}


def _help(**extra: str) -> dict[str, str]:
    return {**COMMON_HELP, **extra}


def _fleet_help(**extra: str) -> dict[str, str]:
    return {**COMMON_HELP, **FLEET_HELP, **extra}


Fleet = tuple[str | None, str | None, str | None, bool]  # --targets, --jobs, --shard, --retry-failed


def _count(value: str | None, flag: str) -> int | None:
    """A flag's whole number (1 or more); Invoke's own int conversion would end in a traceback."""
    if value is None:
        return None
    text = value.strip()
    if not (text.isascii() and text.isdigit()) or int(text) < 1:  # isdigit() alone takes '²'
        raise Exit(
            f"Error: {flag} expects a whole number of 1 or more, got {value!r}\nHint: e.g. {flag}=2", code=2
        )
    return int(text)


def _run(
    operation: str,
    options: MakeOptions,
    *,
    env: str | None,
    config: str | None,
    json: bool,
    safety: Safety | None = None,
    fleet: Fleet | None = None,
) -> None:
    """Hand over to the boundary (or, for the operations a fleet runs, to dbops.fleet, which
    hands a single database back to it); a non-zero exit code leaves through invoke's Exit."""
    _cache_bytecode()
    from dbops.boundary import run_operation  # lazy: the task listing does not pay for it
    from dbops.engine.options import Safety

    if fleet is None:
        code = run_operation(operation, options, safety=safety or Safety(), env=env, config=config, json=json)
    else:
        from dbops.fleet import command  # lazy: as the boundary

        targets, jobs, shard, retry_failed = fleet
        flags = command.FleetFlags(targets, _count(jobs, "--jobs"), shard, retry_failed)
        code = command.run(
            operation, options, safety=safety or Safety(), env=env, config=config, json=json, flags=flags
        )
    if code:
        raise Exit(code=code)


def _cache_bytecode() -> None:
    """invoke switches bytecode writing off for the whole process (meant for the project's
    tasks.py); dbops' own modules, imported from here on, are cached as Python would."""
    sys.dont_write_bytecode = bool(sys.flags.dont_write_bytecode)


@task(
    auto_shortflags=False,
    help=_fleet_help(
        check="Exit 1 when a health check fails or migrations are pending (a CI gate)",
    ),
)
def status(
    c: Context,
    env: str | None = None,
    json: bool = False,
    config: str | None = None,
    check: bool = False,
    targets: str | None = None,
    jobs: str | None = None,
    shard: str | None = None,
    retry_failed: bool = False,
) -> None:
    """Show connection, migrations, schema, data, size and health of the database."""
    from dbops.engine import options as o  # lazy, in every task: the task listing does not pay for it

    fleet = (targets, jobs, shard, retry_failed)
    _run("status", lambda: o.StatusOptions(check=check), env=env, config=config, json=json, fleet=fleet)


@task(
    auto_shortflags=False,
    help=_help(
        stop="Stop the embedded PostgreSQL",
        start="Start the embedded PostgreSQL without running anything else",
    ),
)
def server(
    c: Context,
    env: str | None = None,
    json: bool = False,
    config: str | None = None,
    stop: bool = False,
    start: bool = False,
) -> None:
    """Show, start or stop the project's embedded PostgreSQL (it stays up between commands)."""
    from dbops.engine import options as o  # lazy: as in status

    _run("server", lambda: o.ServerOptions(start=start, stop=stop), env=env, config=config, json=json)


@task(
    auto_shortflags=False,
    help=_help(
        dry_run="Print the plan and the exact SQL; touch nothing, not even the bookkeeping tables",
        from_="Apply only pending migrations with an id from this one on (e.g. --from=20251001)",
        to="Apply only pending migrations up to this id (an id prefix counts)",
        accept_changes="Accept applied migrations whose files were edited or deleted (as migrate-repair)",
        all_environments="Run on every environment that is not protected, one report each",
        include_protected="With --all-environments, include protected environments too",
        **FLEET_HELP,
    ),
)
def migrate(
    c: Context,
    env: str | None = None,
    json: bool = False,
    config: str | None = None,
    dry_run: bool = False,
    from_: str | None = None,
    to: str | None = None,
    accept_changes: bool = False,
    all_environments: bool = False,
    include_protected: bool = False,
    targets: str | None = None,
    jobs: str | None = None,
    shard: str | None = None,
    retry_failed: bool = False,
) -> None:
    """Apply pending migrations in dependency order (one transaction each, with its record)."""
    from dbops.engine import options as o  # lazy: as in status

    def options() -> o.MigrateOptions:
        return o.MigrateOptions(dry_run=dry_run, start=from_, end=to, accept_changes=accept_changes)

    fleet = (targets, jobs, shard, retry_failed)
    _dispatch(
        "migrate", options, env, all_environments, include_protected, config=config, json=json, fleet=fleet
    )


@task(
    auto_shortflags=False,
    help=_help(
        steps="How many of the most recently applied migrations to roll back (default 1)",
        to="Roll back every migration applied after this id, and this one",
        force="In a protected environment, do not ask for confirmation",
        dry_run="Print what would be rolled back and the exact SQL; touch nothing",
        **FLEET_HELP,
    ),
)
def migrate_rollback(
    c: Context,
    env: str | None = None,
    json: bool = False,
    config: str | None = None,
    steps: str | None = None,
    to: str | None = None,
    force: bool = False,
    dry_run: bool = False,
    targets: str | None = None,
    jobs: str | None = None,
    shard: str | None = None,
    retry_failed: bool = False,
) -> None:
    """Roll back the most recently applied migration (--steps N or --to ID for more)."""
    from dbops.engine import options as o  # lazy: as in status

    count = _count(steps, "--steps") or 1
    options = lambda: o.RollbackOptions(steps=count, to=to, dry_run=dry_run)  # noqa: E731
    safety, fleet = o.Safety(force=force), (targets, jobs, shard, retry_failed)
    _run("migrate-rollback", options, env=env, config=config, json=json, safety=safety, fleet=fleet)


@task(
    auto_shortflags=False,
    positional=["name"],
    help=_help(name="The new migration's name, lowercase snake_case (e.g. add_organizations)"),
)
def migrate_create(
    c: Context, name: str, env: str | None = None, json: bool = False, config: str | None = None
) -> None:
    """Create migrations/<UTC timestamp>_<name>.sql and its .rollback.sql from templates."""
    if name in HELP_FLAGS:  # invoke hands --help to a positional argument
        task_help(migrate_create)
    from dbops.engine import options as o  # lazy: as in status

    _run("migrate-create", lambda: o.CreateOptions(name), env=env, config=config, json=json)


@task(
    auto_shortflags=False,
    positional=["migration_id"],
    help=_help(
        migration_id="The last migration to mark as applied (every earlier pending one is marked too)"
    ),
)
def migrate_baseline(
    c: Context, migration_id: str, env: str | None = None, json: bool = False, config: str | None = None
) -> None:
    """Adopt an existing database: mark migrations up to ID as applied without running them."""
    if migration_id in HELP_FLAGS:
        task_help(migrate_baseline)
    from dbops.engine import options as o  # lazy: as in status

    _run("migrate-baseline", lambda: o.BaselineOptions(migration_id), env=env, config=config, json=json)


@task(
    auto_shortflags=False,
    help=_help(all_deleted="Accept it when every applied migration's file is gone (else refused)"),
)
def migrate_repair(
    c: Context,
    env: str | None = None,
    json: bool = False,
    config: str | None = None,
    all_deleted: bool = False,
) -> None:
    """Accept applied migrations whose files were edited or deleted, as they are now."""
    from dbops.engine import options as o  # lazy: as in status

    _run("migrate-repair", lambda: o.RepairOptions(all_deleted), env=env, config=config, json=json)


@task(
    auto_shortflags=False,
    help=_fleet_help(clear="First delete the rows of the seeded tables (children first), then seed afresh"),
)
def seed(
    c: Context,
    env: str | None = None,
    json: bool = False,
    config: str | None = None,
    clear: bool = False,
    targets: str | None = None,
    jobs: str | None = None,
    shard: str | None = None,
    retry_failed: bool = False,
) -> None:
    """Load seeds/ (SQL templates, YAML, CSV, Python) in foreign-key order, in one transaction."""
    from dbops.engine import options as o  # lazy: as in status

    fleet = (targets, jobs, shard, retry_failed)
    _run("seed", lambda: o.SeedOptions(clear=clear), env=env, config=config, json=json, fleet=fleet)


@task(
    auto_shortflags=False,
    help=_help(
        format="plain (default: backups/db/<database>_<UTC time>.sql.gz), custom (.dump) or directory (.dir)",
        compress="gzip (default), gzip:LEVEL or none; for custom and directory also lz4 or zstd[:LEVEL], "
        "where the pg_dump in use has them",
        jobs="With --format=directory: dump N tables at once",
        verify="file (default: sha256 and a full read), or restore: also a test restore into a scratch "
        "database",
        keep="Mark this backup so backup-cleanup never deletes it",
        targets=FLEET_HELP["targets"],
        shard=FLEET_HELP["shard"],
        retry_failed=FLEET_HELP["retry_failed"],
    ),
)
def backup(
    c: Context,
    env: str | None = None,
    json: bool = False,
    config: str | None = None,
    format: str = "plain",
    compress: str = "gzip",
    jobs: str | None = None,
    verify: str = "file",
    keep: bool = False,
    targets: str | None = None,
    shard: str | None = None,
    retry_failed: bool = False,
) -> None:
    """Back up the database with pg_dump: verified, atomic, with a manifest beside it."""
    from dbops.engine import options as o  # lazy: as in status

    count = _count(jobs, "--jobs")

    def options() -> o.BackupOptions:
        return o.BackupOptions(format, compress, count, verify, keep)  # type: ignore[arg-type]  # checked there

    # its --jobs is pg_dump's: on a fleet, the fleet's jobs: in dbops.yaml says how many at once
    _run("backup", options, env=env, config=config, json=json, fleet=(targets, None, shard, retry_failed))


@task(
    auto_shortflags=False,
    positional=["file"],
    help=_help(
        file="A backup file, or 'latest' (the newest automatic backup)",
        force="Do not ask for confirmation",
        in_place="Restore into the existing database in one transaction (no CREATEDB needed)",
        jobs="pg_restore jobs for custom and directory backups",
    ),
)
def restore(
    c: Context,
    file: str,
    env: str | None = None,
    json: bool = False,
    config: str | None = None,
    force: bool = False,
    in_place: bool = False,
    jobs: str | None = None,
) -> None:
    """Restore the database from a backup (FILE or latest), keeping the previous one."""
    if file in HELP_FLAGS:
        task_help(restore)
    from dbops.engine import options as o  # lazy: as in status

    count = _count(jobs, "--jobs")
    options = lambda: o.RestoreOptions(file, in_place=in_place, jobs=count)  # noqa: E731
    _run("restore", options, env=env, config=config, json=json, safety=o.Safety(force=force))


@task(auto_shortflags=False, help=_fleet_help())
def backup_list(
    c: Context,
    env: str | None = None,
    json: bool = False,
    config: str | None = None,
    targets: str | None = None,
    jobs: str | None = None,
    shard: str | None = None,
    retry_failed: bool = False,
) -> None:
    """List every backup: kind, age, size, database, and whether its checksum still matches."""
    from dbops.engine import options as o  # lazy: as in status

    fleet = (targets, jobs, shard, retry_failed)
    _run("backup-list", o.NoOptions, env=env, config=config, json=json, fleet=fleet)


@task(auto_shortflags=False, help=_help(force="Delete them (without it, only list what would go)"))
def backup_cleanup(
    c: Context, env: str | None = None, json: bool = False, config: str | None = None, force: bool = False
) -> None:
    """Delete automatic backups older than retention_days (manual and keep-marked ones stay)."""
    from dbops.engine import options as o  # lazy: as in status

    _run("backup-cleanup", lambda: o.CleanupOptions(delete=force), env=env, config=config, json=json)


NO_BACKUP = "Skip the automatic backup before reset (refused in protected environments)"


@task(
    auto_shortflags=False,
    help=_fleet_help(strict="Exit 1 on warnings too (by default only errors fail)"),
)
def validate(
    c: Context,
    env: str | None = None,
    json: bool = False,
    config: str | None = None,
    strict: bool = False,
    targets: str | None = None,
    jobs: str | None = None,
    shard: str | None = None,
    retry_failed: bool = False,
) -> None:
    """Compare the live schema with the one the migrations define; lint pending migrations."""
    from dbops.engine import options as o  # lazy: as in status

    fleet = (targets, jobs, shard, retry_failed)
    _run("validate", lambda: o.ValidateOptions(strict=strict), env=env, config=config, json=json, fleet=fleet)


@task(auto_shortflags=False, help=_fleet_help())
def lint(
    c: Context,
    env: str | None = None,
    json: bool = False,
    config: str | None = None,
    targets: str | None = None,
    jobs: str | None = None,
    shard: str | None = None,
    retry_failed: bool = False,
) -> None:
    """Check pending migrations for operations that lock or break production (exit 3 on a finding)."""
    from dbops.engine import options as o  # lazy: as in status

    _run("lint", o.NoOptions, env=env, config=config, json=json, fleet=(targets, jobs, shard, retry_failed))


@task(
    auto_shortflags=False,
    help=_help(
        force="Do not ask for confirmation (where the environment's policy accepts --force)",
        seed="Load the seed data afterwards",
        dry_run="Print the steps and the undo each would register; touch nothing",
        no_backup=NO_BACKUP,
    ),
)
def reset(
    c: Context,
    env: str | None = None,
    json: bool = False,
    config: str | None = None,
    force: bool = False,
    seed: bool = False,
    dry_run: bool = False,
    no_backup: bool = False,
) -> None:
    """Drop every object of the application's schemas and migrate from scratch; --seed seeds too."""
    from dbops.engine import options as o  # lazy: as in status

    safety = o.Safety(force=force, no_backup=no_backup, plan=dry_run)
    _run("reset", lambda: o.ResetOptions(seed=seed), env=env, config=config, json=json, safety=safety)


PIPELINE_HELP = _fleet_help(
    force="Do not ask for confirmation (where the environment's policy accepts --force)",
    dry_run="Print the steps and the undo each would register; touch nothing",
    no_backup=NO_BACKUP,
    all_environments="Run on every environment that is not protected, one report each",
    include_protected="With --all-environments, include protected environments too",
)


@task(auto_shortflags=False, positional=["name"], help={**PIPELINE_HELP, "name": "The pipeline's name"})
def run(
    c: Context,
    name: str,
    env: str | None = None,
    json: bool = False,
    config: str | None = None,
    force: bool = False,
    dry_run: bool = False,
    no_backup: bool = False,
    all_environments: bool = False,
    include_protected: bool = False,
    targets: str | None = None,
    jobs: str | None = None,
    shard: str | None = None,
    retry_failed: bool = False,
) -> None:
    """Run a pipeline declared under pipelines: in dbops.yaml (each is also a task of its own)."""
    if name in HELP_FLAGS:
        task_help(run)
    from dbops.engine import options as o  # lazy: as in status

    safety = o.Safety(force=force, no_backup=no_backup, plan=dry_run)
    fleet = (targets, jobs, shard, retry_failed)
    _dispatch(
        name,
        o.NoOptions,
        env,
        all_environments,
        include_protected,
        config=config,
        json=json,
        safety=safety,
        fleet=fleet,
    )


def _pipeline_task(name: str, description: str) -> Task[Any]:
    def pipeline(
        c: Context,
        env: str | None = None,
        json: bool = False,
        config: str | None = None,
        force: bool = False,
        dry_run: bool = False,
        no_backup: bool = False,
        all_environments: bool = False,
        include_protected: bool = False,
        targets: str | None = None,
        jobs: str | None = None,
        shard: str | None = None,
        retry_failed: bool = False,
    ) -> None:
        from dbops.engine import options as o  # lazy: as in status

        safety = o.Safety(force=force, no_backup=no_backup, plan=dry_run)
        _dispatch(
            name,
            o.NoOptions,
            env,
            all_environments,
            include_protected,
            config=config,
            json=json,
            safety=safety,
            fleet=(targets, jobs, shard, retry_failed),
        )

    pipeline.__doc__ = description
    return Task(pipeline, name=name, auto_shortflags=False, help=PIPELINE_HELP)


def _declared_pipelines() -> list[Task[Any]]:
    """A task per pipeline of the dbops.yaml that commands find (none when it does not load)."""
    return [_pipeline_task(name, description) for name, description in declared()]


def _dispatch(
    name: str,
    options: MakeOptions,
    env: str | None,
    all_environments: bool,
    include_protected: bool,
    *,
    config: str | None,
    json: bool,
    safety: Safety | None = None,
    fleet: Fleet | None = None,
) -> None:
    """One environment (a fleet's targets), or --all-environments."""
    if all_environments:
        if fleet is not None and any(fleet):
            raise Exit(
                "Error: the fleet flags need --env of a fleet, not --all-environments\nHint: pick one", code=2
            )
        if env:
            raise Exit("Error: --env and --all-environments exclude each other\nHint: pick one", code=2)
        _cache_bytecode()
        from dbops.boundary import run_across_environments  # lazy: the task listing does not pay for it
        from dbops.engine.options import Safety

        code = run_across_environments(
            name,
            options,
            safety=safety or Safety(),
            config=config,
            json=json,
            include_protected=include_protected,
        )
        if code:
            raise Exit(code=code)
    elif include_protected:
        raise Exit(
            "Error: --include-protected needs --all-environments\nHint: add --all-environments", code=2
        )
    else:
        _run(name, options, env=env, config=config, json=json, safety=safety, fleet=fleet)


BUILT_IN = (
    status,
    server,
    migrate,
    migrate_rollback,
    migrate_create,
    migrate_baseline,
    migrate_repair,
    seed,
    backup,
    restore,
    backup_list,
    backup_cleanup,
    validate,
    lint,
)


def collection() -> Collection:
    """The built-in tasks, and one per pipeline declared in the project's dbops.yaml."""
    return Collection("db", *BUILT_IN, reset, run, *_declared_pipelines())


db = collection()
