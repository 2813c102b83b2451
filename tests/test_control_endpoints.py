"""The sandbox's control endpoints, called as the router would (no proxy needed)."""

import json

import pytest
from factories import CALLBACK, CLIENT, TOKEN, VERIFIER, get_code, make_sandbox, post, token_fields

from upsproxy.messages import Request
from upsproxy.pkce import s256_challenge


def call(sandbox, method, name, body=None, query=""):
    raw = json.dumps(body).encode() if body is not None else b""
    resp = sandbox.handle(Request(method, "127.0.0.1", f"/_upsproxy/{name}", query, body=raw,
                                  origin="http://127.0.0.1:8081", peer="127.0.0.1"))
    return resp.status, json.loads(resp.body)


def tokens(sandbox):
    resp = sandbox.handle(post(TOKEN, token_fields(get_code(sandbox))))
    assert resp.status == 200
    return json.loads(resp.body)


def test_state_lists_live_grants_with_expiry_and_never_a_value():
    sandbox = make_sandbox()
    body = tokens(sandbox)
    status, state = call(sandbox, "GET", "state")
    assert status == 200 and state["counts"]["access_tokens"] == 1
    access, = state["access_tokens"]
    refresh, = state["refresh_tokens"]
    assert access["client_id"] == CLIENT and access["expires_in_s"] == 14400
    assert refresh["expires_in_s"] == 5183999 and refresh["refresh_count"] == 0
    text = json.dumps(state)
    assert body["access_token"] not in text and body["refresh_token"] not in text
    assert body["refresh_token"][:12] not in text
    call(sandbox, "POST", "clock", {"advance": 14400})
    assert call(sandbox, "GET", "state")[1]["access_tokens"] == []


def test_clock_advance_set_reset_and_refusals():
    sandbox = make_sandbox()
    start = call(sandbox, "GET", "clock")[1]["now_ms"]
    assert call(sandbox, "POST", "clock", {"advance": 4 * 3600})[1]["now_ms"] == \
        start + 4 * 3600_000
    moved = call(sandbox, "POST", "clock", {"set": 1_800_000_000_000})[1]
    assert moved["now_ms"] == 1_800_000_000_000 and moved["now"] == "2027-01-15T08:00:00.000Z"
    for bad in ({}, {"advance": "4h"}, {"advance": True}, {"set": -1}, {"set": 1.5},
                {"jump": 1}, {"advance": 1, "set": 1}, [1], {"advance": float("1e30")}):
        status, answer = call(sandbox, "POST", "clock", bad)
        assert status == 400 and answer["error"], bad
    assert call(sandbox, "POST", "clock", {"reset": True})[1]["offset_ms"] in range(-1000, 1000)


def test_minted_codes_redeem_once_with_pkce_and_registry_rules(tmp_path):
    sandbox = make_sandbox()
    status, minted = call(sandbox, "POST", "codes", {
        "client_id": CLIENT, "redirect_uri": CALLBACK,
        "code_challenge": s256_challenge(VERIFIER), "scope": "read"})
    assert status == 200 and minted["pkce"] is True and minted["expires_in_s"] == 300
    ok = sandbox.handle(post(TOKEN, token_fields(minted["code"])))
    assert ok.status == 200 and json.loads(ok.body)["client_id"] == CLIENT
    assert sandbox.handle(post(TOKEN, token_fields(minted["code"]))).status == 400
    for bad in ({"client_id": CLIENT}, {"client_id": "", "redirect_uri": CALLBACK},
                {"client_id": CLIENT, "redirect_uri": "ftp://x"},
                {"client_id": CLIENT, "redirect_uri": CALLBACK, "code_challenge": "short"},
                {"client_id": CLIENT, "redirect_uri": CALLBACK, "colour": "red"}):
        assert call(sandbox, "POST", "codes", bad)[0] == 400, bad
    registry = make_sandbox(tmp_path=tmp_path, config_text=(
        f"apps:\n  - client_id: {CLIENT}\n    client_secret: s\n    redirect_uris: [{CALLBACK}]\n"))
    status, answer = call(registry, "POST", "codes", {"client_id": "OTHER",
                                                      "redirect_uri": CALLBACK})
    assert status == 400 and "not registered" in answer["error"]


def test_reset_forgets_everything_and_returns_to_real_time():
    sandbox = make_sandbox()
    body = tokens(sandbox)
    call(sandbox, "POST", "reset", {})
    assert call(sandbox, "GET", "state")[1]["counts"] == {
        "logins": 0, "codes": 0, "refresh_tokens": 0, "access_tokens": 0}
    assert abs(call(sandbox, "GET", "clock")[1]["offset_ms"]) < 1000
    assert call(sandbox, "GET", "exchanges")[1]["exchanges"] == []
    track = Request("GET", "wwwcie.ups.com", "/api/track/v1/details/1Z023E2X0214323462",
                    "locale=en_US&returnSignature=false",
                    (("authorization", f"Bearer {body['access_token']}"),))
    assert sandbox.handle(track).status == 401


def test_exchanges_are_recent_answers_without_secrets():
    sandbox = make_sandbox()
    body = tokens(sandbox)
    status, answer = call(sandbox, "GET", "exchanges", query="limit=2")
    assert status == 200 and [x["rule"] for x in answer["exchanges"]] == [
        "login.approved", "token.issued_pkce"]
    assert answer["exchanges"][-1]["client_id"] == CLIENT
    assert body["access_token"] not in json.dumps(answer)
    # Control calls themselves are not listed.
    assert all(not x["path"].startswith("/_upsproxy/")
               for x in call(sandbox, "GET", "exchanges")[1]["exchanges"])
    assert call(sandbox, "GET", "exchanges", query="limit=0")[0] == 400


@pytest.mark.parametrize("alg", ["RS384", "HS256"])
def test_jwks_publishes_the_rsa_key_only(alg, tmp_path):
    from upsproxy.cassette import load_cassette
    from upsproxy.sandbox import Sandbox, default_cassette_path

    text = default_cassette_path().read_text().replace("alg: RS384", f"alg: {alg}")
    path = tmp_path / "c.yaml"
    path.write_text(text)
    sandbox = Sandbox(load_cassette(path))
    keys = call(sandbox, "GET", "jwks")[1]["keys"]
    if alg == "HS256":
        assert keys == []
    else:
        assert [k["kid"] for k in keys] == [sandbox.signer.kid] and keys[0]["kty"] == "RSA"
        assert "d" not in keys[0]  # never the private exponent
