"""Validating fault rules and matching requests against them."""

import pytest
from factories import AUTHORIZE, REFRESH, TOKEN, authorize_params, basic, get, post

from upsproxy.envelopes import CATALOGUE
from upsproxy.fault_rules import ErrorAnswer, RuleProblem, client_id_of, parse_rule, parse_rules
from upsproxy.messages import Request

PRESETS = {name: (e.status, e.code, e.message) for name, e in CATALOGUE.items()}


def rule(**raw):
    return parse_rule(raw, PRESETS)


def problem(raw):
    with pytest.raises(RuleProblem) as caught:
        parse_rule(raw, PRESETS)
    return str(caught.value)


def test_a_preset_with_overrides_and_defaults():
    r = rule(endpoint="token", preset="rate_limited", message="Slow down")
    assert r.error == ErrorAnswer(429, "10429", "Slow down")
    assert r.endpoints == frozenset({"token"}) and r.after == 0 and r.times is None
    assert rule(preset="rate_limited").endpoints is None  # default: any endpoint
    assert rule(status=503).error == ErrorAnswer(503, "10503", "Fault Injected")
    assert rule(status=400, code=10400, message="X").error.code == "10400"  # YAML numbers


def test_keys_that_only_make_sense_together():
    assert problem({"code": "1"}) == "code: code needs a status or a preset"
    assert problem({"body": "html"}) == "body: body needs a status or a preset"
    assert problem({"preset": "rate_limited", "action": "reset"}).startswith(
        "action: action reset and an error answer")
    assert problem({"action": "timeout", "delay_ms": 5}).startswith("delay_ms:")
    assert problem({"action": "reset", "headers": {"A": "b"}}).startswith("headers:")
    assert problem({"endpoint": "token", "action": "drop_state"}).startswith("endpoint:")
    assert rule(probability=0.5, seed=1, delay_ms=1).seed == 1
    assert problem({"seed": 1, "delay_ms": 1}) == "seed: seed only makes sense with probability"
    assert problem({"endpoint": "token"}).startswith("the rule does nothing")


@pytest.mark.parametrize(("raw", "reason"), [
    ({"preset": "nope"}, "preset: unknown preset 'nope'; known: blocked_merchant"),
    ({"endpoint": "tokens", "delay_ms": 1}, "endpoint: unknown endpoint 'tokens'"),
    ({"endpoint": 3, "delay_ms": 1}, "endpoint: endpoint must be one of"),
    ({"status": 99}, "status: status must be an integer 200-599"),
    ({"status": True}, "status: status must be an integer"),
    ({"after": -1, "delay_ms": 1}, "after: after must be an integer >= 0"),
    ({"times": 0, "delay_ms": 1}, "times: times must be an integer >= 1"),
    ({"every": "2", "delay_ms": 1}, "every: every must be an integer >= 1"),
    ({"probability": 1.5, "delay_ms": 1}, "probability: probability must be a number"),
    ({"probability": float("nan"), "delay_ms": 1}, "probability:"),
    ({"delay_ms": 10**9}, "delay_ms: delay_ms must be an integer 0-600000"),
    ({"action": "explode"}, "action: unknown action 'explode'"),
    ({"preset": "rate_limited", "headers": {"Content-Length": "1"}}, "headers.Content-Length:"),
    ({"preset": "rate_limited", "headers": {"A": "b\r\nX: y"}}, "headers.A: a header value"),
    ({"preset": "rate_limited", "headers": {"bad name": "x"}}, "headers: 'bad name' is not"),
    ({"preset": "rate_limited", "header": {"X": ["a"]}}, "header.X: a header value"),
    ({"preset": "rate_limited", "path": "api/*"}, "path: path is a glob"),
    ({"preset": "rate_limited", "name": "has space"}, "name: name must be"),
    ({"preset": "rate_limited", "colour": "red"}, "colour: unknown key 'colour'; known: name"),
    ("x", "a rule is a mapping"),
])
def test_refusals_name_the_key_and_the_reason(raw, reason):
    with pytest.raises(RuleProblem) as caught:
        parse_rule(raw, PRESETS)
    assert str(caught.value).startswith(reason)


def test_matching_by_endpoint_client_path_and_header():
    token = post(TOKEN, {"grant_type": "authorization_code"}, auth=basic("ACME"))
    assert rule(endpoint="token", delay_ms=1).matches(token, "token")
    assert not rule(endpoint="refresh", delay_ms=1).matches(token, "token")
    assert rule(endpoint=["refresh", "token"], delay_ms=1).matches(token, "token")
    assert rule(client_id="ACME", delay_ms=1).matches(token, "token")
    assert not rule(client_id="OTHER", delay_ms=1).matches(token, "token")
    assert rule(path="/security/*/token", delay_ms=1).matches(token, "token")
    assert not rule(path="/security/*/refresh", delay_ms=1).matches(token, "token")
    tagged = Request("GET", "wwwcie.ups.com", "/api/x", headers=(("x-test-case", "slow-42"),))
    assert rule(header={"X-Test-Case": "slow-*"}, delay_ms=1).matches(tagged, "api")
    assert not rule(header={"X-Test-Case": "fast"}, delay_ms=1).matches(tagged, "api")
    assert not rule(header={"X-Other": "*"}, delay_ms=1).matches(tagged, "api")
    # A request that names no client matches by the answer's client (state actions).
    assert rule(client_id="ACME", action="drop_state").matches(
        post("/lasso/signin", {"decision": "approve"}), "login", "ACME")


def test_the_client_comes_from_basic_the_form_or_the_query():
    assert client_id_of(post(REFRESH, {"grant_type": "refresh_token"},
                             auth=basic("BASIC1"))) == "BASIC1"
    assert client_id_of(post(TOKEN, {"client_id": "PKCE1", "code_verifier": "v"})) == "PKCE1"
    assert client_id_of(get(AUTHORIZE, authorize_params(client_id="Q1"))) == "Q1"
    assert client_id_of(post(TOKEN, body=b"{}", content_type="application/json")) is None
    assert client_id_of(Request("GET", "h", "/", query="client_id=%ff")) is None


def test_rule_lists_are_all_or_nothing_with_the_index():
    with pytest.raises(RuleProblem) as caught:
        parse_rules([{"preset": "rate_limited"}, {"preset": "nope"}], PRESETS)
    assert caught.value.where == (1, "preset")
    with pytest.raises(RuleProblem) as caught:
        parse_rules({"faults": [{"name": "a", "delay_ms": 1}, {"name": "a", "delay_ms": 2}]},
                    PRESETS)
    assert caught.value.where == ("faults", 1, "name") and "listed twice" in str(caught.value)
    assert len(parse_rules({"preset": "rate_limited"}, PRESETS)) == 1
