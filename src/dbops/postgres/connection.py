"""Connecting to PostgreSQL: targets, redaction, error translation, server facts.

psycopg lives here. A password never leaves a Target except into libpq itself.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from dbops.errors import ConfigError, ConnectionFailed, DatabaseMissing, DbopsError
from dbops.postgres import budget
from dbops.redact import redact_connection_string, remember, scrub, secrets_in

if TYPE_CHECKING:
    import psycopg

    from dbops.config.model import Environment

_SCHEMES = ("postgresql://", "postgres://", "postgresql+psycopg://", "postgresql+psycopg2://")


@dataclass(frozen=True)
class Target:
    """Where to connect: libpq keywords (the password among them, never shown)."""

    params: Mapping[str, str] = field(repr=False)
    embedded_data: Path | None = None
    secrets: tuple[str, ...] = field(default=(), repr=False)

    def __repr__(self) -> str:
        return f"Target({self.display()})"

    @classmethod
    def of_environment(cls, url: str, env: Environment) -> Target:
        """The environment's resolved URL, with its database: (which must not contradict it)."""
        return cls.from_url(url, env.database, env.url_source(), database_where=env.where("database"))

    @classmethod
    def from_url(
        cls,
        url: str,
        database: str | None = None,
        where: str = "database URL",
        *,
        database_where: str = "database",
    ) -> Target:
        """Parse and check a URL. When both the URL and ``database`` name a database, they must
        agree: a different one would silently replace the database the URL (a CI secret) names."""
        from psycopg.conninfo import conninfo_to_dict

        for scheme in _SCHEMES[2:]:
            if url.startswith(scheme):
                url = "postgresql://" + url[len(scheme) :]
        if not url.startswith(_SCHEMES[:2]):
            raise ConfigError(f"{where}: not a PostgreSQL URL: {redact_url(url)}", _URL_HINT)
        _check_url_shape(url, where)
        try:
            params = {k: str(v) for k, v in conninfo_to_dict(url).items()}
        except Exception as exc:  # psycopg.ProgrammingError; its text may quote the URL
            reason = redact_url(scrub(first_line(str(exc)), secrets_in(url)))
            raise ConfigError(f"{where}: invalid URL {redact_url(url)}: {reason}", _URL_HINT) from None
        secret = params.get("password")
        secrets = (secret,) if secret else ()
        _check_values(params, where, secrets)
        named = params.get("dbname")
        if database and named and named != database:
            raise ConfigError(
                f"Two database names disagree: {database_where} says '{scrub(database, secrets)}', "
                f"{where} names '{scrub(named, secrets)}'",
                "Name the database in one place: remove database: from the environment in dbops.yaml "
                "to use the URL's, or make the two the same",
            )
        if database:
            params["dbname"] = database
        remember(secret)
        return cls(params=params, secrets=secrets)

    @property
    def dbname(self) -> str:
        return self.params.get("dbname") or self.params.get("user") or "postgres"

    @property
    def user(self) -> str:
        return self.params.get("user", "")

    def with_dbname(self, dbname: str) -> Target:
        return replace(self, params={**self.params, "dbname": dbname})

    def with_settings(self, settings: str) -> Target:
        """With `settings` (``-c name=value ...``) after the URL's own options."""
        options = f"{self.params.get('options', '')} {settings}".strip()
        return replace(self, params={**self.params, "options": options})

    def yoyo_uri(self) -> str:
        """The URI yoyo's get_backend() takes; in-process only, never shown or passed to a child."""
        p = self.params
        auth = quote(p.get("user", ""), safe="")
        if p.get("password"):
            auth += ":" + quote(p["password"], safe="")
        host = p.get("host", "")
        netloc = f"{auth}@" if auth else ""
        query = {k: v for k, v in p.items() if k not in ("user", "password", "host", "port", "dbname")}
        if host.startswith("/"):
            query = {"host": host, "port": p.get("port", "5432"), **query}
        elif host:
            netloc += host + (f":{p['port']}" if p.get("port") else "")
        params = "&".join(f"{k}={quote(str(v), safe='/')}" for k, v in query.items())
        return f"postgresql+psycopg://{netloc}/{quote(self.dbname, safe='')}" + (
            f"?{params}" if params else ""
        )

    def location(self) -> str:
        """host:port, a socket folder, or 'embedded (<data dir>)'."""
        if self.embedded_data is not None:
            return f"embedded ({self.embedded_data})"
        host = self.params.get("host") or self.params.get("hostaddr") or "localhost"
        port = self.params.get("port") or "5432"
        if host.startswith("/"):
            return f"socket {host} (port {port})"
        return f"{host}:{port}"

    def display(self) -> str:
        """A URL safe to print: postgresql://user:***@host:port/db."""
        user = quote(self.user, safe="") if self.user else ""
        auth = f"{user}:***@" if "password" in self.params else (f"{user}@" if user else "")
        host = self.params.get("host", "")
        where = (
            f"{host}:{self.params['port']}" if "port" in self.params and not host.startswith("/") else host
        )
        if host.startswith("/"):
            return f"postgresql://{auth}/{self.dbname}?host={host}"
        return f"postgresql://{auth}{where}/{self.dbname}"

    def scrub(self, text: str) -> str:
        return scrub(text, self.secrets)


_URL_HINT = (
    "Use postgresql://user:password@host:5432/database and percent-encode special characters "
    "in the user and password (@ as %40, / as %2F, ? as %3F, # as %23, % as %25)"
)


def _check_url_shape(url: str, where: str) -> None:
    """One '@' at most, and only in the authority: else a password is being cut in pieces."""
    rest = url.split("://", 1)[1]
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if rest.count("@") > 1 or ("@" in rest and "@" not in authority):
        raise ConfigError(
            f"{where}: the user or password holds a character that must be percent-encoded", _URL_HINT
        )


_CHOICES = {  # libpq's keywords that take one of a few words (libpq checks them only at connect)
    "sslmode": ("disable", "allow", "prefer", "require", "verify-ca", "verify-full"),
    "gssencmode": ("disable", "prefer", "require"),
    "channel_binding": ("disable", "prefer", "require"),
    "sslnegotiation": ("postgres", "direct"),
    "sslcertmode": ("disable", "allow", "require"),
    "target_session_attrs": ("any", "read-write", "read-only", "primary", "standby", "prefer-standby"),
    "load_balance_hosts": ("disable", "random"),
}
_INTEGERS = ("connect_timeout", "keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count")


def _check_values(params: Mapping[str, str], where: str, secrets: tuple[str, ...]) -> None:
    """The values libpq would refuse at connect time, refused now as configuration errors."""
    for port in params.get("port", "").split(","):
        if port and not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
            # quoted only when it is a number: 'user:secret/db' (no '@') parses as host 'user',
            # port 'secret'
            shown = f"'{port}' " if port.lstrip("-").isascii() and port.lstrip("-").isdigit() else ""
            raise ConfigError(
                f"{where}: the port {shown}is not a port number (1 to 65535)",
                "Write the port as a number after the host (postgresql://user:password@host:5432/database); "
                "with a password, the user:password@ part must come before the host",
            )
    for key, choices in _CHOICES.items():
        value = params.get(key)
        if value is not None and value not in choices:
            raise ConfigError(
                f"{where}: {key}={scrub(value, secrets)!r} is not one of {', '.join(choices)}",
                f"Set {key} in the URL's query to one of them (e.g. ?{key}={choices[0]})",
            )
    for key in _INTEGERS:
        value = params.get(key)
        if value and not (value.isascii() and value.lstrip("-").isdigit()):
            raise ConfigError(f"{where}: {key} must be a whole number", f"Fix {key} in the URL's query")


def redact_url(url: str) -> str:
    """Any connection string, parsed or not: postgresql://user:secret@host/db ->
    postgresql://user:***@host/db, password=secret -> password=***."""
    return redact_connection_string(url)


# --------------------------------------------------------------------------- connecting


PROTECTED_LOCK_TIMEOUT_MS = 5_000  # a migration queued behind traffic must not stall it for long
PROTECTED_STATEMENT_TIMEOUT_MS = 30 * 60_000


def session_options(env: Environment) -> str:
    """Server settings sent in the startup packet, so they hold from the first statement.

    Protected environments get safe defaults when dbops.yaml sets none.
    """
    lock = env.lock_timeout_ms
    statement = env.statement_timeout_ms
    if env.protected:
        lock = PROTECTED_LOCK_TIMEOUT_MS if lock is None else lock
        statement = PROTECTED_STATEMENT_TIMEOUT_MS if statement is None else statement
    settings = []
    if lock is not None:
        settings.append(f"-c lock_timeout={lock}")
    if statement is not None:
        settings.append(f"-c statement_timeout={statement}")
    return " ".join(settings)


def connect(target: Target, env: Environment, *, autocommit: bool = True) -> psycopg.Connection[Any]:
    import psycopg

    kwargs: dict[str, Any] = dict(target.params)
    kwargs.setdefault("connect_timeout", str(max(1, math.ceil(env.connect_timeout_ms / 1000))))
    kwargs.setdefault("application_name", env.application_name)
    options = session_options(env)
    if options:
        kwargs["options"] = (kwargs.get("options", "") + " " + options).strip()
    try:  # within a fleet run, counted against the target's share of the connection budget
        return budget.counted(target.location(), lambda: psycopg.connect(autocommit=autocommit, **kwargs))
    except psycopg.OperationalError as exc:
        raise connection_error(exc, target, env) from None


def connection_error(exc: Exception, target: Target, env: Environment) -> DbopsError:
    """libpq's words -> one line that says what happened and what to do."""
    raw = str(exc)
    low = raw.lower()
    shown = target.scrub(first_line(raw))  # libpq's own words appear only where nothing else fits
    where = target.location()
    db, user = target.dbname, target.user or "(default user)"
    if "connection refused" in low or re.search(r'socket "[^"]*" failed: no such file', low):
        return ConnectionFailed(
            f"Connection refused at {where}",
            "Is PostgreSQL running? For local environments set embedded: true "
            "in dbops.yaml and dbops starts one itself",
        )
    if re.search(r"(password|authentication) .*failed for user|no password supplied", low):
        return ConnectionFailed(
            f"Authentication failed for user '{user}' at {where}",
            "Check the user and password in the environment's url or env_file",
        )
    if re.search(r'fatal: +role "[^"]*" does not exist', low):
        return ConnectionFailed(f"Role '{user}' does not exist at {where}", "Check the user in the URL")
    if re.search(r'fatal: +database "[^"]*" does not exist', low):
        return DatabaseMissing(
            f"Database '{db}' does not exist at {where}",
            f"Create it (createdb {db}) or fix 'database' in dbops.yaml",
        )
    if "could not translate host name" in low or "failed to resolve host" in low:
        host = target.params.get("host", "")
        return ConnectionFailed(f"Unknown host '{host}'", "Check the host name in the environment's url")
    if re.search(r"does not support ssl|ssl connection is required|no encryption|ssl error|certificate", low):
        return ConnectionFailed(
            f"SSL negotiation failed at {where}: {shown}",
            "Add ?sslmode=require to the URL if the server requires SSL, or sslmode=disable if it has none",
        )
    if "timeout expired" in low:
        return ConnectionFailed(
            f"Timed out after {env.connect_timeout_ms / 1000:g}s connecting to {where}",
            "Check the host, the firewall, or raise connect_timeout in dbops.yaml",
        )
    if re.search(r"invalid (port number|[a-z_]+ value|integer value .* for connection option)", low):
        # libpq checks these values only now (a PGPORT, PGSSLMODE... in the process environment)
        return ConfigError(
            f"Invalid connection setting for {where}: {shown}",
            "Fix the port or the query parameters of the environment's url, or the PG* variables set",
        )
    return ConnectionFailed(f"Cannot connect to {where}: {shown}", "Check the environment's url")


def first_line(text: str) -> str:
    """The first non-blank line of a message (PostgreSQL's and libpq's run over several)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else text


def database_error(exc: Exception, target: Target | None = None) -> DbopsError:
    """Any other psycopg error during an operation: the server's message, its hint."""
    diag = getattr(exc, "diag", None)
    message = first_line(str(exc)) or type(exc).__name__
    hint = getattr(diag, "message_hint", None) or "See the PostgreSQL message above"
    if target is not None:
        message, hint = target.scrub(message), target.scrub(hint)
    return DbopsError(f"Database error: {message}", hint)


def server_version(conn: psycopg.Connection[Any]) -> str:
    number = conn.info.server_version
    major = number // 10000
    return f"PostgreSQL {major}.{number % 10000}" if major >= 10 else f"PostgreSQL {number}"


@dataclass(frozen=True)
class ServerFacts:
    database: str
    location: str
    url: str
    version: str
    user: str


def read_facts(conn: psycopg.Connection[Any], target: Target) -> ServerFacts:
    row = conn.execute("SELECT current_database(), current_user").fetchone()
    assert row is not None
    return ServerFacts(row[0], target.location(), target.display(), server_version(conn), row[1])


def ensure_database(target: Target, env: Environment) -> bool:
    """Create target's database when missing (embedded servers only); True if it was created."""
    from psycopg import errors, sql

    with connect(target.with_dbname("postgres"), env) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (target.dbname,)).fetchone()
        if exists:
            return False
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(target.dbname)))
        except (errors.DuplicateDatabase, errors.UniqueViolation):
            return False  # another dbops created it at the same moment
        return True
