"""migrate-create: write a new migration and its rollback from Jinja2 templates. Undo: delete them.

A project overrides the templates with its own ``migration.sql.j2`` and
``migration.rollback.sql.j2`` in the folder named by ``templates:`` in dbops.yaml.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from dbops import atomic
from dbops.engine.context import RunContext
from dbops.engine.pipeline import StepOutcome, Undo
from dbops.errors import DbopsError, UsageError
from dbops.migrations.files import discover
from dbops.output.reports.create import CreatedReport

_NAME = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")


class CreateMigration:
    name = "create"
    description = "write a new migration and its rollback"
    undo = "delete the files it wrote"
    policy_action: str | None = None

    def __init__(self, migration_name: str) -> None:
        if not _NAME.match(migration_name or ""):
            raise UsageError(
                f"Migration name {migration_name!r} is not lowercase snake_case",
                "Use letters, digits and underscores, starting with a letter: dbops migrate-create add_orgs",
            )
        self.migration_name = migration_name

    def run(self, ctx: RunContext) -> StepOutcome:
        folder = ctx.config.migrations_dir
        folder.mkdir(parents=True, exist_ok=True)
        now = datetime.now(UTC)
        migration_id = f"{now:%Y%m%d%H%M%S}_{self.migration_name}"
        existing = discover(folder)
        depends = (existing[-1].id,) if existing else ()
        values = {
            "id": migration_id,
            "name": self.migration_name,
            "title": self.migration_name.replace("_", " ").capitalize(),
            "created": f"{now:%Y-%m-%d %H:%M:%S}",
            "depends": depends,
            "filename": f"{migration_id}.sql",
        }
        paths = [folder / f"{migration_id}.sql", folder / f"{migration_id}.rollback.sql"]
        texts = [
            self._render(ctx, "migration.sql.j2", values),
            self._render(ctx, "migration.rollback.sql.j2", values),
        ]
        written: list[Path] = []
        try:
            for path, text in zip(paths, texts, strict=True):
                _write_new(path, text)
                written.append(path)
        except BaseException:
            _delete(written)
            raise
        report = CreatedReport(ctx.config.shown(paths[0]), ctx.config.shown(paths[1]), depends)
        return StepOutcome(undo=Undo("delete the new files", lambda: _delete(paths)), data=report)

    def _render(self, ctx: RunContext, template: str, values: Mapping[str, object]) -> str:
        import jinja2

        own = ctx.config.templates_dir
        search = [str(own)] if own is not None else []
        loader = jinja2.ChoiceLoader(
            [jinja2.FileSystemLoader(search), jinja2.PackageLoader("dbops", "templates")]
        )
        env = jinja2.Environment(
            loader=loader, undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False
        )
        try:
            return env.get_template(template).render(**values)
        except jinja2.TemplateError as exc:
            where = getattr(exc, "filename", None) or template
            line = getattr(exc, "lineno", None)
            raise DbopsError(
                f"Template {where}{f':{line}' if line else ''}: {exc}",
                "Fix the project's migration template, or remove it to use the built-in one",
                exit_code=2,
            ) from None


def _write_new(path: Path, text: str) -> None:
    """Write atomically and never overwrite (dbops.atomic)."""
    try:
        atomic.write_new(path, text, mode=0o644)
    except FileExistsError:
        raise UsageError(f"{path.name} already exists: not overwriting it", "Pick another name") from None


def _delete(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
