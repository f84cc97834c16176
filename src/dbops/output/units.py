"""Sizes and durations as every report shows them (the spec's "12.4 MB", "124 MB", "(3.2s)")."""

from __future__ import annotations

from datetime import datetime

_UNITS = ("KB", "MB", "GB", "TB")


def size(count: int) -> str:
    """Bytes in binary units: "812 bytes", "3.6 KB", "45 MB", "124 MB", "12.4 MB".

    One decimal below 100 (none when it is .0), whole numbers from 100 on.
    """
    value, unit = float(count), "bytes"
    for larger in _UNITS:
        if value < 1023.5:  # what would not round up to 1024
            break
        value, unit = value / 1024, larger
    if unit == "bytes":
        return f"{count} bytes"
    text = f"{value:.0f}" if value >= 99.95 else f"{value:.1f}".removesuffix(".0")
    return f"{text} {unit}"


def duration(seconds: float) -> str:
    """A run's time as the spec shows it: "3.2s"."""
    return f"{seconds:.1f}s"


def step_duration(seconds: float) -> str:
    """One step's or one migration's time: "312 ms" under a second, else as duration()."""
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else duration(seconds)


def age(created: datetime, now: datetime) -> str:
    """How old a backup or a kept database is: "45s", "12m", "3h", "2d"."""
    seconds = max(0, int((now - created).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
