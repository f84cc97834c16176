"""The graph of dbops' imports of its own modules, read from the source with `ast` alone.

Each import is marked by where it runs: at the top of its module (`top`), only for the type
checker (`type_checking`: under `if TYPE_CHECKING:`), or when a function is called
(`function`). `from dbops.x import y` counts as an import of module `dbops.x.y` when `y` is a
submodule, else of `dbops.x`. Run it to print the numbers the layout is judged by:

    python tests/import_graph.py
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

SRC = Path(__file__).resolve().parent.parent / "src"

Where = Literal["top", "type_checking", "function"]


@dataclass(frozen=True)
class Import:
    importer: str  # e.g. dbops.steps.backup
    module: str  # the imported module, e.g. dbops.backups.store
    where: Where
    file: str  # relative to the folder that holds src/, e.g. src/dbops/steps/backup.py
    line: int
    statement: str  # e.g. from dbops.backups.store import latest_backup

    @property
    def at_run_time(self) -> bool:
        return self.where != "type_checking"

    def __str__(self) -> str:
        shown = f"{self.file}:{self.line}: {self.statement}"
        return shown if self.where == "top" else f"{shown}  ({self.where.replace('_', ' ')})"


def modules(src: Path = SRC) -> dict[str, Path]:
    """Every module under src/dbops by dotted name (a package by its __init__.py)."""
    found = {}
    for path in sorted((src / "dbops").rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def read_imports(src: Path = SRC) -> list[Import]:
    """Every import of a dbops module, in file and line order."""
    known = modules(src)
    found = []
    for name, path in known.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node, where in _walk(ast.parse(path.read_text(), str(path)), "top"):
            for target in _targets(node, package, known):
                file = path.relative_to(src.parent).as_posix()
                found.append(Import(name, target, where, file, node.lineno, ast.unparse(node)))
    return found


def _walk(node: ast.AST, where: Where) -> Iterator[tuple[ast.Import | ast.ImportFrom, Where]]:
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node, where
    elif isinstance(node, ast.If) and _is_type_checking(node.test):
        for stmt in node.body:
            yield from _walk(stmt, "type_checking")
        for stmt in node.orelse:
            yield from _walk(stmt, where)
    else:
        if where == "top" and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            where = "function"
        for child in ast.iter_child_nodes(node):
            yield from _walk(child, where)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _targets(node: ast.Import | ast.ImportFrom, package: str, known: Iterable[str]) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if _is_dbops(alias.name)]
    base = node.module or ""
    if node.level:  # relative: from . import x, from ..y import z
        anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
        base = ".".join([*anchor, base] if base else anchor)
    if not _is_dbops(base):
        return []
    return sorted({f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names})


def _is_dbops(module: str) -> bool:
    return module == "dbops" or module.startswith("dbops.")


def run_time_graph(imports: Iterable[Import]) -> dict[str, set[str]]:
    """Importer -> modules it imports when it runs (imports inside functions count)."""
    graph: dict[str, set[str]] = {}
    for imp in imports:
        if imp.at_run_time:
            graph.setdefault(imp.importer, set()).add(imp.module)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components that hold a cycle (more than one module, or a module
    that imports itself), each sorted, largest first."""
    reach = {module: _reachable(graph, module) for module in graph}
    found: list[list[str]] = []
    for module in sorted(graph):
        if module in reach[module] and not any(module in c for c in found):
            found.append(sorted(m for m in reach[module] if module in reach.get(m, ())))
    return sorted(found, key=len, reverse=True)


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """Modules reached from start over one import or more (start itself only on a cycle)."""
    seen: set[str] = set()
    todo = list(graph.get(start, ()))
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(graph.get(module, ()))
    return seen


def main() -> None:
    imports = read_imports()
    found = cycles(run_time_graph(imports))
    lazy = [imp for imp in imports if imp.where == "function"]
    print(f"modules: {len(modules())}")
    print(f"run-time import cycles: {len(found)}")
    for members in found:
        print(f"  {len(members)} modules: {', '.join(members)}")
    print(f"imports of dbops modules inside functions: {len(lazy)}")
    for imp in lazy:
        print(f"  {imp}")


if __name__ == "__main__":
    main()
