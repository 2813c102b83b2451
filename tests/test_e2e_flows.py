"""Full flows through real mitmproxy with real clients: requests, httpx, curl."""

import json
import shutil
import subprocess

import httpx
import pytest
import requests
from factories import CALLBACK, CLIENT, SECRET, VERIFIER, authorize_params
from ups_client import UPS, UpsClient, callback_params

KEYS = ["refresh_token_expires_in", "refresh_token_status", "token_type", "issued_at",
        "client_id", "access_token", "refresh_token", "refresh_token_issued_at", "expires_in",
        "status"]


def test_plain_flow_with_requests_through_https_proxy(upsproxy_env):
    ups = UpsClient()  # requests honours HTTPS_PROXY and REQUESTS_CA_BUNDLE
    code = ups.code(verifier=None, state="a/b+c== x")
    resp = ups.token(code, basic=(CLIENT, SECRET))
    assert resp.status_code == 200
    body = resp.json()
    assert list(body) == KEYS and all(isinstance(v, str) for v in body.values())
    assert resp.text == json.dumps(body, separators=(",", ":"))  # compact, like UPS
    refreshed = ups.refresh(body["refresh_token"])
    assert refreshed.status_code == 200
    assert refreshed.json()["refresh_token"] != body["refresh_token"]
    track = ups.http.get(f"{UPS}/api/track/v1/details/1Z023E2X0214323462",
                         params={"locale": "en_US", "returnSignature": "false"},
                         headers={"Authorization": f"Bearer {refreshed.json()['access_token']}"},
                         timeout=10)
    assert track.status_code == 200
    assert track.json()["trackResponse"]["shipment"][0]["inquiryNumber"] == "1Z023E2X0214323462"
    assert upsproxy_env.upstream_attempts == 0


def test_state_round_trips_byte_identical_on_approve_and_deny(upsproxy_env):
    ups = UpsClient()
    for state in ("a/b+c== x", "%41 é&=?#", ""):
        resp = ups.authorize(state=state, verifier=None)
        approved = callback_params(ups.login(resp.headers["Location"]).headers["Location"])
        assert approved["state"] == state
        resp = ups.authorize(state=state, verifier=None)
        denied = callback_params(ups.login(resp.headers["Location"], "deny").headers["Location"])
        assert denied == {"error": "access_denied", "state": state}


def test_clients_that_follow_the_authorize_redirect_land_on_the_login_page(upsproxy_env):
    resp = requests.get(f"{UPS}/security/v1/oauth/authorize", params=authorize_params(),
                        timeout=10)
    assert resp.history[0].status_code == 302
    assert resp.url.startswith("https://www.ups.com/lasso/signin?")
    assert resp.status_code == 200 and "<form" in resp.text
    assert resp.headers["Content-Type"].startswith("text/html")


def test_pkce_flow_with_httpx_through_the_reverse_listener(upsproxy):
    with httpx.Client(base_url=upsproxy.base_url, trust_env=False, timeout=10) as client:
        resp = client.get("/security/v1/oauth/authorize", params=authorize_params(state="s1"))
        assert resp.status_code == 302
        login = resp.headers["location"]
        assert login.startswith(upsproxy.base_url + "/lasso/signin?")  # rewritten to us
        page = client.get(login, follow_redirects=True)
        assert page.status_code == 200
        txn = page.text.split('name=upsproxy_txn value="')[1].split('"')[0]
        approved = client.post("/lasso/signin", data={"upsproxy_txn": txn,
                                                      "decision": "approve"})
        params = callback_params(approved.headers["location"])
        assert params["state"] == "s1"
        token = client.post("/security/v1/oauth/token", data={
            "grant_type": "authorization_code", "code": params["code"],
            "redirect_uri": CALLBACK, "client_id": CLIENT, "code_verifier": VERIFIER})
        assert token.status_code == 200, token.text
        assert list(token.json()) == KEYS
        assert token.headers["content-type"] == "application/json"


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize("http_version", ["--http1.1", "--http2"])
def test_curl_through_the_proxy(upsproxy, http_version):
    code = UpsClient(upsproxy.base_url, requests.Session()).code(verifier=None)
    out = subprocess.run(
        ["curl", "-sS", http_version, "-x", upsproxy.proxy_url, "--cacert", str(upsproxy.ca_cert),
         "-u", f"{CLIENT}:{SECRET}", "-w", "\n%{http_code} %{http_version}",
         "-d", "grant_type=authorization_code", "--data-urlencode", f"code={code}",
         "--data-urlencode", f"redirect_uri={CALLBACK}",
         f"{UPS}/security/v1/oauth/token"],
        capture_output=True, text=True, timeout=30, check=True, env={"PATH": "/usr/bin:/bin"})
    body, status_line = out.stdout.rsplit("\n", 1)
    status, version = status_line.split()
    assert status == "200", out.stdout
    assert version == ("2" if http_version == "--http2" else "1.1")
    assert list(json.loads(body)) == KEYS
