"""Safe YAML reading with file-and-line errors, shared by cassettes and configs.

Parsing uses ``yaml.safe_load`` semantics through libyaml when present. A
validator raises ``Invalid(where, reason)`` with the path to the bad node;
only then is the file composed a second time to find that node's line, so the
fast path never pays for line tracking.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import yaml

from upsproxy.errors import FileProblem

__all__ = ["Invalid", "Where", "locate", "parse_text", "read_text"]

Where = tuple[str | int, ...]

try:  # libyaml is an order of magnitude faster on large files
    _Base: type[yaml.SafeLoader] | type[yaml.CSafeLoader] = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on the PyYAML build
    _Base = yaml.SafeLoader


class _Loader(_Base):  # type: ignore[valid-type,misc]
    """The safe loader, refusing a key given twice in one mapping.

    YAML's rule is "last one wins", so a cassette with a second
    ``interactions:`` (a bad merge) would silently lose every interaction of
    the first; a config with two ``apps:`` its first registry.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[tuple[str, str]] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                key = (key_node.tag, key_node.value)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        "while reading a mapping", node.start_mark,
                        f"the key {key_node.value!r} is given twice", key_node.start_mark)
                seen.add(key)
        return dict(super().construct_mapping(node, deep=deep))


class Invalid(Exception):
    """A validation failure at ``where`` (a path of keys and indexes)."""

    def __init__(self, where: Where, reason: str) -> None:
        super().__init__(reason)
        self.where = where
        self.reason = reason


MAX_FILE_BYTES = 64 * 1024 * 1024
"""Cassettes and configs are text a person can read; anything larger is a mistake."""


def read_text(path: str | Path, error: type[FileProblem]) -> str:
    try:
        if not stat.S_ISREG(Path(path).stat().st_mode) and not Path(path).is_dir():
            # A FIFO or device would block the start-up, or never end.
            raise error(str(path), "is not a regular file")
        with Path(path).open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            raise error(str(path), f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
        return raw.decode("utf-8")
    except FileNotFoundError:
        raise error(str(path), "no such file") from None
    except UnicodeDecodeError as exc:
        raise error(str(path), f"not UTF-8 text (byte {exc.start})") from None
    except IsADirectoryError:
        raise error(str(path), "is a directory, not a file") from None
    except OSError as exc:
        raise error(str(path), f"cannot read: {exc.strerror}") from None


def parse_text(text: str, path: str, error: type[FileProblem]) -> Any:
    """Parse YAML; aliases (``*name``) are refused, with the line of the first.

    A few lines of nested aliases expand to billions of nodes ("billion
    laughs"), and every walk over the data or serialisation of a body would
    pay for that; cassettes and configs never need them.
    """
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a safe loader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise error(path, f"YAML syntax error: {problem}", line) from None
    except yaml.YAMLError as exc:
        raise error(path, f"YAML error: {exc}") from None
    if "*" in text:  # no alias without an asterisk: the common case costs nothing
        shared = _shared_node(data)
        if shared is not None:
            # The parent's line: an alias node itself resolves to its anchor's line.
            raise error(path, "YAML aliases (*name) of lists or mappings are not allowed; "
                        "write the value out", locate(text, shared[:-1]))
    return data


def _shared_node(data: Any) -> Where | None:
    """The path of the first mapping or list reached twice (in document order,
    so the alias rather than its anchor), else None. Shared scalars are
    harmless and cannot be told from equal ones, so they pass."""
    seen: set[int] = set()
    stack: list[tuple[Any, Where]] = [(data, ())]
    while stack:
        node, where = stack.pop()
        if isinstance(node, dict):
            items: Any = node.items()
        elif isinstance(node, list):
            items = enumerate(node)
        else:
            continue
        if id(node) in seen:
            return where
        seen.add(id(node))
        stack.extend(reversed([(value, (*where, key)) for key, value in items]))
    return None


def locate(text: str, where: Where) -> int | None:
    """The 1-based line of the node at ``where`` (or of its nearest parent)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    if node is None:
        return None
    line: int | None = node.start_mark.line + 1
    for step in where:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == str(step):
                    line = key_node.start_mark.line + 1
                    node = value_node
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int):
            if step >= len(node.value):
                return line
            node = node.value[step]
            line = node.start_mark.line + 1
        else:
            return line
    return line
