"""The sandbox's own control endpoints: state, clock, codes, reset, exchanges, JWKS.

Registered on ``sandbox.control`` (``control.py`` routes and guards them:
reverse listener, loopback peers, JSON). What each answers:

- ``GET state``: live codes, access and refresh tokens with client, expiry and
  lifetime left. Values are never shown, only ``store.fingerprint`` (hash
  prefix and length), which an app can compute for its own token;
- ``GET clock`` / ``POST clock`` with ``{"advance": SECONDS}``,
  ``{"set": EPOCH_MS}`` or ``{"reset": true}`` (back to real time);
- ``POST codes`` with ``client_id``, ``redirect_uri`` and optional
  ``code_challenge`` and ``scope``: a code as if the user had approved, for
  backend tests that skip the login page. Returning it is the point;
- ``POST reset``: no codes, tokens, logins or exchanges; clock at real time;
- ``GET exchanges?limit=N``: the latest exchanges (time, method, host, path,
  status, rule, client) from the sandbox's bounded deque; no bodies, queries
  or headers;
- ``GET jwks``: the public key minted access tokens are signed with.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from upsproxy.control import ControlError
from upsproxy.messages import Request
from upsproxy.profile import MAX_LIFETIME_S
from upsproxy.shapes import JwtShape

if TYPE_CHECKING:
    from upsproxy.sandbox import Sandbox

__all__ = ["install"]

_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")
_MAX_EPOCH_MS = 253_402_300_799_999  # 9999-12-31, what datetime can show
DEFAULT_EXCHANGES = 50


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds") \
        .replace("+00:00", "Z")


def _left(expires_ms: int, now: int) -> int:
    return max(0, (expires_ms - now) // 1000)


def install(sandbox: Sandbox) -> None:
    control = sandbox.control

    def clock_view() -> dict[str, Any]:
        now = sandbox.clock.now_ms()
        return {"now_ms": now, "now": iso(now), "offset_ms": sandbox.clock.offset_ms}

    def get_clock(req: Request, body: Any) -> object:
        return clock_view()

    def post_clock(req: Request, body: Any) -> object:
        if not isinstance(body, dict) or len(body) != 1:
            raise ControlError('send one of {"advance": SECONDS}, {"set": EPOCH_MS} or '
                               '{"reset": true}')
        (action, value), = body.items()
        if action == "advance":
            if isinstance(value, bool) or not isinstance(value, int | float) or \
                    not math.isfinite(value) or abs(value) > MAX_LIFETIME_S:
                raise ControlError("advance takes seconds: a number within ten years")
            sandbox.clock.advance(value)
        elif action == "set":
            if isinstance(value, bool) or not isinstance(value, int) or \
                    not 0 < value <= _MAX_EPOCH_MS:
                raise ControlError("set takes epoch milliseconds: a positive integer")
            sandbox.clock.set(value)
        elif action == "reset" and value is True:
            sandbox.clock.reset()
        else:
            raise ControlError(f"unknown clock action {str(action)[:40]!r}; "
                               "use advance, set or reset")
        return clock_view()

    def get_state(req: Request, body: Any) -> object:
        now = sandbox.clock.now_ms()
        snap = sandbox.store.snapshot(now)
        return {
            "now_ms": now, "now": iso(now), "store": type(sandbox.store).__name__,
            "state_file": str(path) if (path := getattr(sandbox.store, "path", None)) else None,
            "counts": snap.counts, "pending_logins": snap.logins,
            "codes": [{"id": key, "client_id": g.client_id, "redirect_uri": g.redirect_uri,
                       "pkce": g.challenge is not None, "scope": g.scope,
                       "expires_at": iso(g.expires_ms), "expires_in_s": _left(g.expires_ms, now)}
                      for key, g in snap.codes],
            "access_tokens": [{"id": key, "client_id": g.client_id, "scope": g.scope,
                               "expires_at": iso(g.expires_ms),
                               "expires_in_s": _left(g.expires_ms, now)}
                              for key, g in snap.access],
            "refresh_tokens": [{"id": key, "client_id": g.client_id, "scope": g.scope,
                                "issued_at": iso(g.issued_ms), "expires_at": iso(g.expires_ms),
                                "expires_in_s": _left(g.expires_ms, now),
                                "refresh_count": g.refresh_count}
                               for key, g in snap.refresh],
        }

    def post_codes(req: Request, body: Any) -> object:
        if not isinstance(body, dict):
            raise ControlError("send {\"client_id\": ..., \"redirect_uri\": ...}")
        unknown = set(body) - {"client_id", "redirect_uri", "code_challenge", "scope"}
        if unknown:
            raise ControlError(f"unknown field(s): {', '.join(sorted(map(str, unknown)))[:200]}")
        client_id, redirect_uri = body.get("client_id"), body.get("redirect_uri")
        challenge, scope = body.get("code_challenge"), body.get("scope")
        if not isinstance(client_id, str) or not client_id or not client_id.isprintable():
            raise ControlError("client_id must be non-empty text")
        parts = urlsplit(redirect_uri) if isinstance(redirect_uri, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc \
                or not str(redirect_uri).isprintable():
            raise ControlError("redirect_uri must be an absolute http(s) URL")
        if challenge is not None and not (isinstance(challenge, str)
                                          and _CHALLENGE.fullmatch(challenge)):
            raise ControlError("code_challenge must be 43 base64url characters "
                               "(BASE64URL(SHA256(verifier)), RFC 7636)")
        if scope is not None and not isinstance(scope, str):
            raise ControlError("scope must be text")
        apps = sandbox.config.apps
        if apps is not None:
            if client_id not in apps:
                raise ControlError("client_id is not registered in the sandbox's config")
            if redirect_uri not in apps[client_id].redirect_uris:
                raise ControlError("redirect_uri is not registered for this client")
        assert isinstance(redirect_uri, str)
        code = sandbox.auth.issue_code(client_id, redirect_uri, challenge, scope)
        return {"code": code, "client_id": client_id, "redirect_uri": redirect_uri,
                "pkce": challenge is not None, "expires_in_s": sandbox.profile.code_ttl_s}

    def post_reset(req: Request, body: Any) -> object:
        sandbox.store.reset()
        sandbox.clock.reset()
        sandbox.exchanges.clear()
        return {"reset": True, **clock_view()}

    def get_exchanges(req: Request, body: Any) -> object:
        params = dict(req.query_pairs)
        raw = params.get("limit", str(DEFAULT_EXCHANGES))
        if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= 10_000:
            raise ControlError("limit must be a whole number from 1")
        recent = list(sandbox.exchanges)[-int(raw):]
        return {"kept": sandbox.exchanges.maxlen, "exchanges": [
            {"at": iso(at), "method": method, "host": host, "path": path, "status": status,
             "rule": rule, "client_id": client}
            for at, method, host, path, status, rule, client in recent]}

    def get_jwks(req: Request, body: Any) -> object:
        shape = sandbox.profile.access_shape
        if sandbox.signer is None or not isinstance(shape, JwtShape) or \
                not str(shape.header.get("alg", "")).startswith("RS"):
            return {"keys": []}  # opaque or HMAC tokens: no public key to publish
        return sandbox.signer.jwks((str(shape.header["alg"]),))

    control.add("GET", "clock", get_clock)
    control.add("POST", "clock", post_clock)
    control.add("GET", "state", get_state)
    control.add("POST", "codes", post_codes)
    control.add("POST", "reset", post_reset)
    control.add("GET", "exchanges", get_exchanges)
    control.add("GET", "jwks", get_jwks)
