"""Lint rules for pending migrations: operations that lock or break a production database.

The SQL is parsed with PostgreSQL's own grammar (pglast, imported only here). A relation
(table, partition, foreign table, view, materialized view, sequence, index) is "existing" unless
an earlier statement of the pending migrations creates it: building an index on a table created
in the same deploy, or changing the owner of a sequence created two lines above (as pg_dump
writes it), locks nobody out. Names are compared as PostgreSQL reads them (unquoted folded to
lower case, quoted kept); a name without a schema is taken to be in ``public``, the default
search_path (a migration that creates ``app.t`` and alters ``t`` is still checked).

psql's ``\\restrict KEY`` and ``\\unrestrict KEY`` lines (pg_dump 17.6 and later write them)
are not SQL: migrations read them as blank lines (dbops.migrations.scripts).

A comment ``-- dbops:ignore <rule>`` silences that rule for the statement it is in, the
statement it ends the line of, or else the next statement.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbops.migrations.scripts import without_restrict
from dbops.postgres.connection import PROTECTED_LOCK_TIMEOUT_MS

if TYPE_CHECKING:
    from dbops.config.model import Environment
    from dbops.migrations.scripts import Script

IGNORE = "dbops:ignore"


@dataclass(frozen=True)
class Rule:
    name: str
    fix: str


RULES = {
    rule.name: rule
    for rule in (
        Rule(
            "index-concurrently", "use CREATE INDEX CONCURRENTLY in a migration with -- transactional: false"
        ),
        Rule(
            "not-null-default",
            "give the column a DEFAULT, or add it nullable, backfill it, then SET NOT NULL",
        ),
        Rule(
            "set-not-null",
            "ADD a CHECK (column IS NOT NULL) NOT VALID, VALIDATE it, then SET NOT NULL (no scan then)",
        ),
        Rule(
            "column-type",
            "add a new column of the new type, backfill it, switch the application, drop the old one",
        ),
        Rule("not-valid", "add the constraint NOT VALID, then VALIDATE CONSTRAINT in a later migration"),
        Rule("drop-column", "deploy code that no longer uses the column first, then drop it"),
        Rule("drop-table", "deploy code that no longer uses the table first, then drop it"),
        Rule(
            "rename",
            "add the new name beside the old (a new column, a view), move the application, drop the old",
        ),
        Rule(
            "lock-timeout",
            "start the migration with SET lock_timeout = '5s', or set lock_timeout: in dbops.yaml",
        ),
    )
}
_UNIQUE_FIX = (
    "CREATE UNIQUE INDEX CONCURRENTLY (-- transactional: false), then ADD CONSTRAINT ... USING INDEX"
)


@dataclass(frozen=True)
class Finding:
    file: str  # as messages show it, relative to the project
    line: int
    rule: str
    message: str
    fix: str
    migration: str

    @property
    def text(self) -> str:
        return f"{self.file}:{self.line}: {self.rule}: {self.message}"

    @property
    def ignorable(self) -> bool:
        return self.rule in RULES


def session_lock_timeout_ms(env: Environment) -> int | None:
    """The lock_timeout a migration's session starts with: dbops.yaml's, or protected's default."""
    if env.lock_timeout_ms is not None:
        return env.lock_timeout_ms
    return PROTECTED_LOCK_TIMEOUT_MS if env.protected else None


def lint(
    scripts: Sequence[Script], *, lock_timeout_ms: int | None, shown: Callable[[Path], str] = str
) -> list[Finding]:
    """Findings for these migrations, applied in this order onto the existing database.

    lock_timeout_ms: the lock_timeout every migration's session starts with (from dbops.yaml);
    with one, migrations need not set their own.
    """
    linter = _Linter(bool(lock_timeout_ms))
    findings: list[Finding] = []
    for script in scripts:
        findings += sorted(linter.script(script, shown(script.file.path)), key=lambda f: f.line)
    return findings


# --------------------------------------------------------------------------- reading the SQL


@dataclass
class _Statement:
    node: Any
    start: int  # offset of its first token in the text
    end: int
    line: int  # in the migration file
    ignored: set[str] = field(default_factory=set)


def _units(script: Script) -> Iterator[tuple[str, int]]:
    """The SQL texts of a migration and the file line each starts on."""
    path = script.file.path
    source = path.read_text(encoding="utf-8").replace("\r\n", "\n").replace("\r", "\n")
    if not script.is_python:
        yield without_restrict(source), 1
        return
    for step in script.python_steps:  # SQL given as strings; Python callables are not linted
        if isinstance(step.apply, str):
            found = source.find(step.apply)
            yield step.apply, source.count("\n", 0, found) + 1 if found >= 0 else 1


def _parse(text: str, first_line: int) -> list[_Statement]:
    from pglast import parse_sql

    statements = []
    for raw in parse_sql(text):
        start = raw.stmt_location or 0
        end = start + (raw.stmt_len or len(text) - start)
        statements.append(_Statement(raw.stmt, start, end, first_line + text.count("\n", 0, start)))
    return statements


def _ignore_comments(text: str, statements: list[_Statement]) -> list[tuple[int, str]]:
    """Attach each -- dbops:ignore comment to its statement; returns unknown rule names (line, rule)."""
    from pglast.parser import scan

    unknown = []
    for token in scan(text):
        if token.name not in ("SQL_COMMENT", "C_COMMENT"):
            continue
        comment = text[token.start : token.end + 1].removeprefix("--").removeprefix("/*").removesuffix("*/")
        words = comment.replace(",", " ").split()
        if IGNORE not in words:
            continue
        rules = words[words.index(IGNORE) + 1 :]
        statement = _statement_of(text, token.start, statements)
        line = text.count("\n", 0, token.start)
        for rule in rules:
            if rule not in RULES:
                unknown.append((line, rule))
            elif statement is not None:
                statement.ignored.add(rule)
    return unknown


def _statement_of(text: str, offset: int, statements: list[_Statement]) -> _Statement | None:
    """The statement a comment at offset belongs to: around it, ended on its line, or next."""
    for statement in statements:
        if statement.start <= offset < statement.end:
            return statement
    before = [s for s in statements if s.end <= offset]
    if before and before[-1].end > text.rfind("\n", 0, offset):  # ends on the comment's line
        return before[-1]
    return next((s for s in statements if s.start > offset), None)


# --------------------------------------------------------------------------- the rules


class _Linter:
    def __init__(self, session_lock_timeout: bool) -> None:
        self.session_lock_timeout = session_lock_timeout
        self.created: set[tuple[str, str]] = set()  # relations the pending migrations create

    def script(self, script: Script, file: str) -> list[Finding]:
        from pglast.parser import ParseError

        findings: list[Finding] = []
        has_timeout = self.session_lock_timeout
        first_heavy: _Statement | None = None
        first_lock: tuple[str, str] | None = (
            None  # what the first heavy statement locks, if not its own table
        )
        for text, first_line in _units(script):
            try:
                statements = _parse(text, first_line)
            except ParseError as exc:
                index = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else 0
                line = first_line + text.count("\n", 0, index)
                findings.append(Finding(file, line, "syntax", str(exc.args[0]), "fix the SQL", script.id))
                continue
            for line, rule in _ignore_comments(text, statements):
                known = ", ".join(RULES)
                findings.append(
                    Finding(
                        file,
                        first_line + line,
                        "ignore-comment",
                        f"unknown rule '{rule}' in -- {IGNORE}",
                        f"name one of: {known}",
                        script.id,
                    )
                )
            for statement in statements:
                has_timeout = _lock_timeout_after(
                    statement.node, has_timeout, script.transactional, self.session_lock_timeout
                )
                problems = list(self._check(statement.node))
                locked = self._locks_another(statement.node)
                heavy = locked is not None or self._heavy(statement.node)
                self._track(statement.node)
                for rule, message, fix in problems:
                    if rule not in statement.ignored:
                        findings.append(Finding(file, statement.line, rule, message, fix, script.id))
                if heavy and not has_timeout and first_heavy is None:
                    first_heavy, first_lock = statement, locked
        if first_heavy is not None and "lock-timeout" not in first_heavy.ignored:
            message = "takes heavy locks on existing tables with no lock_timeout: it can stall all traffic"
            fix = RULES["lock-timeout"].fix
            if first_lock is not None:
                message, fix = first_lock[0], f"{fix}; {first_lock[1]}"
            findings.append(Finding(file, first_heavy.line, "lock-timeout", message, fix, script.id))
        return findings

    # ------------------------------------------------------------------ relations

    def _existing(self, relation: Any) -> bool:
        return relation is not None and _key(relation) not in self.created

    # pglast's nodes are dispatched on their class name: the rules read them as plain data.

    def _track(self, node: Any) -> None:
        """Remember the relations this statement creates (and what a created one is renamed to)."""
        from pglast import enums

        kind = type(node).__name__
        if kind == "CreateForeignTableStmt":
            node, kind = node.base, "CreateStmt"
        if kind == "CreateStmt":
            self.created.add(_key(node.relation))
            self.created.update(_column_sequences(node.relation, node.tableElts or ()))
        elif kind == "CreateSeqStmt":
            self.created.add(_key(node.sequence))
        elif kind == "ViewStmt":
            self.created.add(_key(node.view))
        elif kind == "CreateTableAsStmt":
            self.created.add(_key(node.into.rel))
        elif kind == "SelectStmt" and node.intoClause is not None:
            self.created.add(_key(node.intoClause.rel))
        elif kind == "IndexStmt" and node.idxname:
            self.created.add((node.relation.schemaname or "public", node.idxname))
        elif kind == "AlterTableStmt" and not self._existing(node.relation):
            for command in node.cmds or ():  # ADD GENERATED ... AS IDENTITY (SEQUENCE NAME ...)
                if command.subtype == enums.AlterTableType.AT_AddIdentity:
                    self.created.update(_column_sequences(node.relation, [command]))
        elif (
            kind == "RenameStmt"
            and node.relation is not None
            and not self._existing(node.relation)
            and node.renameType not in (enums.ObjectType.OBJECT_COLUMN, enums.ObjectType.OBJECT_TABCONSTRAINT)
        ):
            self.created.add((node.relation.schemaname or "public", node.newname))
        elif (
            kind == "AlterObjectSchemaStmt"
            and node.relation is not None
            and not self._existing(node.relation)
        ):
            self.created.add((node.newschema, node.relation.relname))

    def _heavy(self, node: Any) -> bool:
        """Whether the statement takes a lock that blocks reads or writes of an existing table."""
        from pglast import enums

        kind = type(node).__name__
        if kind == "IndexStmt":
            return not node.concurrent and self._existing(node.relation)
        if kind in ("AlterTableStmt", "RenameStmt", "CreateTrigStmt"):
            return self._existing(node.relation)
        if kind == "DropStmt":
            if node.removeType == enums.ObjectType.OBJECT_TABLE:
                return any(_parts_key(parts) not in self.created for parts in node.objects)
            if node.removeType == enums.ObjectType.OBJECT_INDEX and not node.concurrent:
                return any(_parts_key(parts) not in self.created for parts in node.objects)
            return False
        if kind in ("TruncateStmt", "LockStmt"):
            return any(self._existing(relation) for relation in node.relations)
        return kind in ("ClusterStmt", "VacuumStmt", "ReindexStmt")

    def _locks_another(self, node: Any) -> tuple[str, str] | None:
        """The lock a statement takes on an existing table other than the one it creates or
        alters, as the lock-timeout finding's message and the rest of its fix: CREATE TABLE ...
        PARTITION OF takes ACCESS EXCLUSIVE on the parent (every read and write waits); a new
        FOREIGN KEY takes SHARE ROW EXCLUSIVE on the table it references (its writes wait), held
        to the end of the migration's transaction."""
        from pglast import enums

        kind = type(node).__name__
        if kind == "CreateStmt":
            table = node.relation
            if node.partbound is not None:
                for parent in node.inhRelations or ():
                    if self._existing(parent):
                        return (
                            f"CREATE TABLE {table.relname} PARTITION OF existing table {parent.relname} "
                            f"takes an ACCESS EXCLUSIVE lock on {parent.relname} with no lock_timeout: every "
                            "read and write of it waits",
                            f"or create {table.relname} on its own (with a CHECK matching its bounds), then "
                            f"ALTER TABLE {parent.relname} ATTACH PARTITION {table.relname}: SHARE UPDATE "
                            "EXCLUSIVE on the parent, which reads and writes pass (ACCESS EXCLUSIVE on "
                            "a DEFAULT partition, if it has one)",
                        )
            constraints = [
                c
                for element in node.tableElts or ()
                for c in (element.constraints or () if type(element).__name__ == "ColumnDef" else [element])
            ]
        elif kind == "AlterTableStmt" and node.objtype == enums.ObjectType.OBJECT_TABLE:
            table = node.relation
            added = [c.def_ for c in node.cmds or () if c.subtype == enums.AlterTableType.AT_AddConstraint]
            columns = [c.def_ for c in node.cmds or () if c.subtype == enums.AlterTableType.AT_AddColumn]
            constraints = added + [c for column in columns for c in column.constraints or ()]
        else:
            return None
        for constraint in constraints:
            referenced = getattr(constraint, "pktable", None)
            if (
                type(constraint).__name__ == "Constraint"
                and constraint.contype == enums.ConstrType.CONSTR_FOREIGN
                and referenced is not None
                and _key(referenced) != _key(table)
                and self._existing(referenced)
            ):
                return (
                    f"FOREIGN KEY on {table.relname} references existing table {referenced.relname}: a "
                    f"SHARE ROW EXCLUSIVE lock on {referenced.relname}, held to the migration's end, with "
                    f"no lock_timeout: writes to {referenced.relname} can stall",
                    "on a table with rows, add it NOT VALID, then VALIDATE CONSTRAINT in a later migration",
                )
        return None

    def _check(self, node: Any) -> Iterator[tuple[str, str, str]]:
        from pglast import enums

        kind = type(node).__name__
        if kind == "IndexStmt" and not node.concurrent and self._existing(node.relation):
            name = f"{node.idxname} " if node.idxname else ""
            unique = "UNIQUE " if node.unique else ""
            yield _problem(
                "index-concurrently",
                f"CREATE {unique}INDEX {name}on existing table {node.relation.relname} "
                "without CONCURRENTLY blocks its writes while it builds",
            )
        elif kind == "AlterTableStmt" and node.objtype == enums.ObjectType.OBJECT_TABLE:
            if self._existing(node.relation):
                for command in node.cmds:
                    yield from _alter_table(node.relation.relname, command)
        elif kind == "DropStmt" and node.removeType == enums.ObjectType.OBJECT_TABLE:
            for parts in node.objects:
                if _parts_key(parts) not in self.created:
                    yield _problem(
                        "drop-table",
                        f"DROP TABLE {_name(parts)} breaks the running application if it still uses it",
                    )
        elif kind == "RenameStmt" and self._existing(node.relation):
            yield from _rename(node)


def _alter_table(table: str, command: Any) -> Iterator[tuple[str, str, str]]:
    from pglast import enums

    kind = enums.AlterTableType
    if command.subtype == kind.AT_AddColumn:
        yield from _add_column(table, command.def_)
    elif command.subtype == kind.AT_DropColumn:
        yield _problem(
            "drop-column",
            f"DROP COLUMN {command.name} on {table} breaks the running application if it still reads it",
        )
    elif command.subtype == kind.AT_AlterColumnType:
        yield _problem(
            "column-type",
            f"ALTER COLUMN {command.name} TYPE on existing table {table} rewrites it under an exclusive lock",
        )
    elif command.subtype == kind.AT_SetNotNull:
        yield _problem(
            "set-not-null",
            f"SET NOT NULL on {table}.{command.name} scans the whole table under an exclusive lock",
        )
    elif command.subtype == kind.AT_AddConstraint:
        yield from _add_constraint(table, command.def_)


def _add_column(table: str, column: Any) -> Iterator[tuple[str, str, str]]:
    from pglast import enums

    kinds = {c.contype for c in column.constraints or ()}
    kind = enums.ConstrType
    not_null = column.is_not_null or kind.CONSTR_NOTNULL in kinds or kind.CONSTR_PRIMARY in kinds
    filled = kinds & {kind.CONSTR_DEFAULT, kind.CONSTR_IDENTITY, kind.CONSTR_GENERATED}
    if not_null and not filled:
        yield _problem(
            "not-null-default",
            f"ADD COLUMN {column.colname} NOT NULL without a default fails on {table} as soon as it has rows",
        )
    if kinds & {kind.CONSTR_UNIQUE, kind.CONSTR_PRIMARY}:
        what = "PRIMARY KEY" if kind.CONSTR_PRIMARY in kinds else "UNIQUE"
        yield (
            "index-concurrently",
            f"ADD COLUMN {column.colname} {what} builds an index on existing table {table} under an "
            "exclusive lock",
            _UNIQUE_FIX,
        )


def _add_constraint(table: str, constraint: Any) -> Iterator[tuple[str, str, str]]:
    from pglast import enums

    kind = enums.ConstrType
    name = f" {constraint.conname}" if constraint.conname else ""
    if constraint.contype in (kind.CONSTR_FOREIGN, kind.CONSTR_CHECK) and not constraint.skip_validation:
        what = "FOREIGN KEY" if constraint.contype == kind.CONSTR_FOREIGN else "CHECK"
        yield _problem(
            "not-valid",
            f"ADD CONSTRAINT{name} {what} on existing table {table} without NOT VALID checks every row "
            "under a lock that blocks writes",
        )
    elif constraint.contype in (kind.CONSTR_UNIQUE, kind.CONSTR_PRIMARY, kind.CONSTR_EXCLUSION) and not (
        constraint.indexname
    ):
        what = {kind.CONSTR_UNIQUE: "UNIQUE", kind.CONSTR_PRIMARY: "PRIMARY KEY"}.get(
            constraint.contype, "EXCLUDE"
        )
        yield (
            "index-concurrently",
            f"ADD CONSTRAINT{name} {what} builds an index on existing table {table} under an exclusive lock",
            _UNIQUE_FIX,
        )


def _rename(node: Any) -> Iterator[tuple[str, str, str]]:
    from pglast import enums

    kind = enums.ObjectType
    table = node.relation.relname
    if node.renameType == kind.OBJECT_COLUMN:
        yield _problem(
            "rename",
            f"RENAME COLUMN {node.subname} TO {node.newname} on {table} breaks the running application, "
            "which still uses the old name",
        )
    elif node.renameType in (kind.OBJECT_TABLE, kind.OBJECT_VIEW, kind.OBJECT_MATVIEW):
        yield _problem(
            "rename",
            f"RENAME {table} TO {node.newname} breaks the running application, which still uses the old name",
        )


def _problem(rule: str, message: str) -> tuple[str, str, str]:
    return rule, message, RULES[rule].fix


def _name(parts: Sequence[Any]) -> str:
    return str(parts[-1].sval)


def _key(relation: Any) -> tuple[str, str]:
    """A RangeVar as (schema, name), the names as the parser gives them (folded or quoted)."""
    return relation.schemaname or "public", relation.relname


def _parts_key(parts: Sequence[Any]) -> tuple[str, str]:
    """A qualified name given as its parts (DROP's objects) as (schema, name)."""
    names = [str(p.sval) for p in parts]
    return (names[-2] if len(names) > 1 else "public"), names[-1]


_SERIAL = {"smallserial", "serial", "bigserial", "serial2", "serial4", "serial8"}


def _column_sequences(relation: Any, elements: Sequence[Any]) -> Iterator[tuple[str, str]]:
    """The sequences PostgreSQL creates for serial and identity columns: the name given in
    SEQUENCE NAME, else <table>_<column>_seq (the usual name; a long one PostgreSQL shortens)."""
    from pglast import enums

    schema = relation.schemaname or "public"
    for element in elements:
        constraints = [element.def_] if type(element).__name__ == "AlterTableCmd" else None
        if type(element).__name__ == "ColumnDef":
            constraints = list(element.constraints or ())
            names = element.typeName.names if element.typeName else ()
            if names and str(getattr(names[-1], "sval", "")) in _SERIAL:
                yield schema, f"{relation.relname}_{element.colname}_seq"
        column = getattr(element, "colname", None) or getattr(element, "name", None)
        for constraint in constraints or ():
            if constraint is None or constraint.contype != enums.ConstrType.CONSTR_IDENTITY:
                continue
            named = [o for o in constraint.options or () if o.defname == "sequence_name"]
            if named:
                parts = [str(p.sval) for p in named[0].arg]
                yield (parts[-2] if len(parts) > 1 else schema), parts[-1]
            elif column:
                yield schema, f"{relation.relname}_{column}_seq"


def _lock_timeout_after(node: Any, current: bool, transactional: bool, session: bool) -> bool:
    """Whether a lock_timeout is in force after this statement (session: the one it starts with)."""
    from pglast import ast, enums

    if isinstance(node, ast.VariableSetStmt) and node.name == "lock_timeout":
        if node.kind != enums.VariableSetKind.VAR_SET_VALUE:
            return session  # RESET, SET ... TO DEFAULT: back to the session's own
        if node.is_local and not transactional:
            return current  # SET LOCAL outside a transaction does nothing
        return not _is_zero(node.args)
    for call in _calls(node, "set_config"):
        args = call.args or ()
        if args and _constant(args[0]) == "lock_timeout":
            return not _is_zero(args[1:2])
    return current


def _calls(node: Any, name: str) -> Iterator[Any]:
    from pglast import ast, visitors

    found: list[Any] = []

    class Calls(visitors.Visitor):
        def visit_FuncCall(self, ancestors: object, call: ast.FuncCall) -> None:
            if [getattr(p, "sval", None) for p in call.funcname or ()][-1:] == [name]:
                found.append(call)

    Calls()(node)
    yield from found


def _constant(node: Any) -> Any:
    value = getattr(node, "val", None)
    return getattr(value, "sval", getattr(value, "ival", None))


def _is_zero(args: Sequence[Any] | None) -> bool:
    values = [_constant(a) for a in args or ()]
    return not values or str(values[0]).strip() in ("0", "0ms", "0s")
