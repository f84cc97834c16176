"""seed: load seeds/ (and seeds/<environment>/) in one transaction. Undo: none (it never committed
when a later part failed; once committed, --clear and a re-seed restore it).

Whether an environment takes seed data (allow_seed) is the guard's to check, before any step
of the pipeline runs (dbops.engine.policy).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from dbops.engine.context import RunContext
from dbops.engine.options import SeedOptions
from dbops.engine.pipeline import StepOutcome
from dbops.errors import DbopsError
from dbops.output.reports.seed import SeedReport
from dbops.seeding.loader import Progress

if TYPE_CHECKING:
    pass


class Seed:
    name = "seed"
    description = "load the seed data"
    undo = "none: its one transaction never commits when it fails; once committed, the rows stay"
    policy_action: str | None = "seed"

    def __init__(self, options: SeedOptions) -> None:
        self.clear = options.clear

    def run(self, ctx: RunContext) -> StepOutcome:
        from dbops.migrations import files as migrations
        from dbops.seeding import files as seeds
        from dbops.seeding.loader import Seeder

        started = time.monotonic()
        env = ctx.env
        report = SeedReport(env.name, ctx.database(), cleared=self.clear)
        ctx.report_so_far(report)
        conn = ctx.connection()
        pending = migrations.state(conn, ctx.config.migrations_dir).pending
        if pending:
            raise DbopsError(
                f"{len(pending)} migration(s) pending: seed data needs the schema they make",
                "Run dbops migrate first",
            )
        root = ctx.config.root
        paths = seeds.discover(ctx.config.seeds_dir, env.name)
        files = [seeds.read(path, ctx.config.shown(path)) for path in paths]
        report.files = [ctx.config.shown(p) for p in paths]
        context = {"env": env.name, "database": ctx.database(), "protected": env.protected}
        large = sum(p.stat().st_size for p in paths) >= PROGRESS_FROM_BYTES
        with _progress_bar(ctx.interactive and large) as progress:
            seeder = Seeder(conn, root, context, progress)
            with conn.transaction():  # all or nothing
                conn.execute("SET LOCAL jit = off")  # compiling bulk statements costs more than it saves
                seeder.load(files, clear=self.clear)
                seeder.verify()
        report.tables = list(seeder.results.values())
        report.accounts = seeder.accounts
        report.duration_s = time.monotonic() - started
        report.finished = True
        return StepOutcome(data=report)


PROGRESS_FROM_BYTES = 1 << 20  # seed files of a megabyte or more show a progress bar on a terminal


@contextmanager
def _progress_bar(show: bool) -> Iterator[Progress | None]:
    """A transient rich progress bar, one task per table; nothing when not on a terminal."""
    if not show:
        yield None
        return
    from rich.progress import BarColumn, TaskProgressColumn, TextColumn, TimeRemainingColumn
    from rich.progress import Progress as Bar

    tasks: dict[str, Any] = {}
    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeRemainingColumn())
    with Bar(*columns, transient=True) as bar:

        def advance(table: str, done: int, total: int) -> None:
            if table not in tasks:
                tasks[table] = bar.add_task(f"Seeding {table}", total=total)
            bar.update(tasks[table], completed=done, total=total)

        yield advance
