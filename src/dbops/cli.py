"""The standalone ``dbops`` command: an Invoke Program over the same ``db`` collection."""

from __future__ import annotations

from invoke.program import Program

from dbops import __version__


def make_program() -> Program:
    from dbops.tasks import db

    return Program(name="dbops", binary="dbops", namespace=db, version=__version__)


def main() -> None:
    make_program().run()
