"""Protected UPS API calls (``/api/...``): bearer check, then recorded answers.

UPS checks the access token before anything else: a missing, unknown or
expired bearer gets 401 ``250002 Invalid Authentication Information.`` with
the ``APIErrorCode``/``APIErrorMessage`` headers. A valid call is answered
from the cassette's ``api`` interactions, matched by ``match`` on method,
path, query and parsed body (key order never matters), and rewritten for the
caller by ``rewrite`` (its token and client, dates moved to the sandbox
clock). A call that matches nothing gets UPS's 404 envelope and one log line
naming the closest recorded calls and what differed (names, never values).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from upsproxy.cassette import Cassette, Interaction
from upsproxy.clock import Clock
from upsproxy.envelopes import ErrorSpec, envelope, error_response
from upsproxy.match import Wanted, closest, first_match, parse_body, wanted_from_recorded
from upsproxy.messages import Request, Response, printable
from upsproxy.rewrite import Template, recorded_epoch_ms
from upsproxy.store import StateStore

__all__ = ["ProtectedApi"]

log = logging.getLogger(__name__)

_FRAMING = ("content-length", "transfer-encoding", "date", "content-encoding")


class _Recorded:
    """One recorded API interaction, ready to answer with.

    Its rewrite template is built on its first answer, not at load: a cassette
    of thousands of calls starts fast and keeps only the templates it used."""

    def __init__(self, interaction: Interaction, recorded_ms: int | None) -> None:
        self.interaction = interaction
        self.recorded_ms = recorded_ms
        response = interaction.response
        self.status = response.status
        self.headers = tuple((k, v) for k, v in response.headers.items()
                             if k.lower() not in _FRAMING)
        self.json = response.body is not None and "json" in response.body
        self._template: Template | None = None
        self.text = b""
        if self.json:
            if not any(k.lower() == "content-type" for k, _ in self.headers):
                self.headers = (("Content-Type", "application/json"), *self.headers)
        elif response.body:
            self.text = str(response.body.get("text", "")).encode()
        self.rule = f"api.recorded#{interaction.index + 1}"

    @property
    def template(self) -> Template:
        if self._template is None:  # a race builds two equal templates: harmless
            body = self.interaction.response.body
            assert body is not None
            self._template = Template(body["json"], self.recorded_ms)
        return self._template

    def answer(self, token: str, client_id: str, now_ms: int) -> Response:
        body = (self.template.render(token=token, client_id=client_id, now_ms=now_ms)
                if self.json else self.text)
        return Response(self.status, self.headers, body, rule=self.rule,
                        extra={"client_id": client_id})


class ProtectedApi:
    def __init__(self, cassette: Cassette, store: StateStore, clock: Clock,
                 errors: Mapping[str, ErrorSpec]) -> None:
        self.store = store
        self.clock = clock
        self.errors = errors
        recorded_ms = recorded_epoch_ms(cassette.meta)
        self._recorded: list[tuple[Wanted, _Recorded]] = []
        self._by_route: dict[tuple[str, int], list[tuple[Wanted, _Recorded]]] = {}
        for interaction in cassette.of_kind("api"):
            if interaction.response.status == 401:
                # Who is authenticated is the sandbox's own decision (the bearer
                # check above); a recorded 401 is kept as a named error for
                # faults, never the answer to a call with a valid token.
                continue
            req = interaction.request
            wanted = wanted_from_recorded(req.method, req.url, req.body)
            entry = (wanted, _Recorded(interaction, recorded_ms))
            self._recorded.append(entry)
            # Candidates by method and path depth: a cassette of thousands of
            # calls is not scanned in full for each one.
            self._by_route.setdefault((wanted.method, wanted.path.count("/")),
                                      []).append(entry)

    def handle(self, req: Request) -> Response:
        auth = req.header("authorization") or ""
        scheme, _, token = auth.partition(" ")
        token = token.strip()
        now = self.clock.now_ms()
        grant = None
        if scheme.lower() == "bearer" and token:
            grant = self.store.get_access(token, now)
        if grant is None:
            spec = self.errors["invalid_token"]
            rule = "api.missing_token" if not auth else "api.invalid_or_expired_token"
            return error_response(spec, rule=rule)
        actual = Wanted(req.method, req.path, tuple(req.query_pairs), parse_body(req.body))
        found = first_match(self._by_route.get((req.method, req.path.count("/")), ()), actual)
        if found is not None:
            return found.answer(token, grant.client_id, now)
        near = closest(self._recorded, actual)
        log.info("no recorded API answer for %s %s%s; closest: %s", req.method,
                 printable(req.path), _query_names(actual),
                 "; ".join(_describe(m.candidate.interaction, m.reasons) for m in near)
                 or "none recorded")
        spec = self.errors["not_found"]
        return Response.json(spec.status, envelope(spec.code, spec.message),
                             rule="api.no_recorded_match", extra={"client_id": grant.client_id})


def _query_names(actual: Wanted) -> str:
    """Query parameter names (values may be personal) for a miss's log line."""
    return "?" + "&".join(f"{printable(k, 40)}=…" for k, _ in actual.query) if actual.query \
        else ""


def _describe(interaction: Interaction, reasons: tuple[str, ...]) -> str:
    """``#12 GET /api/track/v1/details/… (query: missing locale)``."""
    recorded = interaction.request
    return (f"#{interaction.index + 1} {recorded.method} "
            f"{printable(recorded.url.split('?')[0])} ({', '.join(reasons)})")
