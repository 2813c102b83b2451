"""The shape of a recorded secret, so replay can mint look-alikes without the value.

A cassette keeps no code or token, but an app may depend on what they look
like (a column of 164 characters, a parser that expects ``+ / =``, a JWT
whose claims it reads). This turns one raw value into the ``shapes`` entry
that ``upsproxy.shapes.shape_from_mapping`` reads back. For a JWT the header
and claim *names* survive; claim values survive only when they describe the
token rather than a person (issuer, audience, scope, version): everything
else becomes ``<<random:N>>`` of the same length, the client id becomes
``<<client_id>>`` and times become 0 (replay sets them from its clock).
"""

from __future__ import annotations

import base64
import binascii
import json
import string
from typing import Any

__all__ = ["infer_jwt", "infer_shape", "infer_token"]

_B64 = frozenset(string.ascii_letters + string.digits + "+/")
_B64URL = frozenset(string.ascii_letters + string.digits + "-_")
_HEX = frozenset("0123456789abcdef")
_ALNUM = frozenset(string.ascii_letters + string.digits)
_TIMES = frozenset({"iat", "nbf", "exp", "auth_time"})
_SAFE_CLAIMS = frozenset({"iss", "aud", "scope", "scp", "ver", "version", "auth_type",
                          "token_type", "typ", "grant_type", "status", "amr", "acr"})
_SAFE_HEADER = frozenset({"alg", "typ", "cty", "enc", "zip"})


def infer_token(raw: str) -> dict[str, Any]:
    """``{alphabet, length[, padding]}`` for an opaque token, always valid for TokenShape."""
    length = max(8, min(len(raw), 8192))
    body = raw.rstrip("=")
    padding = len(raw) - len(body)
    chars = set(body)
    if chars <= _HEX:
        return {"alphabet": "hex", "length": length}
    b64_only = bool(chars & {"+", "/"}) or padding > 0
    if chars <= _B64 and b64_only and len(raw) % 4 == 0 and padding <= 2 \
            and 8 <= len(raw) <= 8192:
        shape: dict[str, Any] = {"alphabet": "base64", "length": len(raw)}
        if padding:
            shape["padding"] = padding
        return shape
    if chars <= _ALNUM:
        return {"alphabet": "alnum", "length": length}
    if chars <= _B64URL and padding == 0 and length % 4 != 1:
        return {"alphabet": "base64url", "length": length}
    if chars <= _B64 | {"="}:  # base64 of an odd length (truncated?): nearest valid one
        return {"alphabet": "base64", "length": max(8, length - length % 4)}
    return {"alphabet": "alnum", "length": length}


def _segment(part: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def infer_jwt(raw: str, client_ids: set[str]) -> tuple[dict[str, Any], list[str]] | None:
    """The ``{jwt: ...}`` shape of a JWS compact token and the personal text values it
    carried (so the leak guard also looks for them), or None when ``raw`` is no JWT."""
    parts = raw.split(".")
    if len(parts) != 3:
        return None
    try:
        header, claims = _segment(parts[0]), _segment(parts[1])
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        return None
    personal: list[str] = []
    shape_header = {str(k): _value(str(k), v, client_ids, personal, _SAFE_HEADER)
                    for k, v in header.items()}
    shape_claims: dict[str, Any] = {}
    for key, value in claims.items():
        name = str(key)
        if name in _TIMES and isinstance(value, int | float) and not isinstance(value, bool):
            shape_claims[name] = 0
        else:
            shape_claims[name] = _value(name, value, client_ids, personal, _SAFE_CLAIMS)
    signature = max(16, min(len(parts[2]), 4096))
    return ({"jwt": {"header": shape_header, "claims": shape_claims,
                     "signature_length": signature}}, personal)


def _value(name: str, value: Any, client_ids: set[str], personal: list[str],
           safe: frozenset[str]) -> Any:
    if isinstance(value, str):
        if value in client_ids:
            return "<<client_id>>"
        if name in safe and not any(c in value for c in "@<>"):
            return value
        if not value:
            return ""
        personal.append(value)
        return f"<<random:{max(1, min(len(value), 9999))}>>"
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return value if name in safe else 0
    if isinstance(value, list):
        return [_value(name, v, client_ids, personal, safe) for v in value]
    if isinstance(value, dict):
        return {str(k): _value(str(k), v, client_ids, personal, safe) for k, v in value.items()}
    return None


def infer_shape(raw: str, client_ids: set[str]) -> tuple[dict[str, Any], list[str]]:
    """A JWT shape when ``raw`` is one, else an opaque token shape."""
    jwt = infer_jwt(raw, client_ids)
    if jwt is not None:
        return jwt
    return infer_token(raw), []
