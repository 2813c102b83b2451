"""Malformed input gets a UPS-shaped 400 and the sandbox keeps serving."""

import json

import pytest
import requests
from factories import CALLBACK, CLIENT, SECRET
from ups_client import UPS, UpsClient, envelope

TOKEN = f"{UPS}/security/v1/oauth/token"
FORM = "application/x-www-form-urlencoded"
GOOD = "grant_type=authorization_code&code=abc&redirect_uri=https%3A%2F%2Fapp.example.test%2Fcb"


@pytest.mark.parametrize(("content_type", "body", "message"), [
    ("application/json", json.dumps({"grant_type": "authorization_code", "code": "x",
                                     "redirect_uri": CALLBACK}).encode(), "Invalid Content-Type"),
    (FORM, GOOD.encode() + b"&code=second", "Invalid Request"),
    (FORM, b"", "Invalid Request"),
    ("text/plain", GOOD.encode(), "Invalid Content-Type"),
    (None, GOOD.encode(), "Invalid Content-Type"),
    (FORM, b"grant_type=" + b"a" * (1024 * 1024), "Request Body Too Large"),
    (FORM, b"grant_type=authorization_code&code=\xff\xfe&redirect_uri=x", "Invalid Request Body"),
    (FORM, b"grant_type=authorization_code&code=%ff%fe", "Invalid Request Body"),
    (FORM, b"grant_type", "Invalid Request Body"),
])
def test_malformed_token_requests(upsproxy_env, content_type, body, message):
    headers = {"Content-Type": content_type} if content_type else {}
    session = requests.Session()
    resp = session.post(TOKEN, data=body, headers=headers, auth=(CLIENT, SECRET), timeout=30)
    assert envelope(resp) == (400, "10400", message)
    # ...and the sandbox keeps serving a complete flow afterwards.
    ups = UpsClient()
    assert ups.token(ups.code(verifier=None), basic=(CLIENT, SECRET)).status_code == 200


def test_charset_on_the_form_type_is_accepted(upsproxy_env):
    ups = UpsClient()
    code = ups.code(verifier=None)
    resp = ups.http.post(TOKEN, auth=(CLIENT, SECRET), timeout=10,
                         headers={"Content-Type": f"{FORM}; charset=UTF-8"},
                         data={"grant_type": "authorization_code", "code": code,
                               "redirect_uri": CALLBACK})
    assert resp.status_code == 200


def test_form_field_order_never_matters(upsproxy_env):
    ups = UpsClient()
    code = ups.code(verifier=None)
    body = [("redirect_uri", CALLBACK), ("code", code), ("grant_type", "authorization_code")]
    resp = ups.http.post(TOKEN, data=body, auth=(CLIENT, SECRET), timeout=10)
    assert resp.status_code == 200


@pytest.mark.parametrize("auth", ["Basic !!!notbase64", "Bearer x", "Basic " + "Og==",
                                  "basic"])
def test_malformed_authorization_headers(upsproxy_env, auth):
    ups = UpsClient()
    resp = ups.http.post(TOKEN, data=GOOD, timeout=10,
                         headers={"Authorization": auth, "Content-Type": FORM})
    assert envelope(resp) == (401, "10400", "Invalid/Missing Authorization Header")


def test_garbage_on_every_endpoint_never_gives_an_uninjected_5xx(upsproxy_env):
    session = requests.Session()
    paths = ["/security/v1/oauth/authorize", "/security/v1/oauth/token",
             "/security/v1/oauth/refresh", "/api/track/v1/details/x"]
    bodies = [b"", b"\x00\x01\x02", b"%%%", b"a=b=c&&&=", "é=ü".encode("latin-1"), b"{" * 1000]
    for path in paths:
        for method in ("GET", "POST", "PUT", "DELETE"):
            for body in bodies:
                resp = session.request(method, f"{UPS}{path}?%zz=1&a", data=body, timeout=10,
                                       headers={"Content-Type": FORM})
                assert 400 <= resp.status_code < 500, (method, path, body, resp.status_code)
                assert "errors" in resp.json()["response"]
