"""The backup formats: pg_dump's plain, custom and directory (a module of its own, light, for
the options that name them)."""

from __future__ import annotations

from typing import Literal

Format = Literal["plain", "custom", "directory"]
FORMATS: tuple[Format, ...] = ("plain", "custom", "directory")
