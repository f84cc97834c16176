"""The status report: connection, migrations, schema, data, size and health, as in the spec."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from dbops.output import units
from dbops.output.render import Line, heading
from dbops.postgres.connection import ServerFacts
from dbops.schema.catalog import TITLES
from dbops.schema.introspect import STATUS_GROUPS, CatalogSummary, TableInfo

CheckResult = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class HealthCheck:
    name: str
    result: CheckResult
    detail: str


@dataclass(frozen=True)
class MigrationSummary:
    folder: str
    folder_exists: bool
    applied: int
    pending: int
    last_applied: str | None
    last_applied_at: str | None
    pending_ids: tuple[str, ...]
    missing_files: tuple[str, ...]
    edited_files: tuple[str, ...] = ()


@dataclass(frozen=True)
class StatusReport:
    environment: str
    connection: ServerFacts
    migrations: MigrationSummary
    catalog: CatalogSummary
    health: tuple[HealthCheck, ...]
    healthy: bool
    largest_table: TableInfo | None

    @classmethod
    def build(
        cls,
        environment: str,
        connection: ServerFacts,
        migrations: MigrationSummary,
        catalog: CatalogSummary,
        health: tuple[HealthCheck, ...],
    ) -> StatusReport:
        healthy = all(check.result == "ok" for check in health)
        largest = max(catalog.tables, key=lambda t: t.total_bytes, default=None)
        return cls(environment, connection, migrations, catalog, health, healthy, largest)

    def warnings(self) -> list[str]:
        return [f"{c.name}: {c.detail}" for c in self.health if c.result != "ok"]

    def lines(self) -> list[Line]:
        c, m, cat = self.connection, self.migrations, self.catalog
        lines: list[Line] = heading("📊 Database Status")
        lines += [
            ("ok", "Connection: ✓ Connected"),
            ("", f"Database: {c.database}"),
            ("", f"Environment: {self.environment}"),
            ("", f"Host: {c.location}"),
            ("", f"Version: {c.version}"),
            ("key", "Migrations:"),
            ("", f"  Applied: {m.applied}"),
            ("warn" if m.pending else "", f"  Pending: {m.pending}"),
            ("", f"  Last migration: {m.last_applied or '(none)'}"),
        ]
        if m.pending_ids:
            lines.append(("", "  Pending migrations:"))
        lines += [("dim", f"    - {pid}") for pid in m.pending_ids[:10]]
        if len(m.pending_ids) > 10:
            lines.append(("dim", f"    ... and {len(m.pending_ids) - 10} more"))
        lines += [("warn", f"  Applied but missing from {m.folder}/: {mid}") for mid in m.missing_files]
        lines += [("warn", f"  Edited since applied: {mid}") for mid in m.edited_files]
        lines += [
            ("key", "Schema:"),
            ("", f"  Tables: {len(cat.tables)}"),
            ("", f"  Indexes: {cat.indexes}"),
            ("", f"  Constraints: {cat.constraints}"),
            ("", f"  Views: {cat.views}"),
            ("", f"  Functions: {cat.functions}"),
            ("", f"  Sequences: {cat.sequences}"),
        ]
        grouped = {kind for kinds in STATUS_GROUPS.values() for kind in kinds}
        lines += [  # every other kind of the catalog that the database holds
            ("", f"  {TITLES[kind]}: {n}") for kind, n in cat.objects.items() if n and kind not in grouped
        ]
        lines.append(("key", "Data Summary:"))
        lines += [("", f"  {t.qualified}: {_rows(t)}") for t in cat.tables] or [("dim", "  (no tables)")]
        if cat.estimates_only:
            lines.append(("warn", "  (another session is waiting for a table lock: figures are estimates)"))
        lines += [("key", "Size:"), ("", f"  Database: {units.size(cat.database_bytes)}")]
        largest = self.largest_table
        if largest is not None:
            lines.append(("", f"  Largest table: {largest.qualified} ({units.size(largest.total_bytes)})"))
        return lines + self._health_lines()

    def _health_lines(self) -> list[Line]:
        if self.healthy:
            return [("ok", f"Health: ✓ All checks passed ({len(self.health)})")]
        lines: list[Line] = [("warn", "Health:")]
        for check in self.health:
            mark, style = {"ok": ("✓", "ok"), "warn": ("⚠", "warn"), "fail": ("✗", "fail")}[check.result]
            lines.append((style, f"  {mark} {check.name}: {check.detail}"))  # type: ignore[arg-type]
        return lines


def health_checks(migrations: MigrationSummary, catalog: CatalogSummary) -> tuple[HealthCheck, ...]:
    pending = migrations.pending

    def listing(items: tuple[str, ...]) -> str:
        return ", ".join(items[:5]) + (f" and {len(items) - 5} more" if len(items) > 5 else "")

    checks = [
        HealthCheck("connection", "ok", "connected"),
        HealthCheck(
            "migrations folder",
            "ok" if migrations.folder_exists else "fail",
            "found"
            if migrations.folder_exists
            else f"{migrations.folder} does not exist (check migrations: in dbops.yaml)",
        ),
        HealthCheck(
            "pending migrations", "warn" if pending else "ok", f"{pending} pending" if pending else "none"
        ),
        _files_check(migrations, listing),
        HealthCheck(
            "invalid indexes",
            "fail" if catalog.invalid_indexes else "ok",
            listing(catalog.invalid_indexes) if catalog.invalid_indexes else "none",
        ),
        HealthCheck(
            "NOT VALID constraints",
            "warn" if catalog.not_valid_constraints else "ok",
            listing(catalog.not_valid_constraints) if catalog.not_valid_constraints else "none",
        ),
        HealthCheck(
            "long transactions (> 5 min)",
            "warn" if catalog.long_transactions else "ok",
            listing(catalog.long_transactions) if catalog.long_transactions else "none",
        ),
    ]
    return tuple(checks)


def _files_check(migrations: MigrationSummary, listing: Callable[[tuple[str, ...]], str]) -> HealthCheck:
    problems = []
    if migrations.missing_files:
        problems.append(f"applied but missing: {listing(migrations.missing_files)}")
    if migrations.edited_files:
        problems.append(f"edited since applied: {listing(migrations.edited_files)}")
    return HealthCheck("migration files", "warn" if problems else "ok", "; ".join(problems) or "all present")


def _rows(table: TableInfo) -> str:
    note = " (locked by another session)" if table.locked else ""
    if table.rows is None:
        return f"? records (never analyzed){note}"
    return f"{table.rows:,} records" if table.exact else f"~{table.rows:,} records{note}"
