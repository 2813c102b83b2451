"""A first-run demo: the whole UPS OAuth flow against a running sandbox.

It is a real HTTP client (the standard library's), driven the way an app and
a user would drive UPS: authorize, follow to the login page, approve, take the
code from the callback, exchange it with PKCE, refresh with Basic auth, and
check that the old refresh token is dead. Any deviation from UPS's behaviour
is reported and makes the demo fail.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from html import unescape
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

from upsproxy.pkce import s256_challenge

__all__ = ["DemoFailure", "run_demo"]

CLIENT_ID = "UPSPROXYDEMO"
CLIENT_SECRET = "demo-secret"  # noqa: S105 - a sandbox-only value
REDIRECT_URI = "https://app.example.test/callback"
STATE = "demo state/+=="


class DemoFailure(Exception):
    """The sandbox did not behave as UPS does."""


@dataclass
class _Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, ValueError):
            # Not the body itself: it could hold a token.
            raise DemoFailure(
                f"HTTP {self.status}: expected JSON, got {len(self.body)} bytes of "
                f"{self.headers.get('content-type', 'no content type')}") from None


def _describe(reply: _Reply) -> str:
    """A UPS error's code and message, else only the body's size and type: a
    body the demo did not expect could hold a token."""
    try:
        error = json.loads(reply.body)["response"]["errors"][0]
        return f"UPS error {error['code']}: {error['message']}"
    except (ValueError, UnicodeDecodeError, KeyError, IndexError, TypeError):
        return (f"{len(reply.body)} bytes of "
                f"{reply.headers.get('content-type', 'no content type')}")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


class _Client:
    def __init__(self, *, proxy: str | None, cafile: str | None) -> None:
        handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
        handlers.append(urllib.request.ProxyHandler({"https": proxy, "http": proxy}
                                                    if proxy else {}))
        context = ssl.create_default_context(cafile=cafile)
        handlers.append(urllib.request.HTTPSHandler(context=context))
        self._opener = urllib.request.build_opener(*handlers)

    def send(self, method: str, url: str, *, form: dict[str, str] | None = None,
             headers: dict[str, str] | None = None) -> _Reply:
        data = urlencode(form).encode() if form is not None else None
        if not url.startswith(("http://", "https://")):
            raise DemoFailure(f"not an http(s) URL: {url[:80]!r}")
        request = urllib.request.Request(  # noqa: S310 - scheme checked above
            url, data=data, method=method, headers=headers or {})
        if data is not None:
            request.add_header("Content-Type", "application/x-www-form-urlencoded")
        try:
            with self._opener.open(request, timeout=15) as resp:
                return _Reply(resp.status, {k.lower(): v for k, v in resp.headers.items()},
                              resp.read())
        except urllib.error.HTTPError as err:
            return _Reply(err.code, {k.lower(): v for k, v in err.headers.items()}, err.read())


def run_demo(*, base_url: str, proxy: str | None = None, cafile: str | None = None,
             say: Callable[[str], None] = print, client_id: str = CLIENT_ID,
             client_secret: str = CLIENT_SECRET, redirect_uri: str = REDIRECT_URI) -> None:
    """Run the flow against ``base_url`` (UPS's URL when going through ``proxy``)."""
    client = _Client(proxy=proxy, cafile=cafile)
    basic = "Basic " + base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
    verifier = secrets.token_urlsafe(48)

    def expect(reply: _Reply, status: int, step: str) -> None:
        if reply.status == status:
            return
        hint = ""
        if step == "authorize" and reply.status in (400, 401):
            hint = (f"; the sandbox refused client {client_id!r} or its redirect URI: if it "
                    "runs with --config, pass a registered app with --client-id, "
                    "--client-secret and --redirect-uri")
        raise DemoFailure(f"{step}: expected HTTP {status}, got {reply.status} "
                          f"({_describe(reply)}){hint}")

    query = urlencode({"client_id": client_id, "redirect_uri": redirect_uri,
                       "response_type": "code", "scope": "read", "state": STATE,
                       "code_challenge": s256_challenge(verifier)})
    reply = client.send("GET", f"{base_url}/security/v1/oauth/authorize?{query}")
    expect(reply, 302, "authorize")
    login_url = reply.headers.get("location", "")
    say(f"1. authorize            -> 302 to the login page ({urlsplit(login_url).netloc})")

    reply = client.send("GET", login_url)
    expect(reply, 200, "login page")
    html = reply.body.decode("utf-8", "replace")
    txn = re.search(r'name=upsproxy_txn value="([^"]+)"', html)
    action = re.search(r'<form method=post action="([^"]+)"', html)
    if txn is None or action is None:
        raise DemoFailure("login page: no sign-in form found")
    say("2. login page           -> 200, an HTML sign-in form")

    reply = client.send("POST", urljoin(login_url, unescape(action.group(1))),
                        form={"upsproxy_txn": unescape(txn.group(1)), "decision": "approve"})
    expect(reply, 302, "approve")
    callback = urlsplit(reply.headers.get("location", ""))
    params = parse_qs(callback.query)
    if not callback.geturl().startswith(redirect_uri):
        raise DemoFailure(f"approve: redirected to {callback.geturl()[:80]!r}, "
                          "not the redirect_uri")
    if params.get("state") != [STATE]:
        raise DemoFailure(f"callback: state came back as {params.get('state')!r}")
    code = params.get("code", [""])[0]
    if not code:
        raise DemoFailure("callback: no code")
    say(f"3. approve              -> 302 to the app with a {len(code)}-character code, "
        "state intact")

    reply = client.send("POST", f"{base_url}/security/v1/oauth/token", form={
        "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
        "client_id": client_id, "code_verifier": verifier})
    expect(reply, 200, "token (PKCE)")
    tokens = reply.json()
    if not isinstance(tokens, dict) or not all(isinstance(v, str) for v in tokens.values()):
        raise DemoFailure("token: every value of UPS's answer is a string")
    first_refresh = tokens["refresh_token"]
    say(f"4. token (PKCE)         -> 200, {len(tokens)} string fields, access token "
        f"{len(tokens['access_token'])} chars, expires_in {tokens.get('expires_in')}")

    reply = client.send("POST", f"{base_url}/security/v1/oauth/token", form={
        "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
        "client_id": client_id, "code_verifier": verifier})
    expect(reply, 400, "code reuse")
    say("5. same code again      -> 400, codes are single use")

    def refresh(token: str) -> _Reply:
        """With Basic, or for a public app (no secret) with its client_id in the body."""
        form = {"grant_type": "refresh_token", "refresh_token": token}
        if not client_secret:
            return client.send("POST", f"{base_url}/security/v1/oauth/refresh",
                               form={**form, "client_id": client_id})
        return client.send("POST", f"{base_url}/security/v1/oauth/refresh", form=form,
                           headers={"Authorization": basic})

    reply = refresh(first_refresh)
    expect(reply, 200, "refresh")
    refreshed = reply.json()
    assert isinstance(refreshed, dict)
    if refreshed.get("refresh_token") == first_refresh:
        raise DemoFailure("refresh: the refresh token did not rotate")
    say("6. refresh              -> 200, a new refresh token (rotated)")

    reply = refresh(first_refresh)
    expect(reply, 400, "old refresh token")
    errors = reply.json()
    message = errors["response"]["errors"][0]["message"]  # type: ignore[index]
    say(f"7. old refresh token    -> 400 \"{message}\"")
