"""Rewriting a recorded API answer for the request being replayed.

A recorded Tracking answer says "delivered 2024-06-01" and may echo the
caller's token or client id. Replayed months later through a sandbox whose
clock a test moved, it should read as fresh and as the caller's own:

- ``<<access_token:N>>`` becomes the bearer token of the call, and
  ``<<client_id:N>>`` the calling client; other placeholders (personal data the
  recorder redacted) stay as they are, visibly redacted;
- dates move by the whole days between the cassette's ``meta.recorded_at``
  and the sandbox clock (whole days keep each time of day and every interval
  between events; rounded down, so the moved recording time is never after
  "now"): ``YYYYMMDD`` texts under keys naming a date, ISO-8601 dates
  and date-times anywhere, and epoch-millisecond values under ``*_at`` or
  ``*timestamp`` keys. Without ``recorded_at`` dates stay as recorded.

``Template`` finds what to rewrite once, at load; an answer with nothing to
rewrite is encoded once and served as is.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

__all__ = ["Template", "recorded_epoch_ms"]

_DAY_MS = 86_400_000
_TOKEN = re.compile(r"<<access_token:[1-9][0-9]*>>")
_CLIENT = re.compile(r"<<client_id:[1-9][0-9]*>>")
_YYYYMMDD = re.compile(r"(19|20)\d{6}")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_ISO_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?")
_EPOCH_MS = re.compile(r"1\d{12}")


def recorded_epoch_ms(meta: dict[str, Any]) -> int | None:
    """``meta.recorded_at`` (ISO-8601 text, or a YAML timestamp) in epoch ms."""
    value = meta.get("recorded_at")
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return int(value.timestamp() * 1000)
    return None


def _kind_of(key: str, value: Any) -> str | None:
    """What rewrite a leaf needs, decided once at load."""
    lkey = key.lower()
    if isinstance(value, str):
        if _TOKEN.fullmatch(value):
            return "token"
        if _CLIENT.fullmatch(value):
            return "client"
        if "date" in lkey and _YYYYMMDD.fullmatch(value):
            return "yyyymmdd"
        if _ISO_DATETIME.fullmatch(value) and "T" in value:
            return "isodatetime"
        if _ISO_DATE.fullmatch(value):
            return "isodate"
    if (lkey.endswith("_at") or lkey.endswith("timestamp")) and not isinstance(value, bool) \
            and isinstance(value, str | int) and _EPOCH_MS.fullmatch(str(value)):
        return "epochms"
    return None


def _scan(node: Any, key: str, at: tuple[str | int, ...],
          out: list[tuple[tuple[str | int, ...], str]]) -> None:
    if isinstance(node, dict):
        for k, v in node.items():
            _scan(v, str(k), (*at, k), out)
    elif isinstance(node, list):
        for n, v in enumerate(node):
            _scan(v, key, (*at, n), out)
    else:
        kind = _kind_of(key, node)
        if kind is not None:
            out.append((at, kind))


class Template:
    """A recorded JSON answer and the places in it that replay rewrites."""

    def __init__(self, body: Any, recorded_ms: int | None) -> None:
        self.body = body
        self.recorded_ms = recorded_ms
        spots: list[tuple[tuple[str | int, ...], str]] = []
        _scan(body, "", (), spots)
        if recorded_ms is None:
            spots = [s for s in spots if s[1] in ("token", "client")]
        self.spots = spots
        self._fixed = json.dumps(body, separators=(",", ":")).encode() if not spots else None

    def render(self, *, token: str, client_id: str, now_ms: int) -> bytes:
        if self._fixed is not None:
            return self._fixed
        days = (now_ms - self.recorded_ms) // _DAY_MS if self.recorded_ms is not None else 0
        body = json.loads(json.dumps(self.body))  # a deep copy of plain JSON
        for at, kind in self.spots:
            parent = body
            for step in at[:-1]:
                parent = parent[step]
            last = at[-1]
            parent[last] = _rewritten(parent[last], kind, token, client_id, days)
        return json.dumps(body, separators=(",", ":")).encode()


def _rewritten(value: Any, kind: str, token: str, client_id: str, days: int) -> Any:
    if kind == "token":
        return token
    if kind == "client":
        return client_id
    if days == 0:
        return value
    shift = timedelta(days=days)
    try:
        if kind == "yyyymmdd":
            return (datetime.strptime(value, "%Y%m%d") + shift).strftime("%Y%m%d")
        if kind == "isodate":
            return (date.fromisoformat(value) + shift).isoformat()
        if kind == "isodatetime":
            text = value[:-1] + "+00:00" if value.endswith("Z") else value
            moved = (datetime.fromisoformat(text) + shift).isoformat()
            return moved.replace("+00:00", "Z") if value.endswith("Z") else moved
        if kind == "epochms":
            moved_ms = int(value) + days * _DAY_MS
            return str(moved_ms) if isinstance(value, str) else moved_ms
    except (ValueError, OverflowError):
        return value  # "20241399" under a date key: not a date after all
    return value
