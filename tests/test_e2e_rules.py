"""Every rule of DESIGN §3 broken once, through the proxy, with a registered app."""

from pathlib import Path

import pytest
import requests
from factories import CALLBACK, CLIENT, SECRET, VERIFIER
from ups_client import UPS, UpsClient, envelope

REGISTRY = Path(__file__).parent / "data" / "registry.yaml"
BASIC = (CLIENT, SECRET)

pytestmark = pytest.mark.upsproxy(config=REGISTRY)


@pytest.fixture
def ups(upsproxy_env):
    return UpsClient()


def test_registered_app_passes(ups):
    assert ups.token(ups.code(verifier=None), basic=BASIC).status_code == 200
    assert ups.pkce_token(ups.code()).status_code == 200


def test_wrong_client_secret(ups):
    resp = ups.token(ups.code(verifier=None), basic=(CLIENT, "wrong"))
    assert envelope(resp) == (401, "10401", "ClientId is Invalid")


def test_unknown_client(ups):
    resp = ups.token(ups.code(verifier=None), basic=("STRANGER", SECRET))
    assert envelope(resp) == (401, "10401", "ClientId is Invalid")
    assert envelope(ups.authorize(client_id="STRANGER")) == (401, "10401", "ClientId is Invalid")


def test_missing_basic(ups):
    resp = ups.token(ups.code(verifier=None))
    assert envelope(resp) == (401, "10400", "Invalid/Missing Authorization Header")


@pytest.mark.parametrize("uri", [CALLBACK + "/", CALLBACK.upper(), CALLBACK + "?x=1",
                                 "https://app.example.test/c"])
def test_redirect_mismatch_at_authorize(ups, uri):
    assert envelope(ups.authorize(redirect_uri=uri)) == (400, "10400", "Invalid Redirect URL")


@pytest.mark.upsproxy  # open sandbox: any redirect_uri may authorize
def test_redirect_mismatch_at_token(ups):
    code = ups.code(verifier=None, redirect_uri=CALLBACK)
    resp = ups.token(code, basic=BASIC, redirect_uri=CALLBACK + "/")
    assert envelope(resp) == (400, "10400", "Invalid Redirect URL")
    assert "access_token" not in resp.text


def test_reused_code(ups):
    code = ups.code()
    assert ups.pkce_token(code).status_code == 200
    assert envelope(ups.pkce_token(code)) == (400, "10400", "Invalid Authorization Code")


def test_expired_code(ups, upsproxy):
    code = ups.code()
    upsproxy.clock.advance(upsproxy.sandbox.profile.code_ttl_s + 1)
    assert envelope(ups.pkce_token(code)) == (400, "10400", "Invalid Authorization Code")


def test_wrong_verifier(ups):
    resp = ups.pkce_token(ups.code(), verifier=VERIFIER[::-1])
    assert envelope(resp) == (400, "10400", "Invalid code_verifier")


@pytest.mark.parametrize("verifier", ["short", "a" * 129, VERIFIER[:-1] + "+", VERIFIER + " "])
def test_malformed_verifier(ups, verifier):
    resp = ups.pkce_token(ups.code(), verifier=verifier)
    assert envelope(resp) == (400, "10400", "Malformed code_verifier")


def test_verifier_missing_when_a_challenge_was_sent(ups):
    resp = ups.token(ups.code(), basic=BASIC)
    assert envelope(resp) == (400, "10400", "Missing code_verifier")


def test_bad_grant_type(ups):
    resp = ups.http.post(f"{UPS}/security/v1/oauth/token", auth=BASIC, timeout=10,
                         data={"grant_type": "client_credentials", "code": ups.code(),
                               "redirect_uri": CALLBACK})
    assert envelope(resp) == (400, "10400", "Invalid grant_type")


def test_used_and_unknown_refresh_tokens(ups):
    first = ups.pkce_token(ups.code()).json()["refresh_token"]
    assert ups.refresh(first).status_code == 200
    assert envelope(ups.refresh(first)) == (400, "10400", "Invalid Refresh Token")
    assert envelope(ups.refresh("A" * 164)) == (400, "10400", "Invalid Refresh Token")
    assert envelope(ups.refresh(first, basic=None)) == (
        401, "10400", "Invalid/Missing Authorization Header")


def test_expired_refresh_token(ups, upsproxy):
    body = ups.pkce_token(ups.code()).json()
    upsproxy.clock.advance(int(body["refresh_token_expires_in"]) + 1)
    assert envelope(ups.refresh(body["refresh_token"])) == (400, "10400", "Invalid Refresh Token")


@pytest.mark.parametrize("path", ["/api/security/v1/oauth/token", "/security/v1/oauth/token/",
                                  "/security/v2/oauth/token", "/nothing"])
def test_unknown_paths_get_a_404_envelope(ups, path):
    resp = ups.http.post(f"{UPS}{path}", auth=BASIC, timeout=10,
                         data={"grant_type": "authorization_code", "code": "x",
                               "redirect_uri": CALLBACK})
    assert envelope(resp)[0] == 404 and "access_token" not in resp.text


def test_protected_api_needs_a_live_bearer_token(ups, upsproxy):
    url = f"{UPS}/api/track/v1/details/1Z023E2X0214323462?locale=en_US&returnSignature=false"
    missing = ups.http.get(url, timeout=10)
    assert envelope(missing) == (401, "250002", "Invalid Authentication Information.")
    assert missing.headers["APIErrorCode"] == "250002"
    token = ups.pkce_token(ups.code()).json()["access_token"]
    assert ups.http.get(url, headers={"Authorization": f"Bearer {token}"},
                        timeout=10).status_code == 200
    upsproxy.clock.advance(14400)
    expired = ups.http.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert envelope(expired)[1] == "250002"


def test_every_error_is_compact_ups_json(ups):
    resp = ups.refresh("nope")
    assert resp.text == ('{"response":{"errors":[{"code":"10400",'
                         '"message":"Invalid Refresh Token"}]}}')


def test_requests_are_not_sent_anywhere_else(upsproxy):
    # Sanity: without the proxy, UPS is unreachable here, so passing tests above
    # were answered by the sandbox.
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{UPS}/security/v1/oauth/authorize", timeout=5,
                     proxies={"https": "http://127.0.0.1:9"})


@pytest.mark.upsproxy(config="tests/data/registry.yaml")
def test_marker_paths_are_relative_to_the_rootdir(upsproxy):
    assert upsproxy.sandbox.config.apps is not None and "TESTCLIENT" in upsproxy.sandbox.config.apps
