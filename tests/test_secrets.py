"""No password anywhere: the password probe, the passfile of a killed dbops, the seed's test
accounts, and the redaction rules on raw text.

The probe runs every task with a password in a good URL, in an env_file (as DATABASE_URL and as
PGPASSWORD), in a malformed URL, in a conninfo string, and on failure paths (refused, wrong
password, missing database), on a server where the role's password is needed (scram), and greps
stdout, stderr, the JSON, the operation log, the manifests and every file of the project, the
temporary folder, and the command lines and environments of every process while it runs.
"""

from __future__ import annotations

import json
import os
import pty
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from psycopg import sql

from conftest import REPO, Cli, Run, dbops_bin, write_config
from dbops import redact
from dbops.postgres import tools
from dbops.postgres.connection import Target, redact_url
from dbops.postgres.embedded import EmbeddedServer
from dbops.postgres.reusable import name_for

SECRET = "S3cr3t-Pr0be!Value"
ENCODED = quote(SECRET, safe="")  # S3cr3t-Pr0be%21Value
FORMS = (SECRET, ENCODED)


def leaks(text: str) -> bool:
    return any(form in text for form in FORMS)


@dataclass(frozen=True)
class ProbeServer:
    admin: str  # a superuser URL
    role: str  # a role that needs its password (scram on the embedded server)
    host: str  # a socket folder, or host:port
    embedded: bool

    def url(self, dbname: str, password: str = ENCODED) -> str:
        if self.host.startswith("/"):
            return f"postgresql://{self.role}:{password}@/{dbname}?host={self.host}"
        return f"postgresql://{self.role}:{password}@{self.host}/{dbname}"


@pytest.fixture(scope="module")
def probe_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProbeServer]:
    """The embedded server with a scram role (its password is needed), or the system server of
    DBOPS_TEST_DATABASE_URL with a role that has a password."""
    role = f"leak_probe_{uuid.uuid4().hex[:8]}"
    configured = os.environ.get("DBOPS_TEST_DATABASE_URL")
    server = None
    if configured:
        admin = configured
        params = psycopg.conninfo.conninfo_to_dict(configured)
        host = str(params.get("host") or "127.0.0.1")
        host = host if host.startswith("/") else f"{host}:{params.get('port') or 5432}"
    else:
        server = EmbeddedServer(tmp_path_factory.mktemp("scram") / "pg", durable=False)
        state = server.ensure_running()
        host = str(state.socket_dir)
        admin = f"postgresql://postgres@/postgres?host={host}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(SECRET)
            )
        )
        hba = Path(str(conn.execute("SHOW hba_file").fetchone()[0]))  # type: ignore[index]
    if server is not None:
        hba.write_text(f"local all {role} scram-sha-256\n" + hba.read_text())
        server.stop()
        server.ensure_running()
    try:
        yield ProbeServer(admin, role, host, server is not None)
        with psycopg.connect(admin, autocommit=True) as conn:
            kept = sql.Identifier(name_for(role))  # validate's reusable scratch database, the role's own
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(kept))
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
    finally:
        if server is not None:
            server.stop()


@pytest.fixture
def probe_db(probe_server: ProbeServer) -> Iterator[str]:
    """A database of the probe role, with enough rows that pg_dump runs for a while."""
    name = f"leak_db_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(probe_server.admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(probe_server.role)
            )
        )
    with psycopg.connect(probe_server.url(name)) as conn:  # the password is needed: it works
        conn.execute(
            "CREATE TABLE bulk_probe AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 100000) g"
        )
    yield name
    with psycopg.connect(probe_server.admin, autocommit=True) as conn:
        kept = conn.execute(
            "SELECT datname FROM pg_database WHERE starts_with(datname, %s)", (f"{name}__",)
        ).fetchall()
        for other in [name, *(row[0] for row in kept)]:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(other)))


@dataclass
class ProcSampler:
    """Reads /proc/*/cmdline and /proc/*/environ of every process, over and over, on a thread."""

    seen: set[str] = field(default_factory=set)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            for entry in os.scandir("/proc"):
                if not entry.name.isdigit():
                    continue
                for kind in ("cmdline", "environ"):
                    try:
                        raw = Path(entry.path, kind).read_bytes()
                    except OSError:
                        continue
                    if raw:
                        self.seen.add(kind + ": " + raw.replace(b"\0", b" ").decode("utf-8", "replace"))
            time.sleep(0.002)

    def children(self, program: str) -> list[str]:
        return [s for s in self.seen if s.startswith("cmdline: ") and f"/{program} " in s]


@pytest.fixture
def sampler() -> Iterator[ProcSampler]:
    found = ProcSampler()
    thread = threading.Thread(target=found.run, daemon=True)
    thread.start()
    yield found
    found.stop.set()
    thread.join(timeout=10)


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The temporary folder dbops and its children use, to look for what they leave in it."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


ENV_NAMES = ("development", "envfile", "interp", "badurl", "conninfo", "badenv", "refused", "wrongpw", "nodb")
FAILING = ENV_NAMES[3:]


def probe_project(root: Path, server: ProbeServer, dbname: str) -> Path:
    shutil.copytree(REPO / "migrations", root / "migrations")
    shutil.copytree(REPO / "seeds", root / "seeds")
    (root / "probe.env").write_text(f"DATABASE_URL={server.url(dbname)}\nPGPASSWORD={SECRET}\n")
    (root / "bad.env").write_text(f"DATABASE_URL=postgres//{server.role}:{SECRET}@127.0.0.1/leak_db\n")
    good_host = server.url(dbname, "${PGPASSWORD}")
    write_config(
        root,
        f"""\
project: probe
environments:
  development:
    url: "{server.url(dbname)}"
  envfile:
    env_file: probe.env
  interp:
    env_file: probe.env
    url: "{good_host}"
  badurl:
    url: "postgres//{server.role}:{SECRET}@127.0.0.1/leak_db"
  conninfo:
    url: "host=127.0.0.1 user={server.role} password={SECRET} dbname=leak_db"
  badenv:
    env_file: bad.env
  refused:
    url: "postgresql://{server.role}:{ENCODED}@127.0.0.1:{_free_port()}/leak_db"
  wrongpw:
    url: "{server.url(dbname, "wrong-" + ENCODED)}"
  nodb:
    url: "{server.url("leak_missing_db")}"
pipelines:
  deploy:
    description: "back up, migrate, validate"
    steps: [backup, migrate, validate]
""",
    )
    return root


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tasks(project: Path) -> list[list[str]]:
    first = sorted((project / "migrations").glob("*.sql"))[0].name.removesuffix(".sql")
    return [
        ["status"],
        ["migrate"],
        ["migrate-rollback", "--force"],
        ["migrate"],
        ["migrate-create", "probe_thing"],
        ["migrate-baseline", first],
        ["migrate-repair"],
        ["seed"],
        ["validate"],
        ["lint"],
        ["backup"],
        ["restore", "LATEST", "--force"],
        ["backup-list"],
        ["backup-cleanup"],
        ["server"],
        ["deploy"],
        ["reset", "--force"],
    ]


def _latest_backup(project: Path) -> str:
    backups = sorted((project / "backups" / "db").glob("*.sql.gz"), key=lambda p: p.stat().st_mtime)
    return str(backups[-1]) if backups else "backups/db/none.sql.gz"


def test_the_password_probe_finds_no_password_anywhere(
    tmp_path: Path,
    cli: Run,
    monkeypatch: pytest.MonkeyPatch,
    probe_server: ProbeServer,
    probe_db: str,
    sampler: ProcSampler,
    private_tmp: Path,
) -> None:
    project = probe_project(tmp_path / "project", probe_server, probe_db)
    monkeypatch.chdir(project)
    for name in ("DBOPS_ENV", "DBOPS_CONFIG", "TF_BUILD", "GITHUB_ACTIONS", "DATABASE_URL", "PGPASSWORD"):
        monkeypatch.delenv(name, raising=False)
    found: list[str] = []
    codes: dict[tuple[str, str], int] = {}
    outputs: dict[tuple[str, str], str] = {}
    errors: dict[str, str] = {}
    for number, env in enumerate(ENV_NAMES):
        for index, args in enumerate(_tasks(project)):
            both = env == "development"
            modes = [[], ["--json"]] if both else [["--json"] if (number + index) % 2 else []]
            for mode in modes:
                before = set((project / "migrations").iterdir())
                result: Cli = cli(
                    *[_latest_backup(project) if a == "LATEST" else a for a in args], f"--env={env}", *mode
                )
                for created in set((project / "migrations").iterdir()) - before:
                    created.unlink()  # migrate-create's template: not a migration to apply
                codes[(env, args[0])] = result.code
                outputs[(env, args[0])] = result.text
                if leaks(result.text):
                    found.append(f"{env} {' '.join(args + mode)}: {result.text.strip()[:300]}")
                if result.code and env in FAILING and not mode:
                    errors[env] = result.err
    monkeypatch.undo()  # TMPDIR back, before looking at what is left in it
    # the probe means something: the good environments needed the password and got through ...
    for env in ("development", "envfile", "interp"):
        for task in ("status", "seed", "backup", "restore", "deploy", "reset"):
            assert codes[(env, task)] == 0, (env, task, outputs[(env, task)])
    # ... and the bad ones failed, saying what was wrong without the password
    needs_password = probe_server.embedded  # the system server may trust 127.0.0.1
    assert all(codes[(env, "status")] != 0 for env in FAILING if env != "wrongpw" or needs_password)
    assert "postgres//" + probe_server.role + ":***@127.0.0.1/leak_db" in errors["badurl"]
    assert "password=***" in errors["conninfo"]
    assert "Authentication failed" in errors.get("wrongpw", "") or not needs_password
    assert found == [], "\n".join(found)
    for path in project.rglob("*"):
        if path.is_file() and path.name not in ("dbops.yaml", "probe.env", "bad.env"):
            assert not leaks(path.read_bytes().decode("utf-8", "replace")), path
    assert (project / ".dbops" / "log" / "operations.jsonl").stat().st_size > 0
    assert list((project / "backups" / "db").glob("*.json")), "no manifest to check"
    left = list(private_tmp.rglob("*"))
    assert not [p for p in left if p.name.startswith("dbops-pgpass-")], left
    assert not [p for p in left if p.is_file() and leaks(p.read_bytes().decode("utf-8", "replace"))]
    # every process's argv and environment while the children ran
    assert sampler.children("pg_dump") and sampler.children("psql"), "no child was sampled"
    assert [s for s in sampler.seen if "PGPASSFILE=/dev/fd/" in s], "no child's environment was sampled"
    assert [s for s in sampler.seen if leaks(s)] == []


def test_a_dbops_killed_mid_pg_dump_leaves_no_password_behind(
    tmp_path: Path, probe_server: ProbeServer, probe_db: str
) -> None:
    """kill -9 of a real dbops while its pg_dump runs: the passfile was a memory file, gone
    with the processes; nothing in the temporary folder."""
    project = probe_project(tmp_path / "project", probe_server, probe_db)
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("DBOPS_ENV", "DBOPS_CONFIG", "PGPASSWORD")}
    env.update(TMPDIR=str(temp), PYTHONPATH=os.pathsep.join(sys.path))
    dbops = subprocess.Popen(
        [dbops_bin(), "backup", "--format=plain", "--compress=gzip:9"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        pg_dump = _wait_for_child(dbops.pid, "pg_dump")
        environ = Path(f"/proc/{pg_dump}/environ").read_bytes().decode().split("\0")
        passfile = next(v for v in environ if v.startswith("PGPASSFILE=")).removeprefix("PGPASSFILE=")
        assert re.fullmatch(r"/dev/fd/\d+", passfile), passfile
        descriptor = Path(f"/proc/{pg_dump}/fd/{passfile.removeprefix('/dev/fd/')}")
        assert os.readlink(descriptor).startswith("/memfd:")  # in memory, not on disk
        assert descriptor.read_text().startswith("*:*:*:*:")  # and it is what pg_dump reads
        assert list(temp.iterdir()) == []
        os.kill(dbops.pid, signal.SIGKILL)
        dbops.wait(timeout=30)
        _wait_gone(pg_dump)
    finally:
        if dbops.poll() is None:
            dbops.kill()
            dbops.wait()
    out = dbops.stdout.read() + dbops.stderr.read()  # type: ignore[union-attr]
    assert not leaks(out.decode("utf-8", "replace"))
    assert [p for p in temp.rglob("*") if p.name.startswith("dbops-pgpass")] == []
    for path in [*temp.rglob("*"), *(project / "backups").rglob("*")]:
        if path.is_file():
            assert not leaks(path.read_bytes().decode("utf-8", "replace")), path


def _wait_for_child(parent: int, program: str, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                stat = Path(entry.path, "stat").read_text()
                cmdline = Path(entry.path, "cmdline").read_bytes().split(b"\0")[0].decode()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == parent and cmdline.endswith("/" + program):
                return int(entry.name)
        time.sleep(0.005)
    raise AssertionError(f"no {program} child of {parent} within {timeout}s")


def _wait_gone(pid: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return
        if state == "Z":
            return  # dead, waiting for init to reap it
        time.sleep(0.02)
    raise AssertionError(f"pg_dump {pid} outlived the dbops that was killed")


def test_without_memfd_the_passfile_folders_of_dead_processes_are_swept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.delattr(os, "memfd_create")
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f"dbops-pgpass-{dead.pid}-abc"
    stale.mkdir(mode=0o700)
    (stale / "pgpass").write_text(f"*:*:*:*:{SECRET}\n")
    alive = tmp_path / f"dbops-pgpass-{os.getppid()}-def"  # a live process's: left alone
    alive.mkdir(mode=0o700)
    target = Target.from_url(f"postgresql://u:{ENCODED}@h/d")
    with tools.child_env(target) as env:
        passfile = Path(env["PGPASSFILE"])
        assert passfile.parent.name.startswith(f"dbops-pgpass-{os.getpid()}-")
        assert oct(passfile.stat().st_mode & 0o777) == "0o600"
        assert not stale.exists() and alive.exists()
    assert not passfile.exists() and not passfile.parent.exists()


# --------------------------------------------------------------------------- seed's test accounts


@pytest.fixture
def seeded_project(project: Path, cli: Run) -> Path:
    shutil.copytree(REPO / "seeds", project / "seeds")
    assert cli("migrate").code == 0
    return project


@pytest.mark.parametrize("ci", [None, "TF_BUILD", "GITHUB_ACTIONS"])
def test_seed_passwords_stay_out_of_plain_output_json_and_ci_logs(
    seeded_project: Path, cli: Run, monkeypatch: pytest.MonkeyPatch, ci: str | None
) -> None:
    if ci:
        monkeypatch.setenv(ci, "True" if ci == "TF_BUILD" else "true")
    plain = cli("seed")
    assert plain.code == 0, plain.text
    assert "- admin@exfabrica.com" in plain.out.splitlines()
    assert "Test Accounts (passwords are shown on a terminal only):" in plain.out
    document = cli("seed", "--json")
    assert json.loads(document.out)["report"]["accounts"][0] == {"login": "admin@exfabrica.com"}
    for text in (plain.text, document.text):
        assert "Admin123!" not in text and "User123!" not in text


@pytest.mark.parametrize(
    ("ci", "mask"),
    [
        (None, None),
        ("TF_BUILD", "##vso[task.setvariable variable=DBOPS_SECRET_1;issecret=true]Admin123!"),
        ("GITHUB_ACTIONS", "::add-mask::Admin123!"),
    ],
)
def test_seed_passwords_on_a_terminal_as_in_the_spec_masked_first_in_ci(
    seeded_project: Path, ci: str | None, mask: str | None
) -> None:
    """A real terminal (a pty) for a real dbops: the spec's display; in CI the masking command
    comes before the value."""
    env = {k: v for k, v in os.environ.items() if k not in ("TF_BUILD", "GITHUB_ACTIONS")}
    env.update(PYTHONPATH=os.pathsep.join(sys.path), NO_COLOR="1")
    if ci:
        env[ci] = "True" if ci == "TF_BUILD" else "true"
    main, child = pty.openpty()
    process = subprocess.Popen([dbops_bin(), "seed"], cwd=seeded_project, env=env, stdout=child, stderr=child)
    os.close(child)
    chunks = []
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main)
    assert process.wait(timeout=60) == 0
    lines = b"".join(chunks).decode().replace("\r\n", "\n").splitlines()
    assert "Test Accounts:" in lines and "- admin@exfabrica.com / Admin123!" in lines
    if mask is not None:
        assert lines.index(mask) < lines.index("- admin@exfabrica.com / Admin123!")
    else:
        assert not [line for line in lines if line.startswith(("##vso", "::add-mask"))]


# --------------------------------------------------------------------------- redaction rules


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        (f"postgres//leak_probe:{SECRET}@127.0.0.1/leak_db", "postgres//leak_probe:***@127.0.0.1/leak_db"),
        (f"host=h user=u password={SECRET} dbname=d", "host=h user=u password=*** dbname=d"),
        (f"host=h password='a b\\' {SECRET}' dbname=d", "host=h password=*** dbname=d"),
        (f"postgresql://u:my {SECRET}@h/d", "postgresql://u:***@h/d"),
        (f"postgresql://u:{SECRET}@p@h/d", "postgresql://u:***@h/d"),
        (
            f"postgresql://u@h/d?sslmode=require&password={ENCODED}",
            "postgresql://u@h/d?sslmode=require&password=***",
        ),
        (f"PGPASSWORD={SECRET}", "PGPASSWORD=***"),
        ("postgresql://user:password@host:5432/database", "postgresql://user:***@host:5432/database"),
    ],
)
def test_connection_strings_are_redacted_whether_they_parse_or_not(raw: str, shown: str) -> None:
    assert redact_url(raw) == shown


def test_shape_rules_on_free_text_and_the_secrets_the_run_met() -> None:
    text = f"url: {{'password': '{SECRET}', 'host': 'h'}} and mysql://u:{ENCODED}@h/d"
    assert redact.redact(text) == "url: {'password': ***, 'host': 'h'} and mysql://u:***@h/d"
    # what hints and examples write where a password goes stays as it is
    hint = "Use postgresql://user:password@host:5432/database or url: postgresql://u:${PGPASSWORD}@h/d"
    assert redact.clean(hint) == hint
    redact.remember_variables({"APP_DB_PASSWORD": "an-env-file-secret", "NAME": "visible"})
    assert redact.clean("said an-env-file-secret and visible") == "said *** and visible"
    redact.remember("xy")  # too short to replace everywhere: the message stays readable
    assert redact.clean("xylophone") == "xylophone"
