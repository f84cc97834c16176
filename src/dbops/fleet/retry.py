"""--retry-failed: the targets that did not succeed in the last fleet run of the same operation
on the same environment, read from the operation log (each target's line carries its run's id).
"""

from __future__ import annotations

from pathlib import Path

from dbops import oplog


def last_failed(state_dir: Path, operation: str, environment: str) -> list[str] | None:
    """The last fleet run's targets that failed or never started, in log order; None when the
    log holds no fleet run of this operation on this environment."""
    runs: dict[str, dict[str, str]] = {}
    last: str | None = None
    for record in oplog.records(state_dir):
        run = record.get("fleet_run")
        if not run or record.get("operation") != operation or record.get("environment") != environment:
            continue
        runs.setdefault(str(run), {})[str(record.get("target"))] = str(record.get("outcome"))
        last = str(run)
    if last is None:
        return None
    return [target for target, outcome in runs[last].items() if outcome != "ok"]
