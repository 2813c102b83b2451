"""Matching a protected API call against the cassette's recorded ones.

Each matcher is a tiny function over two ``Wanted`` requests (the recorded
one first) that returns None when they agree, else *why* they differ, in
words fit for a log line: names of parameters and body fields, never their
values (a tracking number, a name or an address is personal).

A recorded value that is a whole placeholder (``<<personal:1>>``) matches any
value: the recording redacted it, so every app sends its own. JSON bodies are
compared parsed, so key order and whitespace never matter.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qsl, urlsplit

__all__ = ["MATCHERS", "Miss", "Wanted", "closest", "first_match", "parse_body",
           "wanted_from_recorded"]

_PLACEHOLDER = re.compile(r"<<[a-z_]+:[1-9][0-9]*>>")
_NO_BODY = object()


@dataclass(frozen=True)
class Wanted:
    """What a request is matched on: method, path, query pairs, parsed body."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...] = ()
    body: Any = _NO_BODY
    """Parsed JSON, text for a non-JSON body, or ``_NO_BODY``."""


def wanted_from_recorded(method: str, url: str, body: dict[str, Any] | None) -> Wanted:
    parts = urlsplit(url)
    parsed: Any = _NO_BODY
    if body:
        if "json" in body:
            parsed = body["json"]
        elif "form" in body:
            parsed = body["form"]
        else:
            parsed = body.get("text", "")
    return Wanted(method.upper(), parts.path,
                  tuple(parse_qsl(parts.query, keep_blank_values=True)), parsed)


def parse_body(raw: bytes) -> Any:
    if not raw:
        return _NO_BODY
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # not JSON, or nested past the stack: text
        return raw.decode("utf-8", "replace")


def _wild(value: Any) -> bool:
    return isinstance(value, str) and _PLACEHOLDER.fullmatch(value) is not None


# -- the matchers --------------------------------------------------------------------


def method(recorded: Wanted, actual: Wanted) -> str | None:
    return None if recorded.method == actual.method else \
        f"method {actual.method}, recorded {recorded.method}"


def path(recorded: Wanted, actual: Wanted) -> str | None:
    want, got = recorded.path.split("/"), actual.path.split("/")
    if len(want) != len(got):
        return f"path has {len(got)} segments, recorded {len(want)}"
    for n, (w, g) in enumerate(zip(want, got, strict=True)):
        if w != g and not _wild(w):
            return f"path segment {n} differs"
    return None


def query(recorded: Wanted, actual: Wanted) -> str | None:
    want: dict[str, list[str]] = {}
    got: dict[str, list[str]] = {}
    for k, v in recorded.query:
        want.setdefault(k, []).append(v)
    for k, v in actual.query:
        got.setdefault(k, []).append(v)
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    problems = []
    if missing:
        problems.append("missing " + ", ".join(missing))
    if extra:
        problems.append("extra " + ", ".join(extra))
    differ = sorted(k for k in set(want) & set(got) if len(want[k]) != len(got[k]) or any(
        w != g and not _wild(w) for w, g in zip(want[k], got[k], strict=True)))
    if differ:
        problems.append("value of " + ", ".join(differ) + " differs")
    return "query: " + "; ".join(problems) if problems else None


def body(recorded: Wanted, actual: Wanted) -> str | None:
    if recorded.body is _NO_BODY or actual.body is _NO_BODY:
        if recorded.body is actual.body:
            return None
        return "body: recorded none, got one" if recorded.body is _NO_BODY else \
            "body: recorded one, got none"
    where = _json_difference(recorded.body, actual.body, "")
    return f"body: {where}" if where is not None else None


def _json_difference(want: Any, got: Any, at: str) -> str | None:
    """The first place (a field path) where ``got`` differs from ``want``."""
    if _wild(want):
        return None
    if isinstance(want, dict) and isinstance(got, dict):
        missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
        if missing:
            return f"missing field {_join(at, str(missing[0]))}"
        if extra:
            return f"extra field {_join(at, str(extra[0]))}"
        for key in want:
            found = _json_difference(want[key], got[key], _join(at, str(key)))
            if found is not None:
                return found
        return None
    if isinstance(want, list) and isinstance(got, list):
        if len(want) != len(got):
            return f"{at or 'body'} has {len(got)} items, recorded {len(want)}"
        for n, (w, g) in enumerate(zip(want, got, strict=True)):
            found = _json_difference(w, g, f"{at}[{n}]")
            if found is not None:
                return found
        return None
    if type(want) is not type(got):
        return f"{at or 'body'} is a {_kind(got)}, recorded a {_kind(want)}"
    return None if want == got else f"value of {at or 'body'} differs"


def _join(at: str, key: str) -> str:
    return f"{at}.{key}" if at else key


def _kind(value: Any) -> str:
    return {dict: "mapping", list: "list", str: "text", bool: "boolean",
            type(None): "null"}.get(type(value), "number")


MATCHERS: tuple[Callable[[Wanted, Wanted], str | None], ...] = (method, path, query, body)
"""In order of weight: a different method or path is a different call."""

T = TypeVar("T")


@dataclass(frozen=True)
class Miss(Generic[T]):
    candidate: T
    reasons: tuple[str, ...]


def first_match(candidates: Sequence[tuple[Wanted, T]], actual: Wanted) -> T | None:
    for recorded, item in candidates:
        if all(m(recorded, actual) is None for m in MATCHERS):
            return item
    return None


def closest(candidates: Sequence[tuple[Wanted, T]], actual: Wanted,
            limit: int = 3) -> list[Miss[T]]:
    """The recorded requests nearest to ``actual``, with what differed: fewest
    failed matchers first, a failed method or path weighing most."""
    scored = []
    for n, (recorded, item) in enumerate(candidates):
        failed = [(i, r) for i, m in enumerate(MATCHERS) if (r := m(recorded, actual))]
        weight = sum(8 >> i for i, _ in failed)
        parts = sum(r.count(";") + 1 for _, r in failed)  # then: fewer differences
        scored.append((weight, parts, n, Miss(item, tuple(r for _, r in failed))))
    scored.sort(key=lambda t: t[:3])
    return [t[3] for t in scored[:limit]]
