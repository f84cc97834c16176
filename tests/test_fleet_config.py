"""Fleets in dbops.yaml: the forms of fleet: and rollout:, their errors (file, line, key), and
targets from a list or a file with their names, URLs and variables (no database needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dbops.config.loader import load_config
from dbops.config.model import Config, Wave
from dbops.engine.catalog import RULES
from dbops.errors import ConfigError, UsageError
from dbops.fleet import rollout, shard
from dbops.fleet.targets import resolve, select

SERVER = "postgresql://app:s3cret-pw@db.example.com:5432/postgres?sslmode=require"


def load(tmp_path: Path, fleet: str, url: str = SERVER) -> Config:
    (tmp_path / "dbops.yaml").write_text(f'environments:\n  tenants:\n    url: "{url}"\n    fleet:\n{fleet}')
    return load_config(RULES, str(tmp_path / "dbops.yaml"))


def error_of(tmp_path: Path, fleet: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, fleet)
    assert info.value.exit_code == 2 and info.value.hint
    return info.value.message


def test_a_static_list_of_names_urls_and_mappings(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        "      targets:\n"
        "        - tenant_a\n"
        "        - postgresql://other.example.com/tenant_b\n"
        "        - {name: eu_1, url: 'postgresql://eu.example.com/shop', variables: {region: eu, shards: 3}}\n",
    )
    env = config.environment("tenants")
    assert env.fleet is not None and env.fleet.jobs == 4
    members = resolve(env, env.fleet)
    assert [m.name for m in members] == ["tenant_a", "tenant_b", "eu_1"]
    assert members[0].url == "postgresql://app:s3cret-pw@db.example.com:5432/tenant_a?sslmode=require"
    assert members[1].url == "postgresql://other.example.com/tenant_b"
    assert dict(members[2].variables) == {"region": "eu", "shards": "3"}
    target_env = members[2].environment(env)
    assert target_env.fleet is None and target_env.name == "tenants"
    assert dict(target_env.variables) == {"region": "eu", "shards": "3", "target": "eu_1"}
    assert "s3cret" not in repr(members[0])


def test_a_listed_url_takes_variables_from_the_environment_and_the_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TENANT_D_PASSWORD", "pw-from-ci")
    config = load(
        tmp_path,
        "      targets:\n"
        "        - {name: d, url: 'postgresql://app:${TENANT_D_PASSWORD}@${region}.example.com/d',"
        " variables: {region: eu}}\n"
        "        - {name: e, url: 'postgresql://app@h/${MISSING}'}\n",
    )
    env = config.environment("tenants")
    assert env.fleet is not None
    with pytest.raises(ConfigError, match=r"targets.e.url: variable MISSING is not set"):
        resolve(env, env.fleet)
    monkeypatch.setenv("MISSING", "e")
    members = resolve(env, env.fleet)
    assert members[0].url == "postgresql://app:pw-from-ci@eu.example.com/d"


def test_a_file_of_targets(tmp_path: Path) -> None:
    (tmp_path / "tenants.txt").write_text("# tenants\ntenant_1\n\n  tenant_2  \npostgresql://h/tenant_3\n")
    config = load(tmp_path, "      file: tenants.txt\n      jobs: 2\n")
    env = config.environment("tenants")
    assert env.fleet is not None and env.fleet.jobs == 2
    assert [m.name for m in resolve(env, env.fleet)] == ["tenant_1", "tenant_2", "tenant_3"]
    (tmp_path / "tenants.txt").write_text("tenant_1\nnot a name\n")
    with pytest.raises(ConfigError, match=r"^tenants.txt:2: expected a database name or a postgresql:// URL"):
        resolve(env, env.fleet)


@pytest.mark.parametrize(
    ("fleet", "message"),
    [
        ("      jobs: 2\n", "fleet: expected exactly one of targets, file and discover (found: none)"),
        (
            "      targets: [a]\n      discover: SELECT 1\n",
            "fleet: expected exactly one of targets, file and discover (found: targets, discover)",
        ),
        ("      targets: [a, a]\n", "fleet.targets.1: the target name 'a' is listed twice"),
        ("      targets: [a]\n      jobs: 0\n", "fleet.jobs: expected a whole number of at least 1, got 0"),
        (
            "      targets: [a]\n      control: x\n",
            "fleet.control: a control database is for a discovery query",
        ),
        ("      targets: [a]\n      parallel: 3\n", "fleet.parallel: unknown key"),
        (
            "      targets: [a]\n      rollout:\n        - {wave: one, on_error: panic}\n",
            "fleet.rollout.0.on_error: expected stop or continue, got 'panic'",
        ),
        (
            "      targets: [a]\n      rollout:\n        - {wave: one}\n        - {wave: two}\n",
            "fleet.rollout: only one wave may take the rest (no targets:), found: one, two",
        ),
        (
            "      targets: [a]\n      rollout:\n        - {wave: one, targets: [a], max_failures: -1}\n",
            "fleet.rollout.0.max_failures: expected a whole number of at least 0, got -1",
        ),
    ],
)
def test_fleet_errors_name_the_line_and_key(tmp_path: Path, fleet: str, message: str) -> None:
    found = error_of(tmp_path, fleet)
    assert found.startswith("dbops.yaml:") and f"environments.tenants.{message}" in found, found


def test_waves_take_their_targets_in_order_and_the_rest() -> None:
    names = ["t1", "t2", "canary_1", "t3", "vip_1"]
    waves = (
        Wave("canary", ("canary_*",), on_error="stop"),
        Wave("vip", ("vip_1",), jobs=16, on_error="continue", max_failures=2),
    )
    planned = rollout.plan(names, names, waves, jobs=8)
    assert [(p.wave.name, p.members, p.jobs) for p in planned] == [
        ("canary", ["canary_1"], 1),
        ("vip", ["vip_1"], 1),
        ("rest", ["t1", "t2", "t3"], 3),  # no wave without targets: an implicit last one
    ]
    assert [p.wave.tolerated for p in planned] == [0, 2, None]
    only = rollout.plan(names, names, (), jobs=2)
    assert [(p.wave.name, len(p.members), p.jobs) for p in only] == [("all", 5, 2)]


def test_targets_and_shards_select(tmp_path: Path) -> None:
    config = load(tmp_path, "      targets: [tenant_1, tenant_2, tenant_10, other]\n")
    env = config.environment("tenants")
    assert env.fleet is not None
    members = resolve(env, env.fleet)
    assert [m.name for m in select(members, "tenant_1*, other")] == ["tenant_1", "tenant_10", "other"]
    with pytest.raises(UsageError, match="'tenant_3' matches no target of the fleet"):
        select(members, "tenant_3")
    for bad in ("0/3", "4/3", "1/0", "x", "1/"):
        with pytest.raises(UsageError, match=r"--shard expects K/N"):
            shard.parse(bad)
    assert shard.parse(" 2 / 3 ") == (2, 3)
