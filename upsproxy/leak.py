"""The leak guard: no secret of the session reaches disk, in any spelling.

Redaction decides by structure, so it can miss a value in a place nobody
foresaw. The guard does not trust it: before every write, each raw secret
the session saw is searched for in the serialized text itself, spelled every
way it could be (raw, percent-encoded with upper- or lower-case hex, ``+``
for spaces, JSON- and YAML-escaped, base64), and in every decoded string of
the parsed document (URL-decoded, HTML-unescaped, base64-decoded words), so
``Basic base64(id:secret)`` is caught too. A hit raises LeakError naming the
secret's kind and where it was, never the value; the caller then keeps the
last good file.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any
from urllib.parse import unquote, unquote_plus

import yaml

from upsproxy.errors import LeakError
from upsproxy.redact import MIN_SECRET, encodings
from upsproxy.yamlfile import locate

__all__ = ["check_text", "yaml_spellings"]

_B64_WORD = re.compile(r"[A-Za-z0-9+/_-]{8,}={0,2}")
try:
    _Loader: type[yaml.SafeLoader] | type[yaml.CSafeLoader] = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on the PyYAML build
    _Loader = yaml.SafeLoader


@lru_cache(maxsize=4096)
def yaml_spellings(value: str) -> dict[str, str]:
    """The text of ``value`` inside a YAML double- or single-quoted scalar."""
    out: dict[str, str] = {}
    for style in ('"', "'"):
        for unicode in (True, False):
            dumped = yaml.dump(value, default_style=style, width=2**31 - 1,
                               allow_unicode=unicode, explicit_end=False)
            body = dumped.strip()
            if body.endswith("..."):
                body = body[:-3].rstrip()
            out.setdefault(body[1:-1], "YAML-escaped")
    return out


def _strings(node: Any, where: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple[str | int, ...],
                                                                            str]]:
    if isinstance(node, str):
        yield where, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield (*where, "<key>"), str(key)
            yield from _strings(value, (*where, str(key)))
    elif isinstance(node, list):
        for n, value in enumerate(node):
            yield from _strings(value, (*where, n))


_JSON_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)", re.DOTALL)
_SIMPLE = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}


def _json_unescape(text: str) -> str:
    """JSON string escapes undone (``\\u00e9``, ``\\"``...), surrogate pairs joined."""
    def one(match: re.Match[str]) -> str:
        esc = match.group(1)
        return chr(int(esc[1:], 16)) if len(esc) == 5 else _SIMPLE.get(esc, esc)

    out = _JSON_ESCAPE.sub(one, text)
    try:
        return out.encode("utf-16", "surrogatepass").decode("utf-16")
    except UnicodeError:
        return out


def _unwrapped(text: str) -> Iterator[tuple[str, str]]:
    if "\\" in text:
        yield "JSON-escaped", _json_unescape(text)
    if "%" in text or "+" in text:
        yield "percent-encoded", unquote(text)
        yield "+-encoded", unquote_plus(text)
    if "&" in text:
        yield "HTML-escaped", html.unescape(text)


def _decoded(text: str) -> Iterator[tuple[str, str]]:
    """``text`` and what it says once decoded: up to three layers of URL, form,
    JSON and HTML escaping (a state inside a ``returnto=`` URL inside a URL),
    and base64 words inside any of them."""
    seen = {text}
    layer = [("raw", text)]
    for _ in range(3):
        yield from layer
        following = []
        for name, value in layer:
            for encoding, decoded in _unwrapped(value):
                if decoded not in seen:
                    seen.add(decoded)
                    following.append((encoding if name == "raw" else name, decoded))
        if not following:
            break
        layer = following
    else:
        yield from layer
    for value in seen:
        for word in _B64_WORD.findall(value):
            for decoder in (base64.b64decode, base64.urlsafe_b64decode):
                try:
                    yield "base64", decoder(word + "=" * (-len(word) % 4)).decode("utf-8")
                except (binascii.Error, ValueError, UnicodeDecodeError):
                    continue


def _dotted(where: tuple[str | int, ...]) -> str:
    out = ""
    for step in where:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else step)
    return out or "the top level"


def check_text(text: str, secrets: dict[str, str], path: str) -> None:
    """Raise LeakError if any secret (raw value -> kind) is in ``text``, a cassette's
    serialized YAML. Values shorter than MIN_SECRET are not searched for."""
    guarded = {value: kind for value, kind in secrets.items() if len(value) >= MIN_SECRET}
    if not guarded:
        return
    # Longest first, so the kind named is that of the whole value, not a part of it.
    raw = re.compile("|".join(map(re.escape, sorted(guarded, key=len, reverse=True))))
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError:
        data = None
    for where, string in _strings(data):
        for encoding, decoded in _decoded(string):
            hit = raw.search(decoded)
            if hit:
                line = locate(text, tuple(s for s in where if s != "<key>"))
                raise LeakError(path, guarded[hit.group(0)], encoding, _dotted(where), line)
    for value, kind in guarded.items():
        spellings = {**yaml_spellings(value), **encodings(value)}
        for spelled, encoding in spellings.items():
            index = text.find(spelled)
            if index >= 0:
                line = text.count("\n", 0, index) + 1
                raise LeakError(path, kind, encoding, f"line {line}", line)
