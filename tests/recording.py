"""Helpers for recording tests: `upsproxy record` in a child process, app-like OAuth
flows against (what the app thinks is) UPS, and an independent leak scan."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets as rnd
from pathlib import Path
from urllib.parse import parse_qs, quote, quote_plus, urlsplit

import requests
from children import Child
from fake_ups import CALLBACK, CLIENT, SECRET

UPS = "https://wwwcie.ups.com"


class RecordProc(Child):
    """`upsproxy record` in a child process; waits for its banner."""

    def __init__(self, cassette: Path, *, upstream: str, upstream_ca: Path | None,
                 confdir: Path, extra: tuple[str, ...] = ()) -> None:
        self.cassette = cassette
        ca = ("--upstream-ca", str(upstream_ca)) if upstream_ca else ()
        super().__init__("record", "--cassette", str(cassette), "--upstream", upstream, *ca,
                         "--listen", "127.0.0.1:0", "--reverse-listen", "127.0.0.1:0",
                         "--confdir", str(confdir), *extra)
        self.ca = confdir / "mitmproxy-ca-cert.pem"

    def kill(self) -> None:
        """SIGKILL: no handler runs, no file is closed, nothing is flushed."""
        self.proc.kill()
        self.proc.wait(timeout=15)
        self.proc.stderr.close()

    def stop(self) -> tuple[int, str]:
        """SIGTERM; the exit code and everything it printed, banner included."""
        code, rest = super().stop()
        return code, self.banner + rest


def verifier_pair() -> tuple[str, str]:
    verifier = rnd.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


class App:
    """What an app does, over any HTTP client with a requests/httpx-like API.

    ``api`` is where token/refresh/API calls go (UPS through the proxy, or the
    reverse listener); authorize and the sign-in page always go through the proxy,
    as a browser would."""

    def __init__(self, http: object, api: str = UPS) -> None:
        self.http = http
        self.api = api.rstrip("/")
        self.seen: set[str] = set()

    def _get(self, url: str, **kw: object):  # type: ignore[no-untyped-def]
        return self.http.get(url, **kw)  # type: ignore[attr-defined]

    def code(self, *, state: str, challenge: str | None = None) -> str:
        params = {"client_id": CLIENT, "redirect_uri": CALLBACK, "response_type": "code",
                  "scope": "read", "state": state}
        if challenge:
            params["code_challenge"] = challenge
        resp = self._get(f"{UPS}/security/v1/oauth/authorize", params=params)
        assert resp.status_code == 302, resp.text
        location = resp.headers["location"]
        page = self._get(location)
        assert page.status_code == 200 and "<form" in page.text
        approved = self.http.post("https://www.ups.com/lasso/signin",  # type: ignore[attr-defined]
                                  data={"username": "jroe", "password": "pw-Hunter2!",
                                        "decision": "approve"})
        assert approved.status_code == 302, approved.text
        callback = parse_qs(urlsplit(approved.headers["location"]).query)
        assert callback["state"] == [state]
        self.seen.update({state, callback["code"][0], "pw-Hunter2!"})
        return callback["code"][0]

    def token_basic(self, code: str, secret: str = SECRET):  # type: ignore[no-untyped-def]
        return self.http.post(f"{self.api}/security/v1/oauth/token",  # type: ignore[attr-defined]
                              data={"grant_type": "authorization_code", "code": code,
                                    "redirect_uri": CALLBACK}, auth=(CLIENT, secret))

    def token_pkce(self, code: str, verifier: str):  # type: ignore[no-untyped-def]
        self.seen.add(verifier)
        return self.http.post(f"{self.api}/security/v1/oauth/token",  # type: ignore[attr-defined]
                              data={"grant_type": "authorization_code", "code": code,
                                    "redirect_uri": CALLBACK, "client_id": CLIENT,
                                    "code_verifier": verifier})

    def refresh(self, token: str):  # type: ignore[no-untyped-def]
        return self.http.post(f"{self.api}/security/v1/oauth/refresh",  # type: ignore[attr-defined]
                              data={"grant_type": "refresh_token", "refresh_token": token},
                              auth=(CLIENT, SECRET))

    def track(self, access: str, number: str = "1Z023E2X0214323462"):  # type: ignore[no-untyped-def]
        return self._get(f"{self.api}/api/track/v1/details/{number}",
                         params={"locale": "en_US"},
                         headers={"Authorization": f"Bearer {access}",
                                  "transId": "txn-" + rnd.token_hex(8),
                                  "transactionSrc": "testing"})

    def full_session(self) -> dict[str, str]:
        """Basic flow, PKCE flow, refresh, two UPS errors, one protected API call."""
        basic = self.token_basic(self.code(state="st " + rnd.token_urlsafe(12) + "+/="))
        assert basic.status_code == 200, basic.text
        verifier, challenge = verifier_pair()
        self.seen.add(challenge)
        pkce = self.token_pkce(self.code(state=rnd.token_urlsafe(16), challenge=challenge),
                               verifier)
        assert pkce.status_code == 200, pkce.text
        first = basic.json()
        refreshed = self.refresh(first["refresh_token"])
        assert refreshed.status_code == 200, refreshed.text
        reused = self.refresh(first["refresh_token"])
        assert reused.status_code == 400 and "Invalid Refresh Token" in reused.text
        wrong = self.token_basic("bogus-code-" + rnd.token_hex(8), secret="wrong-secret-xyz")
        assert wrong.status_code == 401 and "ClientId is Invalid" in wrong.text
        tracked = self.track(refreshed.json()["access_token"])
        assert tracked.status_code == 200, tracked.text
        for answer in (first, pkce.json(), refreshed.json()):
            self.seen.update({answer["access_token"], answer["refresh_token"]})
        return {"access": refreshed.json()["access_token"], "refresh": first["refresh_token"]}


def spellings(value: str) -> set[str]:
    """Every way the test can think of to write ``value`` (independent of upsproxy)."""
    out = {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1],
           base64.b64encode(value.encode()).decode()}
    for safe in ("", "/", ":@"):
        for text in (quote(value, safe=safe), quote_plus(value, safe=safe)):
            out.add(text)
            out.add(re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), text))
    return out


def leaks(text: str, secrets: set[str], min_len: int = 6) -> list[str]:
    """Which secrets (shown by length and a hash, never the value) appear in ``text``."""
    found = []
    for value in secrets:
        if len(value) >= min_len and any(s in text for s in spellings(value)):
            digest = hashlib.sha256(value.encode()).hexdigest()[:12]
            found.append(f"{len(value)} chars, sha256 {digest}")
    return found


class NoRedirects:
    """A requests session used as an app uses it here: no redirect following."""

    def __init__(self, session: object) -> None:
        self.session = session

    def get(self, url: str, **kw: object):  # type: ignore[no-untyped-def]
        return self.session.get(url, allow_redirects=False, timeout=10, **kw)  # type: ignore[attr-defined]

    def post(self, url: str, **kw: object):  # type: ignore[no-untyped-def]
        return self.session.post(url, allow_redirects=False, timeout=10, **kw)  # type: ignore[attr-defined]


def proxied_app(recorder: RecordProc, api: str | None = None) -> App:
    """An app on requests whose UPS traffic goes through ``recorder``'s proxy,
    trusting its CA (and nothing from the environment: REQUESTS_CA_BUNDLE would
    override ``verify``)."""
    session = requests.Session()
    session.trust_env = False
    session.proxies = {"https": recorder.proxy_url}
    session.verify = str(recorder.ca)
    return App(NoRedirects(session), api or UPS)
