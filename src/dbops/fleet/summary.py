"""A target's result in one line for the fleet report, and what status finds that needs
attention (behind: pending migrations; edited or deleted applied migrations; failing health
checks). Read from the operation's own report, which stays the target's full result."""

from __future__ import annotations

from typing import Any

from dbops.output.render import OperationResult


def one_line(result: OperationResult) -> str:
    report: Any = result.report
    if type(report).__name__ == "ValidateReport" and report.differences:  # the drift says more than the error
        return f"drift: {len(report.differences)} difference(s), e.g. {report.differences[0].message}"
    if result.error is not None:
        return result.error.message.splitlines()[0] if result.error.message else result.error.kind
    kind = type(report).__name__
    if kind == "MigrationReport":
        done = [i for i in report.items if i.status in ("applied", "rolled back", "planned", "marked")]
        verb = {
            "migrate": "applied",
            "rollback": "rolled back",
            "plan": "would apply",
            "rollback-plan": "would roll back",
        }.get(report.kind)
        if verb and done:
            return f"{verb} {len(done)} migration(s)"
        return "up to date" if report.kind == "migrate" else f"{report.kind}: nothing to do"
    if kind == "StatusReport":
        m = report.migrations
        failing = any(c.result == "fail" for c in report.health)
        return f"{m.applied} applied, {m.pending} pending" + (", health failing" if failing else "")
    if kind == "ValidateReport":
        return "in sync with the migrations" + (f", {len(report.pending)} pending" if report.pending else "")
    if kind == "SeedReport":
        created = sum(getattr(t, "created", 0) or 0 for t in report.tables)
        return f"seeded {len(report.tables)} table(s), {created} new row(s)"
    if kind == "BackupReport":
        return f"backed up to {report.file}"
    if kind == "LintReport":
        return f"{len(report.findings)} finding(s) in {len(report.pending)} pending migration(s)"
    if kind == "BackupListReport":
        own = [b for b in report.backups if b.database == report.database]
        return f"{len(own)} backup(s) of {report.database}"
    if kind == "PipelineReport":
        steps = result.pipeline.steps if result.pipeline else []
        return " → ".join(f"{s.name} {s.status}" for s in steps)
    return "ok" if result.ok else f"exit {result.exit_code}"


def attention(result: OperationResult) -> list[str]:
    """What status (or validate) finds on a target that needs someone's attention."""
    report: Any = result.report
    kind = type(report).__name__
    found: list[str] = []
    if kind == "StatusReport":
        m = report.migrations
        if m.pending:
            found.append(
                f"behind: {m.pending} pending, from {m.pending_ids[0]}" if m.pending_ids else "behind"
            )
        if m.edited_files:
            found.append(f"edited after applied: {', '.join(m.edited_files)}")
        if m.missing_files:
            found.append(f"applied but deleted: {', '.join(m.missing_files)}")
        covered = ("pending migrations", "migration files")  # said above
        for level, what in (("fail", "health failing"), ("warn", "health warning")):
            checks = [
                f"{c.name} ({c.detail})" for c in report.health if c.result == level and c.name not in covered
            ]
            if checks:
                found.append(f"{what}: {', '.join(checks)}")
    elif kind == "ValidateReport":
        if report.differences:
            found.append(f"drift: {'; '.join(d.message for d in report.differences[:3])}")
        if report.edited:
            found.append(f"edited after applied: {', '.join(report.edited)}")
    return found
