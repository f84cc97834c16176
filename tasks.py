"""The sample project's Invoke tasks: `invoke db.status`, `invoke db.server --stop`, ..."""

from invoke.collection import Collection

from dbops.cli.tasks import db

ns = Collection(db)
