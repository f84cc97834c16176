"""The connection budget of a fleet run: at most N sessions per server at once (--jobs N).

A target starts only once its whole need (the most sessions its operation holds at once) fits
in its server's budget, and it takes all of it at once: two targets never wait for each other
each holding part of theirs. While it runs, its thread's reservation is in force: connect()
counts each session to that server against it (Reservation.opening), so an operation that
opens more than it reserved fails loudly instead of overdrawing the server. Sessions to other
servers (validate's scratch database on the embedded server) are not the fleet's, and not
counted. The caller (the fleet runner) reserves from one thread and releases when the target
is done; sessions a child process opens (pg_dump) are part of the need but not counted here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from dbops.errors import DbopsError


class _Closable(Protocol):
    @property
    def closed(self) -> bool: ...


Conn = TypeVar("Conn", bound=_Closable)

_local = threading.local()


class OverBudget(DbopsError):
    """An operation opened more sessions than its fleet target reserved: a bug of dbops."""


@dataclass
class Reservation:
    """`need` sessions to `server` (a Target.location()), held by one target."""

    server: str
    need: int
    _open: list[_Closable] = field(default_factory=list)

    def opening(self, open_session: Callable[[], Conn]) -> Conn:
        """Open a session counted against this reservation, or refuse when it is spent."""
        self._open = [c for c in self._open if not c.closed]
        if len(self._open) >= self.need:
            raise OverBudget(
                f"dbops opened more than the {self.need} session(s) a target of this operation reserves "
                f"on {self.server}",
                "This is a bug in dbops: please report it with the operation's name",
            )
        conn = open_session()
        self._open.append(conn)
        return conn


class Budget:
    """At most `limit` sessions per server at once, reserved a target's need at a time."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._used: dict[str, int] = {}
        self._lock = threading.Lock()

    def try_reserve(self, server: str, need: int) -> Reservation | None:
        """The whole need at once, or None (nothing taken) when it does not fit now."""
        with self._lock:
            used = self._used.get(server, 0)
            if used + need > self.limit:
                return None
            self._used[server] = used + need
        return Reservation(server, need)

    def release(self, reservation: Reservation) -> None:
        with self._lock:
            self._used[reservation.server] -= reservation.need


@contextmanager
def in_force(reservation: Reservation | None) -> Iterator[None]:
    """The reservation this thread's connect() counts against, while the block runs."""
    before = getattr(_local, "reservation", None)
    _local.reservation = reservation
    try:
        yield
    finally:
        _local.reservation = before


def counted(server: str, open_session: Callable[[], Conn]) -> Conn:
    """open_session(), counted against this thread's reservation when it is for `server`."""
    reservation: Reservation | None = getattr(_local, "reservation", None)
    if reservation is None or reservation.server != server:
        return open_session()
    return reservation.opening(open_session)
