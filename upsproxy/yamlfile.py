"""Safe YAML reading with file-and-line errors, shared by cassettes and configs.

Parsing uses ``yaml.safe_load`` semantics through libyaml when present. A
validator raises ``Invalid(where, reason)`` with the path to the bad node;
only then is the file composed a second time to find that node's line, so the
fast path never pays for line tracking.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from upsproxy.errors import FileProblem

__all__ = ["Invalid", "Where", "locate", "parse_text", "read_text"]

Where = tuple[str | int, ...]

try:  # libyaml is an order of magnitude faster on large files
    _Loader: type[yaml.SafeLoader] | type[yaml.CSafeLoader] = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on the PyYAML build
    _Loader = yaml.SafeLoader


class Invalid(Exception):
    """A validation failure at ``where`` (a path of keys and indexes)."""

    def __init__(self, where: Where, reason: str) -> None:
        super().__init__(reason)
        self.where = where
        self.reason = reason


def read_text(path: str | Path, error: type[FileProblem]) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(str(path), "no such file") from None
    except UnicodeDecodeError as exc:
        raise error(str(path), f"not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise error(str(path), f"cannot read: {exc.strerror}") from None


def parse_text(text: str, path: str, error: type[FileProblem]) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a safe loader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise error(path, f"YAML syntax error: {problem}", line) from None
    except yaml.YAMLError as exc:
        raise error(path, f"YAML error: {exc}") from None


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
