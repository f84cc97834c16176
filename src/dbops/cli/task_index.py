"""The pipelines of dbops.yaml as the task listing needs them: names and descriptions, cheaply.

Every ``invoke --list`` and ``dbops`` command imports the db collection, which lists one task
per pipeline. Loading dbops.yaml through dbops.config.loader costs several milliseconds, mostly in
building its typed classes, so the names and descriptions are kept in .dbops/tasks.json
with the size and modification time of the dbops.yaml they come from. A changed file is
loaded through dbops.config.loader again (and so checked as always); a missing or broken one lists
no pipeline, and the command that runs says what is wrong.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from dbops import atomic
from dbops.config.locate import find_config
from dbops.errors import DbopsError

INDEX = Path(".dbops") / "tasks.json"
_WARNED: set[str] = set()


def declared() -> list[tuple[str, str]]:
    """(name, description) of each pipeline declared in the dbops.yaml that commands find."""
    try:
        path = find_config()
        stat = path.stat()
    except (DbopsError, OSError):
        return []
    source = [str(path), stat.st_size, stat.st_mtime_ns]
    index = path.parent / INDEX
    try:
        kept = json.loads(index.read_text(encoding="utf-8"))
        if kept["source"] == source:
            return [(str(name), str(description)) for name, description in kept["pipelines"]]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    # lazy: the catalog imports every step; only a stale index pays for them and for loading
    from dbops.config.loader import load_config
    from dbops.engine.catalog import RULES

    try:
        config = load_config(RULES, str(path))
    except DbopsError as exc:
        warning = f"Warning: dbops.yaml does not load, so its pipelines are not listed: {exc.message}"
        if {"--list", "-l"} & set(sys.argv[1:]) and warning not in _WARNED:  # else a listing just lacks them
            _WARNED.add(warning)
            print(warning, file=sys.stderr)
        return []
    pipelines = [(p.name, p.description) for p in config.pipelines.values()]
    _write(index, {"source": source, "pipelines": pipelines})
    return pipelines


def _write(index: Path, document: object) -> None:
    """Atomically (a cache: replacing the old one); a project folder dbops may not write to just
    goes without the index."""
    try:
        index.parent.mkdir(exist_ok=True)
        atomic.write_replacing(index, json.dumps(document, ensure_ascii=False), mode=0o600)
    except OSError:
        return
