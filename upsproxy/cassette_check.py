"""``upsproxy cassette check``: would this file leak anything if committed?

Beyond schema validation (``load_cassette``), a cassette that went through the
recorder has secrets only as placeholders; one edited by hand or produced by
another tool may not. This looks for what live credentials look like: JWTs,
Basic and Bearer values, secret-named fields and query parameters that hold
something other than a placeholder, and long random-looking tokens outside
placeholders. Each finding names the file's line and the reason, never the
value, so the check is fit for a pre-commit hook.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from upsproxy.redact import JSON_KINDS, PARAM_KINDS
from upsproxy.yamlfile import locate

__all__ = ["Finding", "scan"]

_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")
_SCHEME = re.compile(r"\b(Basic|Bearer)\s+(?!<<)([A-Za-z0-9+/=._~-]{8,})", re.IGNORECASE)
_TOKEN = re.compile(r"[A-Za-z0-9+/=_-]{32,}")
_MARKER = re.compile(r"<<[^<>]*>>")
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
_WHOLE = re.compile(r"^(?:(?:Basic|Bearer)\s+)?<<[a-z_]+:[0-9]+>>$", re.IGNORECASE)


@dataclass(frozen=True)
class Finding:
    line: int | None
    reason: str


def _random_looking(token: str) -> bool:
    parts = token.split("/")
    if len(parts) >= 3 and all(len(part) <= 24 for part in parts):
        return False  # a URL path such as /api/track/v1/details/1Z023E2X0214323462
    classes = sum(bool(re.search(p, token)) for p in ("[a-z]", "[A-Z]", "[0-9]"))
    counts = Counter(token)
    entropy = -sum(n / len(token) * math.log2(n / len(token)) for n in counts.values())
    return classes >= 2 and entropy >= 4.0


def _text_findings(text: str) -> list[Finding]:
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("#"):
            continue
        bare = _MARKER.sub("", line)
        if _JWT.search(bare):
            out.append(Finding(number, "a JWT (eyJ...) outside a placeholder"))
        for match in _SCHEME.finditer(bare):
            out.append(Finding(number, f"{match.group(1)} credentials outside a placeholder"))
        for token in _TOKEN.findall(bare):
            if _random_looking(token) and not _JWT.search(token):
                out.append(Finding(number, f"a random-looking token of {len(token)} "
                                   "characters outside a placeholder"))
    return out


def _placeholder(value: Any) -> bool:
    return isinstance(value, str) and (not value or bool(_WHOLE.fullmatch(value.strip())))


def _cookie_redacted(value: Any) -> bool:
    """A recorded Cookie header keeps its cookie names: ``sid=<<cookie:1>>; a=<<cookie:2>>``."""
    if not isinstance(value, str):
        return False
    pairs = [pair.strip() for pair in value.split(";") if pair.strip()]
    return all(_placeholder(pair.partition("=")[2]) for pair in pairs)


def _query_findings(url: Any, where: tuple[str | int, ...], text: str) -> list[Finding]:
    if not isinstance(url, str):
        return []
    out = []
    for name, value in parse_qsl(urlsplit(url).query, keep_blank_values=True):
        if name in PARAM_KINDS and not _placeholder(value):
            out.append(Finding(locate(text, where), f"query parameter {name!r} holds a value, "
                               "not a placeholder"))
    return out


def _structure_findings(data: Any, text: str) -> list[Finding]:
    out: list[Finding] = []
    interactions = data.get("interactions") if isinstance(data, dict) else None
    for n, item in enumerate(interactions or []):
        if not isinstance(item, dict):
            continue
        for side in ("request", "response"):
            message = item.get(side)
            if not isinstance(message, dict):
                continue
            where: tuple[str | int, ...] = ("interactions", n, side)
            out += _query_findings(message.get("url"), (*where, "url"), text)
            headers = message.get("headers") or {}
            for name, value in headers.items() if isinstance(headers, dict) else ():
                lname = str(name).lower()
                if lname in _SECRET_HEADERS and not (
                        _cookie_redacted(value) if lname == "cookie" else _placeholder(value)):
                    out.append(Finding(locate(text, (*where, "headers", name)),
                                       f"header {name!r} holds a value, not a placeholder"))
                if lname == "location":
                    out += _query_findings(value, (*where, "headers", name), text)
                if lname == "set-cookie" and isinstance(value, str):
                    cookie = value.split(";", 1)[0].partition("=")[2]
                    if cookie and not _placeholder(cookie):
                        out.append(Finding(locate(text, (*where, "headers", name)),
                                           "Set-Cookie value is not a placeholder"))
            body = message.get("body") or {}
            form = body.get("form") if isinstance(body, dict) else None
            for name, value in (form or {}).items() if isinstance(form, dict) else ():
                if name in PARAM_KINDS and not _placeholder(value):
                    out.append(Finding(locate(text, (*where, "body", "form", name)),
                                       f"form field {name!r} holds a value, not a placeholder"))
            payload = body.get("json") if isinstance(body, dict) else None
            if isinstance(payload, dict) and item.get("kind") in ("token", "refresh"):
                for name in JSON_KINDS:
                    if name in payload and not _placeholder(payload[name]):
                        out.append(Finding(locate(text, (*where, "body", "json", name)),
                                           f"JSON member {name!r} holds a value, "
                                           "not a placeholder"))
    return out


def scan(text: str, data: Any) -> list[Finding]:
    """Findings in a cassette's ``text`` (already parsed as ``data``), by line."""
    found = _text_findings(text) + _structure_findings(data, text)
    unique = {(f.line, f.reason): f for f in found}
    return sorted(unique.values(), key=lambda f: (f.line or 0, f.reason))
