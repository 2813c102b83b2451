"""Cassettes: the YAML files that seed replay (format version 1).

    version: 1
    meta: {how: recorded|synthesized, recorded_at, upstream, tool, ...}
    shapes: {code: {alphabet, length, padding}, refresh_token: ..., access_token: {jwt: ...}}
    interactions:
      - kind: authorize|login|token|refresh|api
        name: invalid_client          # optional; names recorded errors for later use
        request:  {method, url, headers: {...}, body: {form: {...}} | {json: ...} | {text: ...}}
        response: {status, headers: {...}, body: {json: ...} | {text: ...}}

Secrets appear only as placeholders ``<<kind:N>>``: the same N of a kind is
the same value everywhere in the file. Loading is ``yaml.safe_load`` through
libyaml when present; every problem is reported with the file and line.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from upsproxy.cassette_cache import load_cached, store_cached
from upsproxy.errors import CassetteError
from upsproxy.shapes import Shape, shape_from_mapping
from upsproxy.yamlfile import Invalid as _Invalid
from upsproxy.yamlfile import locate, parse_text, read_text

__all__ = [
    "KINDS",
    "PLACEHOLDER_KINDS",
    "Cassette",
    "Interaction",
    "load_cassette",
    "parse_cassette",
]

VERSION = 1
KINDS = frozenset({"authorize", "login", "token", "refresh", "api"})
PLACEHOLDER_KINDS = frozenset({
    "client_id", "client_secret", "basic", "code", "code_verifier", "code_challenge",
    "state", "access_token", "refresh_token", "cookie", "personal", "txn",
})
_PLACEHOLDER = re.compile(r"<<([a-z_]+):([1-9][0-9]*)>>")
_ANY_MARKER = re.compile(r"<<.*?>>")
_BODY_KINDS = ("form", "json", "text")
_SPECIAL = re.compile(r"<<client_id>>|<<random:[1-9][0-9]{0,3}>>")

@dataclass(frozen=True)
class Message:
    """A recorded request or response, as the cassette holds it."""

    headers: dict[str, str]
    body: dict[str, Any] | None
    method: str = ""
    url: str = ""
    status: int = 0

    def json(self) -> Any:
        return self.body.get("json") if self.body else None

    def form(self) -> dict[str, str] | None:
        return self.body.get("form") if self.body else None

    def header(self, name: str) -> str | None:
        lname = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lname:
                return value
        return None


@dataclass(frozen=True)
class Interaction:
    kind: str
    request: Message
    response: Message
    name: str | None = None
    index: int = 0


@dataclass(frozen=True)
class Cassette:
    path: str
    meta: dict[str, Any]
    shapes: dict[str, Shape]
    interactions: list[Interaction] = field(default_factory=list)
    version: int = VERSION

    def of_kind(self, kind: str) -> list[Interaction]:
        return [i for i in self.interactions if i.kind == kind]


def load_cassette(path: str | Path) -> Cassette:
    """Read and validate a cassette file; CassetteError names file and line."""
    return parse_cassette(read_text(path, CassetteError), str(path))


def parse_cassette(text: str, path: str = "<cassette>") -> Cassette:
    """Validate a cassette's text. A big one's parsed data is kept in the
    compiled cache (``cassette_cache``), so only its first load parses YAML."""
    hit = load_cached(text)
    data, flat = hit if hit is not None else (parse_text(text, path, CassetteError), None)
    try:
        cassette = _build(data, path, flat)
    except _Invalid as bad:
        raise CassetteError(path, bad.reason, locate(text, bad.where)) from None
    if hit is None:
        store_cached(text, data)
    return cassette


# -- validation -------------------------------------------------------------------


def _build(data: Any, path: str, flat: str | None = None) -> Cassette:
    """``flat``: ``data`` as JSON text, when the caller has it (the cache)."""
    if not isinstance(data, dict):
        raise _Invalid((), "a cassette is a YAML mapping with 'version' and 'interactions'")
    if "version" not in data:
        raise _Invalid((), "missing 'version' (this upsproxy reads version 1)")
    version = data["version"]
    if type(version) is not int or version != VERSION:  # `true` equals 1 in Python
        raise _Invalid(("version",), f"unknown cassette version {version!r}; "
                       f"this upsproxy reads version {VERSION}")
    unknown = set(data) - {"version", "meta", "shapes", "interactions"}
    if unknown:
        key = sorted(map(str, unknown))[0]
        raise _Invalid((key,), f"unknown top-level key {key!r}")
    meta = data.get("meta") or {}
    if not isinstance(meta, dict):
        raise _Invalid(("meta",), "'meta' must be a mapping")
    shapes: dict[str, Shape] = {}
    raw_shapes = data.get("shapes") or {}
    if not isinstance(raw_shapes, dict):
        raise _Invalid(("shapes",), "'shapes' must be a mapping of kind to shape")
    for kind, raw in raw_shapes.items():
        if kind not in ("code", "refresh_token", "access_token"):
            raise _Invalid(("shapes", kind), f"no shape is used for {kind!r}; "
                           "known: code, refresh_token, access_token")
        try:
            shapes[kind] = shape_from_mapping(raw)
        except ValueError as exc:
            raise _Invalid(("shapes", kind), f"shapes.{kind}: {exc}") from None
    raw_interactions = data.get("interactions")
    if not isinstance(raw_interactions, list):
        raise _Invalid(("interactions",) if "interactions" in data else (),
                       "'interactions' must be a list")
    interactions = [_interaction(raw, i) for i, raw in enumerate(raw_interactions)]
    _check_placeholders(data, raw_shapes, raw_interactions, flat)
    return Cassette(path, dict(meta), shapes, interactions, version)


def _interaction(raw: Any, i: int) -> Interaction:
    where: tuple[str | int, ...] = ("interactions", i)
    if not isinstance(raw, dict):
        raise _Invalid(where, f"interaction {i + 1} must be a mapping")
    kind = raw.get("kind")
    if kind not in KINDS:
        raise _Invalid((*where, "kind") if "kind" in raw else where,
                       f"interaction {i + 1}: kind must be one of {', '.join(sorted(KINDS))}")
    name = raw.get("name")
    if name is not None and not (isinstance(name, str) and re.fullmatch(r"[a-z0-9_]+", name)):
        raise _Invalid((*where, "name"), f"interaction {i + 1}: name must be lower_snake_case")
    for side in ("request", "response"):
        if not isinstance(raw.get(side), dict):
            raise _Invalid(where, f"interaction {i + 1}: missing '{side}' mapping")
    return Interaction(kind, _request(raw["request"], (*where, "request"), i),
                       _response(raw["response"], (*where, "response"), i), name, i)


def _headers(raw: Any, where: tuple[str | int, ...], i: int) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
    ):
        raise _Invalid(where, f"interaction {i + 1}: headers must map names to text values")
    for name, value in raw.items():
        if not (name.isprintable() and value.isprintable()):
            raise _Invalid((*where, name), f"interaction {i + 1}: header {name!r} holds a "
                           "line break or control character")
    return dict(raw)


def _body(raw: Any, where: tuple[str | int, ...], i: int) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or len(raw) != 1 or next(iter(raw)) not in _BODY_KINDS:
        raise _Invalid(where, f"interaction {i + 1}: body must be one of "
                       "{form: {...}}, {json: ...} or {text: ...}")
    if "form" in raw and not (isinstance(raw["form"], dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in raw["form"].items()
    )):
        raise _Invalid((*where, "form"), f"interaction {i + 1}: form fields must be text")
    return dict(raw)


def _request(raw: dict[str, Any], where: tuple[str | int, ...], i: int) -> Message:
    method, url = raw.get("method"), raw.get("url")
    if not isinstance(method, str) or not method.isalpha():
        raise _Invalid((*where, "method") if "method" in raw else where,
                       f"interaction {i + 1}: request.method must be an HTTP method")
    if not isinstance(url, str) or not re.match(r"https?://[^/]+", url):
        raise _Invalid((*where, "url") if "url" in raw else where,
                       f"interaction {i + 1}: request.url must be an absolute http(s) URL")
    return Message(_headers(raw.get("headers"), (*where, "headers"), i),
                   _body(raw.get("body"), (*where, "body"), i), method=method.upper(), url=url)


def _response(raw: dict[str, Any], where: tuple[str | int, ...], i: int) -> Message:
    status = raw.get("status")
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise _Invalid((*where, "status") if "status" in raw else where,
                       f"interaction {i + 1}: response.status must be an integer 100-599")
    return Message(_headers(raw.get("headers"), (*where, "headers"), i),
                   _body(raw.get("body"), (*where, "body"), i), status=status)


def _check_placeholders(data: Any, shapes: Any, interactions: list[Any],
                        flat: str | None) -> None:
    """Every ``<<...>>`` must be a known placeholder (typos would leak into
    replay); ``<<client_id>>`` and ``<<random:N>>`` belong in shapes only.

    One regex pass over the document's JSON text finds every marker at C speed
    (JSON escapes line breaks, so no marker hides across lines); the tree is
    walked, to name where a bad marker is, only when one looks wrong.
    """
    if flat is None:
        flat = json.dumps(data, check_circular=False, default=str)
    found = Counter(_ANY_MARKER.findall(flat))
    in_shapes = Counter(_ANY_MARKER.findall(json.dumps(shapes, default=str)))
    if all(_marker_ok(m, special_ok=False)
           or (_SPECIAL.fullmatch(m) and count == in_shapes[m]) for m, count in found.items()):
        return
    _walk_placeholders(shapes, ("shapes",), special_ok=True)
    for i, raw in enumerate(interactions):
        _walk_placeholders(raw, ("interactions", i), special_ok=False)


def _marker_ok(marker: str, special_ok: bool) -> bool:
    if special_ok and _SPECIAL.fullmatch(marker):
        return True
    match = _PLACEHOLDER.fullmatch(marker)
    return match is not None and match.group(1) in PLACEHOLDER_KINDS


def _walk_placeholders(node: Any, where: tuple[str | int, ...], *, special_ok: bool) -> None:
    if isinstance(node, str):
        for marker in _ANY_MARKER.findall(node):
            if not _marker_ok(marker, special_ok):
                raise _Invalid(where, f"bad placeholder {marker!r}: expected <<kind:N>> with kind "
                               f"one of {', '.join(sorted(PLACEHOLDER_KINDS))}")
    elif isinstance(node, dict):
        for key, value in node.items():
            _walk_placeholders(value, (*where, key), special_ok=special_ok)
    elif isinstance(node, list):
        for n, value in enumerate(node):
            _walk_placeholders(value, (*where, n), special_ok=special_ok)

