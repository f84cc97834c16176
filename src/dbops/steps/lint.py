"""lint: check the pending migrations for operations that lock or break production, and refuse
(exit 3) on a finding. Usable before migrate in a pipeline; migrate runs the same check itself
where validate_before_migrate (default: protected) says so. Undo: none (it only reads).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dbops.engine.context import RunContext
from dbops.engine.pipeline import READS_ONLY, StepOutcome
from dbops.errors import PolicyRefused
from dbops.migrations.lint import IGNORE, Finding, lint, session_lock_timeout_ms
from dbops.migrations.session import check_integrity, migration_session, plan
from dbops.output.reports.lint import LintReport
from dbops.steps.migrate import require_folder

if TYPE_CHECKING:
    from dbops.migrations.scripts import Script


class Lint:
    name = "lint"
    description = "lint the pending migrations"
    undo = READS_ONLY
    policy_action: str | None = None

    def __init__(
        self, *, start: str | None = None, end: str | None = None, accept: bool = False, policy: bool = False
    ) -> None:
        self.start = start
        self.end = end
        self.accept = accept
        self.policy = policy  # run for validate_before_migrate, before a migrate

    def run(self, ctx: RunContext) -> StepOutcome:
        report = LintReport(ctx.env.name, ctx.database())
        ctx.report_so_far(report)
        scripts, report.findings = lint_pending(ctx, self.start, self.end, accept=self.accept)
        report.pending = [s.id for s in scripts]
        report.finished = True
        if report.findings:
            raise refusal(ctx, report.findings, policy=self.policy)
        return StepOutcome(data=report)


def lint_pending(
    ctx: RunContext, start: str | None = None, end: str | None = None, *, accept: bool = False
) -> tuple[list[Script], list[Finding]]:
    """The pending migrations (in the order migrate applies them) and their findings. Applied
    migrations edited or deleted since refuse first (exit 2), as migrate does."""
    require_folder(ctx)
    with migration_session(
        ctx.connection(), ctx.target(), ctx.env, ctx.config.migrations_dir, write=False
    ) as session:
        check_integrity(session.state, accept=accept)
        scripts = plan(session, start, end, cache=ctx.config.state_dir)
    findings = lint(scripts, lock_timeout_ms=session_lock_timeout_ms(ctx.env), shown=ctx.config.shown)
    return scripts, findings


def refusal(ctx: RunContext, findings: list[Finding], *, policy: bool = False) -> PolicyRefused:
    first = findings[0]
    listed = "dbops lint lists them" if policy else "listed above"
    more = f" (and {len(findings) - 1} more: {listed})" if len(findings) > 1 else ""
    silence = (
        f"; or, if you accept it, add -- {IGNORE} {first.rule} to the statement" if first.ignorable else ""
    )
    hint = f"Fix: {first.fix}{silence}"
    if policy:
        hint += f". validate_before_migrate: false in dbops.yaml turns this check off for {ctx.env.name}"
    return PolicyRefused(f"Migration lint: {first.text}{more}", hint)
