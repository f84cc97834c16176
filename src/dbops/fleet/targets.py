"""A fleet's targets: from dbops.yaml's list, a file, or a discovery query; then --targets.

Each target has a name (shown in every report), a URL (never shown; a name alone is a database
on the environment's server) and variables (seed templates see them). A target runs as the
environment itself with its URL: every other setting (timeouts, policy) is the environment's.
"""

from __future__ import annotations

import difflib
import fnmatch
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from urllib.parse import quote, urlsplit, urlunsplit

from dbops.config.loader import target_of_line
from dbops.config.model import Environment, Fleet, FleetTarget
from dbops.config.variables import interpolate
from dbops.errors import ConfigError, DbopsError, UsageError
from dbops.postgres.connection import Target, connect
from dbops.redact import remember_connection_string


@dataclass(frozen=True)
class FleetMember:
    """One database of the fleet, resolved: its name, its URL (a secret), its variables."""

    name: str
    url: str = field(repr=False)
    variables: Mapping[str, str] = field(default_factory=dict)

    def environment(self, env: Environment) -> Environment:
        """The environment as this target runs it: its URL, no fleet, its variables."""
        return replace(
            env,
            url=self.url,
            env_file=None,
            database=None,
            fleet=None,
            variables={**self.variables, "target": self.name},
        )


def resolve(env: Environment, fleet: Fleet) -> list[FleetMember]:
    """Every target of the fleet, in the order its source gives them, each name once."""
    if fleet.discover is not None:
        listed = _discover(env, fleet)
    elif fleet.file is not None:
        listed = _read_file(fleet)
    else:
        listed = list(fleet.targets)
    members: dict[str, FleetMember] = {}
    base: str | None = None
    for target in listed:
        if target.name in members:
            raise ConfigError(
                f"{fleet.where}: the target {target.name!r} comes twice from {fleet.source()}",
                "Give each target a name of its own",
            )
        url = target.url
        if url is not None and fleet.discover is None and fleet.file is None:  # dbops.yaml's own: ${VAR}
            values = {**env.file_values(), **os.environ, **target.variables}
            url = interpolate(url, values, f"{fleet.where}.targets.{target.name}.url", env.env_file)
        if url is None:
            base = base or _server_url(env)
            url = with_database(base, target.name)
        if "${" in url:
            raise ConfigError(
                f"{fleet.where}: the URL of target {target.name!r} holds '${{'",
                "Percent-encode $ in a target's URL (%24)",
            )
        remember_connection_string(url)
        members[target.name] = FleetMember(target.name, url, dict(target.variables))
    return list(members.values())


def _server_url(env: Environment) -> str:
    url = env.resolved_url()
    if not url:
        raise ConfigError(
            f"{env.where()}: a fleet's targets named by database need the server's URL",
            f"Set url: for {env.name} in dbops.yaml (each target's name replaces its database)",
        )
    return url


def with_database(url: str, database: str) -> str:
    """The URL with another database: the path part replaced, the rest kept as written."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + quote(database, safe="")))


def _read_file(fleet: Fleet) -> list[FleetTarget]:
    assert fleet.file is not None
    try:
        text = fleet.file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"{fleet.where}.file: cannot read {fleet.file}: {type(exc).__name__}",
            "It must be a readable UTF-8 file: one database name or URL per line",
        ) from None
    targets = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip() and not line.lstrip().startswith("#"):
            targets.append(target_of_line(line, _line_error(f"{fleet.file.name}:{number}")))
    return targets


def _line_error(where: str) -> Callable[[str], ConfigError]:
    return lambda message: ConfigError(f"{where}: {message}", "Fix that line of the targets file")


def _discover(env: Environment, fleet: Fleet) -> list[FleetTarget]:
    """The query on the control database: one column (database names), or columns name (or
    datname), url, and any others as the target's variables."""
    assert fleet.discover is not None
    if fleet.control is not None:
        control = interpolate(fleet.control, {**env.file_values(), **os.environ}, f"{fleet.where}.control")
        where = f"{fleet.where}.control"
    else:
        control = _server_url(env)
        where = env.url_source()
    remember_connection_string(control)
    target = Target.from_url(control, where=where)
    try:
        with connect(target, env) as conn:
            cursor = conn.execute(fleet.discover)  # the project's own query
            columns = [c.name for c in cursor.description or ()]
            rows = cursor.fetchall()
    except DbopsError:
        raise
    except Exception as exc:  # psycopg's errors: the query is the project's
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"{fleet.where}.discover: the discovery query failed: {target.scrub(message)}",
            "Fix the query in dbops.yaml; it returns datname, or name, url and any variables",
        ) from None
    return [_discovered(columns, row, fleet) for row in rows]


def _discovered(columns: Sequence[str], row: Sequence[object], fleet: Fleet) -> FleetTarget:
    values = {c: ("" if v is None else str(v)) for c, v in zip(columns, row, strict=True)}
    name_column = next((c for c in ("name", "datname") if c in values), columns[0])
    name = values.pop(name_column)
    url = values.pop("url", "") or None
    target = target_of_line(
        name, lambda message: ConfigError(f"{fleet.where}.discover: {message}", "Fix the discovery query")
    )
    return FleetTarget(target.name, url, values)


# --------------------------------------------------------------------------- --targets


def select(members: list[FleetMember], wanted: str | None) -> list[FleetMember]:
    """--targets a,b,tenant_0*: names or glob patterns, comma-separated; each must match."""
    if wanted is None:
        return members
    patterns = [p.strip() for p in wanted.split(",") if p.strip()]
    if not patterns:
        raise UsageError("--targets names no target", "e.g. --targets=tenant_001,tenant_1*")
    names = [m.name for m in members]
    for pattern in patterns:
        if not fnmatch.filter(names, pattern):
            close = difflib.get_close_matches(pattern, names, n=3)
            known = (
                f"did you mean {', '.join(close)}?" if close else f"{len(names)} target(s), e.g. {names[0]}"
            )
            raise UsageError(
                f"--targets: {pattern!r} matches no target of the fleet ({known})"
                if names
                else "--targets: the fleet has no target",
                "dbops status on the fleet lists its targets",
            )
    return [m for m in members if any(fnmatch.fnmatchcase(m.name, p) for p in patterns)]


def matches(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)
