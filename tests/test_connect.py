"""Connection failures as users meet them: one line, a hint, exit 1, and never the password."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from psycopg import sql

from conftest import Cli, Run, write_config
from dbops.postgres.connection import Target, redact_url
from dbops.postgres.embedded import EmbeddedServer

PASSWORD = "Sup3r-Secret!pw"
ODD_PASSWORD = "p@ss/w?rd#%x:y"  # every character a URL gives a meaning to


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def tcp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server of our own on 127.0.0.1 (no SSL in the embedded build), where roles need passwords."""
    folder = tmp_path_factory.mktemp("tcp")
    server = EmbeddedServer(folder / "pg", durable=False)
    state = server.ensure_running()
    port = free_port()
    with psycopg.connect(f"postgresql://postgres@/postgres?host={state.socket_dir}", autocommit=True) as conn:
        conn.execute(f"CREATE ROLE app LOGIN PASSWORD '{PASSWORD}'")
        conn.execute(sql.SQL("CREATE ROLE odd LOGIN PASSWORD {}").format(sql.Literal(ODD_PASSWORD)))
        conn.execute("CREATE ROLE shorty LOGIN PASSWORD 'a'")
        conn.execute("ALTER SYSTEM SET listen_addresses = '127.0.0.1'")
        conn.execute(f"ALTER SYSTEM SET port = {port}")
        row = conn.execute("SHOW hba_file").fetchone()
        assert row is not None
        hba = Path(row[0])
    hba.write_text("host all app,odd,shorty 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
    server.stop()
    server.ensure_running()
    yield f"127.0.0.1:{port}"
    server.stop()


def status_with(project: Path, cli: Run, url: str, extra: str = "") -> Cli:
    write_config(project, f'environments:\n  development:\n    url: "{url}"\n{extra}')
    return cli("status")


def assert_one_line_error(result: Cli, message: str, code: int = 1) -> None:
    assert result.code == code, result.text
    assert "Traceback" not in result.text
    lines = result.err.strip().splitlines()
    assert lines[0] == f"Error: {message}", lines
    assert lines[1].startswith("Hint: ")
    assert len(lines) == 2


def test_connection_refused(project: Path, cli: Run) -> None:
    port = free_port()
    result = status_with(project, cli, f"postgresql://app:{PASSWORD}@127.0.0.1:{port}/app")
    assert_one_line_error(result, f"Connection refused at 127.0.0.1:{port}")
    assert "Is PostgreSQL running?" in result.err
    assert PASSWORD not in result.text


def test_authentication_failed_never_shows_the_password(project: Path, cli: Run, tcp_server: str) -> None:
    result = status_with(project, cli, f"postgresql://app:wrong-{PASSWORD}@{tcp_server}/postgres")
    assert_one_line_error(result, f"Authentication failed for user 'app' at {tcp_server}")
    assert PASSWORD not in result.text
    log = (project / ".dbops" / "log" / "operations.jsonl").read_text()
    assert PASSWORD not in log and '"outcome": "failed"' in log


def test_right_password_connects_and_is_redacted_everywhere(project: Path, cli: Run, tcp_server: str) -> None:
    result = status_with(project, cli, f"postgresql://app:{PASSWORD}@{tcp_server}/postgres")
    assert result.code == 0, result.text
    assert f"Host: {tcp_server}" in result.out
    json_result = cli("status", "--json")
    assert '"url": "postgresql://app:***@' in json_result.out
    for text in (result.text, json_result.text, (project / ".dbops/log/operations.jsonl").read_text()):
        assert PASSWORD not in text


def test_ssl_required_but_not_offered(project: Path, cli: Run, tcp_server: str) -> None:
    result = status_with(project, cli, f"postgresql://app:{PASSWORD}@{tcp_server}/postgres?sslmode=require")
    assert result.code == 1 and "Traceback" not in result.text
    assert result.err.startswith(f"Error: SSL negotiation failed at {tcp_server}: ")
    assert "sslmode" in result.err and PASSWORD not in result.text


@pytest.mark.parametrize(
    "libpq_says",
    [  # libpq's words when the server insists on SSL (the embedded build has none to test with)
        'connection failed: connection to server at "10.0.0.5", port 5432 failed: FATAL:  '
        'pg_hba.conf rejects connection for host "10.0.0.9", user "app", database "app", no encryption',
        'connection to server at "10.0.0.5", port 5432 failed: FATAL:  no pg_hba.conf entry for host '
        '"10.0.0.9", user "app", database "app", no encryption',
    ],
)
def test_server_requiring_ssl_is_recognised(libpq_says: str) -> None:
    from dbops.config.model import Environment
    from dbops.postgres.connection import connection_error

    error = connection_error(
        Exception(libpq_says), Target.from_url("postgresql://app@10.0.0.5/app"), Environment("x")
    )
    assert error.message.startswith("SSL negotiation failed at 10.0.0.5:5432: ")
    assert "sslmode=require" in error.hint


def test_passwords_with_url_characters(project: Path, cli: Run, tcp_server: str) -> None:
    encoded = quote(ODD_PASSWORD, safe="")
    result = status_with(project, cli, f"postgresql://odd:{encoded}@{tcp_server}/postgres")
    assert result.code == 0, result.text
    as_json = cli("status", "--json")
    for text in (result.text, as_json.out):
        assert ODD_PASSWORD not in text and encoded not in text
    # Not encoded: refused before any of it can be shown in pieces
    raw = status_with(project, cli, f"postgresql://odd:{ODD_PASSWORD}@{tcp_server}/postgres")
    assert raw.code == 2 and "must be percent-encoded" in raw.err
    for piece in ("p@ss", "w?rd", "ss/w", "rd#"):
        assert piece not in raw.text
    query = status_with(project, cli, f"postgresql://odd@{tcp_server}/postgres?password=s3cr3tX&bogus=1")
    assert query.code == 2 and "s3cr3tX" not in query.text and "password=***" in query.err
    log = (project / ".dbops/log/operations.jsonl").read_text()
    assert ODD_PASSWORD not in log and encoded not in log and "s3cr3tX" not in log


def test_a_one_letter_password_does_not_garble_the_message(project: Path, cli: Run, tcp_server: str) -> None:
    result = status_with(project, cli, f"postgresql://shorty:b@{tcp_server}/postgres")
    assert_one_line_error(result, f"Authentication failed for user 'shorty' at {tcp_server}")
    missing = status_with(project, cli, f"postgresql://shorty:a@{tcp_server}/nodb_here")
    assert missing.err.startswith(f"Error: Database 'nodb_here' does not exist at {tcp_server}")


def test_database_does_not_exist(project: Path, cli: Run, database_url: str) -> None:
    url = database_url.replace("/dbops_t_", "/missing_", 1)
    result = status_with(project, cli, url)
    missing = Target.from_url(url).dbname
    assert result.code == 1 and "Traceback" not in result.text
    assert result.err.startswith(f"Error: Database '{missing}' does not exist at ")
    assert f"createdb {missing}" in result.err


def test_unknown_host(project: Path, cli: Run) -> None:
    result = status_with(project, cli, "postgresql://app@nonexistent-host.invalid:5432/app")
    assert_one_line_error(result, "Unknown host 'nonexistent-host.invalid'")


def test_connect_timeout(project: Path, cli: Run) -> None:
    """A server that accepts the TCP connection but never answers."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    port = silent.getsockname()[1]
    accepted: list[socket.socket] = []
    thread = threading.Thread(target=lambda: accepted.append(silent.accept()[0]), daemon=True)
    thread.start()
    try:
        result = status_with(
            project, cli, f"postgresql://app@127.0.0.1:{port}/app", "    connect_timeout: 2s\n"
        )
    finally:
        for sock in (*accepted, silent):
            sock.close()
    assert_one_line_error(result, f"Timed out after 2s connecting to 127.0.0.1:{port}")


def test_redaction_helpers() -> None:
    assert redact_url("postgresql://u:p%40ss@h:5432/d") == "postgresql://u:***@h:5432/d"
    target = Target.from_url("postgres://u:s3cret@h:6000/d?sslmode=require")
    assert target.display() == "postgresql://u:***@h:6000/d"
    assert "s3cret" not in repr(target)
    assert target.scrub("password s3cret leaked") == "password *** leaked"


def test_malformed_url_is_a_config_error(project: Path, cli: Run) -> None:
    result = status_with(project, cli, "mysql://u:pw@h/d")
    assert_one_line_error(
        result, "dbops.yaml:3: environments.development.url: not a PostgreSQL URL: mysql://u:***@h/d", code=2
    )
