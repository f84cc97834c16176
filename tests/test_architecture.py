"""The layer rules of src/dbops, checked on the imports read from the source (see import_graph).

Services sit below the engine and never reach up to it; config sits below everything but
errors; output knows only the engine's result types; no import cycle at run time; an import
left inside a function says why, so the file headers show the dependency graph.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

import pytest

from import_graph import SRC, Import, cycles, read_imports, run_time_graph

SERVICES = ("dbops.postgres", "dbops.migrations", "dbops.schema", "dbops.seeding", "dbops.backups")
ABOVE_SERVICES = ("dbops.engine", "dbops.steps", "dbops.cli", "dbops.output", "dbops.boundary", "dbops.fleet")
# Every layer package and the two top modules that sit above the engine; the rest of the
# package's top (dbops itself, dbops.errors, a future dbops.atomic) is base that all may use.
NOT_BASE = (*SERVICES, *ABOVE_SERVICES, "dbops.config", "dbops.oplog")


def within(module: str, *layers: str) -> bool:
    return any(module == layer or module.startswith(f"{layer}.") for layer in layers)


def is_base(module: str) -> bool:
    return module == "dbops" or (module.count(".") == 1 and not within(module, *NOT_BASE))


def imports_of(
    imports: Iterable[Import],
    importers: tuple[str, ...],
    banned: tuple[str, ...],
    allowed: tuple[str, ...] = (),
) -> list[str]:
    """The imports by a module of `importers` of a module of `banned` (and not of `allowed`),
    whether at run time, inside a function or for the type checker only."""
    return [
        str(imp)
        for imp in imports
        if within(imp.importer, *importers)
        and within(imp.module, *banned)
        and not within(imp.module, *allowed)
    ]


def services_reaching_up(imports: Iterable[Import]) -> list[str]:
    return imports_of(imports, SERVICES, ABOVE_SERVICES)


def config_reaching_out(imports: Iterable[Import]) -> list[str]:
    return [
        str(imp)
        for imp in imports
        if within(imp.importer, "dbops.config")
        and not within(imp.module, "dbops.config")
        and not is_base(imp.module)
    ]


def output_reaching_up(imports: Iterable[Import]) -> list[str]:
    banned = ("dbops.engine", "dbops.steps", "dbops.cli", "dbops.boundary", "dbops.fleet")
    return imports_of(imports, ("dbops.output",), banned, allowed=("dbops.engine.results",))


def steps_reaching_up(imports: Iterable[Import]) -> list[str]:
    return imports_of(imports, ("dbops.steps",), ("dbops.cli", "dbops.boundary", "dbops.fleet"))


def engine_reaching_up(imports: Iterable[Import]) -> list[str]:
    return imports_of(imports, ("dbops.engine",), ("dbops.cli", "dbops.boundary", "dbops.fleet"))


def fleet_reaching_up(imports: Iterable[Import]) -> list[str]:
    """dbops.fleet runs each target through the boundary; only the CLI sits above it."""
    return imports_of(imports, ("dbops.fleet",), ("dbops.cli",))


def run_time_cycles(imports: list[Import]) -> list[str]:
    """Each cycle: its modules, then the run-time imports between them."""
    return [
        "\n    ".join(
            [", ".join(members)]
            + [str(i) for i in imports if i.at_run_time and i.importer in members and i.module in members]
        )
        for members in cycles(run_time_graph(imports))
    ]


def lazy_imports_without_reason(imports: Iterable[Import], root: Path) -> list[str]:
    """Imports inside a function with no comment in or above the block of import lines they
    stand in."""
    found = []
    for imp in imports:
        if imp.where == "function":
            lines = (root / imp.file).read_text().splitlines()
            start = end = imp.line - 1
            while start > 0 and lines[start - 1].strip().startswith(("from ", "import ")):
                start -= 1  # the block of import lines it stands in
            while end + 1 < len(lines) and lines[end + 1].strip().startswith(("from ", "import ")):
                end += 1
            above = lines[start - 1].strip() if start > 0 else ""
            if not above.startswith("#") and not any("#" in line for line in lines[start : end + 1]):
                found.append(str(imp))
    return found


def fail_on(found: list[str], title: str) -> None:
    if found:
        pytest.fail("\n  ".join([f"{title} ({len(found)}):", *found]), pytrace=False)


@pytest.fixture(scope="module")
def imports() -> list[Import]:
    return read_imports()


def test_services_never_import_engine_steps_cli_output_or_boundary(imports: list[Import]) -> None:
    fail_on(services_reaching_up(imports), "services import a layer above them")


def test_config_imports_only_itself_errors_and_base_modules(imports: list[Import]) -> None:
    fail_on(config_reaching_out(imports), "config imports a module above it")


def test_output_imports_of_the_engine_only_the_result_types(imports: list[Import]) -> None:
    fail_on(output_reaching_up(imports), "output imports engine (but engine.results), steps, cli or boundary")


def test_steps_never_import_cli_or_boundary(imports: list[Import]) -> None:
    fail_on(steps_reaching_up(imports), "steps import cli or boundary")


def test_engine_never_imports_cli_or_boundary(imports: list[Import]) -> None:
    fail_on(engine_reaching_up(imports), "engine imports cli or boundary")


def test_fleet_never_imports_cli(imports: list[Import]) -> None:
    fail_on(fleet_reaching_up(imports), "fleet imports cli")


def test_no_import_cycle_at_run_time(imports: list[Import]) -> None:
    fail_on(run_time_cycles(imports), "run-time import cycles, imports inside functions included")


def test_imports_inside_functions_say_why(imports: list[Import]) -> None:
    fail_on(
        lazy_imports_without_reason(imports, SRC.parent),
        "imports inside a function without a comment that says why",
    )


def test_the_rules_catch_a_planted_upward_import_and_cycle(tmp_path: Path) -> None:
    """The checker can fail: a copy of the tree with a service that imports the engine and two
    modules that import each other, one inside a function with no comment (the other one's
    import inside a function says why, and passes)."""
    src = tmp_path / "src"
    shutil.copytree(SRC / "dbops", src / "dbops", ignore=shutil.ignore_patterns("__pycache__"))
    connection = src / "dbops" / "postgres" / "connection.py"
    text = connection.read_text()
    connection.write_text(text + "from dbops.engine.context import RunContext\n")
    planted_line = len(text.splitlines()) + 1
    (src / "dbops" / "planted_a.py").write_text(
        "import dbops.planted_b\n\ndef f() -> None:\n    # lazy: import cost on the --list path\n    import dbops.errors\n"
    )
    (src / "dbops" / "planted_b.py").write_text("def f() -> None:\n    import dbops.planted_a\n")

    imports = read_imports(src)

    upward = f"src/dbops/postgres/connection.py:{planted_line}: from dbops.engine.context import RunContext"
    assert upward in services_reaching_up(imports)
    assert (
        "dbops.planted_a, dbops.planted_b\n"
        "    src/dbops/planted_a.py:1: import dbops.planted_b\n"
        "    src/dbops/planted_b.py:2: import dbops.planted_a  (function)"
    ) in run_time_cycles(imports)
    silent = "src/dbops/planted_b.py:2: import dbops.planted_a  (function)"
    assert [silent] == [f for f in lazy_imports_without_reason(imports, tmp_path) if "planted" in f]
