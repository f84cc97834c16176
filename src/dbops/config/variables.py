"""``${VAR}`` and ``${VAR:-default}`` in dbops.yaml's values, filled from the environment and an env_file."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from dbops.errors import ConfigError

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate(template: str, variables: Mapping[str, str], where: str, env_file: Path | None = None) -> str:
    """Fill ``${VAR}`` and ``${VAR:-default}``; a missing VAR without default is an error."""

    def fill(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = variables.get(name)
        if value:
            return value
        if default is not None:
            return default
        source = f" or in {env_file.name}" if env_file is not None else ""
        raise ConfigError(f"{where}: variable {name} is not set", f"Set {name} in the environment{source}")

    return _VARIABLE.sub(fill, template)


def variable_names(template: str) -> list[str]:
    """The names of the ``${VAR}`` a template uses, in order, each once."""
    return list(dict.fromkeys(match.group(1) for match in _VARIABLE.finditer(template)))
