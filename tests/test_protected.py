"""Protected API calls in the core: bearer first, then a rewritten recorded answer."""

import json
import logging

from factories import TOKEN, get_code, make_sandbox, post, token_fields

from upsproxy.messages import Request

PATH = "/api/track/v1/details/1Z023E2X0214323462"
QUERY = "returnSignature=false&locale=en_US"  # order differs from the recording


def call(sandbox, token, path=PATH, query=QUERY):
    headers = (("authorization", f"Bearer {token}"),) if token else ()
    return sandbox.handle(Request("GET", "wwwcie.ups.com", path, query, headers))


def access_token(sandbox):
    return json.loads(sandbox.handle(post(TOKEN, token_fields(get_code(sandbox)))).body)[
        "access_token"]


def delivery_date(resp):
    body = json.loads(resp.body)
    return body["trackResponse"]["shipment"][0]["package"][0]["deliveryDate"][0]["date"]


def test_bearer_first_then_the_recorded_answer_with_dates_on_the_sandbox_clock():
    sandbox = make_sandbox()  # frozen at 2024-05-29T16:26:40Z, recorded_at 2024-06-01
    missing = call(sandbox, None)
    assert missing.status == 401 and missing.header("APIErrorCode") == "250002"
    assert call(sandbox, "nope").rule == "api.invalid_or_expired_token"
    token = access_token(sandbox)
    first = call(sandbox, token)
    assert first.status == 200 and first.rule == "api.recorded#10"
    # Whole days, rounded down: the moved recording time is never after "now".
    assert delivery_date(first) == "20240529"  # -2.3 days -> -3
    sandbox.clock.advance(10 * 86400)
    assert call(sandbox, token).status == 401  # the token expired meanwhile
    moved = call(sandbox, access_token(sandbox))
    assert delivery_date(moved) == "20240608"  # 7.7 days -> 7


def test_a_miss_logs_the_closest_calls_and_why(caplog):
    sandbox = make_sandbox()
    token = access_token(sandbox)
    with caplog.at_level(logging.INFO, logger="upsproxy.protected"):
        miss = call(sandbox, token, query="locale=en_US")
    assert miss.status == 404 and miss.rule == "api.no_recorded_match"
    assert "closest: #10 GET https://wwwcie.ups.com/api/track/v1/details/1Z023E2X0214323462 " \
           "(query: missing returnSignature)" in caplog.text


def test_a_recorded_401_is_never_the_answer_to_a_valid_token():
    """The bundled cassette's named ``invalid_token`` call: a fault preset, not a route."""
    sandbox = make_sandbox()
    token = access_token(sandbox)
    resp = call(sandbox, token, path="/api/track/v1/details/1Z023E2X0214323470")
    assert resp.status == 404 and resp.rule == "api.no_recorded_match"
    assert "invalid_token" in sandbox.faults.presets
