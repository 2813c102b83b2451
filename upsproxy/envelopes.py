"""UPS error envelopes: the catalogue of named errors the sandbox answers with.

UPS answers every failure as ``{"response":{"errors":[{"code":"…","message":"…"}]}}``
(compact JSON, ``Content-Type: application/json``, every value a string).
Entries marked ``observed`` are what real UPS returns (DESIGN §3). The others
cover conditions where UPS's real answer is not publicly known; they are the
sandbox's strict choice, in the same shape, and a config file may override
any entry (``errors:`` section) when a team learns what UPS really says.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from functools import lru_cache

from upsproxy.messages import Response

__all__ = ["CATALOGUE", "ErrorSpec", "envelope", "error_response", "resolve"]

_JSON = (("Content-Type", "application/json"),)
_GATEWAY_CODES = frozenset({"250002"})
"""Codes UPS's API gateway answers with ``APIErrorCode``/``APIErrorMessage``
headers beside the envelope (apps and SDKs read them)."""


@dataclass(frozen=True)
class ErrorSpec:
    status: int
    code: str
    message: str
    observed: bool = False
    """True when this is UPS's real answer; False for a sandbox choice."""


CATALOGUE: dict[str, ErrorSpec] = {
    # Observed at UPS.
    "invalid_redirect": ErrorSpec(400, "10400", "Invalid Redirect URL", True),
    "invalid_client": ErrorSpec(401, "10401", "ClientId is Invalid", True),
    "missing_auth_header": ErrorSpec(401, "10400", "Invalid/Missing Authorization Header", True),
    "invalid_refresh_token": ErrorSpec(400, "10400", "Invalid Refresh Token", True),
    "rate_limited": ErrorSpec(429, "10429", "Too Many Requests", True),
    "invalid_token": ErrorSpec(401, "250002", "Invalid Authentication Information.", True),
    # Sandbox choices (UPS's answer unknown): strict, UPS-shaped, overridable.
    "blocked_merchant": ErrorSpec(403, "10403", "Blocked Merchant"),  # status from the spec
    "invalid_request": ErrorSpec(400, "10400", "Invalid Request"),
    "invalid_code": ErrorSpec(400, "10400", "Invalid Authorization Code"),
    "redirect_mismatch": ErrorSpec(400, "10400", "Invalid Redirect URL"),
    "unsupported_grant_type": ErrorSpec(400, "10400", "Invalid grant_type"),
    "unsupported_response_type": ErrorSpec(400, "10400", "Invalid response_type"),
    "invalid_code_verifier": ErrorSpec(400, "10400", "Invalid code_verifier"),
    "malformed_code_verifier": ErrorSpec(400, "10400", "Malformed code_verifier"),
    "missing_code_verifier": ErrorSpec(400, "10400", "Missing code_verifier"),
    "unexpected_code_verifier": ErrorSpec(
        400, "10400", "code_verifier sent for a code issued without code_challenge"
    ),
    "invalid_body": ErrorSpec(400, "10400", "Invalid Request Body"),
    "unsupported_media_type": ErrorSpec(400, "10400", "Invalid Content-Type"),
    "body_too_large": ErrorSpec(400, "10400", "Request Body Too Large"),
    "method_not_allowed": ErrorSpec(405, "10405", "Method Not Allowed"),
    "not_found": ErrorSpec(404, "10404", "Resource Not Found"),
    "server_error": ErrorSpec(500, "10500", "Internal Server Error"),
}


def envelope(code: str, message: str) -> dict[str, object]:
    return {"response": {"errors": [{"code": code, "message": message}]}}


def resolve(recorded: dict[str, tuple[int, str, str]],
            overrides: dict[str, dict[str, int | str]]) -> dict[str, ErrorSpec]:
    """The catalogue as this sandbox answers: a cassette's recorded answer for a
    name replaces the sandbox's choice (it is what UPS said), and the config
    file's overrides win over both."""
    errors = dict(CATALOGUE)
    for name, (status, code, message) in recorded.items():
        if name in errors:
            errors[name] = ErrorSpec(status, code, message, observed=True)
    for name, changes in overrides.items():
        errors[name] = replace(errors[name], observed=False, **changes)  # type: ignore[arg-type]
    return errors


@lru_cache(maxsize=256)
def _body(spec: ErrorSpec) -> bytes:
    return json.dumps(envelope(spec.code, spec.message), separators=(",", ":"),
                      ensure_ascii=False).encode()


@lru_cache(maxsize=256)
def _headers(code: str, message: str) -> tuple[tuple[str, str], ...]:
    if code not in _GATEWAY_CODES:
        return _JSON
    return (*_JSON, ("APIErrorCode", code), ("APIErrorMessage", message))


def error_response(spec: ErrorSpec, *, rule: str, extra: dict[str, str] | None = None) -> Response:
    """The UPS answer for ``spec``; ``rule`` says in the log why it was chosen.
    Envelope bodies are encoded once per spec: errors are the hot path of
    retry storms and load tests. Gateway errors (``250002``) also carry UPS's
    ``APIErrorCode``/``APIErrorMessage`` headers, whoever answers them (the
    bearer check or a fault rule)."""
    return Response(spec.status, _headers(spec.code, spec.message), _body(spec), rule,
                    extra or {})

