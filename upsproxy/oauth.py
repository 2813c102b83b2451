"""The fake UPS authorization server: authorize, login, token and refresh.

Pure: it takes a ``Request`` and returns a ``Response``; time, randomness and
storage are injected. Each rule of DESIGN §3/§5 is one check with one named
failure, so the log line says exactly which rule decided an answer:

- client binding: a code or refresh token works only for the client it was
  issued to; with an app registry, unknown clients and wrong secrets fail;
- the token request's redirect_uri equals the authorize one, byte for byte;
- codes are single use and expire; refresh tokens rotate and expire;
- PKCE per RFC 7636 (always S256 at UPS): a code issued with a challenge needs
  the matching verifier; a PKCE client (no Basic) needs a code with a challenge;
- Basic credentials are split at the first colon.

Failed attempts do not consume a code or refresh token: a client may retry
with the right verifier. Success consumes atomically (see ``store``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlencode, urlsplit

from upsproxy.clock import Clock
from upsproxy.config import SandboxConfig
from upsproxy.envelopes import ErrorSpec, error_response
from upsproxy.forms import BasicCredentials, FormError, parse_basic, parse_form
from upsproxy.login_page import login_form, login_problem
from upsproxy.messages import Request, Response
from upsproxy.pkce import verifier_is_well_formed, verifier_matches
from upsproxy.profile import ReplayProfile
from upsproxy.routes import LOGIN_PATH
from upsproxy.shapes import Minter
from upsproxy.store import AccessGrant, CodeGrant, PendingLogin, RefreshGrant, StateStore

__all__ = ["AuthServer"]

_LOGIN_GONE = ("This sign-in is unknown, was already used, or has expired (after "
               "10 minutes). Start again from your application.")


@dataclass
class _Client:
    client_id: str
    pkce: bool
    """True when the client authenticated with code_verifier instead of Basic."""


class AuthServer:
    def __init__(self, *, profile: ReplayProfile, config: SandboxConfig, store: StateStore,
                 clock: Clock, minter: Minter, errors: Mapping[str, ErrorSpec],
                 auto_approve: bool = False) -> None:
        self.profile = profile
        self.config = config
        self.store = store
        self.clock = clock
        self.minter = minter
        self.auto_approve = auto_approve
        self._errors = errors

    # -- helpers ------------------------------------------------------------------
    def _fail(self, name: str, rule: str, client_id: str | None = None) -> Response:
        extra = {"client_id": client_id} if client_id else None
        return error_response(self._errors[name], rule=rule, extra=extra)

    def _app_name(self, client_id: str) -> str:
        apps = self.config.apps
        app = apps.get(client_id) if apps else None
        return app.name if app is not None and app.name else self.profile.app_name

    # -- GET /security/v1/oauth/authorize ----------------------------------------------
    def authorize(self, req: Request) -> Response:
        if req.method != "GET":
            return self._fail("method_not_allowed", "authorize.method")
        params: dict[str, str] = {}
        for name, value in req.query_pairs:
            if name in params:
                return self._fail("invalid_request", f"authorize.duplicate_{_safe(name)}")
            params[name] = value
        client_id = params.get("client_id", "")
        if not client_id:
            return self._fail("invalid_request", "authorize.missing_client_id")
        apps = self.config.apps
        if apps is not None and client_id not in apps:
            return self._fail("invalid_client", "authorize.unknown_client", client_id)
        redirect_uri = params.get("redirect_uri", "")
        parts = urlsplit(redirect_uri)
        if (parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment
                or not redirect_uri.isprintable() or " " in redirect_uri):
            return self._fail("invalid_redirect", "authorize.bad_redirect_uri", client_id)
        if apps is not None and redirect_uri not in apps[client_id].redirect_uris:
            return self._fail("invalid_redirect", "authorize.unregistered_redirect_uri", client_id)
        if params.get("response_type") != "code":
            return self._fail("unsupported_response_type", "authorize.response_type", client_id)
        # UPS has no code_challenge_method: the challenge is always S256 (DESIGN §3).
        challenge = params.get("code_challenge") or None
        state, scope = params.get("state"), params.get("scope")
        now = self.clock.now_ms()
        extra = {"client_id": client_id, "pkce": "yes" if challenge else "no"}
        app_name = self._app_name(client_id)
        headers = (("appname", app_name),
                   ("displayname", app_name if app_name != self.profile.app_name
                    else self.profile.display_name))
        if self.auto_approve:
            code = self._issue_code(client_id, redirect_uri, challenge, scope, now)
            location = _with_params(redirect_uri, [("code", code), ("state", state)])
            return Response.redirect(location, rule="authorize.auto_approved", headers=headers,
                                     extra=extra)
        txn = self.minter.alnum(32)
        self.store.put_login(txn, PendingLogin(client_id, redirect_uri, state, scope, challenge,
                                               now + self.profile.login_ttl_s * 1000), now)
        base = f"{req.origin}{LOGIN_PATH}" if req.origin else self.profile.login_url
        login_params = [("client_id", client_id), ("redirect_uri", redirect_uri),
                        ("response_type", "code"), ("scope", scope), ("state", state),
                        ("type", "ups_com_api"), ("upsproxy_txn", txn)]
        return Response.redirect(_with_params(base, login_params), rule="authorize.to_login",
                                 headers=headers, extra=extra)

    def issue_code(self, client_id: str, redirect_uri: str, challenge: str | None = None,
                   scope: str | None = None) -> str:
        """A code as the login page would issue it (control API, pytest helper)."""
        return self._issue_code(client_id, redirect_uri, challenge, scope, self.clock.now_ms())

    def _issue_code(self, client_id: str, redirect_uri: str, challenge: str | None,
                    scope: str | None, now: int) -> str:
        code = self.minter.mint(self.profile.code_shape, client_id=client_id)
        self.store.put_code(code, CodeGrant(client_id, redirect_uri, challenge, scope,
                                            now + self.profile.code_ttl_s * 1000), now)
        return code

    # -- GET/POST /lasso/signin (the login page) --------------------------------------
    def login(self, req: Request) -> Response:
        now = self.clock.now_ms()
        if req.method == "GET":
            txn = dict(req.query_pairs).get("upsproxy_txn", "")
            pending = self.store.get_login(txn, now) if txn else None
            if pending is None:
                return login_problem(_LOGIN_GONE, "login.unknown")
            return login_form(txn=txn, app_name=self._app_name(pending.client_id),
                              client_id=pending.client_id, scope=pending.scope,
                              action=LOGIN_PATH)
        if req.method != "POST":
            return login_problem("Method not allowed.", "login.method")
        try:
            form = parse_form(req.header("content-type"), req.body,
                              req.header("content-encoding"))
        except FormError as exc:
            return login_problem(f"The sign-in form was not understood ({exc.reason}).",
                                 "login.bad_form")
        txn = form.get("upsproxy_txn", "")
        pending = self.store.take_login(txn, now) if txn else None
        if pending is None:
            return login_problem(_LOGIN_GONE, "login.unknown")
        extra = {"client_id": pending.client_id}
        decision = form.get("decision")
        if decision not in ("approve", "deny"):
            self.store.put_login(txn, pending, now)  # a broken form must not cost the sign-in
            return login_problem("The sign-in form needs decision=approve or decision=deny.",
                                 "login.bad_decision")
        if decision == "deny":
            location = _with_params(pending.redirect_uri,
                                    [("error", "access_denied"), ("state", pending.state)])
            return Response.redirect(location, rule="login.denied", extra=extra)
        code = self._issue_code(pending.client_id, pending.redirect_uri, pending.challenge,
                                pending.scope, now)
        location = _with_params(pending.redirect_uri, [("code", code), ("state", pending.state)])
        return Response.redirect(location, rule="login.approved", extra=extra)

    # -- client authentication ---------------------------------------------------------
    def _client(self, req: Request, form: dict[str, str], *, allow_pkce: bool,
                where: str) -> _Client | Response:
        headers = req.header_all("authorization")
        if len(headers) > 1:
            return self._fail("invalid_request", f"{where}.duplicate_authorization")
        if headers:
            creds = parse_basic(headers[0])
            if creds is None:
                return self._fail("missing_auth_header", f"{where}.malformed_basic")
            if "client_secret" in form:
                return self._fail("invalid_request", f"{where}.basic_and_client_secret",
                                  creds.client_id)
            body_id = form.get("client_id")
            if body_id is not None and body_id != creds.client_id:
                return self._fail("invalid_client", f"{where}.client_id_mismatch",
                                  creds.client_id)
            return self._check_registered(creds, where) or _Client(creds.client_id, False)
        # No Basic header: only a public client may do that, naming itself in the
        # body: with PKCE at the token endpoint, and at refresh when it is
        # registered without a secret (it has none to send).
        apps = self.config.apps
        client_id = form.get("client_id", "")
        app = apps.get(client_id) if apps is not None else None
        public_refresh = not allow_pkce and app is not None and app.client_secret is None
        if not public_refresh and (not allow_pkce or "code_verifier" not in form):
            return self._fail("missing_auth_header", f"{where}.missing_basic", client_id or None)
        if not client_id:
            return self._fail("invalid_client", f"{where}.pkce_missing_client_id")
        if apps is not None and app is None:
            return self._fail("invalid_client", f"{where}.unknown_client", client_id)
        # The PKCE exchange needs no secret even from an app registered with one:
        # that is UPS's PKCE mode (the verifier is the proof).
        return _Client(client_id, True)

    def _check_registered(self, creds: BasicCredentials, where: str) -> Response | None:
        apps = self.config.apps
        if apps is None:
            return None
        app = apps.get(creds.client_id)
        if app is None:
            return self._fail("invalid_client", f"{where}.unknown_client", creds.client_id)
        if app.client_secret is None or app.client_secret != creds.secret:
            return self._fail("invalid_client", f"{where}.wrong_secret", creds.client_id)
        return None

    def _form(self, req: Request, where: str) -> dict[str, str] | Response:
        if req.method != "POST":
            return self._fail("method_not_allowed", f"{where}.method")
        if len(req.header_all("content-type")) > 1:  # which one would UPS believe?
            return self._fail("invalid_request", f"{where}.duplicate_content_type")
        try:
            return parse_form(req.header("content-type"), req.body,
                              req.header("content-encoding"))
        except FormError as exc:
            return self._fail(exc.reason, f"{where}.{exc.reason}")

    # -- POST /security/v1/oauth/token -------------------------------------------------
    def token(self, req: Request) -> Response:
        form = self._form(req, "token")
        if isinstance(form, Response):
            return form
        grant_type = form.get("grant_type")
        if grant_type is None:
            return self._fail("invalid_request", "token.missing_grant_type")
        if grant_type != "authorization_code":
            return self._fail("unsupported_grant_type", "token.grant_type")
        client = self._client(req, form, allow_pkce=True, where="token")
        if isinstance(client, Response):
            return client
        code, redirect_uri = form.get("code"), form.get("redirect_uri")
        if not code or redirect_uri is None:
            return self._fail("invalid_request", "token.missing_code_or_redirect_uri",
                              client.client_id)
        verifier = form.get("code_verifier")

        def check(grant: CodeGrant) -> str | None:
            if grant.client_id != client.client_id:
                return "client_mismatch"
            if grant.redirect_uri != redirect_uri:
                return "redirect_mismatch"
            if grant.challenge is None:
                # A public (PKCE) client proves nothing without a challenge.
                return "unexpected_code_verifier" if verifier is not None else None
            if verifier is None:
                return "missing_code_verifier"
            if not verifier_is_well_formed(verifier):
                return "malformed_code_verifier"
            if not verifier_matches(verifier, grant.challenge):
                return "invalid_code_verifier"
            return None

        now = self.clock.now_ms()
        grant, failure = self.store.redeem_code(code, now, check)
        if grant is None:
            name = {"client_mismatch": "invalid_client", "redirect_mismatch": "redirect_mismatch",
                    "unknown": "invalid_code", "reused": "invalid_code",
                    "expired": "invalid_code"}.get(failure or "", failure or "invalid_code")
            return self._fail(name, f"token.code_{failure}", client.client_id)
        rule = "token.issued_pkce" if client.pkce else "token.issued_basic"
        return self._issue_tokens(client.client_id, grant.scope, 0, now, rule,
                                  self.profile.token_fields)

    # -- POST /security/v1/oauth/refresh -----------------------------------------------
    def refresh(self, req: Request) -> Response:
        form = self._form(req, "refresh")
        if isinstance(form, Response):
            return form
        grant_type = form.get("grant_type")
        if grant_type is None:
            return self._fail("invalid_request", "refresh.missing_grant_type")
        if grant_type != "refresh_token":
            return self._fail("unsupported_grant_type", "refresh.grant_type")
        client = self._client(req, form, allow_pkce=False, where="refresh")
        if isinstance(client, Response):
            return client
        token = form.get("refresh_token")
        if not token:
            return self._fail("invalid_refresh_token", "refresh.missing_refresh_token",
                              client.client_id)

        def check(grant: RefreshGrant) -> str | None:
            return "client_mismatch" if grant.client_id != client.client_id else None

        now = self.clock.now_ms()
        grant, failure = self.store.rotate_refresh(token, now, check)
        if grant is None:
            return self._fail("invalid_refresh_token", f"refresh.token_{failure}", client.client_id)
        return self._issue_tokens(client.client_id, grant.scope, grant.refresh_count + 1, now,
                                  "refresh.issued", self.profile.refresh_fields)

    # -- minting ------------------------------------------------------------------------
    def _issue_tokens(self, client_id: str, scope: str | None, refresh_count: int, now: int,
                      rule: str, fields: tuple[tuple[str, str | None], ...]) -> Response:
        profile = self.profile
        # As captured from UPS: expires_in (14399) is one second short of the
        # token's real life (JWT exp - iat = 14400), so an app that trusts
        # expires_in never sends a token in its last second.
        life_s = profile.access_ttl_s + 1
        access = self.minter.mint(profile.access_shape, now_s=now // 1000,
                                  ttl_s=life_s, client_id=client_id, scope=scope)
        refresh = self.minter.mint(profile.refresh_shape, client_id=client_id)
        self.store.put_tokens(
            access, AccessGrant(client_id, scope, now + life_s * 1000),
            refresh, RefreshGrant(client_id, scope, now, now + profile.refresh_ttl_s * 1000,
                                  refresh_count))
        dynamic = {
            "refresh_token_expires_in": str(profile.refresh_ttl_s),
            "issued_at": str(now),
            "client_id": client_id,
            "access_token": access,
            "refresh_token": refresh,
            "refresh_token_issued_at": str(now),
            "expires_in": str(profile.access_ttl_s),
            "refresh_count": str(refresh_count),
        }
        body: dict[str, str] = {}
        for key, static in fields:
            if key == "scope" and scope is not None:
                body[key] = scope
            else:
                body[key] = static if static is not None else dynamic[key]
        return Response.json(200, body, rule=rule, headers=profile.token_headers,
                             extra={"client_id": client_id})


def _with_params(url: str, params: list[tuple[str, str | None]]) -> str:
    """``url`` plus query parameters, every reserved byte percent-encoded so the
    receiver decodes exactly the original value (``+`` is ``%2B``, space ``%20``)."""
    present = [(k, v) for k, v in params if v is not None]
    if not present:
        return url
    sep = "&" if "?" in url else "?"
    return url + sep + urlencode(present, quote_via=quote, safe="")


def _safe(name: str) -> str:
    """A parameter name fit for a log line (no secrets live in names)."""
    return "".join(c for c in name if c.isalnum() or c == "_")[:32] or "param"
