"""../shared/CASES.md, one test per case id (``test_cNN_...``, grep-able), end to end:
real mitmproxy, real clients (requests, httpx, curl, node) on loopback, through the
proxy (HTTPS_PROXY + CA) or the reverse listener. Each covers the case's kind with
more than one value where that is cheap.
"""

from __future__ import annotations

import base64
import json
import random
import re
import shutil
import string
import subprocess
import threading
from html import unescape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import fake_ups
import httpx
import pytest
import requests
from factories import CALLBACK, CLIENT, SECRET, VERIFIER, authorize_params
from recording import leaks, proxied_app, verifier_pair
from test_cli import Replay
from ups_client import UPS, UpsClient, callback_params

from upsproxy.cassette import load_cassette

REGISTRY = "tests/data/registry.yaml"
"""TESTCLIENT / S3CRET with https://app.example.test/cb only (marker paths: rootdir)."""
TOKEN = f"{UPS}/security/v1/oauth/token"
REFRESH = f"{UPS}/security/v1/oauth/refresh"
TRACK = f"{UPS}/api/track/v1/details/1Z023E2X0214323462"
TRACK_QUERY = {"locale": "en_US", "returnSignature": "false"}
"""The recorded Tracking call's query (API replay matches method, path and query)."""
BASIC = (CLIENT, SECRET)
FORM = "application/x-www-form-urlencoded"
KEYS = ["refresh_token_expires_in", "refresh_token_status", "token_type", "issued_at",
        "client_id", "access_token", "refresh_token", "refresh_token_issued_at", "expires_in",
        "status"]
UNRESERVED = string.ascii_letters + string.digits + "-._~"


def compact(code: str, message: str) -> str:
    return json.dumps({"response": {"errors": [{"code": code, "message": message}]}},
                      separators=(",", ":"))


def assert_envelope(resp, status: int, code: str, message: str) -> None:  # type: ignore[no-untyped-def]
    """The whole UPS answer: status, content type, compact body, byte for byte."""
    assert resp.status_code == status, resp.text
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.text == compact(code, message)


def assert_refused(resp, status: int | None = None) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """A 4xx UPS envelope (codes 10400/10401 where UPS's own answer is unknown), no token."""
    assert 400 <= resp.status_code < 500, (resp.status_code, resp.text)
    if status is not None:
        assert resp.status_code == status, resp.text
    assert resp.headers["Content-Type"] == "application/json"
    body = resp.json()
    assert list(body) == ["response"] and list(body["response"]) == ["errors"]
    error, = body["response"]["errors"]
    assert set(error) == {"code", "message"} and error["message"]
    assert resp.text == json.dumps(body, separators=(",", ":"))
    assert "access_token" not in resp.text and "refresh_token" not in resp.text
    return error


def assert_tokens(resp, client_id: str = CLIENT) -> dict[str, str]:  # type: ignore[no-untyped-def]
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert list(body) == KEYS and body["client_id"] == client_id
    return body


def random_verifier(length: int, rng: random.Random) -> str:
    return "".join(rng.choice(UNRESERVED) for _ in range(length))


def no_env_session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    return session


@pytest.fixture
def ups(upsproxy_env):
    """An app on requests, through HTTPS_PROXY with the sandbox CA trusted."""
    return UpsClient()


# -- C01 redirect_uri differs only by a trailing slash ------------------------------------

@pytest.mark.upsproxy(config=REGISTRY)
@pytest.mark.parametrize("uri", [CALLBACK + "/", CALLBACK + "//", "https://app.example.test:443/cb",
                                 "https://APP.example.test/cb", CALLBACK + "?", CALLBACK + "%2F"])
def test_c01_authorize_needs_the_registered_redirect_uri_byte_for_byte(ups, uri):
    resp = ups.authorize(redirect_uri=uri)
    assert_envelope(resp, 400, "10400", "Invalid Redirect URL")
    assert "Location" not in resp.headers
    assert ups.authorize(redirect_uri=CALLBACK).status_code == 302


@pytest.mark.parametrize(("at_authorize", "at_token"), [
    pytest.param(CALLBACK, CALLBACK + "/", marks=pytest.mark.upsproxy(config=REGISTRY),
                 id="registry-slash-added"),
    pytest.param(CALLBACK, CALLBACK + "/", id="open-slash-added"),
    pytest.param(CALLBACK + "/", CALLBACK, id="open-slash-dropped"),
    pytest.param(CALLBACK, "https://app.example.test:443/cb", id="open-default-port"),
    pytest.param(CALLBACK, "https://app.example.test/cb?x", id="open-query-added"),
])
def test_c01_token_redirect_uri_must_equal_the_authorize_one(ups, at_authorize, at_token):
    code = ups.code(verifier=None, redirect_uri=at_authorize)
    assert_refused(ups.token(code, basic=BASIC, redirect_uri=at_token))
    # Exact match, not "any other value": the same code works with the same string.
    assert_tokens(ups.token(code, basic=BASIC, redirect_uri=at_authorize))


# -- C02 SDKs follow the authorize redirect ----------------------------------------------

def _approve(post, page_url: str, page_text: str):  # type: ignore[no-untyped-def]
    txn = re.search(r'name=upsproxy_txn value="([^"]+)"', page_text)
    action = re.search(r'<form method=post action="([^"]+)"', page_text)
    assert txn and action, page_text
    return post(urljoin(page_url, unescape(action.group(1))),
                data={"upsproxy_txn": unescape(txn.group(1)), "decision": "approve"})


@pytest.mark.parametrize("client", ["requests-proxy", "httpx-proxy", "requests-reverse"])
def test_c02_a_client_that_follows_the_authorize_redirect_lands_on_the_offline_login_page(
        upsproxy_env, client):
    params = authorize_params(state="st-c02")
    if client == "httpx-proxy":  # HTTPS_PROXY + SSL_CERT_FILE from the environment
        http = httpx.Client(follow_redirects=True, timeout=10)
        page = http.get(f"{UPS}/security/v1/oauth/authorize", params=params)
        first = page.history[0]
        status, location = first.status_code, first.headers["location"]
        page_url, page_text, page_type = str(page.url), page.text, page.headers["content-type"]
        approved = _approve(lambda url, data: http.post(url, data=data, follow_redirects=False),
                            page_url, page_text)
        http.close()
    else:
        base = UPS if client == "requests-proxy" else upsproxy_env.base_url
        session = requests.Session() if client == "requests-proxy" else no_env_session()
        page = session.get(f"{base}/security/v1/oauth/authorize", params=params, timeout=10)
        first = page.history[0]
        status, location = first.status_code, first.headers["Location"]
        page_url, page_text, page_type = page.url, page.text, page.headers["Content-Type"]
        approved = _approve(lambda url, data: session.post(url, data=data, timeout=10,
                                                           allow_redirects=False),
                            page_url, page_text)
    login = ("https://www.ups.com/lasso/signin?" if client != "requests-reverse"
             else f"{upsproxy_env.base_url}/lasso/signin?")
    assert status == 302 and location.startswith(login)
    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    assert {k: query[k] for k in ("client_id", "redirect_uri", "response_type", "state",
                                  "type")} == {"client_id": CLIENT, "redirect_uri": CALLBACK,
                                               "response_type": "code", "state": "st-c02",
                                               "type": "ups_com_api"}
    assert page_url.startswith(login) and page_type.startswith("text/html")
    assert "<form" in page_text
    assert approved.status_code == 302
    callback = callback_params(approved.headers["location"])
    assert callback["state"] == "st-c02" and len(callback["code"]) > 20
    assert_tokens(UpsClient().pkce_token(callback["code"]))
    assert upsproxy_env.upstream_attempts == 0


# -- C03 PKCE without Basic ------------------------------------------------------------

@pytest.mark.parametrize("length", [43, 64, 128])
def test_c03_pkce_without_basic_needs_the_matching_verifier_and_the_codes_client(ups, length):
    rng = random.Random(length)
    verifier = random_verifier(length, rng)
    code = ups.code(verifier=verifier)
    wrong = ups.pkce_token(code, verifier=random_verifier(length, rng))
    assert "Authorization" not in wrong.request.headers
    assert_refused(wrong, 400)
    other = ups.token(code, client_id="OTHERCLIENT", code_verifier=verifier)
    assert_refused(other)
    assert_refused(ups.token(code, code_verifier=verifier))  # no client_id at all
    good = ups.pkce_token(code, verifier=verifier)  # failures consumed nothing
    assert "Authorization" not in good.request.headers
    assert_tokens(good)
    # A code issued without a challenge proves nothing for a public client.
    plain = ups.code(verifier=None)
    assert_refused(ups.pkce_token(plain, verifier=verifier))


# -- C06 client retries the code exchange -------------------------------------------------

@pytest.mark.parametrize("auth", ["basic", "pkce"])
def test_c06_a_retried_exchange_fails_and_a_code_expires(ups, upsproxy_env, auth):
    def exchange_request(code: str) -> requests.PreparedRequest:
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK}
        if auth == "pkce":
            data |= {"client_id": CLIENT, "code_verifier": VERIFIER}
        return ups.http.prepare_request(requests.Request(
            "POST", TOKEN, data=data, auth=BASIC if auth == "basic" else None))

    def send(prepared: requests.PreparedRequest) -> requests.Response:
        settings = ups.http.merge_environment_settings(prepared.url, {}, None, None, None)
        return ups.http.send(prepared, timeout=10, **settings)

    verifier = VERIFIER if auth == "pkce" else None
    prepared = exchange_request(ups.code(verifier=verifier))
    assert_tokens(send(prepared))
    assert_refused(send(prepared), 400)  # the very same bytes, after a "timeout"
    ttl = upsproxy_env.sandbox.profile.code_ttl_s
    in_time = exchange_request(ups.code(verifier=verifier))
    upsproxy_env.clock.advance(ttl - 1)
    assert_tokens(send(in_time))
    late = exchange_request(ups.code(verifier=verifier))
    upsproxy_env.clock.advance(ttl + 1)
    assert_refused(send(late), 400)


# -- C07 refresh rotates ------------------------------------------------------------------

def test_c07_each_refresh_rotates_and_a_used_refresh_token_is_dead(ups):
    current = assert_tokens(ups.token(ups.code(verifier=None), basic=BASIC))["refresh_token"]
    used: list[str] = []
    for _ in range(3):
        fresh = assert_tokens(ups.refresh(current))["refresh_token"]
        assert fresh != current and fresh not in used
        used.append(current)
        for old in used:
            assert_envelope(ups.refresh(old), 400, "10400", "Invalid Refresh Token")
        current = fresh
    assert_tokens(ups.refresh(current))  # the newest survives the failed reuses


# -- C09 field types ----------------------------------------------------------------------

def test_c09_every_token_answer_value_is_a_json_string(ups, upsproxy_env):
    answers = [ups.token(ups.code(verifier=None), basic=BASIC), ups.pkce_token(ups.code())]
    answers.append(ups.refresh(answers[0].json()["refresh_token"]))
    for resp in answers:
        body = assert_tokens(resp)
        assert all(isinstance(v, str) for v in body.values()), body
        assert not re.search(r'":[^"]', resp.text), resp.text  # no bare number/bool/null
        assert body["expires_in"] == "14399" and body["refresh_token_expires_in"].isdigit()
        for key in ("issued_at", "refresh_token_issued_at"):
            assert re.fullmatch(r"\d{13}", body[key]), body[key]  # milliseconds
            assert abs(int(body[key]) - upsproxy_env.clock.now_ms()) < 60_000


# -- C10 unknown client ---------------------------------------------------------------------

@pytest.mark.upsproxy(config=REGISTRY)
@pytest.mark.parametrize("client_id", ["STRANGER", "testclient", "TESTCLIENT2", "TESTCLIENT "])
def test_c10_an_unregistered_client_gets_ups_10401_not_an_rfc_error(ups, client_id):
    code = ups.code(verifier=None)
    resp = ups.token(code, basic=(client_id, SECRET))
    assert_envelope(resp, 401, "10401", "ClientId is Invalid")
    assert "error" not in resp.json() and "invalid_client" not in resp.text
    body = assert_tokens(ups.token(code, basic=BASIC))  # the code was not spent
    assert_envelope(ups.refresh(body["refresh_token"], basic=(client_id, SECRET)),
                    401, "10401", "ClientId is Invalid")


# -- C11 wrong base path --------------------------------------------------------------------

@pytest.mark.parametrize("via", ["proxy", "reverse"])
@pytest.mark.parametrize("prefix", ["/api", "/v1", "/oauth", "/x/y"])
def test_c11_a_wrong_base_path_is_a_404_and_gives_no_token(upsproxy_env, via, prefix):
    ups = UpsClient() if via == "proxy" else UpsClient(upsproxy_env.base_url, no_env_session())
    code = ups.code(verifier=None)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK}
    wrong = ups.http.post(f"{ups.base}{prefix}/security/v1/oauth/token", data=data, auth=BASIC,
                          timeout=10)
    assert assert_refused(wrong, 404)
    body = assert_tokens(ups.token(code, basic=BASIC))  # not routed by suffix: unspent
    wrong = ups.http.post(f"{ups.base}{prefix}/security/v1/oauth/refresh", auth=BASIC,
                          data={"grant_type": "refresh_token",
                                "refresh_token": body["refresh_token"]}, timeout=10)
    assert_refused(wrong, 404)
    assert_tokens(ups.refresh(body["refresh_token"]))


# -- C14 malformed token requests -----------------------------------------------------------

@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8"])
def test_c14_a_json_body_is_refused_with_a_ups_envelope(ups, content_type):
    code = ups.code(verifier=None)
    resp = ups.http.post(TOKEN, auth=BASIC, timeout=10, headers={"Content-Type": content_type},
                         data=json.dumps({"grant_type": "authorization_code", "code": code,
                                          "redirect_uri": CALLBACK}))
    assert_envelope(resp, 400, "10400", "Invalid Content-Type")
    assert_tokens(ups.token(code, basic=BASIC))


@pytest.mark.parametrize("field", ["code", "redirect_uri", "grant_type"])
@pytest.mark.parametrize("second", ["same", "other"])
def test_c14_a_duplicated_field_is_refused_never_first_value_wins(ups, field, second):
    code = ups.code(verifier=None)
    fields = [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", CALLBACK)]
    value = dict(fields)[field] if second == "same" else "x" + dict(fields)[field]
    resp = ups.http.post(TOKEN, data=[*fields, (field, value)], auth=BASIC, timeout=10)
    assert_envelope(resp, 400, "10400", "Invalid Request")
    assert_tokens(ups.token(code, basic=BASIC))  # nothing was redeemed


@pytest.mark.parametrize("body_secret", [SECRET, "another-secret"])
def test_c14_basic_and_client_secret_together_are_refused(ups, body_secret):
    code = ups.code(verifier=None)
    resp = ups.token(code, basic=BASIC, client_secret=body_secret)
    assert_envelope(resp, 400, "10400", "Invalid Request")
    body = assert_tokens(ups.token(code, basic=BASIC))
    resp = ups.http.post(REFRESH, auth=BASIC, timeout=10,
                         data={"grant_type": "refresh_token",
                               "refresh_token": body["refresh_token"],
                               "client_secret": body_secret})
    assert_envelope(resp, 400, "10400", "Invalid Request")
    assert_tokens(ups.refresh(body["refresh_token"]))


@pytest.mark.parametrize("content_type", [f"{FORM}; charset=UTF-8", f"{FORM};charset=utf-8",
                                          f'{FORM}; charset="UTF-8"',
                                          "Application/X-WWW-Form-Urlencoded; Charset=UTF-8"])
def test_c14_charset_on_the_form_type_is_accepted(ups, content_type):
    code = ups.code(verifier=None)
    resp = ups.http.post(TOKEN, auth=BASIC, timeout=10, headers={"Content-Type": content_type},
                         data={"grant_type": "authorization_code", "code": code,
                               "redirect_uri": CALLBACK})
    assert resp.request.headers["Content-Type"] == content_type
    body = assert_tokens(resp)
    resp = ups.http.post(REFRESH, auth=BASIC, timeout=10, headers={"Content-Type": content_type},
                         data={"grant_type": "refresh_token",
                               "refresh_token": body["refresh_token"]})
    assert_tokens(resp)


# -- C15 state round trip -------------------------------------------------------------------

@pytest.mark.parametrize("via", ["proxy", "reverse"])
def test_c15_state_comes_back_byte_identical_on_approve_and_on_deny(upsproxy_env, via):
    ups = UpsClient() if via == "proxy" else UpsClient(upsproxy_env.base_url, no_env_session())
    for state in ("a/b+c== x", "%41%2F+%20", "é ü 😀 &=?#;", "  lead and trail  ", "x" * 500):
        resp = ups.authorize(state=state, verifier=None)
        assert resp.status_code == 302
        approved = callback_params(ups.login(resp.headers["Location"]).headers["Location"])
        assert approved["state"] == state and approved["code"]
        resp = ups.authorize(state=state, verifier=None)
        denied = ups.login(resp.headers["Location"], "deny").headers["Location"]
        assert callback_params(denied) == {"error": "access_denied", "state": state}


# -- C16 expiry and clock -------------------------------------------------------------------

@pytest.mark.parametrize("lifetime", [
    pytest.param("14399", id="cassette-14399"),
    pytest.param("3600", marks=pytest.mark.upsproxy(access_ttl=3600, refresh_ttl=7200),
                 id="flag-3600"),
])
def test_c16_tokens_expire_with_the_sandbox_clock(ups, upsproxy_env, lifetime):
    def track(token: str) -> requests.Response:
        return ups.http.get(TRACK, params=TRACK_QUERY, timeout=10,
                            headers={"Authorization": f"Bearer {token}"})

    body = assert_tokens(ups.token(ups.code(verifier=None), basic=BASIC))
    assert body["expires_in"] == lifetime
    upsproxy_env.clock.advance(int(lifetime) - 1)
    assert track(body["access_token"]).status_code == 200
    upsproxy_env.clock.advance(2)
    expired = track(body["access_token"])
    assert_envelope(expired, 401, "250002", "Invalid Authentication Information.")
    fresh = assert_tokens(ups.refresh(body["refresh_token"]))  # refresh still works
    assert track(fresh["access_token"]).status_code == 200
    upsproxy_env.clock.advance(int(fresh["refresh_token_expires_in"]) + 1)
    assert_envelope(ups.refresh(fresh["refresh_token"]), 400, "10400", "Invalid Refresh Token")


# -- C18 and C19: recording against a local fake UPS -------------------------------------------

@pytest.fixture
def fake(tmp_path):
    server = fake_ups.FakeUps()

    class OddCase(server.server.RequestHandlerClass):  # type: ignore[name-defined,misc]
        """UPS's headers in other spellings: redaction must match names in any case."""

        def send_header(self, keyword: str, value: str) -> None:
            renamed = {"set-cookie": "SET-COOKIE", "location": "LoCaTiOn",
                       "content-type": "CONTENT-TYPE"}
            super().send_header(renamed.get(keyword.lower(), keyword), value)

    server.server.RequestHandlerClass = OddCase
    server.start(tmp_path / "fake-ca.pem")
    yield server
    server.stop()


def test_c18_response_side_secrets_are_stable_placeholders_in_the_cassette(fake, recorder):
    app = proxied_app(recorder)
    code = app.code(state="st c18/+=")
    first = app.token_basic(code)
    assert first.status_code == 200
    refreshed = app.refresh(first.json()["refresh_token"])
    assert refreshed.status_code == 200
    for answer in (first.json(), refreshed.json()):
        app.seen.update({answer["access_token"], answer["refresh_token"]})
    status, log = recorder.stop()
    assert status == 0, log
    text = recorder.cassette.read_text()
    assert leaks(text, fake.secrets | app.seen) == []
    assert leaks(log, fake.secrets | app.seen) == []
    cassette = load_cassette(recorder.cassette)
    kinds = [i.kind for i in cassette.interactions]
    assert kinds == ["authorize", "login", "login", "token", "refresh"]
    authorize, page, signin, token, refresh = cassette.interactions
    # Set-Cookie (sent as SET-COOKIE) and the cookie sent back: one placeholder each.
    login_cookie = re.fullmatch(r"ups_login=(<<cookie:\d+>>); Domain=ups\.com; Path=/; "
                                r"Secure; HttpOnly", authorize.response.header("set-cookie"))
    assert login_cookie, authorize.response.header("set-cookie")
    assert re.fullmatch(r"bm_sv=<<cookie:\d+>>; Path=/", page.response.header("set-cookie"))
    assert login_cookie.group(1) in signin.request.header("cookie")
    # The code in the login redirect's Location (sent as LoCaTiOn) is the code exchanged.
    location = re.fullmatch(rf"{re.escape(CALLBACK)}\?code=(<<code:\d+>>)&state=(<<state:\d+>>)",
                            signin.response.header("location"))
    assert location, signin.response.header("location")
    assert token.request.form()["code"] == location.group(1)
    assert location.group(2) in authorize.request.url
    # Token answers: secrets are placeholders, identity kept, the rest as UPS sent it.
    issued, rotated = token.response.json(), refresh.response.json()
    for body in (issued, rotated):
        assert list(body) == list(fake_ups.TOKEN_KEYS)
        assert re.fullmatch(r"<<access_token:\d+>>", body["access_token"])
        assert re.fullmatch(r"<<refresh_token:\d+>>", body["refresh_token"])
        assert re.fullmatch(r"<<client_id:\d+>>", body["client_id"])
        assert body["expires_in"] == fake_ups.ACCESS_TTL and body["token_type"] == "Bearer"
    assert refresh.request.form()["refresh_token"] == issued["refresh_token"]
    assert rotated["refresh_token"] != issued["refresh_token"]
    assert rotated["access_token"] != issued["access_token"]


def test_c19_a_recorded_cassette_answers_fresh_pkce_values_in_any_field_order(
        fake, recorder, tmp_path):
    proxied_app(recorder).full_session()  # Basic and PKCE flows, refresh, errors, API
    assert recorder.stop()[0] == 0
    assert "code_verifier" in recorder.cassette.read_text()  # a PKCE exchange was recorded
    server = Replay(str(recorder.cassette), confdir=tmp_path / "replay-conf")
    try:
        session = no_env_session()
        session.proxies = {"https": server.proxy_url}
        session.verify = str(tmp_path / "replay-conf" / "mitmproxy-ca-cert.pem")
        ups = UpsClient(UPS, session)
        verifier, challenge = verifier_pair()  # never seen by the recorder
        other_verifier, _ = verifier_pair()
        state = "fresh " + verifier[:10] + "/+="
        params = list(reversed(authorize_params(state=state, verifier=verifier).items()))
        assert ("code_challenge", challenge) in params
        resp = session.get(f"{UPS}/security/v1/oauth/authorize", params=params,
                           allow_redirects=False, timeout=10)
        assert resp.status_code == 302, resp.text
        callback = callback_params(ups.login(resp.headers["Location"]).headers["Location"])
        code = callback["code"]
        assert callback["state"] == state
        assert len(code) == 132 and code.endswith("==")  # the recorded shape, a new value
        assert code not in recorder.cassette.read_text()

        def exchange(fields: list[tuple[str, str]]) -> requests.Response:
            return session.post(TOKEN, data=fields, timeout=10)

        reordered = [("code_verifier", verifier), ("redirect_uri", CALLBACK),
                     ("client_id", CLIENT), ("code", code),
                     ("grant_type", "authorization_code")]
        # Body-blind matching would answer these with a recorded token.
        assert_refused(exchange([(k, other_verifier if k == "code_verifier" else v)
                                 for k, v in reordered]), 400)
        bogus = base64.b64encode(random.Random(19).randbytes(97)).decode()
        assert_refused(exchange([(k, bogus if k == "code" else v) for k, v in reordered]), 400)
        body = assert_tokens(exchange(reordered))
        assert body["expires_in"] == fake_ups.ACCESS_TTL  # recorded lifetime, minted values
        assert body["access_token"] not in recorder.cassette.read_text()
        current, used = body["refresh_token"], []
        for _ in range(3):
            rotated = session.post(REFRESH, auth=BASIC, timeout=10,
                                   data=[("refresh_token", current),
                                         ("grant_type", "refresh_token")])
            fresh = assert_tokens(rotated)["refresh_token"]
            assert fresh != current and len(fresh) == len(current)
            used.append(current)
            for old in used:
                assert_envelope(ups.refresh(old), 400, "10400", "Invalid Refresh Token")
            current = fresh
        assert_refused(exchange(reordered), 400)  # the new code was single use too
    finally:
        code_, log = server.stop()
    assert code_ == 0 and "Traceback" not in log


# -- C21 clients that ignore HTTPS_PROXY -------------------------------------------------------

class _Standin(BaseHTTPRequestHandler):
    """Where a proxy-ignoring app's request really went (stands in for real UPS)."""

    hits: list[str]

    def do_POST(self):
        self.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


NODE_POST = ("fetch(process.argv[1], {method: 'POST', body: 'grant_type=authorization_code', "
             "headers: {'content-type': 'application/x-www-form-urlencoded'}})"
             ".then(r => console.log(r.status), e => { console.error(e); process.exit(3); })")


def _post_like(runtime: str, url: str, proxy_env: dict[str, str]) -> int:
    """POST as that runtime does, with HTTPS_PROXY/HTTP_PROXY set in its environment."""
    if runtime == "node-fetch":
        out = subprocess.run(["node", "-e", NODE_POST, url], capture_output=True, text=True,
                             timeout=30, env={"PATH": "/usr/bin:/bin", **proxy_env})
        assert out.returncode == 0, out.stderr
        return int(out.stdout.strip())
    # Python without trust_env (aiohttp's default): the environment is not read.
    return no_env_session().post(url, data={"grant_type": "authorization_code"},
                                 timeout=10).status_code


@pytest.mark.parametrize("runtime", [
    pytest.param("node-fetch", marks=pytest.mark.skipif(
        shutil.which("node") is None, reason="node is not installed")),
    "python-without-trust_env",
])
def test_c21_the_sandbox_says_at_shutdown_that_it_saw_no_ups_traffic(tmp_path, runtime):
    Handler = type("Handler", (_Standin,), {"hits": []})
    standin = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=standin.serve_forever, daemon=True).start()
    try:
        server = Replay(confdir=tmp_path / "conf")
        try:
            proxy_env = {name: server.proxy_url for name in
                         ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")}
            url = f"http://127.0.0.1:{standin.server_address[1]}/security/v1/oauth/token"
            assert _post_like(runtime, url, proxy_env) == 200
        finally:
            code, log = server.stop()
        assert Handler.hits == ["/security/v1/oauth/token"]  # it went around the proxy
        assert code == 0 and "upsproxy saw no UPS traffic" in log, log
        assert "reverse" in log and "NO_PROXY" in log and "HTTPS_PROXY" in log
        # The fix the hint names: the same client with its base URL on the reverse listener.
        server = Replay(confdir=tmp_path / "conf")
        try:
            base = f"{server.base_url}/security/v1/oauth/token"
            assert _post_like(runtime, base, proxy_env) == 401  # the sandbox's envelope
        finally:
            code, log = server.stop()
        assert code == 0 and "saw no UPS traffic" not in log, log
        assert Handler.hits == ["/security/v1/oauth/token"]
    finally:
        standin.shutdown()
        standin.server_close()


def test_c21_the_readme_shows_base_url_mode_and_per_runtime_settings():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert "base URL" in readme and "reverse listener" in readme
    for runtime, setting in [("aiohttp", "trust_env=True"), ("Node", "NODE_EXTRA_CA_CERTS"),
                             ("Node", "fetch"), ("JVM", "-Dhttps.proxyHost"),
                             ("requests", "REQUESTS_CA_BUNDLE")]:
        rows = [line for line in readme.splitlines() if runtime in line and setting in line]
        assert rows, (runtime, setting)


# -- C22 HTTP/2 through the proxy ---------------------------------------------------------------

def _curl_has_http2() -> bool:
    if shutil.which("curl") is None:
        return False
    out = subprocess.run(["curl", "--version"], capture_output=True, text=True, timeout=10)
    return "HTTP2" in out.stdout


def _curl(upsproxy, tmp_path: Path, version: str, *args: str):  # type: ignore[no-untyped-def]
    head, body = tmp_path / "head.txt", tmp_path / "body.txt"
    out = subprocess.run(
        ["curl", "-sS", version, "-x", upsproxy.proxy_url, "--cacert", str(upsproxy.ca_cert),
         "-D", str(head), "-o", str(body), "-w", "%{http_code} %{http_version}", *args],
        capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    status, used = out.stdout.split()
    # -D holds the proxy's CONNECT answer first; the last block is the server's.
    block = [b for b in head.read_text().replace("\r\n", "\n").split("\n\n") if b.strip()][-1]
    headers = [line.split(":", 1) for line in block.splitlines()[1:] if ":" in line]
    return int(status), used, {k: v.strip() for k, v in headers}, body.read_text()


def _b64(client: str, secret: str) -> str:
    return base64.b64encode(f"{client}:{secret}".encode()).decode()


@pytest.mark.skipif(not _curl_has_http2(), reason="curl is missing or built without HTTP2")
@pytest.mark.upsproxy(config=REGISTRY)
def test_c22_curl_http2_through_the_proxy_behaves_as_http11(upsproxy, tmp_path):
    def run(version: str) -> list[tuple[int, str]]:
        outcomes: list[tuple[int, str]] = []
        names: list[str] = []

        def call(*args: str) -> dict[str, str]:
            status, used, headers, text = _curl(upsproxy, tmp_path, version, *args)
            assert used == ("2" if version == "--http2" else "1.1")
            names.extend(headers)
            lower = {k.lower(): v for k, v in headers.items()}
            body = json.loads(text) if text else {}
            what = body["response"]["errors"][0]["code"] if "response" in body else \
                ",".join(body) if status == 200 else lower.get("location", "")[:26]
            outcomes.append((status, what))
            return body

        form = ["-H", "Content-Type: application/x-www-form-urlencoded; charset=UTF-8"]
        call("-G", "--data-urlencode", f"client_id={CLIENT}", "--data-urlencode",
             f"redirect_uri={CALLBACK}", "-d", "response_type=code", "-d", "state=s22",
             f"{UPS}/security/v1/oauth/authorize")
        code = upsproxy.mint_code(CLIENT, CALLBACK)
        exchange = [*form, "-d", "grant_type=authorization_code", "--data-urlencode",
                    f"code={code}", "--data-urlencode", f"redirect_uri={CALLBACK}", TOKEN]
        call("-H", f"Authorization: Basic {_b64(CLIENT, 'wrong')}", *exchange)
        call(*exchange)  # no Basic at all
        token = call("-H", f"Authorization: Basic {_b64(CLIENT, SECRET)}", *exchange)
        call("-H", f"AUTHORIZATION: Basic {_b64(CLIENT, SECRET)}", *exchange)  # reused code
        refresh = [*form, "-H", f"authorization: Basic {_b64(CLIENT, SECRET)}", "-d",
                   "grant_type=refresh_token", "--data-urlencode",
                   f"refresh_token={token['refresh_token']}", REFRESH]
        fresh = call(*refresh)
        call(*refresh)  # rotated: dead
        track = f"{TRACK}?{urlencode(TRACK_QUERY)}"
        call("-H", f"Authorization: Bearer {fresh['access_token']}", track)
        call("-H", "authorization: Bearer not-a-token", track)
        if version == "--http2":
            assert names and all(name == name.lower() for name in names), names
        assert "content-type" in {name.lower() for name in names}
        return outcomes

    http1, http2 = run("--http1.1"), run("--http2")
    assert http2 == http1
    assert http2 == [(302, "https://www.ups.com/lasso/"), (401, "10401"), (401, "10400"),
                     (200, ",".join(KEYS)), (400, "10400"), (200, ",".join(KEYS)),
                     (400, "10400"), (200, "trackResponse"), (401, "250002")]
    assert upsproxy.upstream_attempts == 0


def test_every_case_id_in_cases_md_has_a_test_here():
    cases = Path(__file__).resolve().parent.parent.parent / "shared" / "CASES.md"
    if not cases.exists():
        pytest.skip(f"{cases} is not next to this checkout")
    ids = set(re.findall(r"^\| (C\d\d) \|", cases.read_text(), re.M))
    here = set(re.findall(r"^def test_(c\d\d)_", Path(__file__).read_text(), re.M))
    assert ids and {i.lower() for i in ids} <= here, sorted({i.lower() for i in ids} - here)
