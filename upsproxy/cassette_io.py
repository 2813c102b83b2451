"""Writing cassettes: deterministic YAML, atomically replaced on disk.

The same content always serializes to the same text (keys in the order the
recorder built them, block style, no line folding, long text bodies as
literal blocks), so a re-recorded cassette diffs cleanly in review. A write
goes to a temporary file in the same directory, is fsynced, then renamed over
the old file and the directory fsynced: a reader, or a recorder killed at any
instant, sees either the previous complete file or the new one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

__all__ = ["HEADER", "dump_cassette", "dump_interaction", "remove_stale_temps", "write_atomic"]

HEADER = (
    "# Recorded by `upsproxy record`. Secrets and personal data are placeholders\n"
    "# <<kind:N>> (the same N is the same value everywhere in this file); the raw\n"
    "# values were never written. Replay with: upsproxy replay THIS_FILE\n"
)


class _Dumper(yaml.SafeDumper):
    """SafeDumper that indents lists under their key and writes multi-line text as
    ``|`` blocks (readable HTML or text bodies instead of one escaped line)."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value and value.isascii() else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def _dump(node: Any) -> str:
    return yaml.dump(node, Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                     allow_unicode=True, width=2**31 - 1)


def dump_interaction(interaction: dict[str, Any]) -> str:
    """One interaction as an item of the ``interactions:`` list. Items are
    serialized alone so a session re-serializes only what changed."""
    return "".join(f"  {line}" if line.strip() else line
                   for line in _dump([interaction]).splitlines(keepends=True))


def dump_cassette(document: dict[str, Any], header: str = HEADER,
                  items: list[str] | None = None) -> str:
    """The file's text: ``header``, then ``document`` (whose ``interactions`` may be
    given already serialized as ``items``, from dump_interaction)."""
    head = {k: v for k, v in document.items() if k != "interactions"}
    if items is None:
        items = [dump_interaction(i) for i in document.get("interactions") or []]
    tail = "interactions:\n" + "".join(items) if items else "interactions: []\n"
    return header + (_dump(head) if head else "") + tail


def remove_stale_temps(path: str | Path) -> int:
    """Delete temp files a killed writer of ``path`` left behind; how many."""
    target = Path(path)
    removed = 0
    for stale in target.parent.glob(f".{target.name}.*.tmp"):
        with contextlib.suppress(OSError):
            stale.unlink()
            removed += 1
    return removed


def write_atomic(path: str | Path, text: str) -> None:
    """Replace ``path`` with ``text``: temp file, fsync, rename, fsync the directory."""
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
