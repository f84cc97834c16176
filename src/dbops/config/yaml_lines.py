"""YAML with line numbers: dbops.yaml and the seed files are read here, so that every message
can name the line it is about.

``composed`` gives PyYAML's node tree (each node knows its line) and turns a syntax error into
a YamlSyntaxError with its position; ``read`` turns the whole tree into plain Python values
plus the line of every key path, refusing what plain data cannot hold (YamlShapeError). The
callers turn both into their own errors, with their own file names and hints.

PyYAML costs milliseconds to import: it is imported when a file is read, not with this module.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

KeyPath = tuple[str | int, ...]


class YamlSyntaxError(Exception):
    """Not YAML: what is wrong and, when PyYAML knows it, where (line and column from 1)."""

    def __init__(self, problem: str, line: int | None = None, column: int | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.line = line
        self.column = column

    def where(self, name: str) -> str:
        """name:line:column, or the name alone when the position is not known."""
        return f"{name}:{self.line}:{self.column}" if self.line is not None else name


class YamlShapeError(Exception):
    """YAML, but not plain data: a key that is not a string, a duplicate key, an alias that
    contains itself; at the key path and line named."""

    def __init__(self, keypath: KeyPath, line: int, message: str) -> None:
        super().__init__(message)
        self.keypath = keypath
        self.line = line
        self.message = message


def line_of(node: Any) -> int:
    """The line a node starts on, from 1."""
    return int(node.start_mark.line) + 1


@contextmanager
def composed(text: str) -> Iterator[tuple[Any, Any]]:
    """(loader, root node or None) of a YAML text, safely (C loader where there is one).

    The loader stays usable in the block (construct_object, flatten_mapping); a YAML error
    raised there, or while composing, becomes a YamlSyntaxError.
    """
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
    try:
        yield loader, loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = str(exc.problem or exc.context)
        if mark is None:
            raise YamlSyntaxError(problem) from None
        raise YamlSyntaxError(problem, mark.line + 1, mark.column + 1) from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(str(exc)) from None
    finally:
        loader.dispose()


@dataclass
class Document:
    """A YAML text as plain values, and the line of the node at every key path."""

    value: Any = None
    lines: dict[KeyPath, int] = field(default_factory=dict)


def read(text: str) -> Document:
    """The whole text as plain values (merge keys applied); YamlSyntaxError or YamlShapeError."""
    doc = Document()
    with composed(text) as (loader, node):
        if node is not None:
            doc.value = _plain(loader, node, (), doc.lines, frozenset())
    return doc


def _plain(loader: Any, node: Any, keypath: KeyPath, lines: dict[KeyPath, int], seen: frozenset[int]) -> Any:
    import yaml

    lines[keypath] = line_of(node)
    if id(node) in seen:
        raise YamlShapeError(keypath, lines[keypath], "an alias refers to a node that contains it")
    seen = seen | {id(node)}
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # YAML merge keys: <<: *defaults
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node)
            if not isinstance(key, str):
                raise _at_key((*keypath, str(key)), key_node, lines, "keys must be strings")
            if key in result:
                raise _at_key((*keypath, key), key_node, lines, "duplicate key")
            result[key] = _plain(loader, value_node, (*keypath, key), lines, seen)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_plain(loader, item, (*keypath, i), lines, seen) for i, item in enumerate(node.value)]
    return loader.construct_object(node)


def _at_key(keypath: KeyPath, key_node: Any, lines: dict[KeyPath, int], message: str) -> YamlShapeError:
    lines[keypath] = line_of(key_node)
    return YamlShapeError(keypath, lines[keypath], message)
