"""seed: load seeds/ (and seeds/<environment>/) in one transaction. Undo: none (it never committed
when a later part failed; once committed, --clear and a re-seed restore it).

Whether an environment takes seed data (allow_seed) is the guard's to check, before any step
of the pipeline runs (dbops.engine.policy).
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager

from dbops.engine.context import RunContext
from dbops.engine.options import SeedOptions
from dbops.engine.pipeline import StepOutcome
from dbops.errors import DbopsError
from dbops.migrations import files as migrations
from dbops.output import progress
from dbops.output.reports.seed import SeedReport
from dbops.seeding import files as seeds
from dbops.seeding.loader import Progress, Seeder


class Seed:
    name = "seed"
    description = "load the seed data"
    undo = "none: its one transaction never commits when it fails; once committed, the rows stay"
    policy_action: str | None = "seed"

    def __init__(self, options: SeedOptions) -> None:
        self.clear = options.clear

    def run(self, ctx: RunContext) -> StepOutcome:
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
        # a fleet target's variables (and its name, as target) too
        context = {**env.variables, "env": env.name, "database": ctx.database(), "protected": env.protected}
        large = sum(p.stat().st_size for p in paths) >= PROGRESS_FROM_BYTES
        with _progress_bar(ctx.interactive and large) as advance:
            seeder = Seeder(conn, root, context, advance)
            seeder.watch = lambda what: ctx.working(f"seeding {what}")
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


def _progress_bar(show: bool) -> AbstractContextManager[Progress | None]:
    """The one progress bar (dbops.output.progress), a task per table."""
    return progress.bar(show, counting="rows", label="Seeding {}")
