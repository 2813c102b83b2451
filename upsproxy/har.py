"""HAR files (browser dev tools, Charles, Proxyman exports) as core exchanges.

``upsproxy cassette import`` turns them into redacted cassettes with the same
redaction and leak guard as ``upsproxy record``. Only what a cassette needs is
read: method, URL, headers, request body, status, response headers and body
(base64 bodies decoded).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from upsproxy.messages import Request, Response

__all__ = ["looks_like_har", "read_har"]


def looks_like_har(raw: bytes) -> bool:
    return raw.lstrip()[:1] == b"{"


def _headers(items: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(items, list):
        return ()
    return tuple((str(h.get("name", "")), str(h.get("value", "")))
                 for h in items if isinstance(h, dict) and h.get("name")
                 and not str(h.get("name")).startswith(":"))


def _content(node: Any) -> bytes:
    if not isinstance(node, dict) or not isinstance(node.get("text"), str):
        return b""
    if node.get("encoding") == "base64":
        try:
            return base64.b64decode(node["text"])
        except (binascii.Error, ValueError):
            return b""
    return str(node["text"]).encode("utf-8")


def read_har(raw: bytes) -> Iterator[tuple[Request, Response]]:
    """Every entry with a response; ValueError when ``raw`` is no HAR."""
    try:
        data = json.loads(raw)
        entries = data["log"]["entries"]
    except (ValueError, KeyError, TypeError):
        raise ValueError("not a HAR file (JSON with log.entries)") from None
    if not isinstance(entries, list):
        raise ValueError("not a HAR file: log.entries is not a list")
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        req, resp = entry.get("request"), entry.get("response")
        if not isinstance(req, dict) or not isinstance(resp, dict):
            continue
        status = resp.get("status")
        if not isinstance(status, int) or not 100 <= status <= 599:
            continue  # aborted requests carry status 0
        parts = urlsplit(str(req.get("url", "")))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            continue
        request = Request(method=str(req.get("method", "GET")).upper(),
                          host=parts.hostname.lower().rstrip("."), path=parts.path or "/",
                          query=parts.query, headers=tuple(
                              (k.lower(), v) for k, v in _headers(req.get("headers"))),
                          body=_content(req.get("postData")), scheme=parts.scheme)
        yield request, Response(status, _headers(resp.get("headers")),
                                _content(resp.get("content")))
