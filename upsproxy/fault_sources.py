"""Where fault rules come from besides JSON: YAML files and ``--fault`` shorthands.

Both end in ``fault_rules.parse_rule``, so every source is refused for the same
reasons; a file's refusal adds its line (``yamlfile.locate``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from upsproxy.errors import FaultRuleError
from upsproxy.fault_rules import ACTIONS, FaultRule, Presets, RuleProblem, parse_rule, parse_rules
from upsproxy.yamlfile import locate, parse_text, read_text

__all__ = ["load_rule_file", "parse_shorthand"]


def load_rule_file(path: str | Path, presets: Presets) -> list[FaultRule]:
    """Rules from a YAML file: a list of rules, or a mapping with a ``faults`` list."""
    text = read_text(path, FaultRuleError)
    data = parse_text(text, str(path), FaultRuleError)
    if data is None:
        return []
    try:
        return parse_rules(data, presets)
    except RuleProblem as bad:
        raise FaultRuleError(str(path), bad.reason, locate(text, bad.where)) from None


_NUMERIC = frozenset({"after", "times", "every", "seed", "status", "delay_ms"})


def parse_shorthand(text: str, presets: Presets) -> FaultRule:
    """``ENDPOINT:WHAT[:KEY=VALUE,...]`` (README "Faults"); RuleProblem if wrong.

    WHAT is a preset, an action, an HTTP status, or already the KEY=VALUE list;
    ``headers.NAME=VALUE`` adds an answer header, ``header.NAME=VALUE`` matches one.
    """
    parts = text.split(":", 2)
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise RuleProblem((), "expected ENDPOINT:WHAT[:KEY=VALUE,...], e.g. token:rate_limited")
    raw: dict[str, Any] = {"endpoint": parts[0]}
    options = parts[2] if len(parts) == 3 else ""
    what = parts[1]
    if "=" in what:
        options = f"{what},{options}" if options else what
    elif what in ACTIONS:
        raw["action"] = what
    elif what.isdigit():
        raw["status"] = int(what)
    else:
        raw["preset"] = what
    for item in filter(None, options.split(",")):
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise RuleProblem((), f"{item!r} is not KEY=VALUE")
        group, dot, sub = key.partition(".")
        if dot and group in ("headers", "header"):
            raw.setdefault(group, {})[sub] = value
            continue
        if key in raw:
            raise RuleProblem((key,), "given twice")
        raw[key] = _shorthand_value(key, value)
    return parse_rule(raw, presets)


def _shorthand_value(key: str, value: str) -> Any:
    try:
        if key in _NUMERIC:
            return int(value)
        if key == "probability":
            return float(value)
    except ValueError:
        raise RuleProblem((key,), f"{key} must be a number, not {value!r}") from None
    return value
