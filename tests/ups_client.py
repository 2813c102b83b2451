"""A tiny UPS OAuth client on top of requests, as an app would write one."""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import parse_qs, urljoin, urlsplit

import requests
from factories import CALLBACK, CLIENT, SECRET, VERIFIER, authorize_params

UPS = "https://wwwcie.ups.com"


class UpsClient:
    def __init__(self, base: str = UPS, session: requests.Session | None = None) -> None:
        self.base = base.rstrip("/")
        self.http = session or requests.Session()

    def authorize(self, **params: str | None) -> requests.Response:
        return self.http.get(f"{self.base}/security/v1/oauth/authorize",
                             params=authorize_params(**params), allow_redirects=False,
                             timeout=10)

    def login(self, location: str, decision: str = "approve") -> requests.Response:
        page = self.http.get(location, timeout=10)
        assert page.status_code == 200, page.text
        txn = re.search(r'name=upsproxy_txn value="([^"]+)"', page.text)
        action = re.search(r'<form method=post action="([^"]+)"', page.text)
        assert txn and action, page.text
        return self.http.post(urljoin(location, unescape(action.group(1))),
                              data={"upsproxy_txn": unescape(txn.group(1)), "decision": decision},
                              allow_redirects=False, timeout=10)

    def code(self, **params: str | None) -> str:
        resp = self.authorize(**params)
        assert resp.status_code == 302, resp.text
        approved = self.login(resp.headers["Location"])
        assert approved.status_code == 302, approved.text
        return callback_params(approved.headers["Location"])["code"]

    def token(self, code: str, *, basic: tuple[str, str] | None = None,
              redirect_uri: str = CALLBACK, **extra: str) -> requests.Response:
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        data.update(extra)
        return self.http.post(f"{self.base}/security/v1/oauth/token", data=data, auth=basic,
                              timeout=10)

    def pkce_token(self, code: str, verifier: str = VERIFIER) -> requests.Response:
        return self.token(code, client_id=CLIENT, code_verifier=verifier)

    def refresh(self, refresh_token: str, basic: tuple[str, str] | None = (CLIENT, SECRET),
                ) -> requests.Response:
        return self.http.post(f"{self.base}/security/v1/oauth/refresh",
                              data={"grant_type": "refresh_token",
                                    "refresh_token": refresh_token}, auth=basic, timeout=10)


def callback_params(location: str) -> dict[str, str]:
    assert location.startswith(CALLBACK), location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query,
                                         keep_blank_values=True).items()}


def envelope(resp: requests.Response) -> tuple[int, str, str]:
    assert resp.headers["Content-Type"] == "application/json"
    error = resp.json()["response"]["errors"][0]
    return resp.status_code, error["code"], error["message"]
