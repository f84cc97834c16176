"""Loading seed data: foreign-key order, upserts, COPY, sequences, all in the caller's transaction.

Order: the YAML and CSV tables in foreign-key order (parents first, as pg_constraint says),
then the SQL templates, then the Python seeds, each in file order.
"""

from __future__ import annotations

import csv
import datetime
import hashlib
import importlib.util
import itertools
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import pairwise, repeat
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbops.config.model import shown
from dbops.errors import EXIT_UNDO_FAILED, DbopsError
from dbops.postgres.guarded import run_guarded
from dbops.seeding import sql_script
from dbops.seeding.files import BadSeed, Rows, SeedFile
from dbops.seeding.hash_cache import HashCache
from dbops.seeding.sql_script import Piece
from dbops.toposort import CycleError, stable_order

if TYPE_CHECKING:
    import psycopg
    from psycopg import Copy
    from psycopg.adapt import AdaptersMap

_CHUNK = 1000  # rows per INSERT statement
_SQL_BATCH = 1000  # statements of a SQL seed per pipeline
_COPY_FROM = 2000  # a run of rows this long goes through COPY
_KEY_DETAIL = re.compile(r"Key \((.+?)\)=\((.*)\)")
_COPY_LINE = re.compile(r"COPY .+?, line (\d+)(?=[:,]|$)", re.M)  # the table's name may hold spaces


class SeedFailed(DbopsError):
    """A seed row or statement failed; nothing of the seed stays."""


@dataclass
class TableResult:
    table: str
    declared: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    files: list[str] = field(default_factory=list)

    def count(self, inserted: list[bool], sent: int) -> None:
        """An upsert's RETURNING (xmax = 0) per written row, of `sent` rows: the rest were equal."""
        self.created += sum(inserted)
        self.updated += len(inserted) - sum(inserted)
        self.unchanged += sent - len(inserted)


@dataclass
class Account:
    login: str
    password: str = field(repr=False)  # shown on a terminal only (SeedReport), never in JSON


Progress = Callable[[str, int, int], None]  # (table, done, total) in rows, or bytes for CSV


class Seeder:
    def __init__(
        self,
        conn: psycopg.Connection[Any],
        root: Path,
        context: dict[str, Any],
        progress: Progress | None = None,
        hashes: HashCache | None = None,
    ) -> None:
        self.conn = conn
        self.hashes = hashes or HashCache(None)  # scrypt once per value, salt and method
        self.root = root
        self.context = context
        self.progress = progress
        self.watch: Callable[[str], None] | None = None  # told what is loaded now (a live view says it)
        self.results: dict[str, TableResult] = {}
        self.accounts: list[Account] = []
        self._keys: dict[str, dict[tuple[str, ...], tuple[str, int]]] = {}  # key values -> file, line
        self._key_columns: dict[str, tuple[str, ...]] = {}

    # ------------------------------------------------------------------ the whole seed

    def load(self, files: Sequence[SeedFile], *, clear: bool) -> None:
        scripts = [(f, self._sql_pieces(f)) for f in files if f.kind == "sql"]  # refused before any row
        owners = {id(rows): file for file in files for rows in file.tables}
        tables = [rows for f in files for rows in f.tables]
        order = self._fk_order(tables)
        if clear:
            self._clear(self._cleared(order, scripts))
        for table in order:
            self._tell(table)
            for rows in (r for r in tables if r.table == table):
                self._load_rows(rows, owners[id(rows)])
        for file, pieces in scripts:
            self._tell(file.path.name)
            self._run_sql(file, pieces)  # it counts the rows its INSERT and COPY statements write
        for file in (f for f in files if f.kind == "py"):
            self._tell(file.path.name)
            with self._counting(file):
                self._run_python(file)
        self._fix_sequences()

    def _tell(self, what: str) -> None:
        if self.watch is not None:
            self.watch(what)

    @contextmanager
    def _counting(self, file: SeedFile) -> Iterator[None]:
        """The rows a Python seed wrote, per table, in the report beside the YAML's: read from the
        transaction's own statistics (pg_stat_xact_user_tables) before and after it."""
        before = self._written()
        yield
        shown = self._shown(file.path)
        for table, (inserted, updated) in self._written().items():
            was = before.get(table, (0, 0))
            created, changed = inserted - was[0], updated - was[1]
            if created or changed:
                result = self.results.setdefault(table, TableResult(table))
                result.created += created
                result.updated += changed
                if shown not in result.files:
                    result.files.append(shown)

    def _written(self) -> dict[str, tuple[int, int]]:
        rows = self.conn.execute(
            "SELECT CASE WHEN schemaname = 'public' THEN relname ELSE schemaname || '.' || relname END,"
            " n_tup_ins, n_tup_upd FROM pg_stat_xact_user_tables WHERE n_tup_ins + n_tup_upd > 0"
        ).fetchall()
        return {name: (inserted, updated) for name, inserted, updated in rows}

    def _regclass(self, table: str) -> str:
        """The table name as to_regclass() must see it: quoted, so Users stays Users."""
        return str(_ident(table).as_string(self.conn))

    def verify(self) -> None:
        """Every row the YAML files declared is in its table now, found by its key (the declared
        values cast to the key columns' types, so the primary key's index finds them)."""
        from psycopg import sql

        for table, keys in self._keys.items():
            columns = self._key_columns[table]
            types = dict(
                self.conn.execute(
                    "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
                    " WHERE attrelid = to_regclass(%s) AND attname = ANY(%s)",
                    (self._regclass(table), list(columns)),
                ).fetchall()
            )
            names = [f"k{i}" for i in range(len(columns))]
            # the keys as text[] literals, written at once (psycopg's list dumper goes through
            # Python for each key); a literal also tells the planner how many: a hash join
            query = sql.SQL(
                "SELECT count(*) FROM unnest({}) AS s({}) WHERE EXISTS (SELECT FROM {} t WHERE {})"
            ).format(
                sql.SQL(", ").join(sql.SQL("%s::text[]") for _ in columns),
                sql.SQL(", ").join(map(sql.Identifier, names)),
                _ident(table),
                sql.SQL(" AND ").join(
                    sql.SQL("t.{} = CAST(s.{} AS {})").format(
                        sql.Identifier(c), sql.Identifier(n), sql.SQL(types.get(c, "text"))
                    )
                    for c, n in zip(columns, names, strict=True)
                ),
            )
            values = [_text_array(list(map(itemgetter(i), keys))) for i in range(len(columns))]
            row = self.conn.execute(query, values).fetchone()
            found = row[0] if row else 0
            if found != len(keys):
                raise SeedFailed(
                    f"Seed check failed for {table}: {len(keys)} rows declared, {found} found by their key",
                    "A trigger or rule may have dropped or changed rows; nothing of the seed was kept",
                )

    def _shown(self, path: Path) -> str:
        return shown(path, self.root)

    # ------------------------------------------------------------------ foreign-key order

    def _fk_order(self, tables: Sequence[Rows]) -> list[str]:
        names: list[str] = []
        for rows in tables:
            if rows.table not in names:
                names.append(rows.table)
        oids = {}
        for name in names:
            found = self.conn.execute("SELECT to_regclass(%s)::oid", (self._regclass(name),)).fetchone()
            if found is None or found[0] is None:
                rows = next(r for r in tables if r.table == name)
                raise BadSeed(
                    f"{self._shown(rows.file)}:{rows.line}: table {name} does not exist",
                    "Migrate first (dbops migrate), or fix the table name",
                )
            oids[found[0]] = name
        return self._topological(names, *self._references(oids))

    def _references(self, oids: dict[int, str]) -> tuple[dict[str, set[str]], dict[tuple[str, str], bool]]:
        """Among these tables (oid -> name): each one's parents by foreign key, and whether every
        foreign key from a child to a parent is DEFERRABLE."""
        edges = self.conn.execute(
            "SELECT conrelid::oid, confrelid::oid, condeferrable FROM pg_constraint"
            " WHERE contype = 'f' AND conrelid = ANY(%s) AND confrelid = ANY(%s) AND conrelid <> confrelid",
            (list(oids), list(oids)),
        ).fetchall()
        parents: dict[str, set[str]] = {n: set() for n in oids.values()}
        deferrable: dict[tuple[str, str], bool] = {}
        for child, parent, can_defer in edges:
            parents[oids[child]].add(oids[parent])
            deferrable[(oids[child], oids[parent])] = (
                deferrable.get((oids[child], oids[parent]), True) and can_defer
            )
        return parents, deferrable

    def _cleared(self, order: list[str], scripts: Sequence[tuple[SeedFile, list[Piece]]]) -> list[str]:
        """The tables --clear empties, children first: the YAML and CSV seeds' tables, and the
        tables the SQL seeds' INSERT and COPY statements write, as their names read before the
        seed runs (those that are tables then: a SQL seed may make its own, or write to a view)."""
        written = (sql_script.target(piece.statement.sql) for _, pieces in scripts for piece in pieces)
        extra = [name for name in dict.fromkeys(written) if name is not None and name not in order]
        if not extra:
            return order[::-1]
        candidates = order + extra
        found = self.conn.execute(
            "SELECT s.n, c.oid, c.relkind IN ('r', 'p') FROM unnest(%s::text[], %s::text[]) AS s(n, r)"
            " JOIN pg_class c ON c.oid = to_regclass(s.r)",
            (candidates, [self._regclass(name) for name in candidates]),
        ).fetchall()
        oids = {oid: name for name, oid, table in found if table or name in order}
        names = [name for name in candidates if name in oids.values()]
        return self._topological(names, *self._references(oids))[::-1]

    def _topological(
        self, names: list[str], parents: dict[str, set[str]], deferrable: dict[tuple[str, str], bool]
    ) -> list[str]:
        """Parents first, else file order. A cycle of DEFERRABLE foreign keys is broken at the
        reference that closes it, and checked at commit; any other cycle is refused."""
        parents = {name: set(of) for name, of in parents.items()}
        deferred = False
        while True:
            try:
                placed = stable_order(names, {name: sorted(of) for name, of in parents.items()})
                break
            except CycleError as exc:
                cycle: list[str] = exc.args[1]
                if not all(deferrable.get(pair, False) for pair in pairwise(cycle)):
                    raise BadSeed(
                        f"Seeded tables reference each other in a cycle: {' -> '.join(cycle)}",
                        "Make one of those foreign keys DEFERRABLE, or seed one side in a later step",
                    ) from None
                parents[cycle[-2]].discard(cycle[-1])
                deferred = True  # checked at commit, once every row is in
        if deferred:
            self.conn.execute("SET CONSTRAINTS ALL DEFERRED")
        return placed

    def _clear(self, tables: Iterable[str]) -> None:
        from psycopg import errors, sql

        for table in tables:
            try:
                with self.conn.transaction():
                    self.conn.execute(sql.SQL("DELETE FROM {}").format(_ident(table)))
            except errors.ForeignKeyViolation as exc:
                detail = getattr(exc.diag, "message_detail", None) or ""
                raise SeedFailed(
                    f"--clear cannot empty {table}: {_describe(exc)}",
                    f"{detail + ' ' if detail else ''}A table no seed file fills still refers to it; "
                    "clear that one first (or seed it too)",
                ) from None

    # ------------------------------------------------------------------ YAML and CSV rows

    def _load_rows(self, rows: Rows, file: SeedFile) -> None:
        result = self.results.setdefault(rows.table, TableResult(rows.table))
        shown = self._shown(rows.file)
        if shown not in result.files:
            result.files.append(shown)
        if file.kind == "csv":
            self._load_csv(rows, file, result)
            return
        key = rows.key or self._primary_key(rows.table)
        if not len(rows):
            return
        if rows.key:
            self._check_key_columns(rows, shown)
        if (
            not key
            or (rows.columns and not set(key) <= set(rows.columns))
            or any(k not in row for row in rows.rows for k in key)
        ):
            named = ", ".join(key) or "no primary key"
            raise BadSeed(
                f"{shown}:{rows.line}: {rows.table}: every row needs its key ({named})",
                "Give each row its primary key, or declare a natural key: key: email",
            )
        self._refuse_duplicates(rows, key)
        result.declared += len(rows)
        for start, columns, run in self._runs(rows, key):
            if len(run) >= _COPY_FROM:
                self._copy_rows(rows, key, columns, run, start, result)
                continue
            for offset in range(0, len(run), _CHUNK):
                chunk = run[offset : offset + _CHUNK]
                self._upsert(rows, key, columns, chunk, start + offset, result)
                if self.progress:
                    self.progress(rows.table, start + offset + len(chunk), len(rows))
        if rows.accounts:
            login, password = rows.accounts
            self.accounts += [Account(str(r[login]), str(r[password])) for r in rows.dicts()]

    def _runs(
        self, rows: Rows, key: tuple[str, ...]
    ) -> Iterable[tuple[int, list[str], list[tuple[Any, ...]]]]:
        """Runs of consecutive rows with the same columns, in file order, as tuples: an upsert
        then sets only the columns a row names, and never resets the others to defaults."""
        if rows.columns and not rows.hashed:
            yield 0, list(rows.columns), rows.values
            return
        prepared = rows.dicts()
        if rows.hashed or any(isinstance(v, dict | list) for row in prepared for v in row.values()):
            prepared = [self._prepare(rows, key, row) for row in prepared]
        start = 0
        while start < len(prepared):
            names = prepared[start].keys()
            end = start + 1
            while end < len(prepared) and prepared[end].keys() == names:
                end += 1
            columns = list(names)
            yield start, columns, [tuple(row[c] for c in columns) for row in prepared[start:end]]
            start = end

    def _refuse_duplicates(self, rows: Rows, key: tuple[str, ...]) -> None:
        """One row per key across every file: else the last would silently win."""
        self._key_columns[rows.table] = key
        seen = self._keys.setdefault(rows.table, {})
        where = self._shown(rows.file)
        picks: list[Callable[[Any], Any]] = [
            itemgetter(rows.columns.index(k)) if rows.columns else itemgetter(k) for k in key
        ]
        source: Sequence[Any] = rows.values if rows.columns else rows.rows
        keys = list(zip(*(map(str, map(pick, source)) for pick in picks), strict=True))  # a column at a time
        mine = dict(zip(keys, zip(repeat(where), rows.lines), strict=True))
        if len(mine) == len(keys) and not mine.keys() & seen.keys():
            seen.update(mine)
            return
        for value, line in zip(keys, rows.lines, strict=True):  # the first row seen twice
            if value in seen:
                shown = ", ".join(f"{k}={v}" for k, v in zip(key, value, strict=True))
                first = "{}:{}".format(*seen[value])
                raise BadSeed(
                    f"{where}:{line}: {rows.table}: {shown} is already seeded at {first}",
                    "Each row's key must be unique across the seed files; remove one of them",
                )
            seen[value] = (where, line)

    def _hash(self, secret: str, salt: str, method: str = "scrypt") -> str:
        if method != "scrypt":  # sha256 costs nothing to redo
            return hash_secret(secret, salt, method)
        return self.hashes.hashed(secret, salt, method, lambda: hash_secret(secret, salt, method))

    def _prepare(self, rows: Rows, key: tuple[str, ...], row: dict[str, Any]) -> dict[str, Any]:
        prepared = {k: _adapt(v) for k, v in row.items()}
        for column, method in rows.hashed.items():
            if prepared.get(column) is not None:
                salt = f"{rows.table}:{[row.get(k) for k in key]}"  # stable per row, different across rows
                prepared[column] = self._hash(str(prepared[column]), salt, method)
        return prepared

    def _upsert(
        self,
        rows: Rows,
        key: tuple[str, ...],
        columns: list[str],
        chunk: list[tuple[Any, ...]],
        offset: int,
        result: TableResult,
    ) -> None:
        from psycopg import errors

        query, params = _upsert_query(rows.table, key, columns, chunk, self._always_identity(rows.table))
        try:
            with self.conn.transaction():
                created = [r[0] for r in self.conn.execute(query, params).fetchall()]
        except errors.Error as exc:
            raise self._row_failure(rows, key, columns, chunk, offset, exc) from None
        result.count(created, len(chunk))

    def _copy_rows(
        self,
        rows: Rows,
        key: tuple[str, ...],
        columns: list[str],
        run: list[tuple[Any, ...]],
        offset: int,
        result: TableResult,
    ) -> None:
        """A long run of rows with the same columns, through COPY as fast as a CSV file."""
        from psycopg import errors

        def feed(copy: Copy) -> None:
            with _no_collection():
                send(copy)

        def send(copy: Copy) -> None:
            whole = run is rows.values and rows.by_column  # as the reader found them
            texts = copy_text(
                rows.by_column if whole else list(zip(*run, strict=True)), rows.strs if whole else {}
            )
            if texts is not None:  # the same text write_row would send, a whole column at once
                for start in range(0, len(run), _CHUNK):
                    block = zip(*(column[start : start + _CHUNK] for column in texts), strict=True)
                    copy.write("\n".join(map("\t".join, block)) + "\n")
                    if self.progress:
                        done = min(start + _CHUNK, len(run))
                        self.progress(rows.table, offset + done, offset + len(run))
                return
            _as_insert_casts(copy.cursor.adapters)
            for done, row in enumerate(run, 1):
                copy.write_row(row)
                if self.progress and (done % _CHUNK == 0 or done == len(run)):
                    self.progress(rows.table, offset + done, offset + len(run))

        try:
            self._copy_in(rows.table, key, columns, self._is_empty(rows.table), feed, "", result)
        except errors.Error as exc:
            line = _COPY_LINE.search(getattr(getattr(exc, "diag", None), "context", None) or "")
            if line is None:  # the merge failed: find the row
                raise self._row_failure(rows, key, columns, run, offset, exc) from None
            index = offset + int(line.group(1)) - 1
            where = f"{self._shown(rows.file)}:{rows.lines[index]} (row {index + 1})"
            raise SeedFailed(f"{where}: {rows.table}: {_describe(exc)}", _hint(exc)) from None

    def _is_empty(self, table: str) -> bool:
        from psycopg import sql

        row = self.conn.execute(
            sql.SQL("SELECT NOT EXISTS (SELECT 1 FROM {})").format(_ident(table))
        ).fetchone()
        return bool(row and row[0])

    def _copy_in(
        self,
        table: str,
        key: Sequence[str],
        columns: list[str],
        direct: bool,
        feed: Callable[[Copy], None],
        options: str,
        result: TableResult,
    ) -> int:
        """COPY into the table while it is empty (direct), else into a scratch table merged with
        the same upsert as the other rows; counts what was created, updated and left alone.
        Returns how many rows were copied."""
        from psycopg import sql
        from psycopg.copy import QueuedLibpqWriter

        target = _ident(table) if direct else sql.Identifier("_dbops_seed")
        with self.conn.transaction(), self.conn.cursor() as cursor:
            if not direct:
                cursor.execute(
                    sql.SQL(
                        "CREATE TEMP TABLE _dbops_seed ON COMMIT DROP AS SELECT {} FROM {} LIMIT 0"
                    ).format(_names(columns), _ident(table))
                )
            copy = sql.SQL("COPY {} ({}) FROM STDIN" + options).format(target, _names(columns))
            # a thread sends the blocks while the next ones are formatted
            with cursor.copy(copy, writer=QueuedLibpqWriter(cursor)) as copy_in:
                feed(copy_in)
            loaded = cursor.rowcount
            if direct:
                result.created += loaded
                return loaded
            override = sql.SQL(" OVERRIDING SYSTEM VALUE" if self._always_identity(table) else "")
            merged = cursor.execute(
                sql.SQL(
                    "INSERT INTO {} AS t ({}){} SELECT {} FROM _dbops_seed {} RETURNING (xmax = 0)"
                ).format(
                    _ident(table),
                    _names(columns),
                    override,
                    _names(columns),
                    _on_conflict(key, [c for c in columns if c not in key]),
                )
            ).fetchall()
            cursor.execute("DROP TABLE _dbops_seed")
        result.count([r[0] for r in merged], loaded)
        return loaded

    def _row_failure(
        self,
        rows: Rows,
        key: tuple[str, ...],
        columns: list[str],
        run: list[tuple[Any, ...]],
        offset: int,
        exc: Exception,
    ) -> SeedFailed:
        """Find the row: the run again in a savepoint that is rolled back, a chunk at a time,
        then the failing chunk one row at a time."""
        from psycopg import errors

        overriding = self._always_identity(rows.table)
        culprit, error = None, exc
        try:
            with self.conn.transaction(force_rollback=True):
                for start in range(0, len(run), _CHUNK):
                    chunk = run[start : start + _CHUNK]
                    try:
                        with self.conn.transaction():
                            self.conn.execute(*_upsert_query(rows.table, key, columns, chunk, overriding))
                        continue
                    except errors.Error:
                        pass
                    for index, row in enumerate(chunk, start):
                        try:
                            self.conn.execute(*_upsert_query(rows.table, key, columns, [row], overriding))
                        except errors.Error as found:
                            culprit, error = offset + index, found
                            raise
        except errors.Error:
            pass
        where = self._shown(rows.file)
        if culprit is not None:
            where += f":{rows.lines[culprit]} (row {culprit + 1})"
        return SeedFailed(f"{where}: {rows.table}: {_describe(error)}", _hint(error))

    def _load_csv(self, rows: Rows, file: SeedFile, result: TableResult) -> None:
        from psycopg import errors

        header = _first_line(rows.file).lstrip("\ufeff")  # a UTF-8 BOM is not part of the first name
        columns = [c.strip() for c in next(csv.reader([header]), []) if c.strip()]
        if not columns:
            raise BadSeed(
                f"{self._shown(rows.file)}:1: the CSV file has no header row", "Name the columns in line 1"
            )
        key = self._primary_key(rows.table)
        direct = self._is_empty(rows.table)
        if not direct and (not key or not set(key) <= set(columns)):
            raise BadSeed(
                f"{self._shown(rows.file)}:1: {rows.table}: re-seeding needs the primary key columns",
                "Add the key columns to the CSV, or use --clear",
            )

        def feed(copy: Copy) -> None:
            size, sent = rows.file.stat().st_size, 0
            with rows.file.open("rb") as source:
                while block := source.read(1 << 20):
                    copy.write(block)
                    sent += len(block)
                    if self.progress:
                        self.progress(rows.table, sent, size)

        try:
            options = " WITH (FORMAT csv, HEADER true)"
            result.declared += self._copy_in(rows.table, key, columns, direct, feed, options, result)
        except errors.Error as exc:
            line = _COPY_LINE.search(getattr(getattr(exc, "diag", None), "context", None) or "")
            where = self._shown(rows.file) + (
                f":{line.group(1)} (row {int(line.group(1)) - 1})" if line else ""
            )
            raise SeedFailed(f"{where}: {rows.table}: {_describe(exc)}", _hint(exc)) from None

    # ------------------------------------------------------------------ SQL and Python seeds

    def _sql_pieces(self, file: SeedFile) -> list[Piece]:
        """The SQL seed rendered (its COPY data kept out of the template) and split as psql would."""
        if sql_script.from_pg_dump(file.text):
            text = file.text
        else:
            template, data = sql_script.protect(file.text)
            text = self._render(file, template, data)
        return sql_script.split(text, self._shown(file.path), self.conn.info.server_version // 10000)

    def _run_sql(self, file: SeedFile, pieces: list[Piece]) -> None:
        """The statements in pipelined batches, each COPY ... FROM stdin through COPY, in the
        seed's transaction; the rows that INSERT and COPY write are counted per table. The
        session settings the file changes (pg_dump's SET lines, its empty search_path) are put
        back after it."""
        shown = self._shown(file.path)
        before = self._session_settings()
        at = 0
        while at < len(pieces):
            if pieces[at].data is not None:
                batch, counts = pieces[at : at + 1], [self._copy_piece(pieces[at], shown)]
            else:
                batch = list(itertools.takewhile(lambda p: p.data is None, pieces[at : at + _SQL_BATCH]))
                counts = self._statements(batch, shown)
            at += len(batch)
            for piece, rows in zip(batch, counts, strict=True):
                table = sql_script.target(piece.statement.sql)
                if table is not None and rows >= 0:
                    result = self.results.setdefault(table, TableResult(table))
                    result.declared += rows
                    result.created += rows
                    if shown not in result.files:
                        result.files.append(shown)
        self._restore_settings(before)

    def _statements(self, batch: list[Piece], shown: str) -> list[int]:
        """The statements' row counts: run in a pipeline, in a savepoint (one round trip for the
        batch, not one a statement); after an error, again one at a time, to name the one."""
        from psycopg import Error

        try:
            with self.conn.transaction(), self.conn.pipeline():
                cursors = [self.conn.execute(piece.statement.sql) for piece in batch]
            return [cursor.rowcount for cursor in cursors]
        except Error:
            pass
        counts = []
        for piece in batch:
            try:
                counts.append(self.conn.execute(piece.statement.sql).rowcount)
            except Error as exc:
                raise SeedFailed(
                    f"{shown}:{piece.statement.line}: {_describe(exc)}", _sql_hint(exc)
                ) from None
        return counts

    def _copy_piece(self, piece: Piece, shown: str) -> int:
        from psycopg import Error

        cursor = self.conn.cursor()
        try:
            with cursor.copy(piece.statement.sql) as copy:
                copy.write(piece.data or b"")
        except Error as exc:
            row = _COPY_LINE.search(getattr(getattr(exc, "diag", None), "context", None) or "")
            line = piece.data_line + int(row.group(1)) - 1 if row else piece.statement.line
            raise SeedFailed(f"{shown}:{line}: {_describe(exc)}", _sql_hint(exc)) from None
        return cursor.rowcount

    def _session_settings(self) -> dict[str, str]:
        rows = self.conn.execute("SELECT name, setting FROM pg_settings WHERE source = 'session'")
        return dict(rows.fetchall())

    def _restore_settings(self, before: dict[str, str]) -> None:
        """The session's settings as they were before a SQL seed (those it set go back)."""
        changed = [
            (name, before.get(name))
            for name, value in self._session_settings().items()
            if before.get(name) != value
        ]
        for name, value in changed:
            if value is None:
                self.conn.execute(
                    "SELECT set_config(name, reset_val, false) FROM pg_settings WHERE name = %s", (name,)
                )
            else:
                self.conn.execute("SELECT set_config(%s, %s, false)", (name, value))

    def _render(self, file: SeedFile, template: str, data: list[str]) -> str:
        import jinja2
        from psycopg import sql

        env = jinja2.Environment(
            undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False
        )
        env.filters["password_hash"] = lambda value, salt="": self._hash(str(value), str(salt) or str(value))
        env.filters["sha256"] = lambda value: hashlib.sha256(str(value).encode()).hexdigest()
        env.filters["literal"] = lambda value: sql.Literal(value).as_string(self.conn)
        try:
            return env.from_string(template).render(**self.context, **{sql_script.DATA: data})
        except Exception as exc:  # syntax errors, undefined names, and errors while rendering
            import traceback

            frames = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == "<template>"]
            line = getattr(exc, "lineno", None) or (frames[-1] if frames else None)
            where = f"{self._shown(file.path)}{f':{line}' if line else ''}"
            raise BadSeed(
                f"{where}: template: {type(exc).__name__}: {exc}",
                "Fix the Jinja2 template",
            ) from None

    def _run_python(self, file: SeedFile) -> None:
        from psycopg.pq import TransactionStatus

        spec = importlib.util.spec_from_file_location(f"dbops_seed_{file.path.stem}", file.path)
        if spec is None or spec.loader is None:
            raise BadSeed(f"Cannot load {self._shown(file.path)}", "A Python seed defines seed(db)")
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
            seed = getattr(module, "seed", None)
            if not callable(seed):
                raise BadSeed(f"{self._shown(file.path)}: defines no seed(db) function", "def seed(db): ...")
            with self.conn.transaction():
                run_guarded(self.conn, seed, what="a seed", root=self.root)
                if self.conn.info.transaction_status != TransactionStatus.INTRANS:  # pgconn.exec_()
                    raise SeedFailed(
                        f"{self._shown(file.path)}: seed(db) ended the transaction (COMMIT or ROLLBACK)",
                        "A seed is one transaction: remove the commit; what ran before it may have been kept",
                        exit_code=EXIT_UNDO_FAILED,
                    )
        except DbopsError:
            raise
        except (Exception, SystemExit) as exc:  # sys.exit() in a seed is a failure, not our exit code
            import traceback

            frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(file.path)]
            line = f":{frames[-1].lineno}" if frames else ""
            raise SeedFailed(
                f"{self._shown(file.path)}{line}: {_describe(exc)}",
                _hint(exc)
                if isinstance(exc, Exception) and hasattr(exc, "diag")
                else "Fix the seed function",
            ) from None

    # ------------------------------------------------------------------ after loading

    def _always_identity(self, table: str) -> bool:
        row = self.conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_attribute"
            " WHERE attrelid = to_regclass(%s) AND attidentity = 'a')",
            (self._regclass(table),),
        ).fetchone()
        return bool(row and row[0])

    def _check_key_columns(self, rows: Rows, shown: str) -> None:
        """A declared natural key names columns of the table, with a unique index over them."""
        found = self.conn.execute(
            "SELECT array_agg(attname::text ORDER BY attnum) FROM pg_attribute"
            " WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped",
            (self._regclass(rows.table),),
        ).fetchone()
        columns = (found[0] if found else None) or []
        unknown = [k for k in rows.key if k not in columns]
        if unknown:
            raise BadSeed(
                f"{shown}:{rows.line}: {rows.table}: key: no column {unknown[0]} in the table",
                f"Its columns: {', '.join(columns)}",
            )

    def _primary_key(self, table: str) -> tuple[str, ...]:
        rows = self.conn.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid"
            " AND a.attnum = ANY(i.indkey) WHERE i.indrelid = to_regclass(%s) AND i.indisprimary"
            " ORDER BY array_position(i.indkey, a.attnum)",
            (self._regclass(table),),
        ).fetchall()
        return tuple(r[0] for r in rows)

    def _fix_sequences(self) -> None:
        """Owned sequences (serial, identity) move past the largest id now in their column, forward
        only: the application's next insert must not collide with a seeded row."""
        from psycopg import sql

        owned = self.conn.execute(
            "SELECT s.oid::regclass::text, t.oid::regclass::text, a.attname"
            " FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'"
            " JOIN pg_sequence q ON q.seqrelid = s.oid AND q.seqincrement > 0"
            " JOIN pg_class t ON t.oid = d.refobjid"
            " JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid"
            " JOIN pg_namespace n ON n.oid = t.relnamespace"
            " WHERE d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')"
            " AND a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype)"
            " AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
        ).fetchall()
        for sequence, table, column in owned:
            self.conn.execute(
                sql.SQL(
                    "SELECT setval({seq}, m) FROM (SELECT max({col}) AS m FROM {table}) x, {seq_rel} s"
                    " WHERE m IS NOT NULL AND m >= s.last_value + CASE WHEN s.is_called THEN 1 ELSE 0 END"
                ).format(
                    seq=sql.Literal(sequence),
                    col=sql.Identifier(column),
                    table=sql.SQL(table),
                    seq_rel=sql.SQL(sequence),
                )
            )


def hash_secret(secret: str, salt: str, method: str = "scrypt") -> str:
    """scrypt with a salt derived from the row, so re-seeding writes the same hash (idempotent);
    sha256 (hex, unsalted) for high-entropy secrets such as API keys."""
    if method == "sha256":
        return hashlib.sha256(secret.encode()).hexdigest()
    if method != "scrypt":
        raise BadSeed(f"Unknown hash method {method!r}", "Use hash: {column: scrypt} or {column: sha256}")
    salt_bytes = hashlib.sha256(salt.encode()).digest()[:16]
    digest = hashlib.scrypt(secret.encode(), salt=salt_bytes, n=2**14, r=8, p=1, dklen=32)
    return f"scrypt$16384$8$1${salt_bytes.hex()}${digest.hex()}"


def _upsert_query(
    table: str, key: Sequence[str], columns: list[str], rows: list[tuple[Any, ...]], overriding: bool = False
) -> tuple[Any, list[Any]]:
    """INSERT ... VALUES (...), ... ON CONFLICT (key) ...; the rows share their columns."""
    from psycopg import sql

    row_values = sql.SQL("({})").format(sql.SQL(", ").join(sql.Placeholder() * len(columns)))
    values = sql.SQL(", ").join([row_values] * len(rows))
    update = _on_conflict(key, [c for c in columns if c not in key])
    override = sql.SQL(" OVERRIDING SYSTEM VALUE" if overriding else "")  # GENERATED ALWAYS ids
    query = sql.SQL("INSERT INTO {} AS t ({}){} VALUES {} {} RETURNING (xmax = 0)").format(
        _ident(table), _names(columns), override, values, update
    )
    return query, [value for row in rows for value in row]


def _as_insert_casts(adapters: AdaptersMap) -> None:
    """COPY takes every value as text in the column's type; an INSERT parameter keeps its own
    type and is cast. Booleans and floats are written the way that cast writes them, so a
    value lands the same whichever way its row goes (yes into a text column: 'true', not 't';
    .inf: 'Infinity')."""
    from psycopg.adapt import Dumper

    class BoolText(Dumper):
        def dump(self, obj: Any) -> bytes:
            return b"true" if obj else b"false"

    class FloatText(Dumper):
        def dump(self, obj: Any) -> bytes:
            return float_text(obj).encode()

    adapters.register_dumper(bool, BoolText)
    adapters.register_dumper(float, FloatText)


@contextmanager
def _no_collection() -> Iterator[None]:
    """The cyclic garbage collector off while rows are formatted: a column's texts and a block's
    tuples are millions of new objects in no cycle, and each full collection walks them all."""
    import gc

    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def copy_text(columns: Sequence[Sequence[Any]], strs: dict[int, list[str]]) -> list[Sequence[str]] | None:
    """Rows, given a column at a time, as COPY's text format: what write_row sends with
    _as_insert_casts' dumpers, for the types YAML gives (str, int, float, bool, date and
    datetime, and None). None when a column holds anything else, strings among other types,
    or a NUL, which write_row refuses: write_row then sends the rows. strs: str() of each value
    of some columns (dates and date-times), as the reader found them."""
    texts: list[Sequence[str]] = []
    for index, column in enumerate(columns):
        kinds = set(map(type, column))
        nulls = type(None) in kinds
        kinds.discard(type(None))
        if not kinds:
            texts.append([r"\N"] * len(column))
            continue
        if not kinds <= _COPY_FORMATS.keys() or (len(kinds) > 1 and str in kinds):
            return None
        if len(kinds) > 1:  # e.g. ints and floats
            texts.append([r"\N" if value is None else _COPY_FORMATS[type(value)](value) for value in column])
            continue
        kind = kinds.pop()
        if kind is str:
            joined = "".join([value for value in column if value is not None] if nulls else column)
            if "\x00" in joined:
                return None
            if _COPY_ESCAPED.search(joined):
                column = tuple(None if v is None else _COPY_ESCAPED.sub(_copy_escape, v) for v in column)
        if nulls and kind is bool:
            texts.append(list(map(_BOOL_OR_NULL.__getitem__, column)))
        elif nulls:
            format_one = _COPY_FORMATS[kind]
            texts.append([r"\N" if value is None else format_one(value) for value in column])
        elif kind is str:
            texts.append(column)
        elif kind is float:
            texts.append(_float_texts(column))
        elif index in strs and _COPY_FORMATS[kind] is str:
            texts.append(strs[index])
        else:
            texts.append(list(map(_COPY_FORMATS[kind], column)))
    return texts


def _float_texts(column: Sequence[float]) -> list[str]:
    """float_text of each, at once for the usual floats: repr has float8out's shortest digits
    and its fixed notation from 1e-4 up to 1e15 (repr keeps it up to 1e16)."""
    joined = "\n".join(map(repr, column)) + "\n"
    if "e" in joined or "n" in joined or not -1e15 < min(column) <= max(column) < 1e15:
        return list(map(_fast_float_text, column))  # inf and nan have an n
    return joined.replace(".0\n", "\n").split("\n")[:-1]


def _text_array(texts: list[str]) -> str:
    """A text[] literal of these strings (which hold no NUL: PostgreSQL has taken them)."""
    joined = "\x00".join(texts).replace("\\", "\\\\").replace('"', '\\"')
    return '{"' + joined.replace("\x00", '","') + '"}' if texts else "{}"


def _fast_float_text(value: float) -> str:
    """float_text, quickly for the usual floats: repr has float8out's shortest digits, and
    the same fixed notation from 1e-4 up to 1e15 (repr keeps it up to 1e16)."""
    text = repr(value)
    if "e" in text or "n" in text or not -1e15 < value < 1e15:  # inf and nan have an n
        return float_text(value)
    if text.endswith(".0"):
        text = text[:-2]
    return text


_COPY_ESCAPED = re.compile("[\b\t\n\v\f\r\\\\]")  # as psycopg escapes them
_COPY_ESCAPES = {"\b": r"\b", "\t": r"\t", "\n": r"\n", "\v": r"\v", "\f": r"\f", "\r": r"\r", "\\": "\\\\"}


def _copy_escape(found: re.Match[str]) -> str:
    return _COPY_ESCAPES[found.group(0)]


_BOOL_OR_NULL = {True: "true", False: "false", None: r"\N"}
_COPY_FORMATS: dict[type, Callable[[Any], str]] = {
    str: str,
    int: str,
    bool: {True: "true", False: "false"}.__getitem__,  # as _as_insert_casts writes them
    float: _fast_float_text,
    datetime.date: str,  # psycopg's text dumpers write str(value)
    datetime.datetime: str,
}


def float_text(value: float) -> str:
    """float8out's text: the shortest exact digits, exponent below 1e-4 and from 1e15 on."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    from decimal import Decimal

    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)
    scientific = len(digits) - 1 + exponent
    text = "".join(map(str, digits))
    if -4 <= scientific < 15:
        if exponent >= 0:
            text += "0" * exponent
        else:
            point = len(text) + exponent
            text = ("0." + "0" * -point + text) if point <= 0 else f"{text[:point]}.{text[point:]}"
    else:
        mantissa = text[0] + (f".{text[1:]}" if len(text) > 1 else "")
        text = f"{mantissa}e{'-' if scientific < 0 else '+'}{abs(scientific):02d}"
    return ("-" if sign else "") + text  # -0 too, as float8out writes it


def _first_line(path: Path) -> str:
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            return handle.readline().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadSeed(
            f"Cannot read {path.name}: {exc}", "CSV seeds are UTF-8 text with a header row"
        ) from None


def _names(columns: Sequence[str]) -> Any:
    from psycopg import sql

    return sql.SQL(", ").join(map(sql.Identifier, columns))


def _on_conflict(key: Sequence[str], others: Sequence[str]) -> Any:
    """Upsert by key; rows whose other columns are already equal are left alone (not updated)."""
    from psycopg import sql

    if not others:
        return sql.SQL("ON CONFLICT ({}) DO NOTHING").format(_names(key))
    return sql.SQL("ON CONFLICT ({}) DO UPDATE SET {} WHERE ({}) IS DISTINCT FROM ({})").format(
        _names(key),
        sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in others),
        # compared as text: json, xml and point have no equality operator
        sql.SQL(", ").join(sql.SQL("t.{}::text").format(sql.Identifier(c)) for c in others),
        sql.SQL(", ").join(sql.SQL("EXCLUDED.{}::text").format(sql.Identifier(c)) for c in others),
    )


def _ident(table: str) -> Any:
    from psycopg import sql

    return sql.Identifier(*table.split(".", 1))


def _adapt(value: Any) -> Any:
    if isinstance(value, dict | list):
        from psycopg.types.json import Jsonb

        return Jsonb(value, dumps=_json_dumps)
    return value


def _json_dumps(value: Any) -> str:
    """YAML gives dates and times inside mappings too: JSON has them as ISO strings."""
    import json

    return json.dumps(value, default=lambda o: o.isoformat() if hasattr(o, "isoformat") else str(o))


def _describe(exc: BaseException) -> str:
    diag = getattr(exc, "diag", None)
    message = getattr(diag, "message_primary", None) or str(exc).strip().splitlines()[0]
    detail = getattr(diag, "message_detail", None) or ""
    key = _KEY_DETAIL.search(detail)
    if key:
        return f"{message}: {key.group(1)}={key.group(2)}"
    column = getattr(diag, "column_name", None)
    return f"{message} (column {column})" if column else message


def _hint(exc: BaseException) -> str:
    diag = getattr(exc, "diag", None)
    hint = getattr(diag, "message_hint", None)
    return (hint + "; " if hint else "") + "Nothing of the seed was kept: fix it and run seed again"


def _sql_hint(exc: BaseException) -> str:
    """A SQL seed's rows that are there already were most likely loaded by an earlier seed: a
    SQL seed inserts, it does not upsert as YAML and CSV seeds do."""
    from psycopg import errors

    if isinstance(exc, errors.UniqueViolation):
        return (
            "If an earlier seed loaded these rows, run dbops seed --clear: it empties the tables the "
            "seed files write first; else remove the duplicate row"
        )
    return _hint(exc)
