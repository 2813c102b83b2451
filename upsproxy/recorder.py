"""A recording session: completed exchanges in, a redacted cassette on disk.

Each completed exchange (the app's request and UPS's answer) becomes one
interaction: classified by ``upsproxy.routes.endpoint_of``, redacted by
``upsproxy.redact``, a recorded UPS error named after its catalogue entry (so
faults can replay it by name later), and the secrets' shapes inferred. Then
the whole cassette is serialized, checked by the leak guard and atomically
replaced on disk, one interaction at a time: a recorder killed at any moment
leaves a file that loads and holds every exchange completed before.

Modes: ``new`` refuses an existing file, ``overwrite`` replaces it, ``append``
continues it: its interactions stay as they are and new placeholders are
numbered after the highest of each kind already in the file, so no existing
``<<kind:N>>`` changes meaning.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from upsproxy import __version__
from upsproxy.cassette import load_cassette
from upsproxy.cassette_io import (
    dump_cassette,
    dump_interaction,
    remove_stale_temps,
    write_atomic,
)
from upsproxy.envelopes import CATALOGUE
from upsproxy.errors import CassetteError, LeakError
from upsproxy.leak import check_text
from upsproxy.messages import Request, Response
from upsproxy.redact import PLACEHOLDER, Redactor
from upsproxy.redact_rules import RedactRules
from upsproxy.shape_infer import infer_shape
from upsproxy.yamlfile import parse_text, read_text

__all__ = ["MODES", "Exchange", "Recorder", "default_cassette", "error_name"]

log = logging.getLogger(__name__)

MODES = ("new", "append", "overwrite")
# Framing and per-connection noise: never useful in review, different each run.
_SKIP_REQUEST = frozenset({"host", "content-length", "connection", "keep-alive",
                           "proxy-connection", "transfer-encoding", "te", "upgrade",
                           "accept-encoding", "user-agent", "via", "x-forwarded-for",
                           "x-forwarded-host", "x-forwarded-proto"})
_SKIP_RESPONSE = frozenset({"date", "content-length", "transfer-encoding", "connection",
                            "keep-alive", "content-encoding", "age", "expires"})
_SHAPED = ("code", "refresh_token", "access_token")
MAX_TEXT_BODY = 256 * 1024


@dataclass(frozen=True)
class Exchange:
    """One completed exchange as the app saw it."""

    kind: str
    url: str
    """The URL the app addressed (a UPS host), query included."""
    request: Request
    response: Response
    """Status, headers and the *decoded* body as UPS sent it."""


def error_name(status: int, body: Any) -> str | None:
    """The catalogue name of a UPS error envelope (``invalid_client``...), else
    ``error_<code>``; None when the answer is no UPS error."""
    if status < 400:
        return None
    try:
        first = body["response"]["errors"][0]
        code, message = str(first["code"]), str(first["message"])
    except (KeyError, IndexError, TypeError):
        return None
    candidates = [(not spec.observed, spec.status != status, name)
                  for name, spec in CATALOGUE.items()
                  if spec.code == code and spec.message == message]
    if candidates:
        return min(candidates)[2]
    safe = re.sub(r"[^a-z0-9_]+", "_", code.lower()).strip("_")
    return f"error_{safe}" if safe else "error"


def _max_numbers(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for kind, number in PLACEHOLDER.findall(text):
        out[kind] = max(out.get(kind, 0), int(number))
    return out


class Recorder:
    """Appends redacted interactions to one cassette file."""

    def __init__(self, path: str | Path, *, mode: str = "new",
                 upstream: str = "https://wwwcie.ups.com", rules: RedactRules | None = None,
                 now: Callable[[], float] = time.time,
                 meta: dict[str, Any] | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        self.path = Path(path)
        self.mode = mode
        self.upstream = upstream
        self.rules = rules or RedactRules()
        self._now = now
        self.interactions: list[dict[str, Any]] = []
        self.shapes: dict[str, Any] = {}
        self.meta: dict[str, Any] = {}
        self._extra_meta = dict(meta or {})
        self.redactor = Redactor(self.rules)
        self.recorded = 0
        """Interactions written by this session."""
        self._items: list[str] = []
        """Serialized interactions, in step with ``interactions``."""
        self._provisional: set[str] = set()

    # -- opening ---------------------------------------------------------------------------

    def open(self) -> None:
        """Prepare the file for the mode; CassetteError when the mode does not fit it."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self._now()))
        exists = self.path.exists()
        if remove_stale_temps(self.path):
            log.info("removed temporary files a killed recorder left next to %s", self.path)
        if self.mode == "new" and exists:
            raise CassetteError(str(self.path), "already exists; record into another file, "
                                "or choose --mode append (add to it) or --mode overwrite")
        if self.mode == "append" and exists:
            load_cassette(self.path)  # validates, with file and line on a problem
            text = read_text(self.path, CassetteError)
            data = parse_text(text, str(self.path), CassetteError)
            self.meta = dict(data.get("meta") or {})
            self.meta["updated_at"] = stamp
            self.shapes = dict(data.get("shapes") or {})
            self.interactions = list(data.get("interactions") or [])
            self.redactor = Redactor(self.rules, start=_max_numbers(text))
            return
        self.meta = {"how": "recorded", "recorded_at": stamp, "upstream": self.upstream,
                     "tool": f"upsproxy {__version__}", **self._extra_meta}
        self._write()

    # -- recording --------------------------------------------------------------------------

    def record(self, exchange: Exchange) -> int:
        """Add one exchange and rewrite the file; returns its 1-based number.

        On LeakError nothing is written and the exchange is dropped, so the
        file keeps its last good content and later exchanges still record."""
        interaction = self._interaction(exchange)
        self._learn_shapes(_samples(exchange))
        self.interactions.append(interaction)
        try:
            self._write()
        except LeakError:
            self.interactions.pop()
            del self._items[len(self.interactions):]
            raise
        self.recorded += 1
        return len(self.interactions)

    def _write(self) -> None:
        for n, interaction in enumerate(self.interactions):
            # Secrets learned by this exchange may echo in earlier ones: substitute again.
            substituted = self.redactor.substitute(interaction)
            if n >= len(self._items) or substituted != interaction:
                self.interactions[n] = substituted
                item = dump_interaction(substituted)
                if n < len(self._items):
                    self._items[n] = item
                else:
                    self._items.append(item)
        document: dict[str, Any] = {"version": 1, "meta": self.meta}
        if self.shapes:
            document["shapes"] = {k: self.shapes[k] for k in _SHAPED if k in self.shapes}
        text = dump_cassette(document, items=self._items)
        check_text(text, self.redactor.secrets(), str(self.path))
        write_atomic(self.path, text)

    def _learn_shapes(self, answered: dict[str, str]) -> None:
        """Shapes come from what UPS issued (a code in a redirect, tokens in a 200
        answer); a value only seen sent by the app (perhaps junk, in an error
        case) gives a provisional shape that the first issued one replaces."""
        for kind in _SHAPED:
            raw = answered.get(kind)
            provisional = raw is None
            if raw is None:
                raw = self.redactor.first.get(kind)
            if raw is None or (kind in self.shapes and (
                    provisional or kind not in self._provisional)):
                continue
            shape, personal = infer_shape(raw, self.redactor.client_ids)
            if kind != "access_token" and "jwt" in shape:
                shape = {"alphabet": "base64url", "length": max(8, min(len(raw), 8192))}
            for value in personal:
                self.redactor.remember("personal", value)
            self.shapes[kind] = shape
            if provisional:
                self._provisional.add(kind)
            else:
                self._provisional.discard(kind)

    # -- one interaction ----------------------------------------------------------------------

    def _interaction(self, exchange: Exchange) -> dict[str, Any]:
        req, resp, kind = exchange.request, exchange.response, exchange.kind
        red = self.redactor
        oauth = kind in ("token", "refresh", "authorize")
        request: dict[str, Any] = {"method": req.method, "url": red.url(exchange.url)}
        headers = red.headers((k, v) for k, v in req.headers if k.lower() not in _SKIP_REQUEST)
        if headers:
            request["headers"] = headers
        body = self._body(req.header("content-type"), req.body, kind=kind, oauth=oauth,
                          request=True)
        if body is not None:
            request["body"] = body
        response: dict[str, Any] = {"status": resp.status}
        headers = red.headers((k, v) for k, v in resp.headers
                              if k.lower() not in _SKIP_RESPONSE)
        if headers:
            response["headers"] = headers
        parsed = _json(resp.body)
        body = self._body(resp.header("content-type"), resp.body, kind=kind, oauth=oauth)
        if body is not None:
            response["body"] = body
        out: dict[str, Any] = {"kind": kind}
        name = error_name(resp.status, parsed)
        if name is not None:
            out["name"] = name
        out["request"] = request
        out["response"] = response
        return red.substitute(out)  # type: ignore[no-any-return]

    def _body(self, content_type: str | None, raw: bytes, *, kind: str, oauth: bool,
              request: bool = False) -> dict[str, Any] | None:
        if not raw:
            return None
        media = (content_type or "").split(";", 1)[0].strip().lower()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return None  # binary: images, PDFs; not replayable as text, not kept
        if media == "application/x-www-form-urlencoded":
            try:
                fields = dict(parse_qsl(text, keep_blank_values=True, errors="strict"))
            except (ValueError, UnicodeDecodeError):
                return None
            return {"form": self.redactor.form(fields, login=kind == "login")}
        if media == "application/json" or media.endswith("+json"):
            data = _json(raw)
            if data is not _NOT_JSON:
                return {"json": self.redactor.json(data, oauth=oauth or kind == "login",
                                                   request=request)}
        if kind == "login" or media in ("text/html", "application/xhtml+xml") \
                or len(text) > MAX_TEXT_BODY:
            # Sign-in pages carry session tokens under names nobody can list; replay
            # serves its own page, so the recorded one is left out.
            return None
        return {"text": self.redactor.patterns(text)}


_NOT_JSON = object()


def _samples(exchange: Exchange) -> dict[str, str]:
    """Raw values UPS issued in this exchange: a code in a redirect, tokens in a
    successful token or refresh answer."""
    out: dict[str, str] = {}
    location = exchange.response.header("location") or ""
    for part in (urlsplit(location).query, urlsplit(location).fragment):
        for name, value in parse_qsl(part, keep_blank_values=True):
            if name == "code" and value:
                out.setdefault("code", value)
    if exchange.kind in ("token", "refresh") and exchange.response.status == 200:
        body = _json(exchange.response.body)
        if isinstance(body, dict):
            for name in ("access_token", "refresh_token"):
                if isinstance(body.get(name), str) and body[name]:
                    out[name] = body[name]
    return out


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return _NOT_JSON


def record_all(recorder: Recorder, exchanges: Iterable[Exchange]) -> int:
    """Record every exchange (``cassette import``); LeakError stops at the first leak."""
    count = 0
    for exchange in exchanges:
        recorder.record(exchange)
        count += 1
    return count


def default_cassette(now: float | None = None) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(time.time() if now is None else now))
    return Path("cassettes") / f"recorded-{stamp}.yaml"
