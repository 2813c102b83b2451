"""The core's only HTTP model: frozen requests and responses.

The adapter turns mitmproxy flows into these and back; everything else in the
core takes and returns them, so the OAuth logic is testable without a proxy.
Header names are lower-cased on the way in (HTTP/2 sends them lower-cased
anyway), so lookups never depend on the client's spelling.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from urllib.parse import parse_qsl

__all__ = ["Request", "Response", "printable"]

_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def printable(text: str, limit: int = 200) -> str:
    """``text`` fit for one log line: control characters escaped (no forged lines,
    no terminal escapes), cut at ``limit``."""
    if text.isprintable() and len(text) <= limit:
        return text
    escaped = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                      for c in text[:limit])
    return escaped + ("…" if len(text) > limit else "")


@dataclass(frozen=True, slots=False)
class Request:
    """One HTTP request as the sandbox sees it."""

    method: str
    host: str
    path: str
    """The path without the query string."""
    query: str = ""
    """The raw query string, without the leading ``?``."""
    headers: tuple[tuple[str, str], ...] = ()
    """(lower-case name, value) pairs in arrival order; duplicates kept."""
    body: bytes = b""
    scheme: str = "https"
    origin: str | None = None
    """Where the client reached us when it was not through the UPS host name
    (the reverse listener's ``http://host:port``); redirects to sandbox pages
    are rewritten to it."""
    peer: str | None = None
    """The client's IP address (the control API answers loopback peers only)."""

    @cached_property
    def _header_map(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for name, value in self.headers:
            out.setdefault(name, []).append(value)
        return out

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        values = self._header_map.get(name.lower())
        return values[0] if values else None

    def header_all(self, name: str) -> list[str]:
        return self._header_map.get(name.lower(), [])

    @cached_property
    def query_pairs(self) -> list[tuple[str, str]]:
        """Decoded query parameters; ValueError (UnicodeError) when the query is not
        percent-encoded UTF-8: a lossy decode would change ``state``'s bytes."""
        self.query.encode("utf-8")  # raw non-UTF-8 bytes arrive as lone surrogates
        if "%" in self.query and _BAD_ESCAPE.search(self.query):
            raise ValueError("malformed percent-encoding")  # parse_qsl would keep "%zz"
        return parse_qsl(self.query, keep_blank_values=True, errors="strict")


@dataclass(frozen=True)
class Response:
    """One HTTP answer built by the core."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    rule: str = ""
    """Which rule decided this answer: logged, never sent."""
    extra: dict[str, str] = field(default_factory=dict)
    """Loggable, non-secret facts about the exchange (client_id, ...)."""

    @classmethod
    def json(
        cls,
        status: int,
        payload: object,
        *,
        rule: str,
        headers: tuple[tuple[str, str], ...] = (),
        extra: dict[str, str] | None = None,
    ) -> Response:
        """A compact JSON answer, as UPS sends it (no spaces)."""
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        return cls(
            status,
            (("Content-Type", "application/json"), *headers),
            body,
            rule,
            extra or {},
        )

    @classmethod
    def redirect(
        cls, location: str, *, rule: str, headers: tuple[tuple[str, str], ...] = (),
        extra: dict[str, str] | None = None,
    ) -> Response:
        return cls(302, (("Location", location), *headers), b"", rule, extra or {})

    def header(self, name: str) -> str | None:
        lname = name.lower()
        for key, value in self.headers:
            if key.lower() == lname:
                return value
        return None
