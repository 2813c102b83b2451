"""Small factories that keep tests short: requests, sandboxes, OAuth steps."""

from __future__ import annotations

import base64
import random
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

from upsproxy.cassette import load_cassette
from upsproxy.clock import FrozenClock
from upsproxy.config import SandboxConfig, load_config
from upsproxy.messages import Request, Response
from upsproxy.pkce import s256_challenge
from upsproxy.sandbox import Sandbox, default_cassette_path

CLIENT = "TESTCLIENT"
SECRET = "S3CRET"
CALLBACK = "https://app.example.test/cb"
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"  # RFC 7636 appendix B
HOST = "wwwcie.ups.com"
AUTHORIZE = "/security/v1/oauth/authorize"
TOKEN = "/security/v1/oauth/token"
REFRESH = "/security/v1/oauth/refresh"
FORM = "application/x-www-form-urlencoded"


def basic(client_id: str = CLIENT, secret: str = SECRET) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def make_sandbox(*, config_text: str | None = None, tmp_path: Path | None = None,
                 auto_approve: bool = False, seed: int = 7) -> Sandbox:
    config = SandboxConfig()
    if config_text is not None:
        assert tmp_path is not None
        path = tmp_path / "config.yaml"
        path.write_text(config_text)
        config = load_config(path)
    return Sandbox(load_cassette(default_cassette_path()), config=config, clock=FrozenClock(),
                   rng=random.Random(seed), auto_approve=auto_approve)


def get(path: str, params: dict[str, str] | list[tuple[str, str]] | None = None, *,
        host: str = HOST) -> Request:
    return Request("GET", host, path, urlencode(params or {}))


def post(path: str, fields: dict[str, str] | list[tuple[str, str]] | None = None, *,
         auth: str | None = None, content_type: str | None = FORM, body: bytes | None = None,
         host: str = HOST) -> Request:
    headers: list[tuple[str, str]] = []
    if content_type is not None:
        headers.append(("content-type", content_type))
    if auth is not None:
        headers.append(("authorization", auth))
    raw = body if body is not None else urlencode(fields or {}).encode()
    return Request("POST", host, path, "", tuple(headers), raw)


def authorize_params(*, client_id: str = CLIENT, redirect_uri: str = CALLBACK,
                     state: str | None = "xyz", verifier: str | None = VERIFIER,
                     scope: str | None = "read") -> dict[str, str]:
    params = {"client_id": client_id, "redirect_uri": redirect_uri, "response_type": "code"}
    if state is not None:
        params["state"] = state
    if scope is not None:
        params["scope"] = scope
    if verifier is not None:
        params["code_challenge"] = s256_challenge(verifier)
    return params


def query_of(location: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(location).query, keep_blank_values=True)


def get_code(sandbox: Sandbox, **kwargs: str | None) -> str:
    """Authorize and approve at the login page; return the code."""
    resp = sandbox.handle(get(AUTHORIZE, authorize_params(**kwargs)))  # type: ignore[arg-type]
    assert resp.status == 302, resp.body
    txn = query_of(resp.header("location") or "")["upsproxy_txn"][0]
    approved = sandbox.handle(post("/lasso/signin", {"upsproxy_txn": txn, "decision": "approve"},
                                   host="www.ups.com"))
    assert approved.status == 302, approved.body
    return query_of(approved.header("location") or "")["code"][0]


def token_fields(code: str, *, redirect_uri: str = CALLBACK, verifier: str | None = VERIFIER,
                 client_id: str | None = CLIENT) -> dict[str, str]:
    fields = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    if client_id is not None:
        fields["client_id"] = client_id
    if verifier is not None:
        fields["code_verifier"] = verifier
    return fields


def error_of(resp: Response) -> tuple[int, str, str]:
    import json

    body = json.loads(resp.body)
    err = body["response"]["errors"][0]
    return resp.status, err["code"], err["message"]
