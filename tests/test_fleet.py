"""Fleets: one command over many databases of one real server (dbops.fleet).

Each test makes its own databases (named dbops_f<random>_NNN) and drops them; the fleet finds
them with a discovery query on the server's maintenance database.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from conftest import REPO, Run, dbops_bin, url_for, write_config
from test_migrate import consistent, many_migrations

SAMPLE_IDS = sorted(
    p.name.removesuffix(".sql") for p in (REPO / "migrations").glob("*.sql") if ".rollback" not in p.name
)

MakeFleet = Callable[..., list[str]]


@pytest.fixture
def make_fleet(admin_url: str) -> Iterator[MakeFleet]:
    """make_fleet(count, prefix=None) -> the names of `count` new databases, dropped afterwards."""
    made: list[str] = []

    def make(count: int, prefix: str | None = None) -> list[str]:
        prefix = prefix or f"dbops_f{uuid.uuid4().hex[:8]}_"
        names = [f"{prefix}{i:03d}" for i in range(1, count + 1)]
        made.extend(names)
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda name: create(admin_url, name), names))
        return names

    yield make
    with ThreadPoolExecutor(max_workers=16) as pool:  # a server that checkpoints per drop shares them
        list(pool.map(lambda name: drop(admin_url, name), made))


def create(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def fleet_project(
    folder: Path, admin_url: str, prefix: str, *, rollout: str = "", extra: str = "", migrations: bool = True
) -> Path:
    if migrations:
        shutil.copytree(REPO / "migrations", folder / "migrations")
    else:
        (folder / "migrations").mkdir()
    write_config(
        folder,
        f"""\
project: fleet
environments:
  tenants:
    url: "{admin_url}"
{extra}    fleet:
      discover: SELECT datname FROM pg_database WHERE starts_with(datname, '{prefix}') ORDER BY 1
      jobs: 4
{rollout}""",
    )
    return folder


@pytest.fixture
def in_project(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], None]:
    def enter(folder: Path) -> None:
        monkeypatch.chdir(folder)
        for name in ("DBOPS_ENV", "DBOPS_CONFIG", "TF_BUILD", "GITHUB_ACTIONS", "DATABASE_URL"):
            monkeypatch.delenv(name, raising=False)

    return enter


def prefix_of(names: list[str]) -> str:
    return names[0].rsplit("_", 1)[0] + "_"


def applies(admin_url: str, name: str) -> list[str]:
    """The migrations yoyo's log says were applied to that database, once per application."""
    with psycopg.connect(url_for(admin_url, name), autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('_yoyo_log')").fetchone() == (None,):
            return []
        rows = conn.execute("SELECT migration_id FROM _yoyo_log WHERE operation = 'apply'").fetchall()
    return sorted(r[0] for r in rows)


def by_target(doc: dict) -> dict[str, dict]:  # type: ignore[type-arg]
    return {t["name"]: t for t in doc["report"]["targets"]}


def log_lines(project: Path) -> list[dict]:  # type: ignore[type-arg]
    path = project / ".dbops" / "log" / "operations.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def run_dbops(project: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBOPS_") and k != "DATABASE_URL"}
    return subprocess.Popen(
        [dbops_bin(), *args], cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


# ----------------------------------------------------------------------------- migrate over 50 databases


def test_fifty_databases_from_a_discovery_query_each_migrated_exactly_once(
    tmp_path: Path, admin_url: str, make_fleet: MakeFleet, cli: Run, in_project: Callable[[Path], None]
) -> None:
    names = make_fleet(50)
    project = fleet_project(tmp_path, admin_url, prefix_of(names))
    in_project(project)

    result = cli("migrate", "--env", "tenants", "--jobs", "8", "--json")

    assert result.code == 0, result.text
    doc = json.loads(result.out)
    targets = by_target(doc)
    assert sorted(targets) == names
    assert {t["state"] for t in targets.values()} == {"ok"}
    assert {t["summary"] for t in targets.values()} == {"applied 7 migration(s)"}
    assert doc["report"]["jobs"] == 8
    for name in names:
        assert applies(admin_url, name) == SAMPLE_IDS, name  # every migration, exactly once
    lines = [r for r in log_lines(project) if r["operation"] == "migrate"]
    assert sorted(r["target"] for r in lines) == names  # the operation log: one line per target
    assert len({r["fleet_run"] for r in lines}) == 1 and {r["outcome"] for r in lines} == {"ok"}

    again = cli("migrate", "--env", "tenants", "--jobs", "8")
    assert again.code == 0, again.text
    assert "ok             50" in again.out and "✓ Every target: up to date" in again.out


def test_two_overlapping_fleet_runs_apply_each_migration_once(
    tmp_path: Path, admin_url: str, make_fleet: MakeFleet
) -> None:
    names = make_fleet(12)
    project = fleet_project(tmp_path, admin_url, prefix_of(names))
    children = [run_dbops(project, "migrate", "--env", "tenants", "--jobs", "6", "--json") for _ in range(2)]
    docs = []
    for child in children:
        out, err = child.communicate(timeout=300)
        assert child.returncode == 0, out + err
        docs.append(json.loads(out))
    for name in names:
        assert applies(admin_url, name) == SAMPLE_IDS, name
        counts = [
            len([i for i in by_target(d)[name]["result"]["report"]["items"] if i["status"] == "applied"])
            for d in docs
        ]
        assert sum(counts) == 7, (name, counts)  # the two runs shared the work, never repeated it


# ----------------------------------------------------------------------------- failures, waves, retry


BREAKS_ON_DUPLICATES = {
    "001_codes_unique.sql": "CREATE UNIQUE INDEX legacy_code ON legacy (code);\n",
    "001_codes_unique.rollback.sql": "DROP INDEX legacy_code;\n",
    "002_notes.sql": "CREATE TABLE notes (id int);\n",
    "002_notes.rollback.sql": "DROP TABLE notes;\n",
}


def tenants_with_one_bad(admin_url: str, make_fleet: MakeFleet, count: int) -> tuple[list[str], str]:
    """`count` tenants with a legacy table of codes; the third one's codes hold a duplicate."""
    names = make_fleet(count)
    for name in names:
        with psycopg.connect(url_for(admin_url, name), autocommit=True) as conn:
            conn.execute("CREATE TABLE legacy (code text)")
            conn.execute("INSERT INTO legacy VALUES ('a'), ('b')")
    bad = names[2]
    with psycopg.connect(url_for(admin_url, bad), autocommit=True) as conn:
        conn.execute("INSERT INTO legacy VALUES ('a')")
    return names, bad


def breaking_project(folder: Path, admin_url: str, prefix: str, rollout: str = "") -> Path:
    project = fleet_project(folder, admin_url, prefix, rollout=rollout, migrations=False)
    for file, text in BREAKS_ON_DUPLICATES.items():
        (project / "migrations" / file).write_text(text)
    return project


def test_a_failing_target_is_reported_while_the_others_complete_then_retry_failed_reruns_only_it(
    tmp_path: Path, admin_url: str, make_fleet: MakeFleet, cli: Run, in_project: Callable[[Path], None]
) -> None:
    names, bad = tenants_with_one_bad(admin_url, make_fleet, 6)
    rollout = "      rollout:\n        - wave: all-at-once\n          on_error: continue\n"
    project = breaking_project(tmp_path, admin_url, prefix_of(names), rollout)
    in_project(project)

    failed = cli("migrate", "--env", "tenants")

    assert failed.code == 1, failed.text
    assert "ok             5" in failed.out and "failed         1" in failed.out
    assert f"✗ {bad}: " in failed.out and "could not create unique index" in failed.out
    assert "Error: 1 of 6 target(s) failed" in failed.err
    hint = "dbops migrate --env tenants --retry-failed"
    assert f"Hint: {hint} reruns only those" in failed.err
    for name in names:
        assert applies(admin_url, name) == ([] if name == bad else ["001_codes_unique", "002_notes"])

    with psycopg.connect(url_for(admin_url, bad), autocommit=True) as conn:  # the data is fixed
        conn.execute("DELETE FROM legacy WHERE ctid = (SELECT max(ctid) FROM legacy WHERE code = 'a')")
    retried = cli(*hint.split()[1:], "--json")

    assert retried.code == 0, retried.text
    doc = json.loads(retried.out)
    assert list(by_target(doc)) == [bad]  # only the one that failed
    assert doc["report"]["retried"] is True
    assert applies(admin_url, bad) == ["001_codes_unique", "002_notes"]
    nothing = cli(*hint.split()[1:])
    assert nothing.code == 0 and "Nothing to retry" in nothing.out


def test_a_canary_failure_stops_the_later_waves(
    tmp_path: Path, admin_url: str, make_fleet: MakeFleet, cli: Run, in_project: Callable[[Path], None]
) -> None:
    names, bad = tenants_with_one_bad(admin_url, make_fleet, 5)
    rollout = (
        "      rollout:\n"
        f"        - wave: canary\n          targets: [{bad}]\n          on_error: stop\n"
        "        - wave: rest\n          jobs: 8\n          on_error: continue\n"
    )
    project = breaking_project(tmp_path, admin_url, prefix_of(names), rollout)
    in_project(project)

    result = cli("migrate", "--env", "tenants", "--json")

    assert result.code == 1, result.text
    doc = json.loads(result.out)
    states = {name: t["state"] for name, t in by_target(doc).items()}
    assert states == {name: ("failed" if name == bad else "not started") for name in names}
    waves = {w["name"]: (w["state"], w["targets"], w["jobs"]) for w in doc["report"]["waves"]}
    # a wave's jobs never above --jobs (4): 4 sessions, 2 migrate targets at once
    assert waves == {"canary": ("stopped", 1, 1), "rest": ("not started", 4, 2)}
    assert "4 never started" in doc["error"]["message"]
    for name in names:
        assert applies(admin_url, name) == [], name
    text = cli("migrate", "--env", "tenants")
    rest = [n for n in names if n != bad]
    assert f"Never started (4): {', '.join(rest)}" in text.out
    logged = [r for r in log_lines(project) if r.get("fleet_run")]
    assert {r["target"]: r["outcome"] for r in logged[-5:]} == {n: states[n] for n in names}


# ----------------------------------------------------------------------------- shards


def test_shards_cover_every_target_exactly_once(
    tmp_path: Path, admin_url: str, make_fleet: MakeFleet, cli: Run, in_project: Callable[[Path], None]
) -> None:
    names = make_fleet(10)
    project = fleet_project(tmp_path, admin_url, prefix_of(names))
    in_project(project)
    for count in (1, 2, 3, 4):
        seen: list[str] = []
        for number in range(1, count + 1):
            result = cli("backup-list", "--env", "tenants", "--shard", f"{number}/{count}", "--json")
            assert result.code == 0, result.text
            doc = json.loads(result.out)
            assert doc["report"]["shard"] == f"{number}/{count}"
            seen += list(by_target(doc))
        assert sorted(seen) == names, count  # each once: no target in two slices, none left out
    bad = cli("status", "--env", "tenants", "--shard", "5/4")
    assert bad.code == 2 and "Error: --shard expects K/N with 1 <= K <= N, or auto, got '5/4'" in bad.err
    assert "Hint: e.g. --shard=1/4" in bad.err


@pytest.mark.parametrize(
    ("given", "variables", "slice_"),
    [
        ("auto", {"SYSTEM_JOBPOSITIONINPHASE": "2", "SYSTEM_TOTALJOBSINPHASE": "3"}, (2, 3)),
        ("auto/3", {"JOB_COMPLETION_INDEX": "0"}, (1, 3)),
        ("auto", {"JOB_COMPLETION_INDEX": "2", "DBOPS_SHARD_COUNT": "3"}, (3, 3)),
    ],
)
def test_shard_auto_takes_the_ci_jobs_slice(
    given: str, variables: dict[str, str], slice_: tuple[int, int]
) -> None:
    from dbops.fleet import shard

    assert shard.parse(given, variables) == slice_


@pytest.mark.parametrize(
    ("given", "variables", "error", "hint"),
    [
        (
            "auto",
            {},
            "--shard auto: this is not a parallel CI job",
            "Give the slice yourself, e.g. --shard 1/4",
        ),
        (
            "auto",
            {"JOB_COMPLETION_INDEX": "1"},
            "JOB_COMPLETION_INDEX gives this job's position but not",
            "auto/N",
        ),
        ("auto/2", {"JOB_COMPLETION_INDEX": "2"}, "make '3/2', not K/N", "Check the job's variables"),
        ("auto", {"SYSTEM_JOBPOSITIONINPHASE": "x", "SYSTEM_TOTALJOBSINPHASE": "2"}, "make 'x/2'", "Check"),
    ],
)
def test_shard_auto_outside_a_ci_job_is_refused(
    given: str, variables: dict[str, str], error: str, hint: str
) -> None:
    from dbops.errors import UsageError
    from dbops.fleet import shard

    with pytest.raises(UsageError) as caught:
        shard.parse(given, variables)
    assert error in caught.value.message and hint in (caught.value.hint or "")


def test_shard_auto_on_the_command_line(
    tmp_path: Path, admin_url: str, make_fleet: MakeFleet, in_project: Callable[[Path], None]
) -> None:
    """--shard auto outside a CI job: refused, and the hint's --shard 1/2 runs."""
    names = make_fleet(4)
    project = fleet_project(tmp_path, admin_url, prefix_of(names))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBOPS_") and k != "DATABASE_URL"}
    for name in ("JOB_COMPLETION_INDEX", "SYSTEM_JOBPOSITIONINPHASE", "SYSTEM_TOTALJOBSINPHASE"):
        env.pop(name, None)

    def run(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        cmd = [dbops_bin(), "status", "--env", "tenants", *args, "--json"]
        return subprocess.run(cmd, cwd=project, env={**env, **extra}, capture_output=True, text=True)

    refused = run("--shard", "auto")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "--shard auto: this is not a parallel CI job" in refused.stdout + refused.stderr
    first = run("--shard", "1/2")
    assert first.returncode == 0, first.stdout + first.stderr
    auto = run("--shard", "auto/2", JOB_COMPLETION_INDEX="0")
    assert auto.returncode == 0, auto.stdout + auto.stderr
    assert json.loads(auto.stdout)["report"]["shard"] == "1/2"
    assert list(by_target(json.loads(auto.stdout))) == list(by_target(json.loads(first.stdout)))


def test_a_shard_keeps_its_targets_when_the_fleet_grows() -> None:
    from dbops.fleet import shard

    before = [f"tenant_{i:04d}" for i in range(300)]
    after = [*before, *(f"tenant_new_{i}" for i in range(60))]
    for number in (1, 2, 3):
        kept = shard.pick(before, (number, 3))
        assert set(kept) == set(shard.pick(after, (number, 3))) & set(before)
        assert 70 <= len(kept) <= 130  # roughly a third


# ----------------------------------------------------------------------------- status, selection


def test_status_on_a_fleet_names_the_lagging_targets(
    tmp_path: Path, admin_url: str, make_fleet: MakeFleet, cli: Run, in_project: Callable[[Path], None]
) -> None:
    names = make_fleet(4)
    project = fleet_project(tmp_path, admin_url, prefix_of(names))
    in_project(project)
    behind = names[1:3]
    assert cli("migrate", "--env", "tenants", "--targets", f"{names[0]},{names[3]}").code == 0
    partial = cli("migrate", "--env", "tenants", "--targets", ",".join(behind), "--to", SAMPLE_IDS[4])
    assert partial.code == 0, partial.text

    result = cli("status", "--env", "tenants")

    assert result.code == 0, result.text
    assert "Needs attention (2):" in result.out
    for name in behind:
        assert f"⚠ {name}: behind: 2 pending, from {SAMPLE_IDS[5]}" in result.out
    for name in (names[0], names[3]):
        assert f"⚠ {name}" not in result.out
    gate = cli("status", "--env", "tenants", "--check", "--json")
    assert gate.code == 1
    states = {n: t["state"] for n, t in by_target(json.loads(gate.out)).items()}
    assert states == {n: ("failed" if n in behind else "ok") for n in names}


def test_targets_selects_by_name_and_pattern_and_refuses_what_matches_nothing(
    tmp_path: Path, admin_url: str, make_fleet: MakeFleet, cli: Run, in_project: Callable[[Path], None]
) -> None:
    names = make_fleet(5)
    prefix = prefix_of(names)
    project = fleet_project(tmp_path, admin_url, prefix)
    in_project(project)
    result = cli("status", "--env", "tenants", "--targets", f"{names[0]},{prefix}00[45]", "--json")
    assert result.code == 0, result.text
    assert list(by_target(json.loads(result.out))) == [names[0], names[3], names[4]]
    unknown = cli("status", "--env", "tenants", "--targets", f"{prefix}999")
    assert unknown.code == 2
    assert f"Error: --targets: '{prefix}999' matches no target of the fleet" in unknown.err
    assert "Hint:" in unknown.err


# ----------------------------------------------------------------------------- refusals


def test_what_makes_no_sense_on_a_fleet_is_refused(
    tmp_path: Path, admin_url: str, make_fleet: MakeFleet, cli: Run, in_project: Callable[[Path], None]
) -> None:
    names = make_fleet(2)
    project = fleet_project(tmp_path, admin_url, prefix_of(names))
    with (project / "dbops.yaml").open("a") as config:
        config.write(f'  single:\n    url: "{url_for(admin_url, names[0])}"\n')
    in_project(project)
    for args in (["restore", "latest", "--force"], ["migrate-baseline", SAMPLE_IDS[0]], ["reset", "--force"]):
        result = cli(*args, "--env", "tenants")
        assert result.code == 2, (args, result.text)
        assert f"Error: {args[0]} runs on one database; tenants is a fleet of many" in result.err
        assert "Hint:" in result.err
    flags = cli("migrate", "--env", "single", "--jobs", "4")
    assert flags.code == 2
    assert "Error: --jobs: single is not a fleet (it names one database)" in flags.err
    for name in names:
        assert applies(admin_url, name) == []


def test_a_confirmation_on_a_fleet_needs_force(
    tmp_path: Path, admin_url: str, make_fleet: MakeFleet, cli: Run, in_project: Callable[[Path], None]
) -> None:
    names = make_fleet(3)
    project = fleet_project(tmp_path, admin_url, prefix_of(names), extra="    protected: true\n")
    in_project(project)
    assert cli("migrate", "--env", "tenants").code == 0
    refused = cli("migrate-rollback", "--env", "tenants")
    assert refused.code == 3, refused.text
    assert "Error: Rollback on the fleet tenants needs confirmation" in refused.err
    assert "Hint: Pass --force if you mean it" in refused.err
    for name in names:
        assert len(applies(admin_url, name)) == 7
    # protected: rollback takes a backup first, which needs a pg_dump for this server; the
    # dry run shows the per-target plan without one
    planned = cli("migrate-rollback", "--env", "tenants", "--force", "--dry-run", "--json")
    assert planned.code == 0, planned.text
    summaries = {t["summary"] for t in by_target(json.loads(planned.out)).values()}
    assert summaries == {"would roll back 1 migration(s)"}


# ----------------------------------------------------------------------------- pipelines, variables


def test_a_pipeline_runs_per_target_with_its_undo_and_variables(
    tmp_path: Path, admin_url: str, make_fleet: MakeFleet, cli: Run, in_project: Callable[[Path], None]
) -> None:
    """deploy (migrate, then seed) on each target, the seed template filled with the target's
    name and the variables of the discovery query; where the seed fails, that target's
    migrations are rolled back, and only there."""
    names = make_fleet(3)
    prefix = prefix_of(names)
    project = fleet_project(tmp_path, admin_url, prefix)
    text = (project / "dbops.yaml").read_text()
    query = (
        f"SELECT datname AS name, CASE WHEN datname = '{names[2]}' THEN 0 ELSE 1 END AS divisor"
        f" FROM pg_database WHERE starts_with(datname, '{prefix}') ORDER BY 1"
    )
    text = text.replace(text.split("discover: ")[1].split("\n")[0], query)
    (project / "dbops.yaml").write_text(text + "pipelines:\n  deploy: [migrate, seed]\n")
    (project / "seeds").mkdir()
    (project / "seeds" / "01_org.sql").write_text(
        "INSERT INTO organizations (name, slug) VALUES ({{ target | literal }}, 'org-' || 1 / {{ divisor }});\n"
    )
    in_project(project)

    result = cli("deploy", "--env", "tenants", "--json")

    assert result.code == 1, result.text
    targets = by_target(json.loads(result.out))
    assert {n: t["state"] for n, t in targets.items()} == {names[0]: "ok", names[1]: "ok", names[2]: "failed"}
    assert "division by zero" in targets[names[2]]["summary"]
    undos = targets[names[2]]["result"]["undos"]
    assert [(u["step"], u["ok"]) for u in undos] == [("migrate", True)]
    for name in names:
        with psycopg.connect(url_for(admin_url, name), autocommit=True) as conn:
            has_table = conn.execute("SELECT to_regclass('organizations')").fetchone() != (None,)
            assert has_table == (name != names[2]), name
            if has_table:
                assert conn.execute("SELECT name FROM organizations").fetchall() == [(name,)]


# ----------------------------------------------------------------------------- the connection budget


def test_jobs_is_a_budget_of_sessions_per_server(
    tmp_path: Path, admin_url: str, make_fleet: MakeFleet, cli: Run, in_project: Callable[[Path], None]
) -> None:
    """--jobs N: never more than N sessions of dbops on the server at once, counted by the
    server itself (pg_stat_activity, by the application_name dbops.yaml gives them); a budget
    that cannot hold one target's sessions is refused before anything starts."""
    names = make_fleet(12)
    app = f"dbops_budget_{uuid.uuid4().hex[:8]}"
    project = fleet_project(
        tmp_path, admin_url, prefix_of(names), extra=f"    application_name: {app}\n", migrations=False
    )
    many_migrations(project / "migrations", 6)
    in_project(project)

    refused = cli("migrate", "--env", "tenants", "--jobs", "1")
    assert refused.code == 2, refused.text
    assert "Error: --jobs 1: a target of migrate holds up to 2 sessions at once" in refused.err
    assert "Hint: Give --jobs 2 or more" in refused.err
    assert applies(admin_url, names[0]) == []  # nothing started

    seen: list[int] = []
    done = threading.Event()

    def sample() -> None:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            while not done.is_set():
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (app,)
                ).fetchone()
                assert row is not None
                seen.append(row[0])
                time.sleep(0.002)

    for jobs in ("3", "4"):  # 3: one target at a time (two sessions each); 4: two at once
        for name in names:
            drop(admin_url, name)
            create(admin_url, name)
        seen.clear()
        done.clear()
        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            result = cli("migrate", "--env", "tenants", "--jobs", jobs)
        finally:
            done.set()
            sampler.join()
        assert result.code == 0, result.text
        assert f"up to {jobs} sessions per server" in result.out
        assert max(seen) <= int(jobs), (jobs, max(seen))
        assert max(seen) >= 2, seen  # the sampler saw the run's sessions
        ids = [f"{i:03d}_t{i}" for i in range(1, 7)]
        for name in names:
            assert applies(admin_url, name) == ids, name


# ----------------------------------------------------------------------------- kill -9


def test_kill_9_of_a_fleet_run_leaves_each_target_whole(
    tmp_path: Path, admin_url: str, make_fleet: MakeFleet
) -> None:
    """SIGKILL of the fleet process while several targets are migrating: on every target each
    migration is applied and recorded, or neither; the next run completes them all."""
    count = 12
    names = make_fleet(6)
    project = fleet_project(tmp_path, admin_url, prefix_of(names), migrations=False)
    many_migrations(project / "migrations", count)
    urls = [url_for(admin_url, name) for name in names]

    def progress() -> list[int]:
        done = []
        for url in urls:
            with psycopg.connect(url, autocommit=True) as conn:
                done.append(consistent(conn, count))
        return done

    child = run_dbops(project, "migrate", "--env", "tenants", "--jobs", "3")
    deadline = time.monotonic() + 120
    while sum(1 for n in progress() if n > 0) < 2 and child.poll() is None:  # two targets part-way
        assert time.monotonic() < deadline
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    killed_out, killed_err = child.communicate()
    assert child.returncode == -signal.SIGKILL, killed_out + killed_err
    after = progress()  # consistent() asserts each target whole
    assert any(n < count for n in after), after  # the kill came before the end

    final = run_dbops(project, "migrate", "--env", "tenants", "--jobs", "3")
    out, err = final.communicate(timeout=300)
    assert final.returncode == 0, f"the rerun failed:\n{out}{err}\nthe killed run had written:\n{killed_err}"
    assert progress() == [count] * len(names)


def test_backup_counts_pg_dumps_sessions_in_the_budget(
    tmp_path: Path, admin_url: str, make_fleet: MakeFleet, cli: Run, in_project: Callable[[Path], None]
) -> None:
    """backup's --jobs is pg_dump's: its K workers count against the fleet's jobs: (4), beside
    dbops' own session and pg_dump's leader."""
    names = make_fleet(2)
    project = fleet_project(tmp_path, admin_url, prefix_of(names))
    in_project(project)
    refused = cli("backup", "--env", "tenants", "--format", "directory", "--jobs", "3")
    assert refused.code == 2, refused.text
    assert "Error: jobs: 4: a target of backup holds up to 5 sessions at once" in refused.err
    assert (
        "Hint: Set jobs: 5 or more in the fleet of tenants in dbops.yaml, or give pg_dump fewer --jobs"
        in (refused.err)
    )
    result = cli("backup", "--env", "tenants", "--format", "directory", "--jobs", "2")
    assert result.code == 0, result.text
    assert "ok             2" in result.out


def test_a_rerun_waits_for_the_session_of_a_killed_run_to_end(
    tmp_path: Path, admin_url: str, make_fleet: MakeFleet, cli: Run, in_project: Callable[[Path], None]
) -> None:
    """After kill -9, the killed run's own session can outlive it, still running what it had
    sent (a migration and its COMMIT, in one pipeline). Here a session holds what that one
    holds (the work lock): migrate waits for it up to lock_wait, and says who it is; once
    that session ends, migrate runs."""
    from dbops.postgres.locks import WORK_LOCK

    names = make_fleet(1)
    project = fleet_project(tmp_path, admin_url, prefix_of(names), extra="    lock_wait: 1s\n")
    in_project(project)
    with psycopg.connect(url_for(admin_url, names[0]), autocommit=True, application_name="killed") as orphan:
        orphan.execute("SELECT pg_advisory_lock(%s)", (WORK_LOCK,))
        pid = orphan.info.backend_pid
        busy = cli("migrate", "--env", "tenants")
        assert busy.code == 1, busy.text
        assert (
            f"A session of an earlier migration run on {names[0]} is still running: pid {pid} (killed)"
            in (busy.out)
        )
        assert applies(admin_url, names[0]) == []
    result = cli("migrate", "--env", "tenants")
    assert result.code == 0, result.text
    assert applies(admin_url, names[0]) == SAMPLE_IDS


# ----------------------------------------------------------------------------- the examples


def test_the_ci_examples_cover_the_fleet_once(tmp_path: Path, admin_url: str, make_fleet: MakeFleet) -> None:
    """The command lines of examples/ (Azure DevOps parallel jobs, Kubernetes Indexed Job), run
    as their N jobs would run them: together they migrate every tenant exactly once."""
    import yaml

    names = make_fleet(9)
    project = fleet_project(tmp_path, admin_url, prefix_of(names))
    text = (project / "dbops.yaml").read_text().replace(f'url: "{admin_url}"', "url: ${TENANTS_SERVER_URL}")
    (project / "dbops.yaml").write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBOPS_") and k != "DATABASE_URL"}
    env.update(TENANTS_SERVER_URL=admin_url, PATH=f"{Path(dbops_bin()).parent}{os.pathsep}{env['PATH']}")

    azure = yaml.safe_load((REPO / "examples" / "azure-pipelines-fleet.yml").read_text())
    job = azure["jobs"][0]
    count = job["strategy"]["parallel"]
    script = next(s["script"] for s in job["steps"] if "--shard" in s.get("script", ""))
    pod = yaml.safe_load((REPO / "examples" / "k8s-fleet-migrate.yaml").read_text())["spec"]
    assert pod["completionMode"] == "Indexed" and pod["completions"] == count
    container = pod["template"]["spec"]["containers"][0]

    assert "--shard auto" in script
    for position in range(1, count + 1):  # Azure: System.JobPositionInPhase is 1..N, in the env too
        line = script.replace("$(System.JobPositionInPhase)", str(position))
        azure_env = {**env, "SYSTEM_JOBPOSITIONINPHASE": str(position), "SYSTEM_TOTALJOBSINPHASE": str(count)}
        done = subprocess.run(
            ["bash", "-c", line], cwd=project, env=azure_env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stdout + done.stderr
    for name in names:
        assert applies(admin_url, name) == SAMPLE_IDS, name
    reports = [json.loads((project / f"fleet-{k}.json").read_text()) for k in range(1, count + 1)]
    assert sorted(n for r in reports for n in by_target(r)) == names
    assert [r["report"]["shard"] for r in reports] == [f"{k}/{count}" for k in range(1, count + 1)]

    ran: list[str] = []
    for index in range(count):  # Kubernetes: JOB_COMPLETION_INDEX is 0..N-1
        args = [*container["command"], *container["args"]]
        args[-1] = args[-1].replace("dbops migrate", "dbops status") + " --json"
        done = subprocess.run(
            args, cwd=project, env={**env, "JOB_COMPLETION_INDEX": str(index)}, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stdout + done.stderr
        ran += list(by_target(json.loads(done.stdout)))
    assert sorted(ran) == names


def test_validate_on_a_fleet_shows_the_drift_of_each_target(
    tmp_path: Path, admin_url: str, make_fleet: MakeFleet, cli: Run, in_project: Callable[[Path], None]
) -> None:
    names = make_fleet(3)
    project = fleet_project(tmp_path, admin_url, prefix_of(names))
    in_project(project)
    assert cli("migrate", "--env", "tenants").code == 0
    with psycopg.connect(url_for(admin_url, names[1]), autocommit=True) as conn:
        conn.execute("ALTER TABLE users DROP COLUMN last_name")

    result = cli("validate", "--env", "tenants", "--json")

    targets = by_target(json.loads(result.out))
    drifted = targets[names[1]]
    assert "last_name" in drifted["summary"] and drifted["summary"].startswith("drift: ")
    assert any("last_name" in a for a in drifted["attention"])
    for name in (names[0], names[2]):
        assert targets[name]["state"] == "ok" and targets[name]["attention"] == []
    assert result.code == (1 if drifted["state"] == "failed" else 0)
    text = cli("validate", "--env", "tenants")
    assert f"{names[1]}: drift: " in text.out


def test_sigterm_starts_no_further_target_and_retry_failed_runs_the_rest(
    tmp_path: Path, admin_url: str, make_fleet: MakeFleet
) -> None:
    names = make_fleet(8)
    project = fleet_project(tmp_path, admin_url, prefix_of(names), migrations=False)
    many_migrations(project / "migrations", 6)  # about 30 ms per target: time to stop part-way
    child = run_dbops(project, "migrate", "--env", "tenants", "--jobs", "2", "--json")
    deadline = time.monotonic() + 120
    while not applies(admin_url, names[1]) and child.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    child.send_signal(signal.SIGTERM)
    out, err = child.communicate(timeout=120)

    assert child.returncode == 130, out + err
    doc = json.loads(out)
    states = {n: t["state"] for n, t in by_target(doc).items()}
    started = [n for n in names if states[n] != "not started"]
    assert 2 <= len(started) < len(names) and all(states[n] == "ok" for n in started), states
    hint = "dbops migrate --env tenants --retry-failed"
    assert doc["error"]["message"].startswith("Interrupted: ") and hint in doc["error"]["hint"]

    rest = subprocess.run(
        [dbops_bin(), *hint.split()[1:], "--json"],
        cwd=project,
        env={k: v for k, v in os.environ.items() if not k.startswith("DBOPS_")},
        capture_output=True,
        text=True,
    )
    assert rest.returncode == 0, rest.stdout + rest.stderr
    assert list(by_target(json.loads(rest.stdout))) == [n for n in names if n not in started]
    for name in names:
        assert len(applies(admin_url, name)) == 6, name


def test_a_target_password_is_never_shown_or_logged(
    tmp_path: Path, cli: Run, in_project: Callable[[Path], None]
) -> None:
    secret = "Fl33tS3cretPassw0rd"
    (tmp_path / "migrations").mkdir()
    write_config(
        tmp_path,
        "environments:\n  tenants:\n    fleet:\n      targets:\n"
        f"        - postgresql://app:{secret}@127.0.0.1:1/tenant_a\n"
        f"        - {{name: tenant_b, url: 'postgresql://app:{secret}@127.0.0.1:1/b'}}\n",
    )
    in_project(tmp_path)
    for args in (["migrate", "--env", "tenants"], ["status", "--env", "tenants", "--json"]):
        result = cli(*args)
        assert result.code == 1, result.text
        assert secret not in result.text
        assert "tenant_a" in result.text and "tenant_b" in result.text
    assert secret not in (tmp_path / ".dbops" / "log" / "operations.jsonl").read_text()


def test_python_migrations_load_right_in_every_thread(
    tmp_path: Path, admin_url: str, make_fleet: MakeFleet, cli: Run, in_project: Callable[[Path], None]
) -> None:
    """Targets that load the same Python migrations at the same moment, in threads, each get
    their own steps."""
    names = make_fleet(6)
    project = fleet_project(tmp_path, admin_url, prefix_of(names), migrations=False)
    for i in range(1, 6):
        (project / "migrations" / f"{i:03d}_py.py").write_text(
            "from yoyo import step\n\n"
            f"steps = [step('CREATE TABLE py{i} (id int)', 'DROP TABLE py{i}'),"
            f" step('INSERT INTO py{i} VALUES ({i})', 'DELETE FROM py{i}')]\n"
        )
    in_project(project)
    result = cli("migrate", "--env", "tenants", "--jobs", "6")
    assert result.code == 0, result.text
    for name in names:
        with psycopg.connect(url_for(admin_url, name), autocommit=True) as conn:
            for i in range(1, 6):
                assert conn.execute(f"SELECT id FROM py{i}").fetchall() == [(i,)], (name, i)
