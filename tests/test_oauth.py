"""The state machine without a proxy: every rule of DESIGN §3/§5 once."""

import base64
import json

import pytest
from factories import (
    AUTHORIZE,
    CALLBACK,
    CLIENT,
    REFRESH,
    TOKEN,
    VERIFIER,
    authorize_params,
    basic,
    error_of,
    get,
    get_code,
    make_sandbox,
    post,
    query_of,
    token_fields,
)

from upsproxy.pkce import s256_challenge

REGISTRY = f"""
apps:
  - client_id: {CLIENT}
    client_secret: S3CRET
    redirect_uris: [{CALLBACK}]
    name: Test App
"""


@pytest.fixture
def sandbox():
    return make_sandbox()


def tokens(sandbox, **overrides):
    code = get_code(sandbox)
    resp = sandbox.handle(post(TOKEN, token_fields(code, **overrides)))
    assert resp.status == 200, resp.body
    return json.loads(resp.body)


def test_authorize_redirects_to_the_ups_login_page(sandbox):
    resp = sandbox.handle(get(AUTHORIZE, authorize_params(state="a/b+c== x")))
    location = resp.header("location")
    assert resp.status == 302
    assert location.startswith("https://www.ups.com/lasso/signin?client_id=TESTCLIENT&")
    query = query_of(location)
    assert query["type"] == ["ups_com_api"] and query["state"] == ["a/b+c== x"]
    assert query["redirect_uri"] == [CALLBACK] and query["scope"] == ["read"]
    assert resp.header("appname") and resp.header("displayname")


def test_token_answer_has_the_recorded_shape(sandbox):
    body = tokens(sandbox)
    assert list(body) == ["refresh_token_expires_in", "refresh_token_status", "token_type",
                          "issued_at", "client_id", "access_token", "refresh_token",
                          "refresh_token_issued_at", "expires_in", "status"]
    assert all(isinstance(v, str) for v in body.values())
    assert body["issued_at"] == str(sandbox.clock.now_ms())
    assert body["expires_in"] == "14399" and body["refresh_token_expires_in"] == "5183999"
    assert len(body["refresh_token"]) == 164 and body["client_id"] == CLIENT
    assert body["access_token"].count(".") == 2


def test_jwt_times_come_from_the_clock_and_outlive_expires_in_by_a_second(sandbox):
    sandbox.clock.advance(3600)
    body = tokens(sandbox)
    payload = body["access_token"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["iat"] == int(body["issued_at"]) // 1000 == sandbox.clock.now_ms() // 1000
    assert claims["exp"] - claims["iat"] == int(body["expires_in"]) + 1 == 14400


def test_plain_flow_with_basic_auth():
    sandbox = make_sandbox()
    code = get_code(sandbox, verifier=None)
    resp = sandbox.handle(post(TOKEN, token_fields(code, verifier=None, client_id=None),
                               auth=basic()))
    assert resp.status == 200 and resp.rule == "token.issued_basic"


def test_code_is_single_use(sandbox):
    code = get_code(sandbox)
    assert sandbox.handle(post(TOKEN, token_fields(code))).status == 200
    again = sandbox.handle(post(TOKEN, token_fields(code)))
    assert error_of(again) == (400, "10400", "Invalid Authorization Code")
    assert again.rule == "token.code_reused"


def test_code_expires(sandbox):
    code = get_code(sandbox)
    sandbox.clock.advance(sandbox.profile.code_ttl_s + 1)
    resp = sandbox.handle(post(TOKEN, token_fields(code)))
    assert error_of(resp)[0] == 400 and resp.rule == "token.code_expired"


@pytest.mark.parametrize(("fields", "auth", "expected", "rule"), [
    ({"verifier": "x" * 43}, None, (400, "10400", "Invalid code_verifier"),
     "token.code_invalid_code_verifier"),
    ({"verifier": "short"}, None, (400, "10400", "Malformed code_verifier"),
     "token.code_malformed_code_verifier"),
    ({"verifier": None, "client_id": None}, "basic", (400, "10400", "Missing code_verifier"),
     "token.code_missing_code_verifier"),
    ({"redirect_uri": CALLBACK + "/"}, None, (400, "10400", "Invalid Redirect URL"),
     "token.code_redirect_mismatch"),
    ({"client_id": "OTHER"}, None, (401, "10401", "ClientId is Invalid"),
     "token.code_client_mismatch"),
    ({"verifier": None}, None, (401, "10400", "Invalid/Missing Authorization Header"),
     "token.missing_basic"),
])
def test_token_rules(sandbox, fields, auth, expected, rule):
    code = get_code(sandbox)
    resp = sandbox.handle(post(TOKEN, token_fields(code, **fields),
                               auth=basic() if auth else None))
    assert error_of(resp) == expected
    assert resp.rule == rule


def test_a_failed_attempt_does_not_burn_the_code(sandbox):
    code = get_code(sandbox)
    assert sandbox.handle(post(TOKEN, token_fields(code, verifier="y" * 43))).status == 400
    assert sandbox.handle(post(TOKEN, token_fields(code))).status == 200


def test_pkce_client_needs_a_code_with_a_challenge(sandbox):
    code = get_code(sandbox, verifier=None)
    resp = sandbox.handle(post(TOKEN, token_fields(code)))
    assert error_of(resp)[:2] == (400, "10400")


def test_plain_challenge_method_fails_at_token(sandbox):
    params = authorize_params(verifier=None)
    params.update(code_challenge=VERIFIER, code_challenge_method="plain")
    resp = sandbox.handle(get(AUTHORIZE, params))
    txn = query_of(resp.header("location"))["upsproxy_txn"][0]
    approved = sandbox.handle(post("/lasso/signin", {"upsproxy_txn": txn, "decision": "approve"},
                                   host="www.ups.com"))
    code = query_of(approved.header("location"))["code"][0]
    resp = sandbox.handle(post(TOKEN, token_fields(code)))
    assert error_of(resp) == (400, "10400", "Invalid code_verifier")


def test_bad_grant_type(sandbox):
    fields = token_fields(get_code(sandbox))
    fields["grant_type"] = "refresh_token"
    assert error_of(sandbox.handle(post(TOKEN, fields))) == (400, "10400", "Invalid grant_type")


def test_basic_and_client_secret_together_are_refused(sandbox):
    fields = token_fields(get_code(sandbox), verifier=None, client_id=None)
    fields["client_secret"] = "S3CRET"
    assert error_of(sandbox.handle(post(TOKEN, fields, auth=basic())))[0] == 400


def test_basic_and_body_client_id_must_agree(sandbox):
    code = get_code(sandbox, verifier=None)
    fields = token_fields(code, verifier=None, client_id="SOMEONE")
    assert error_of(sandbox.handle(post(TOKEN, fields, auth=basic())))[1] == "10401"


def test_refresh_rotates_and_the_old_token_dies(sandbox):
    first = tokens(sandbox)
    resp = sandbox.handle(post(REFRESH, {"grant_type": "refresh_token",
                                         "refresh_token": first["refresh_token"]}, auth=basic()))
    second = json.loads(resp.body)
    assert resp.status == 200 and second["refresh_token"] != first["refresh_token"]
    old = sandbox.handle(post(REFRESH, {"grant_type": "refresh_token",
                                        "refresh_token": first["refresh_token"]}, auth=basic()))
    assert error_of(old) == (400, "10400", "Invalid Refresh Token")
    assert old.rule == "refresh.token_rotated"
    newer = sandbox.handle(post(REFRESH, {"grant_type": "refresh_token",
                                          "refresh_token": second["refresh_token"]},
                                auth=basic()))
    assert newer.status == 200


@pytest.mark.parametrize(("token", "auth", "expected"), [
    ("unknown", basic(), (400, "10400", "Invalid Refresh Token")),
    (None, None, (401, "10400", "Invalid/Missing Authorization Header")),
    (None, basic("OTHER"), (400, "10400", "Invalid Refresh Token")),
])
def test_refresh_rules(sandbox, token, auth, expected):
    real = tokens(sandbox)["refresh_token"]
    resp = sandbox.handle(post(REFRESH, {"grant_type": "refresh_token",
                                         "refresh_token": token or real}, auth=auth))
    assert error_of(resp) == expected


def test_refresh_token_expires(sandbox):
    real = tokens(sandbox)["refresh_token"]
    sandbox.clock.advance(5184000)
    resp = sandbox.handle(post(REFRESH, {"grant_type": "refresh_token", "refresh_token": real},
                               auth=basic()))
    assert resp.rule == "refresh.token_expired"


def test_refresh_count_counts_when_the_cassette_has_it(tmp_path):
    from upsproxy.cassette import load_cassette
    from upsproxy.clock import FrozenClock
    from upsproxy.sandbox import Sandbox, default_cassette_path

    text = default_cassette_path().read_text().replace(
        "          expires_in: \"14399\"\n", "          expires_in: \"14399\"\n"
        "          refresh_count: \"0\"\n          scope: read\n")
    path = tmp_path / "c.yaml"
    path.write_text(text)
    sandbox = Sandbox(load_cassette(path), clock=FrozenClock())
    first = tokens(sandbox)
    assert first["refresh_count"] == "0"
    assert list(first)[-3:] == ["refresh_count", "scope", "status"]
    resp = sandbox.handle(post(REFRESH, {"grant_type": "refresh_token",
                                         "refresh_token": first["refresh_token"]}, auth=basic()))
    assert json.loads(resp.body)["refresh_count"] == "1"


def test_registry_rejects_unknown_clients_and_redirects(tmp_path):
    sandbox = make_sandbox(config_text=REGISTRY, tmp_path=tmp_path)
    unknown = sandbox.handle(get(AUTHORIZE, authorize_params(client_id="NOPE")))
    assert error_of(unknown) == (401, "10401", "ClientId is Invalid")
    slash = sandbox.handle(get(AUTHORIZE, authorize_params(redirect_uri=CALLBACK + "/")))
    assert error_of(slash) == (400, "10400", "Invalid Redirect URL")
    ok = sandbox.handle(get(AUTHORIZE, authorize_params()))
    assert ok.status == 302 and ok.header("appname") == "Test App"


def test_registry_checks_the_secret(tmp_path):
    sandbox = make_sandbox(config_text=REGISTRY, tmp_path=tmp_path)
    code = get_code(sandbox, verifier=None)
    fields = token_fields(code, verifier=None, client_id=None)
    wrong = sandbox.handle(post(TOKEN, fields, auth=basic(secret="nope")))
    assert error_of(wrong) == (401, "10401", "ClientId is Invalid")
    stranger = sandbox.handle(post(TOKEN, fields, auth=basic("STRANGER", "x")))
    assert error_of(stranger) == (401, "10401", "ClientId is Invalid")
    assert sandbox.handle(post(TOKEN, fields, auth=basic())).status == 200


def test_error_answers_are_overridable(tmp_path):
    sandbox = make_sandbox(tmp_path=tmp_path, config_text=(
        "errors:\n  invalid_code: {status: 401, code: '99999', message: Nope}\n"))
    resp = sandbox.handle(post(TOKEN, token_fields("missing")))
    assert error_of(resp) == (401, "99999", "Nope")


def test_deny_returns_access_denied_with_the_state(sandbox):
    resp = sandbox.handle(get(AUTHORIZE, authorize_params(state="s p/a+c=")))
    txn = query_of(resp.header("location"))["upsproxy_txn"][0]
    denied = sandbox.handle(post("/lasso/signin", {"upsproxy_txn": txn, "decision": "deny"},
                                 host="www.ups.com"))
    query = query_of(denied.header("location"))
    assert query == {"error": ["access_denied"], "state": ["s p/a+c="]}


def test_login_transaction_is_single_use(sandbox):
    resp = sandbox.handle(get(AUTHORIZE, authorize_params()))
    txn = query_of(resp.header("location"))["upsproxy_txn"][0]
    form = {"upsproxy_txn": txn, "decision": "approve"}
    assert sandbox.handle(post("/lasso/signin", form, host="www.ups.com")).status == 302
    assert sandbox.handle(post("/lasso/signin", form, host="www.ups.com")).status == 400


def test_auto_approve_goes_straight_to_the_callback():
    sandbox = make_sandbox(auto_approve=True)
    resp = sandbox.handle(get(AUTHORIZE, authorize_params(state="st")))
    location = resp.header("location")
    assert location.startswith(CALLBACK + "?code=") and query_of(location)["state"] == ["st"]


@pytest.mark.parametrize(("params", "status"), [
    ({"response_type": "token"}, 400), ({"client_id": ""}, 400),
    ({"redirect_uri": "not a url"}, 400), ({"redirect_uri": "https://x.test/cb#frag"}, 400),
])
def test_authorize_rejects_bad_parameters(sandbox, params, status):
    query = authorize_params()
    query.update(params)
    assert sandbox.handle(get(AUTHORIZE, query)).status == status


def test_duplicate_query_parameters_are_refused(sandbox):
    pairs = [*authorize_params().items(), ("state", "second")]
    assert sandbox.handle(get(AUTHORIZE, pairs)).status == 400


def test_wrong_paths_and_methods(sandbox):
    assert error_of(sandbox.handle(post("/api/security/v1/oauth/token", {})))[0] == 404
    assert error_of(sandbox.handle(post(TOKEN + "/", {})))[0] == 404
    assert error_of(sandbox.handle(get(TOKEN)))[0] == 405


def test_same_challenge_twice_gives_distinct_codes(sandbox):
    assert get_code(sandbox) != get_code(sandbox)
    assert s256_challenge(VERIFIER) in str(authorize_params())


def test_a_cassettes_recorded_error_replaces_the_catalogue_entry(tmp_path):
    from upsproxy.cassette import load_cassette
    from upsproxy.clock import FrozenClock
    from upsproxy.config import load_config
    from upsproxy.sandbox import Sandbox, default_cassette_path

    text = default_cassette_path().read_text().replace(
        "message: Invalid Refresh Token}", "message: Refresh token not valid}")
    path = tmp_path / "c.yaml"
    path.write_text(text)
    refresh = post(REFRESH, {"grant_type": "refresh_token", "refresh_token": "x"}, auth=basic())
    sandbox = Sandbox(load_cassette(path), clock=FrozenClock())
    assert error_of(sandbox.handle(refresh)) == (400, "10400", "Refresh token not valid")
    config = tmp_path / "config.yaml"
    config.write_text("errors:\n  invalid_refresh_token: {message: From config}\n")
    sandbox = Sandbox(load_cassette(path), clock=FrozenClock(), config=load_config(config))
    assert error_of(sandbox.handle(refresh)) == (400, "10400", "From config")


def test_auto_approve_keeps_the_app_headers():
    resp = make_sandbox(auto_approve=True).handle(get(AUTHORIZE, authorize_params()))
    assert resp.header("appname") and resp.header("displayname")


def test_access_token_header_has_no_placeholders_and_a_stable_kid(sandbox):
    import base64

    heads = {tokens(sandbox)["access_token"].split(".")[0] for _ in range(3)}
    assert len(heads) == 1
    header = json.loads(base64.urlsafe_b64decode(heads.pop() + "=="))
    assert "<<" not in json.dumps(header) and len(header["kid"]) == 36


PUBLIC_AND_CONFIDENTIAL = f"""
apps:
  - client_id: {CLIENT}
    client_secret: S3CRET
    redirect_uris: [{CALLBACK}]
  - client_id: PUBLICAPP
    redirect_uris: [{CALLBACK}]
"""


def test_a_public_app_refreshes_naming_itself_in_the_body(tmp_path):
    sandbox = make_sandbox(config_text=PUBLIC_AND_CONFIDENTIAL, tmp_path=tmp_path)
    code = get_code(sandbox, client_id="PUBLICAPP")
    issued = sandbox.handle(post(TOKEN, token_fields(code, client_id="PUBLICAPP")))
    assert issued.status == 200
    old = json.loads(issued.body)["refresh_token"]
    fields = {"grant_type": "refresh_token", "refresh_token": old, "client_id": "PUBLICAPP"}
    assert sandbox.handle(post(REFRESH, fields)).status == 200
    again = sandbox.handle(post(REFRESH, fields))
    assert error_of(again) == (400, "10400", "Invalid Refresh Token")  # rotated, as with Basic
    no_id = sandbox.handle(post(REFRESH, {"grant_type": "refresh_token", "refresh_token": old}))
    assert error_of(no_id) == (401, "10400", "Invalid/Missing Authorization Header")


def test_pkce_needs_no_secret_even_from_an_app_registered_with_one(tmp_path):
    sandbox = make_sandbox(config_text=PUBLIC_AND_CONFIDENTIAL, tmp_path=tmp_path)
    assert sandbox.handle(post(TOKEN, token_fields(get_code(sandbox)))).status == 200
    # ...but its refresh needs Basic: only an app without a secret refreshes by body id.
    code = get_code(sandbox)
    body = json.loads(sandbox.handle(post(TOKEN, token_fields(code))).body)
    fields = {"grant_type": "refresh_token", "refresh_token": body["refresh_token"],
              "client_id": CLIENT}
    refused = sandbox.handle(post(REFRESH, fields))
    assert error_of(refused) == (401, "10400", "Invalid/Missing Authorization Header")
