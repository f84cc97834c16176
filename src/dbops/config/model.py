"""dbops.yaml's model: frozen, typed objects that the rest of dbops reads (dbops.config.loader
builds them, with every value checked)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dbops import redact
from dbops.config.locate import CONFIG_NAME
from dbops.config.variables import interpolate, variable_names
from dbops.errors import ConfigError

DEFAULT_ENV = "development"
BUILTIN_ALIASES = {"dev": "development", "prod": "production"}


@dataclass(frozen=True)
class FleetTarget:
    """One database of a fleet as dbops.yaml (or its targets file) lists it: a name, and a URL
    or nothing (then the name is a database on the environment's server)."""

    name: str
    url: str | None = None
    variables: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Wave:
    """One wave of a fleet's rollout: the targets it takes (names or glob patterns; none: every
    target no other wave names), how many at once, and when it counts as failed."""

    name: str
    targets: tuple[str, ...] = ()
    jobs: int | None = None
    on_error: str = "stop"  # stop | continue
    max_failures: int | None = None  # failures it tolerates; default 0 (stop), unlimited (continue)

    @property
    def tolerated(self) -> int | None:
        """How many failed targets the wave tolerates before it stops (None: any number)."""
        if self.max_failures is not None:
            return self.max_failures
        return 0 if self.on_error == "stop" else None


@dataclass(frozen=True)
class Fleet:
    """``fleet:`` of an environment: the many databases it stands for (dbops.fleet runs them)."""

    targets: tuple[FleetTarget, ...] = ()  # a static list
    file: Path | None = None  # one URL or database name per line
    discover: str | None = None  # a query on the control database: datname, or name, url, ...
    control: str | None = None  # the control database's URL template (default: the environment's)
    jobs: int = 4  # sessions per server at once when --jobs is not given
    rollout: tuple[Wave, ...] = ()
    where: str = ""

    def source(self) -> str:
        """Where the targets come from, for messages."""
        if self.discover is not None:
            return "a discovery query"
        if self.file is not None:
            return f"the file {self.file.name}"
        return f"{len(self.targets)} listed target(s)"


@dataclass(frozen=True)
class Environment:
    """One entry of ``environments:``; the URL stays a template until it is resolved."""

    name: str
    aliases: tuple[str, ...] = ()
    url: str | None = None
    env_file: Path | None = None
    database: str | None = None
    embedded: bool = False
    protected: bool = False
    connect_timeout_ms: int = 10_000
    lock_timeout_ms: int | None = None
    statement_timeout_ms: int | None = None
    application_name: str = "dbops"
    lock_wait_ms: int = 60_000
    allow_seed: bool | None = None  # default: seeding is allowed unless the environment is protected
    allow_reset: bool | None = None  # default: reset is allowed unless the environment is protected
    allow_force: bool = True  # whether --force may skip a confirmation here
    confirm: str | None = None  # "name" (type the database name) or "yes"; default: name if protected
    validate_before_migrate: bool | None = None  # default: the environment's protected value
    reuse_scratch: bool | None = None  # validate's reusable scratch database; default: not protected
    backup_before: tuple[str, ...] | None = None  # operations preceded by an automatic backup
    fleet: Fleet | None = None  # many databases (dbops.fleet); None: the one database of its URL
    variables: Mapping[str, str] = field(default_factory=dict)  # a fleet target's, for seed templates
    line: int = 0
    source: str = CONFIG_NAME
    key_lines: Mapping[str, int] = field(default_factory=dict, repr=False, compare=False)

    @property
    def lints_before_migrate(self) -> bool:
        """Whether migrate lints pending migrations first (validate_before_migrate, else protected)."""
        return self.protected if self.validate_before_migrate is None else self.validate_before_migrate

    @property
    def reuses_scratch(self) -> bool:
        """Whether validate may keep its scratch database between runs (dbops.postgres.reusable)."""
        return not self.protected if self.reuse_scratch is None else self.reuse_scratch

    def where(self, key: str | None = None) -> str:
        """file:line: environments.NAME[.key], for messages about this environment."""
        line = self.key_lines.get(key, self.line) if key else self.line
        return f"{self.source}:{line}: environments.{self.name}" + (f".{key}" if key else "")

    def file_values(self) -> dict[str, str]:
        """The env_file's variables; a missing file counts as empty."""
        if self.env_file is None or not self.env_file.is_file():
            return {}
        from dotenv import dotenv_values

        try:
            values = dotenv_values(self.env_file, encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"environments.{self.name}.env_file: cannot read {self.env_file}: {type(exc).__name__}",
                "It must be a readable UTF-8 file of NAME=value lines",
            ) from None
        return {k: v for k, v in values.items() if v is not None}

    def resolved_url(self) -> str | None:
        """The connection URL with ``${VAR}`` filled in; None when empty (embedded fallback).

        An explicit ``url:`` takes its variables from the process environment first, then the
        env_file. Without ``url:``, the URL is the env_file's own DATABASE_URL and nothing else:
        a DATABASE_URL exported in the shell never redirects an environment that did not ask.
        """
        values = self.file_values()
        redact.remember_variables(values)  # every message from here on is scrubbed of them
        if self.url is None:
            url = values.get("DATABASE_URL") or None
        else:
            url = interpolate(self.url, {**values, **os.environ}, self.where("url"), self.env_file) or None
        redact.remember_connection_string(url)
        return url

    def url_source(self) -> str:
        """Where the URL comes from, for messages: the key of dbops.yaml and its variables
        (``DATABASE_URL from the environment``), or the env_file's DATABASE_URL."""
        env_file = self.env_file.name if self.env_file is not None else "the env_file"
        if self.url is None:
            return f"DATABASE_URL in {env_file}"
        names = variable_names(self.url)
        if not names:
            return self.where("url")
        from_file = self.file_values()
        sources = [
            f"{name} from the environment"
            if os.environ.get(name)
            else (f"{name} in {env_file}" if from_file.get(name) else f"{name}'s default")
            for name in names
        ]
        return f"{', '.join(sources)} (url: at {self.where('url')})"


@dataclass(frozen=True)
class StepCall:
    """One step of a declared pipeline, with its arguments (checked against the step registry)."""

    name: str
    args: Mapping[str, Any]
    where: str  # file:line: key path, for messages


@dataclass(frozen=True)
class Pipeline:
    """A named pipeline from ``pipelines:``: a task of its own (dbops NAME, invoke db.NAME)."""

    name: str
    description: str
    steps: tuple[StepCall, ...]
    where: str


@dataclass(frozen=True)
class PipelineRules:
    """What a pipeline of dbops.yaml may name as steps, with their arguments' types (bool, int or
    str), and the names it may not take (the built-in tasks'). The engine's catalog gives them
    (dbops.engine.catalog.RULES): config knows no step itself."""

    steps: Mapping[str, Mapping[str, type]]
    reserved: frozenset[str]


@dataclass(frozen=True)
class BackupSettings:
    """``backups:``: where backups go, how long automatic ones stay, which pg_dump makes them."""

    directory: Path = field(default_factory=lambda: Path("backups/db"))  # relative to dbops.yaml
    retention_days: int = 30
    pg_dump: Path | None = None  # pg_restore and psql are taken from the same folder


@dataclass(frozen=True)
class Config:
    path: Path
    project: str
    environments: Mapping[str, Environment]
    default_env: str | None = None
    migrations_dir: Path = field(default_factory=lambda: Path("migrations"))
    templates_dir: Path | None = None  # a project's own migration templates
    seeds_dir: Path = field(default_factory=lambda: Path("seeds"))
    pipelines: Mapping[str, Pipeline] = field(default_factory=dict)
    models: str | None = None  # package.module:metadata, the SQLAlchemy models validate compares with
    backups: BackupSettings = field(default_factory=BackupSettings)

    @property
    def root(self) -> Path:
        return self.path.parent

    @property
    def backup_dir(self) -> Path:
        """Manual backups; automatic ones go to its automated/ subfolder."""
        return self.root / self.backups.directory

    @property
    def state_dir(self) -> Path:
        """Where dbops keeps its own files (embedded server, operation log); gitignored."""
        return self.root / ".dbops"

    def shown(self, path: Path) -> str:
        """A path as messages show it: relative to the project when inside it."""
        return shown(path, self.root)

    def aliases(self) -> dict[str, str]:
        table = {
            a: n for a, n in BUILTIN_ALIASES.items() if n in self.environments and a not in self.environments
        }
        for env in self.environments.values():
            table.update({alias: env.name for alias in env.aliases})
        return table

    def environment(self, requested: str | None) -> Environment:
        """--env first, then DBOPS_ENV, then default_env, then development."""
        name = requested or os.environ.get("DBOPS_ENV") or self.default_env or DEFAULT_ENV
        if name not in self.environments:
            name = self.aliases().get(name, name)
        if name in self.environments:
            return self.environments[name]
        raise ConfigError(
            f"Unknown environment '{name}'. Known: {self.describe_environments()}",
            f"Pick one with --env, or add '{name}' under environments: in {self.path.name}",
        )

    def describe_environments(self) -> str:
        aliases = self.aliases()
        parts = []
        for env_name in self.environments:
            own = sorted(a for a, n in aliases.items() if n == env_name)
            parts.append(f"{env_name} ({', '.join(own)})" if own else env_name)
        return ", ".join(parts)


def shown(path: Path, root: Path) -> str:
    """A path relative to root when it lies inside it, else as it is."""
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
