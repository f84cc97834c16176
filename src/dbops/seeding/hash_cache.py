"""Hashed seed columns (hash: {password: scrypt}) without re-hashing what did not change.

scrypt is slow on purpose (about 70 ms a value), and the salt dbops derives from each row makes
the hash of an unchanged value the same on every run: so the hash of each (method, salt, value)
is kept in ``.dbops/cache/seed-hashes.json`` (0600, in the 0700 state folder beside the embedded
server's data), and a re-seed with nothing changed hashes nothing. The key is the sha256 of the
input: the seed file, in the repository, holds the value itself. A cache only: any process may
rebuild it, a damaged or missing one costs the hashing and nothing else.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from dbops import atomic

_VERSION = "v1"  # part of every key: a change of the hash's parameters starts afresh
_MAX_ENTRIES = 10_000


class HashCache:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._entries: dict[str, str] | None = None
        self._added = False

    def hashed(self, value: str, salt: str, method: str, compute: Callable[[], str]) -> str:
        key = hashlib.sha256(f"{_VERSION}\0{method}\0{salt}\0{value}".encode()).hexdigest()
        entries = self._load()
        found = entries.get(key)
        if found is None:
            found = entries[key] = compute()
            self._added = True
        return found

    def save(self) -> None:
        """Write what this run added (a cache: a failure to write it is not the seed's)."""
        if self.path is None or not self._added or self._entries is None:
            return
        kept = dict(list(self._entries.items())[-_MAX_ENTRIES:])
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            atomic.write_replacing(self.path, json.dumps(kept), mode=0o600)
        except OSError:
            return
        self._added = False

    def _load(self) -> dict[str, str]:
        if self._entries is None:
            self._entries = {}
            if self.path is not None:
                try:
                    raw = json.loads(self.path.read_text())
                except (OSError, ValueError):
                    raw = {}
                if isinstance(raw, dict):
                    self._entries = {str(k): str(v) for k, v in raw.items() if isinstance(v, str)}
        return self._entries
