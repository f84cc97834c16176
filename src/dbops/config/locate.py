"""Finding dbops.yaml: --config, then DBOPS_CONFIG, then upwards from the working directory.

Apart from dbops.config.loader (which reads the file), so that finding it costs no import of the
configuration's schema: the task listing only needs to know whether it changed (task_index).
"""

from __future__ import annotations

import os
from pathlib import Path

from dbops.errors import ConfigError

CONFIG_NAME = "dbops.yaml"


def find_config(explicit: str | None = None, start: Path | None = None) -> Path:
    """--config, then DBOPS_CONFIG, then walk up from the working directory as git does."""
    chosen = explicit or os.environ.get("DBOPS_CONFIG")
    if chosen:
        path = Path(chosen).expanduser()
        if path.is_dir():
            path = path / CONFIG_NAME
        if not path.is_file():
            raise ConfigError(f"Config file not found: {path}", "Check the --config path or DBOPS_CONFIG")
        return path.resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / CONFIG_NAME
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"No {CONFIG_NAME} found in {here} or any parent directory",
        f"Run dbops inside a project that has a {CONFIG_NAME}, or pass --config PATH",
    )
