"""dbops.yaml: typed loading, environment choice, and errors that name file, line and key."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dbops.config.loader import load_config, parse_duration_ms
from dbops.config.locate import find_config
from dbops.config.model import Config
from dbops.engine.catalog import RULES
from dbops.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


def load(tmp_path: Path, text: str) -> Config:
    (tmp_path / "dbops.yaml").write_text(text)
    return load_config(RULES, str(tmp_path / "dbops.yaml"))


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    assert info.value.exit_code == 2
    assert info.value.hint
    assert "\n" not in info.value.message
    return info.value.message


def test_sample_config_loads_typed_and_frozen() -> None:
    config = load_config(RULES, str(REPO / "dbops.yaml"))
    prod = config.environment("prod")
    assert prod.name == "production" and prod.protected and not prod.embedded
    assert prod.lock_timeout_ms == 5000 and prod.statement_timeout_ms == 300_000
    dev = config.environment("dev")
    assert dev.embedded and dev.database == "exfabrica_af_dev"
    with pytest.raises(AttributeError):
        dev.protected = True  # type: ignore[misc]


def test_environment_choice_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = "default_env: staging\nenvironments:\n  development: {}\n  staging: {}\n  test: {}\n"
    config = load(tmp_path, text)
    monkeypatch.delenv("DBOPS_ENV", raising=False)
    assert config.environment(None).name == "staging"
    monkeypatch.setenv("DBOPS_ENV", "test")
    assert config.environment(None).name == "test"
    assert config.environment("development").name == "development"
    monkeypatch.delenv("DBOPS_ENV")
    assert load(tmp_path, "environments:\n  development: {}\n").environment(None).name == "development"


def test_reuse_scratch_defaults_to_not_protected(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        "environments:\n  development: {}\n  production: {protected: true}\n"
        "  staging: {reuse_scratch: false}\n  audited: {protected: true, reuse_scratch: true}\n",
    )
    reuses = {name: config.environment(name).reuses_scratch for name in config.environments}
    assert reuses == {"development": True, "production": False, "staging": False, "audited": True}
    message = error_of(tmp_path, "environments:\n  development:\n    reuse_scratch: sometimes\n")
    assert message == (
        "dbops.yaml:3: environments.development.reuse_scratch: expected true or false, got 'sometimes'"
    )


def test_unknown_environment_lists_known_ones(tmp_path: Path) -> None:
    config = load(tmp_path, "environments:\n  development: {}\n  production: {aliases: [live]}\n")
    with pytest.raises(ConfigError) as info:
        config.environment("staging")
    assert "Unknown environment 'staging'" in info.value.message
    assert "development (dev)" in info.value.message and "production (live, prod)" in info.value.message


def test_malformed_yaml_reports_file_line_column(tmp_path: Path) -> None:
    message = error_of(tmp_path, "environments:\n  development:\n    url: [unclosed\n  test: {}\n")
    assert message.startswith("dbops.yaml:4:")
    assert "invalid YAML" in message


def test_wrong_type_names_key_path_and_line(tmp_path: Path) -> None:
    text = (
        "environments:\n  development: {}\n  production:\n    url: postgresql://x/y\n    lock_timeout: soon\n"
    )
    message = error_of(tmp_path, text)
    assert message == (
        "dbops.yaml:5: environments.production.lock_timeout: expected a duration like 5s, got 'soon'"
    )
    assert "expected true or false" in error_of(tmp_path, "environments:\n  dev2:\n    protected: 'yes'\n")


def test_unknown_key_suggests_the_right_one(tmp_path: Path) -> None:
    message = error_of(tmp_path, "environments:\n  development:\n    databse: app\n")
    assert message == "dbops.yaml:3: environments.development.databse: unknown key (did you mean 'database'?)"
    assert "did you mean 'environments'" in error_of(tmp_path, "enviroments: {}\n")


def test_duplicate_key_and_bad_shapes(tmp_path: Path) -> None:
    assert "duplicate key" in error_of(tmp_path, "environments:\n  test: {}\n  test: {}\n")
    assert "missing 'environments:'" in error_of(tmp_path, "project: x\n")
    assert "expected a mapping" in error_of(tmp_path, "- a\n- b\n")
    assert "declares no environment" in error_of(tmp_path, "environments: {}\n")


def test_protected_environment_cannot_be_embedded(tmp_path: Path) -> None:
    message = error_of(tmp_path, "environments:\n  production:\n    protected: true\n    embedded: true\n")
    assert "protected environment cannot fall back to the embedded server" in message


def test_aliases_must_not_collide(tmp_path: Path) -> None:
    text = "environments:\n  a: {aliases: [x]}\n  b: {aliases: [x]}\n"
    assert "already an alias of a" in error_of(tmp_path, text)


def test_url_interpolation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGHOST_T", "db.internal")
    monkeypatch.delenv("MISSING_T", raising=False)
    config = load(
        tmp_path,
        "environments:\n"
        "  a: {url: 'postgresql://u@${PGHOST_T}:${PORT_T:-6543}/app'}\n"
        "  b: {url: 'postgresql://u@${MISSING_T}/app'}\n",
    )
    assert config.environment("a").resolved_url() == "postgresql://u@db.internal:6543/app"
    with pytest.raises(ConfigError) as info:
        config.environment("b").resolved_url()
    assert info.value.message == "dbops.yaml:3: environments.b.url: variable MISSING_T is not set"


def test_env_file_belongs_to_its_environment_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    (tmp_path / ".env.development").write_text(
        "DATABASE_URL=postgresql://dev:devpass@localhost:5432/app_dev\n"
    )
    (tmp_path / ".env.test").write_text("DATABASE_URL=postgresql://test:testpass@localhost:5442/app_test\n")
    config = load(
        tmp_path,
        "environments:\n"
        "  development: {env_file: .env.development}\n"
        "  test: {env_file: .env.test}\n"
        "  local: {env_file: .env.absent, embedded: true}\n"
        "  production: {env_file: .env.test, url: '${DATABASE_URL}'}\n",
    )
    assert config.environment("dev").resolved_url() == "postgresql://dev:devpass@localhost:5432/app_dev"
    assert config.environment("test").resolved_url().endswith(":5442/app_test")  # type: ignore[union-attr]
    assert config.environment("local").resolved_url() is None  # missing file: embedded fallback
    assert "DATABASE_URL" not in os.environ
    monkeypatch.setenv("DATABASE_URL", "postgresql://ci@ci-db/app")
    # A DATABASE_URL in the shell never redirects an environment that did not name it ...
    assert config.environment("test").resolved_url().endswith(":5442/app_test")  # type: ignore[union-attr]
    assert config.environment("local").resolved_url() is None
    # ... but an explicit url: ${DATABASE_URL} takes it, over the env_file (CI secrets)
    assert config.environment("production").resolved_url() == "postgresql://ci@ci-db/app"


def test_find_config_walks_up_and_honours_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "dbops.yaml").write_text("environments: {development: {}}\n")
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.delenv("DBOPS_CONFIG", raising=False)
    assert find_config(start=deep) == tmp_path / "dbops.yaml"
    other = tmp_path / "other.yaml"
    other.write_text("environments: {x: {}}\n")
    monkeypatch.setenv("DBOPS_CONFIG", str(other))
    assert find_config(start=deep) == other
    assert find_config(str(tmp_path), start=deep) == tmp_path / "dbops.yaml"
    monkeypatch.delenv("DBOPS_CONFIG")
    with pytest.raises(ConfigError, match=r"No dbops\.yaml found"):
        find_config(start=Path("/"))


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("5s", 5000),
        ("500ms", 500),
        ("2min", 120_000),
        ("1h", 3_600_000),
        (3, 3000),
        ("1.5s", 1500),
        ("soon", None),
        ("\u0665s", None),  # an Arabic-Indic 5: a str pattern's \\d takes it unless re.ASCII
    ],
)
def test_durations(text: object, ms: int | None) -> None:
    assert parse_duration_ms(text) == ms


def test_yaml_aliases_merge_keys_and_cycles(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        "environments:\n"
        "  staging: &base {lock_timeout: 3s, protected: true, url: 'postgresql://h/db'}\n"
        "  production:\n    <<: *base\n    statement_timeout: 1min\n",
    )
    prod = config.environment("production")
    assert prod.lock_timeout_ms == 3000 and prod.statement_timeout_ms == 60_000 and prod.protected
    assert "alias refers to a node that contains it" in error_of(
        tmp_path, "environments: &a {development: *a}\n"
    )


def test_out_of_range_values(tmp_path: Path) -> None:
    assert "expected a duration like 5s, got inf" in error_of(
        tmp_path, "environments:\n  development: {lock_timeout: .inf}\n"
    )
    assert "expected a duration" in error_of(
        tmp_path, "environments:\n  development: {lock_timeout: 99999999999}\n"
    )


def test_an_environment_named_like_a_builtin_alias_wins(tmp_path: Path) -> None:
    config = load(tmp_path, "environments:\n  development: {}\n  dev: {}\n")
    assert config.environment("dev").name == "dev"


def test_env_file_that_is_not_utf8(tmp_path: Path) -> None:
    (tmp_path / ".env.bad").write_bytes(b"DATABASE_URL=postgresql://\xff\xfe/x\n")
    config = load(tmp_path, "environments:\n  development: {env_file: .env.bad}\n")
    with pytest.raises(ConfigError, match="cannot read"):
        config.environment("development").resolved_url()
