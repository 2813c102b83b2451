"""Protected UPS API calls (``/api/...``): bearer check, then recorded answers.

UPS checks the access token before anything else: a missing, unknown or
expired bearer gets 401 ``250002 Invalid Authentication Information.`` with
the ``APIErrorCode``/``APIErrorMessage`` headers. A valid call is answered
from the cassette's ``api`` interactions, matched on method, path, query and
parsed JSON body (key order never matters).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from upsproxy.cassette import Cassette, Interaction
from upsproxy.clock import Clock
from upsproxy.envelopes import ErrorSpec, envelope
from upsproxy.messages import Request, Response
from upsproxy.store import StateStore

__all__ = ["ProtectedApi"]

log = logging.getLogger(__name__)

_Key = tuple[str, str, tuple[tuple[str, str], ...]]


class ProtectedApi:
    def __init__(self, cassette: Cassette, store: StateStore, clock: Clock,
                 errors: Mapping[str, ErrorSpec]) -> None:
        self.store = store
        self.clock = clock
        self.errors = errors
        self._recorded: dict[_Key, list[Interaction]] = {}
        for interaction in cassette.of_kind("api"):
            parts = urlsplit(interaction.request.url)
            key = (interaction.request.method, parts.path,
                   tuple(sorted(parse_qsl(parts.query, keep_blank_values=True))))
            self._recorded.setdefault(key, []).append(interaction)

    def handle(self, req: Request) -> Response:
        auth = req.header("authorization") or ""
        scheme, _, token = auth.partition(" ")
        grant = None
        if scheme.lower() == "bearer" and token.strip():
            grant = self.store.get_access(token.strip(), self.clock.now_ms())
        if grant is None:
            spec = self.errors["invalid_token"]
            rule = "api.missing_token" if not auth else "api.invalid_or_expired_token"
            return Response.json(spec.status, envelope(spec.code, spec.message), rule=rule,
                                 headers=(("APIErrorCode", spec.code),
                                          ("APIErrorMessage", spec.message)))
        key = (req.method, req.path, tuple(sorted(req.query_pairs)))
        body = _parsed(req.body)
        for interaction in self._recorded.get(key, ()):
            recorded = interaction.request.json()
            if recorded is None or recorded == body:
                return _answer(interaction, grant.client_id)
        log.info("no recorded API answer for %s %s%s; recorded: %s", req.method, req.path,
                 _query_text(key[2]), ", ".join(sorted(
                     f"{m} {p}{_query_text(q)}" for m, p, q in self._recorded)) or "none")
        spec = self.errors["not_found"]
        return Response.json(spec.status, envelope(spec.code, spec.message),
                             rule="api.no_recorded_match", extra={"client_id": grant.client_id})


def _query_text(pairs: tuple[tuple[str, str], ...]) -> str:
    """Query parameter names (values may be personal) for a miss's log line."""
    return "?" + "&".join(f"{k}=…" for k, _ in pairs) if pairs else ""


def _parsed(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")


def _answer(interaction: Interaction, client_id: str) -> Response:
    recorded = interaction.response
    headers = tuple((k, v) for k, v in recorded.headers.items()
                    if k.lower() not in ("content-length", "transfer-encoding", "date",
                                          "content-encoding"))
    body = b""
    if recorded.body:
        if "json" in recorded.body:
            body = json.dumps(recorded.body["json"], separators=(",", ":")).encode()
            if not any(k.lower() == "content-type" for k, _ in headers):
                headers = (("Content-Type", "application/json"), *headers)
        else:
            body = str(recorded.body.get("text", "")).encode()
    return Response(recorded.status, headers, body, rule=f"api.recorded#{interaction.index + 1}",
                    extra={"client_id": client_id})
