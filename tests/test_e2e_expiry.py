"""Token expiry through real mitmproxy: the clock moves, Tracking calls and refreshes react.

The app side is requests through HTTPS_PROXY (as an app runs); the test drives
the sandbox's clock through the control API on the reverse listener.
"""

import base64
import json
import logging

import pytest
import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from factories import CALLBACK, CLIENT, SECRET
from ups_client import UPS, UpsClient, envelope

TRACK = f"{UPS}/api/track/v1/details/1Z023E2X0214323462"
TRACK_QUERY = {"locale": "en_US", "returnSignature": "false"}


def control(upsproxy, method, name, body=None):
    session = requests.Session()
    session.trust_env = False  # straight to the reverse listener
    resp = session.request(method, f"{upsproxy.base_url}/_upsproxy/{name}", json=body, timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()


def track(ups, token, **params):
    return ups.http.get(TRACK if not params.get("path") else f"{UPS}{params['path']}",
                        params=params.get("query", TRACK_QUERY),
                        headers={"Authorization": f"Bearer {token}"}, timeout=10)


def b64d(part):
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def claims_of(token):
    return json.loads(b64d(token.split(".")[1]))


@pytest.fixture
def ups(upsproxy_env):
    return UpsClient()


def test_access_expiry_on_tracking_then_refresh_then_refresh_expiry(ups, upsproxy_env):
    body = ups.token(ups.code(verifier=None), basic=(CLIENT, SECRET)).json()
    assert track(ups, body["access_token"]).status_code == 200
    control(upsproxy_env, "POST", "clock", {"advance": int(body["expires_in"]) + 1})
    expired = track(ups, body["access_token"])
    assert envelope(expired) == (401, "250002", "Invalid Authentication Information.")
    assert expired.headers["APIErrorCode"] == "250002"
    assert expired.headers["APIErrorMessage"] == "Invalid Authentication Information."
    refreshed = ups.refresh(body["refresh_token"])
    assert refreshed.status_code == 200
    fresh = refreshed.json()
    ok = track(ups, fresh["access_token"])
    assert ok.status_code == 200
    assert ok.json()["trackResponse"]["shipment"][0]["inquiryNumber"] == "1Z023E2X0214323462"
    control(upsproxy_env, "POST", "clock",
            {"advance": int(fresh["refresh_token_expires_in"]) + 1})
    assert envelope(ups.refresh(fresh["refresh_token"])) == (400, "10400",
                                                             "Invalid Refresh Token")


def test_jwt_exp_is_iat_plus_lifetime_moves_with_the_clock_and_verifies(ups, upsproxy_env):
    first = ups.pkce_token(ups.code()).json()
    claims = claims_of(first["access_token"])
    # As captured from UPS: the token lives one second longer than expires_in says.
    assert claims["exp"] - claims["iat"] == int(first["expires_in"]) + 1 == 14400
    assert claims["iat"] == claims["nbf"] == int(first["issued_at"]) // 1000
    control(upsproxy_env, "POST", "clock", {"advance": 7200})
    second = ups.refresh(first["refresh_token"], basic=(CLIENT, SECRET)).json()
    moved = claims_of(second["access_token"])
    assert moved["iat"] - claims["iat"] in (7200, 7201)
    assert moved["exp"] == moved["iat"] + 14400
    assert int(second["issued_at"]) // 1000 == moved["iat"]
    # Apps that verify: the JWKS on the control API verifies the signature.
    header, payload, signature = second["access_token"].split(".")
    kid, alg = json.loads(b64d(header))["kid"], json.loads(b64d(header))["alg"]
    jwk, = (k for k in control(upsproxy_env, "GET", "jwks")["keys"] if k["kid"] == kid)
    assert alg == jwk["alg"] == "RS384" and len(second["access_token"]) > 1200
    n, e = (int.from_bytes(b64d(jwk[k]), "big") for k in ("n", "e"))
    rsa.RSAPublicNumbers(e, n).public_key().verify(
        b64d(signature), f"{header}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA384())


@pytest.mark.upsproxy(access_ttl=60, refresh_ttl=120, code_ttl=30)
def test_lifetime_overrides_show_in_the_answer_the_jwt_and_the_rules(ups, upsproxy_env):
    body = ups.pkce_token(ups.code()).json()
    assert (body["expires_in"], body["refresh_token_expires_in"]) == ("60", "120")
    claims = claims_of(body["access_token"])
    assert claims["exp"] - claims["iat"] == 61
    upsproxy_env.clock.advance(61)
    assert envelope(track(ups, body["access_token"]))[1] == "250002"
    code = ups.code()
    upsproxy_env.clock.advance(30)
    assert envelope(ups.pkce_token(code))[0] == 400  # the 30 s code is gone
    upsproxy_env.clock.advance(60)
    assert envelope(ups.refresh(body["refresh_token"]))[2] == "Invalid Refresh Token"


def test_a_call_that_matches_nothing_gets_an_envelope_and_a_log_of_the_closest(
        ups, upsproxy_env, caplog):
    token = ups.pkce_token(ups.code()).json()["access_token"]
    with caplog.at_level(logging.INFO, logger="upsproxy.protected"):
        miss = track(ups, token, path="/api/track/v1/details/1ZPRIVATE0000001",
                     query={"locale": "en_US", "returnSignature": "false", "extra": "zz"})
    assert envelope(miss) == (404, "10404", "Resource Not Found")
    line, = (r.getMessage() for r in caplog.records if r.name == "upsproxy.protected")
    assert "closest: #" in line and "path segment 5 differs" in line and "extra extra" in line
    # Query values are not logged (the path is, as in every exchange line).
    assert "zz" not in line and "en_US" not in line


def test_mint_code_skips_the_login_page(ups, upsproxy_env):
    code = upsproxy_env.mint_code(CLIENT, CALLBACK)
    resp = ups.token(code, basic=(CLIENT, SECRET))
    assert resp.status_code == 200 and resp.json()["client_id"] == CLIENT
    assert envelope(ups.token(code, basic=(CLIENT, SECRET)))[0] == 400
