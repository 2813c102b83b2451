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
``<<kind:N>>`` changes meaning. A value an earlier session recorded keeps its
placeholder: with a recording ``key`` (``upsproxy.fingerprint``) every
placeholder's keyed fingerprint is kept in ``meta.fingerprints``, and an
appending session with the same key maps a value it sees to the placeholder
whose fingerprint it has. Sections of other keys are kept as they are.
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
from upsproxy.errors import CassetteError, LeakError, UnrecordableError
from upsproxy.fingerprint import Fingerprinter
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
FINGERPRINTS = "fingerprints"
"""The ``meta`` key: recording key id -> {placeholder: fingerprint}."""
_FINGERPRINT_HIT = re.compile(r"meta\.fingerprints\.([^.]+)\.(<<[a-z_]+:[1-9][0-9]*>>)")


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


def _fingerprint_sections(meta: dict[str, Any], path: str) -> dict[str, dict[str, str]]:
    """``meta.fingerprints`` of a cassette being appended to, checked."""
    raw = meta.pop(FINGERPRINTS, None)
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(
            isinstance(key_id, str) and isinstance(section, dict)
            and all(isinstance(k, str) and PLACEHOLDER.fullmatch(k) and isinstance(v, str)
                    for k, v in section.items())
            for key_id, section in raw.items()):
        raise CassetteError(path, "meta.fingerprints must map recording key ids to "
                            "{<<kind:N>>: fingerprint} mappings; remove it to append "
                            "without recognising earlier values")
    return {key_id: dict(section) for key_id, section in raw.items()}


def _sorted_section(section: dict[str, str]) -> dict[str, str]:
    """By kind, then number: an append adds lines at the end of each kind."""
    def order(text: str) -> tuple[str, int]:
        kind, _, number = text[2:-2].partition(":")
        return kind, int(number)

    return {text: section[text] for text in sorted(section, key=order)}


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
                 meta: dict[str, Any] | None = None, key: bytes | None = None) -> None:
        """``key``: the recording key (``upsproxy.fingerprint.load_recording_key``);
        without one, no fingerprint is made (and those in the file are kept)."""
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
        self.fingerprinter = Fingerprinter(key) if key is not None else None
        self._other_fingerprints: dict[str, dict[str, str]] = {}
        """Sections of meta.fingerprints made with other recording keys, kept as read."""
        self.redactor = self._new_redactor()
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
            sections = _fingerprint_sections(self.meta, str(self.path))
            ours = self.fingerprinter.key_id if self.fingerprinter is not None else None
            known = sections.pop(ours, {}) if ours is not None else {}
            self._other_fingerprints = sections
            start = _max_numbers(text)
            self.redactor = self._new_redactor(start, known)
            if ours is not None and start and not known:
                self._say_unrecognised(ours, sections)
            return
        self.meta = {"how": "recorded", "recorded_at": stamp, "upstream": self.upstream,
                     "tool": f"upsproxy {__version__}", **self._extra_meta}
        self._write()

    def _new_redactor(self, start: dict[str, int] | None = None,
                      known: dict[str, str] | None = None) -> Redactor:
        return Redactor(self.rules, start, fingerprint=self.fingerprinter, known=known)

    def _say_unrecognised(self, ours: str, others: dict[str, dict[str, str]]) -> None:
        """The one log line of an append whose earlier values cannot be recognised."""
        if others:
            log.warning("%s: its fingerprints were made with another recording key (%s; "
                        "this confdir's is %s): values recorded before get new placeholders",
                        self.path, ", ".join(sorted(others)), ours)
        else:
            log.warning("%s: has no fingerprints (recorded by an older upsproxy or without a "
                        "recording key): values recorded before get new placeholders",
                        self.path)

    # -- recording --------------------------------------------------------------------------

    def record(self, exchange: Exchange) -> int:
        """Add one exchange and rewrite the file; returns its 1-based number.

        On LeakError or UnrecordableError nothing is written and the exchange is
        dropped, so the file keeps its last good content and later exchanges
        still record."""
        try:
            interaction = self._interaction(exchange)
        except RecursionError:
            raise self._unrecordable() from None
        self._learn_shapes(_samples(exchange))
        self.interactions.append(interaction)
        try:
            self._write()
        except BaseException as exc:  # whatever failed, the session stays consistent
            self.interactions.pop()
            del self._items[len(self.interactions):]
            if isinstance(exc, RecursionError):
                raise self._unrecordable() from None
            raise
        self.recorded += 1
        return len(self.interactions)

    def _unrecordable(self) -> UnrecordableError:
        return UnrecordableError(str(self.path), "an exchange with JSON nested too deep to "
                                 "redact was left out; nothing was written for it")

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
        shapes = {k: self.shapes[k] for k in _SHAPED if k in self.shapes}
        while True:
            document: dict[str, Any] = {"version": 1, "meta": self._meta()}
            if shapes:
                document["shapes"] = shapes
            text = dump_cassette(document, items=self._items)
            try:
                check_text(text, self.redactor.secrets(), str(self.path))
            except LeakError as exc:
                if not self._drop_fingerprint(exc):
                    raise
                continue
            break
        write_atomic(self.path, text)

    def _meta(self) -> dict[str, Any]:
        """``meta`` with the fingerprints last: their own block at the end of it."""
        sections = {k: v for k, v in self._other_fingerprints.items() if v}
        if self.fingerprinter is not None and self.redactor.fingerprints:
            sections[self.fingerprinter.key_id] = self.redactor.fingerprints
        meta = {k: v for k, v in self.meta.items() if k != FINGERPRINTS}
        if sections:
            meta[FINGERPRINTS] = {key_id: _sorted_section(sections[key_id])
                                  for key_id in sorted(sections)}
        return meta

    def _drop_fingerprint(self, exc: LeakError) -> bool:
        """A secret of this session that happens to be spelled inside a fingerprint
        (a six-digit account number in 30 hex digits): not a leak, as fingerprints
        are HMACs, but the guard is not told so. That fingerprint goes instead;
        its value keeps its placeholder, only a later append will not recognise it."""
        hit = _FINGERPRINT_HIT.fullmatch(exc.where)
        if hit is None:
            return False
        key_id, text = hit.groups()
        if self.fingerprinter is not None and key_id == self.fingerprinter.key_id:
            if text not in self.redactor.fingerprints:
                return False
            self.redactor.forget_fingerprint(text)
        elif self._other_fingerprints.get(key_id, {}).pop(text, None) is None:
            return False
        log.warning("%s: fingerprint of %s left out: it happens to spell a secret of this "
                    "session (a later append will give that value a new placeholder)",
                    self.path, text)
        return True

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
