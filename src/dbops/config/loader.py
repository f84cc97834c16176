"""dbops.yaml -> frozen, typed objects. The only module that reads dbops.yaml and .env files.

Every error names the file, the line and the key path, e.g.
``dbops.yaml:12: environments.production.lock_timeout: expected a duration like 5s, got 'soon'``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from dbops.config import yaml_lines
from dbops.config.locate import find_config
from dbops.config.model import (
    BackupSettings,
    Config,
    Environment,
    Fleet,
    FleetTarget,
    Pipeline,
    PipelineRules,
    StepCall,
    Wave,
)
from dbops.config.yaml_lines import KeyPath, YamlShapeError, YamlSyntaxError
from dbops.errors import ConfigError

# --------------------------------------------------------------------------- reading the file


def load_config(rules: PipelineRules, explicit: str | None = None, start: Path | None = None) -> Config:
    """Find dbops.yaml (--config, DBOPS_CONFIG, upwards) and load it; its pipelines are checked
    against the rules the engine gives (dbops.engine.catalog.RULES)."""
    path = find_config(explicit, start)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Cannot read {path}: {exc}", "Check the file's permissions and encoding") from None
    return parse_config(text, path, rules)


# --------------------------------------------------------------------------- YAML, and its lines in messages


class _Doc:
    """The line of every key path of the parsed document, for messages."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: dict[KeyPath, int] = {}

    def error(self, keypath: KeyPath, message: str, hint: str = "") -> ConfigError:
        line = self.lines.get(keypath) or self.lines.get(keypath[:-1], 1)
        dotted = ".".join(str(p) for p in keypath)
        prefix = f"{self.path.name}:{line}: {dotted}: " if dotted else f"{self.path.name}:{line}: "
        return ConfigError(prefix + message, hint or f"Fix {self.path}; the README documents every key")


def _read_yaml(text: str, doc: _Doc) -> Any:
    try:
        document = yaml_lines.read(text)
    except YamlSyntaxError as exc:
        if exc.line is None:
            raise ConfigError(
                f"{doc.path.name}: invalid YAML: {exc.problem}", "Check the file's syntax"
            ) from None
        raise ConfigError(
            f"{exc.where(doc.path.name)}: invalid YAML: {exc.problem}",
            "Check the indentation and quoting around that position",
        ) from None
    except YamlShapeError as exc:
        doc.lines[exc.keypath] = exc.line
        raise doc.error(exc.keypath, exc.message) from None
    doc.lines = document.lines
    return document.value


# --------------------------------------------------------------------------- value parsers

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|sec|min|m|h)?\s*$", re.ASCII)
_UNITS_MS = {"ms": 1, "s": 1000, "sec": 1000, "min": 60_000, "m": 60_000, "h": 3_600_000, None: 1000}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


_MAX_MS = 2_147_483_647  # PostgreSQL's timeouts are an int of milliseconds


def parse_duration_ms(value: Any) -> int | None:
    """5s, 500ms, 2min, 1h, or a number of seconds; None when it is not a duration."""
    milliseconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        milliseconds = value * 1000
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            milliseconds = float(match.group(1)) * _UNITS_MS[match.group(2)]
    if milliseconds is None or not 0 <= milliseconds <= _MAX_MS:  # also rejects nan and inf
        return None
    return int(milliseconds)


Parser = Callable[[Any, KeyPath, _Doc], Any]


def _duration(value: Any, keypath: KeyPath, doc: _Doc) -> int:
    parsed = parse_duration_ms(value)
    if parsed is None:
        raise doc.error(keypath, f"expected a duration like 5s, got {value!r}")
    return parsed


def _bool(value: Any, keypath: KeyPath, doc: _Doc) -> bool:
    if not isinstance(value, bool):
        raise doc.error(keypath, f"expected true or false, got {value!r}")
    return value


def _str(value: Any, keypath: KeyPath, doc: _Doc) -> str:
    if not isinstance(value, str) or not value.strip():
        raise doc.error(keypath, f"expected a non-empty string, got {value!r}")
    return value


def _name(value: Any, keypath: KeyPath, doc: _Doc) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise doc.error(keypath, f"expected a name (letters, digits, _ and -), got {value!r}")
    return value


def _names(value: Any, keypath: KeyPath, doc: _Doc) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise doc.error(keypath, f"expected a list of names, got {value!r}")
    return tuple(_name(item, (*keypath, i), doc) for i, item in enumerate(value))


_MODELS = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def _models(value: Any, keypath: KeyPath, doc: _Doc) -> str:
    if not isinstance(value, str) or not _MODELS.match(value):
        raise doc.error(keypath, f"expected package.module:metadata, got {value!r}")
    return value


def _mapping(value: Any, keypath: KeyPath, doc: _Doc) -> dict[str, Any]:
    if not isinstance(value, dict):
        kind = "nothing" if value is None else type(value).__name__
        raise doc.error(keypath, f"expected a mapping of keys, got {kind}")
    return value


def _check_keys(section: dict[str, Any], known: Mapping[str, Any], keypath: KeyPath, doc: _Doc) -> None:
    for key in section:
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(known)}"
            raise doc.error((*keypath, key), f"unknown key ({hint})", f"Fix or remove it in {doc.path}")


def _confirm(value: Any, keypath: KeyPath, doc: _Doc) -> str:
    if value not in ("name", "yes"):
        raise doc.error(keypath, f"expected name (type the database name) or yes, got {value!r}")
    return str(value)


BACKUP_BEFORE = ("reset", "rollback", "restore", "migrate")


def _backup_before(value: Any, keypath: KeyPath, doc: _Doc) -> tuple[str, ...]:
    names = _names([] if value is None else value, keypath, doc)
    for i, name in enumerate(names):
        if name not in BACKUP_BEFORE:
            raise doc.error((*keypath, i), f"expected some of {', '.join(BACKUP_BEFORE)}, got {name!r}")
    return names


# --------------------------------------------------------------------------- fleets

_FLEET_KEYS = ("targets", "file", "discover", "control", "jobs", "rollout")
_WAVE_KEYS = ("wave", "targets", "jobs", "on_error", "max_failures")
_TARGET_KEYS = ("name", "url", "variables")


def _whole(value: Any, keypath: KeyPath, doc: _Doc, least: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise doc.error(keypath, f"expected a whole number of at least {least}, got {value!r}")
    return value


def _fleet(raw: Any, keypath: KeyPath, doc: _Doc) -> Fleet:
    """``fleet:`` of an environment: exactly one of targets, file and discover; jobs; rollout."""
    section = _mapping(raw, keypath, doc)
    _check_keys(section, dict.fromkeys(_FLEET_KEYS), keypath, doc)
    sources = [key for key in ("targets", "file", "discover") if key in section]
    if len(sources) != 1:
        found = ", ".join(sources) if sources else "none"
        raise doc.error(
            keypath,
            f"expected exactly one of targets, file and discover (found: {found})",
            "List the targets, name a file of them (one per line), or give a discovery query",
        )
    fleet = Fleet(where=_where(doc, keypath))
    if "targets" in section:
        items = section["targets"]
        if not isinstance(items, list) or not items:
            raise doc.error((*keypath, "targets"), "expected a non-empty list of database names or URLs")
        targets = tuple(_fleet_target(item, (*keypath, "targets", i), doc) for i, item in enumerate(items))
        names = [t.name for t in targets]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise doc.error((*keypath, "targets", i), f"the target name {name!r} is listed twice")
        fleet = replace(fleet, targets=targets)
    if "file" in section:
        path = Path(_str(section["file"], (*keypath, "file"), doc)).expanduser()
        fleet = replace(fleet, file=(doc.path.parent / path).resolve())
    if "discover" in section:
        fleet = replace(fleet, discover=_str(section["discover"], (*keypath, "discover"), doc))
    if "control" in section:
        if "discover" not in section:
            raise doc.error((*keypath, "control"), "a control database is for a discovery query only")
        fleet = replace(fleet, control=_str(section["control"], (*keypath, "control"), doc))
    if "jobs" in section:
        fleet = replace(fleet, jobs=_whole(section["jobs"], (*keypath, "jobs"), doc))
    if "rollout" in section:
        fleet = replace(fleet, rollout=_rollout(section["rollout"], (*keypath, "rollout"), doc))
    return fleet


def _fleet_target(item: Any, keypath: KeyPath, doc: _Doc) -> FleetTarget:
    """A database name, a URL, or {name, url, variables}."""
    if isinstance(item, str):
        return target_of_line(item, lambda message: doc.error(keypath, message))
    section = _mapping(item, keypath, doc)
    _check_keys(section, dict.fromkeys(_TARGET_KEYS), keypath, doc)
    if "name" not in section:
        raise doc.error(keypath, "a target written as a mapping needs a name")
    name = _target_name(section["name"], (*keypath, "name"), doc)
    url = _str(section["url"], (*keypath, "url"), doc) if "url" in section else None
    variables = _mapping(section.get("variables") or {}, (*keypath, "variables"), doc)
    for key, value in variables.items():
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise doc.error((*keypath, "variables", key), f"expected a string or a number, got {value!r}")
    return FleetTarget(name, url, {str(k): str(v) for k, v in variables.items()})


_TARGET_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def _target_name(value: Any, keypath: KeyPath, doc: _Doc) -> str:
    if not isinstance(value, str) or not _TARGET_NAME.match(value):
        raise doc.error(keypath, f"expected a target name (letters, digits, _ . and -), got {value!r}")
    return value


def target_of_line(text: str, error: Callable[[str], ConfigError]) -> FleetTarget:
    """A target as a list or a file writes it: a URL (named by its database) or a database name."""
    text = text.strip()
    if "://" in text:
        from urllib.parse import unquote, urlsplit

        name = unquote(urlsplit(text).path.lstrip("/"))
        if not _TARGET_NAME.match(name):
            raise error("a target URL must name its database (postgresql://host/NAME)")
        return FleetTarget(name, text)
    if not _TARGET_NAME.match(text):
        raise error(f"expected a database name or a postgresql:// URL, got {text!r}")
    return FleetTarget(text)


def _rollout(raw: Any, keypath: KeyPath, doc: _Doc) -> tuple[Wave, ...]:
    if not isinstance(raw, list) or not raw:
        raise doc.error(
            keypath, "expected a list of waves, e.g. [{wave: canary, targets: [t1]}, {wave: rest}]"
        )
    waves: list[Wave] = []
    for i, item in enumerate(raw):
        at: KeyPath = (*keypath, i)
        section = _mapping(item, at, doc)
        _check_keys(section, dict.fromkeys(_WAVE_KEYS), at, doc)
        name = _name(section.get("wave", f"wave{i + 1}"), (*at, "wave"), doc)
        if name in (w.name for w in waves):
            raise doc.error((*at, "wave"), f"the wave name {name!r} is used twice")
        patterns: tuple[str, ...] = ()
        if "targets" in section:
            value = section["targets"]
            value = [value] if isinstance(value, str) else value
            if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
                raise doc.error((*at, "targets"), "expected a list of target names or glob patterns")
            patterns = tuple(value)
        on_error = section.get("on_error", "stop")
        if on_error not in ("stop", "continue"):
            raise doc.error((*at, "on_error"), f"expected stop or continue, got {on_error!r}")
        waves.append(
            Wave(
                name,
                patterns,
                _whole(section["jobs"], (*at, "jobs"), doc) if "jobs" in section else None,
                on_error,
                _whole(section["max_failures"], (*at, "max_failures"), doc, 0)
                if "max_failures" in section
                else None,
            )
        )
    rest = [w.name for w in waves if not w.targets]
    if len(rest) > 1:
        raise doc.error(keypath, f"only one wave may take the rest (no targets:), found: {', '.join(rest)}")
    return tuple(waves)


# --------------------------------------------------------------------------- the schema

_ENV_KEYS: dict[str, tuple[str, Parser]] = {
    "aliases": ("aliases", _names),
    "url": ("url", _str),
    "env_file": ("env_file", _str),
    "database": ("database", _name),
    "embedded": ("embedded", _bool),
    "protected": ("protected", _bool),
    "connect_timeout": ("connect_timeout_ms", _duration),
    "lock_timeout": ("lock_timeout_ms", _duration),
    "statement_timeout": ("statement_timeout_ms", _duration),
    "application_name": ("application_name", _str),
    "lock_wait": ("lock_wait_ms", _duration),
    "allow_seed": ("allow_seed", _bool),
    "allow_reset": ("allow_reset", _bool),
    "allow_force": ("allow_force", _bool),
    "confirm": ("confirm", _confirm),
    "validate_before_migrate": ("validate_before_migrate", _bool),
    "reuse_scratch": ("reuse_scratch", _bool),
    "backup_before": ("backup_before", _backup_before),
    "fleet": ("fleet", _fleet),
}
_TOP_KEYS = (
    "project",
    "default_env",
    "migrations",
    "seeds",
    "templates",
    "models",
    "environments",
    "backups",
    "pipelines",
)
_BACKUP_KEYS = ("directory", "retention_days", "pg_dump")


def _backups(raw: Any, doc: _Doc) -> BackupSettings:
    keypath: KeyPath = ("backups",)
    section = _mapping({} if raw is None else raw, keypath, doc)
    _check_keys(section, dict.fromkeys(_BACKUP_KEYS), keypath, doc)
    settings = BackupSettings()
    if "directory" in section:
        directory = Path(_str(section["directory"], (*keypath, "directory"), doc)).expanduser()
        settings = replace(settings, directory=(doc.path.parent / directory).resolve())
    if "retention_days" in section:
        days = section["retention_days"]
        if isinstance(days, bool) or not isinstance(days, int) or days < 1:
            raise doc.error(
                (*keypath, "retention_days"), f"expected a whole number of days >= 1, got {days!r}"
            )
        settings = replace(settings, retention_days=days)
    if "pg_dump" in section:
        pg_dump = Path(_str(section["pg_dump"], (*keypath, "pg_dump"), doc)).expanduser()
        settings = replace(settings, pg_dump=(doc.path.parent / pg_dump).resolve())
    return settings


def _environment(name: str, raw: Any, doc: _Doc) -> Environment:
    keypath: KeyPath = ("environments", name)
    section = _mapping({} if raw is None else raw, keypath, doc)
    _check_keys(section, _ENV_KEYS, keypath, doc)
    values: dict[str, Any] = {}
    for key, value in section.items():
        attribute, parser = _ENV_KEYS[key]
        values[attribute] = parser(value, (*keypath, key), doc)
    if "env_file" in values:
        values["env_file"] = (doc.path.parent / values["env_file"]).resolve()
    key_lines = {key: doc.lines.get((*keypath, key), 1) for key in section}
    env = Environment(
        name=name, line=doc.lines.get(keypath, 1), source=doc.path.name, key_lines=key_lines, **values
    )
    if env.protected and env.embedded:
        raise doc.error(
            (*keypath, "embedded"),
            "a protected environment cannot fall back to the embedded server",
            "Remove embedded: true, and give the environment a url",
        )
    if env.connect_timeout_ms < 1000:
        raise doc.error((*keypath, "connect_timeout"), "must be at least 1s (libpq counts whole seconds)")
    return env


def parse_config(text: str, path: Path, rules: PipelineRules) -> Config:
    doc = _Doc(path)
    raw = _read_yaml(text, doc)
    top = _mapping(raw, (), doc)
    _check_keys(top, dict.fromkeys(_TOP_KEYS), (), doc)
    if "environments" not in top:
        raise doc.error((), "missing 'environments:' section", "Declare at least one environment")
    envs_raw = _mapping(top["environments"], ("environments",), doc)
    if not envs_raw:
        raise doc.error(("environments",), "declares no environment", "Declare at least one environment")
    environments = {}
    for name, raw_env in envs_raw.items():
        _name(name, ("environments", name), doc)
        environments[name] = _environment(name, raw_env, doc)
    project = _name(top["project"], ("project",), doc) if "project" in top else _slug(path.parent.name)
    default_env = _name(top["default_env"], ("default_env",), doc) if "default_env" in top else None
    migrations = (
        Path(_str(top["migrations"], ("migrations",), doc)) if "migrations" in top else Path("migrations")
    )
    config = Config(
        path=path,
        project=project,
        environments=environments,
        default_env=default_env,
        migrations_dir=(path.parent / migrations).resolve(),
        seeds_dir=(
            path.parent / (_str(top["seeds"], ("seeds",), doc) if "seeds" in top else "seeds")
        ).resolve(),
        templates_dir=(path.parent / _str(top["templates"], ("templates",), doc)).resolve()
        if "templates" in top
        else None,
        models=_models(top["models"], ("models",), doc) if "models" in top else None,
        backups=_backups(top.get("backups"), doc),
    )
    _check_aliases(config, doc)
    if "pipelines" in top:
        config = replace(config, pipelines=_pipelines(top["pipelines"], doc, rules))
    if default_env is not None and config.aliases().get(default_env, default_env) not in environments:
        raise doc.error(("default_env",), f"names no environment (known: {config.describe_environments()})")
    return config


def _check_aliases(config: Config, doc: _Doc) -> None:
    seen: dict[str, str] = {}
    for env in config.environments.values():
        for i, alias in enumerate(env.aliases):
            keypath: KeyPath = ("environments", env.name, "aliases", i)
            if alias in config.environments:
                raise doc.error(keypath, f"'{alias}' is already an environment's name")
            if alias in seen:
                raise doc.error(keypath, f"'{alias}' is already an alias of {seen[alias]}")
            seen[alias] = env.name


# --------------------------------------------------------------------------- pipelines


# The tasks of the db collection (dbops.cli.tasks): a pipeline cannot take one of their names.
def _pipelines(raw: Any, doc: _Doc, rules: PipelineRules) -> dict[str, Pipeline]:
    """``NAME: [step, {step: {arg: value}}]``, or ``NAME: {description: ..., steps: [...]}``."""
    pipelines = {}
    for name, body in _mapping(raw, ("pipelines",), doc).items():
        keypath: KeyPath = ("pipelines", name)
        _name(name, keypath, doc)
        if "_" in name:  # Invoke shows task names with dashes: one spelling everywhere
            raise doc.error(keypath, f"a pipeline's name is a task's: write {name.replace('_', '-')}")
        if name in rules.reserved:
            raise doc.error(keypath, f"'{name}' is a built-in task's name", "Name the pipeline otherwise")
        description = None
        steps_path = keypath
        if isinstance(body, dict):
            _check_keys(body, dict.fromkeys(("description", "steps")), keypath, doc)
            if "description" in body:
                description = _str(body["description"], (*keypath, "description"), doc)
            steps_path = (*keypath, "steps")
            body = body.get("steps")
        if not isinstance(body, list) or not body:
            raise doc.error(steps_path, "expected a list of steps, e.g. [migrate, {seed: {clear: true}}]")
        calls = tuple(_step_call(item, (*steps_path, i), doc, rules.steps) for i, item in enumerate(body))
        description = description or "Pipeline: " + " → ".join(c.name for c in calls)
        pipelines[name] = Pipeline(name, description, calls, _where(doc, keypath))
    return pipelines


def _step_call(item: Any, keypath: KeyPath, doc: _Doc, steps: Mapping[str, Mapping[str, type]]) -> StepCall:

    args: dict[str, Any] = {}
    if isinstance(item, dict) and len(item) == 1:
        name, raw_args = next(iter(item.items()))
        args = _mapping({} if raw_args is None else raw_args, (*keypath, name), doc)
    elif isinstance(item, str):
        name = item
    else:
        raise doc.error(keypath, f"expected a step name or {{step: {{argument: value}}}}, got {item!r}")
    if name not in steps:
        close = difflib.get_close_matches(name, list(steps), n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'?" if close else f"known steps: {', '.join(steps)}"
        raise doc.error(
            keypath, f"unknown step '{name}' ({hint})", "The README lists the steps and their arguments"
        )
    kinds = steps[name]
    if args and not kinds:
        raise doc.error((*keypath, name, next(iter(args))), f"unknown argument: step '{name}' takes none")
    _check_keys(args, kinds, (*keypath, name), doc)
    checked = {key: _argument(value, kinds[key], (*keypath, name, key), doc) for key, value in args.items()}
    return StepCall(name, checked, _where(doc, keypath))


def _argument(value: Any, expected: type, keypath: KeyPath, doc: _Doc) -> Any:
    if expected is bool:
        return _bool(value, keypath, doc)
    if expected is int:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise doc.error(keypath, f"expected a whole number of at least 1, got {value!r}")
        return value
    if isinstance(value, int) and not isinstance(value, bool):  # an id such as 20251001090200
        return str(value)
    return _str(value, keypath, doc)


def _where(doc: _Doc, keypath: KeyPath) -> str:
    return f"{doc.path.name}:{doc.lines.get(keypath, 1)}: {'.'.join(str(p) for p in keypath)}"


def _slug(name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_").lower()
    return slug or "dbops"
