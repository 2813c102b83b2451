"""The fault engine: order, counters, reproducible probability, state, control API."""

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from factories import AUTHORIZE, CALLBACK, REFRESH, TOKEN, authorize_params, get, make_sandbox, post

from upsproxy.errors import FaultRuleError
from upsproxy.fault_rules import RuleProblem
from upsproxy.faults import FaultEngine
from upsproxy.messages import Request, Response

TOKEN_REQ = post(TOKEN, {"grant_type": "authorization_code"})


def fired(engine, req=TOKEN_REQ, n=12):
    """Which of ``n`` requests in a row got a decision (1-based)."""
    return [i for i in range(1, n + 1) if engine.decide(req) is not None]


@pytest.mark.parametrize(("when", "expected"), [
    ({}, list(range(1, 13))),
    ({"after": 2}, list(range(3, 13))),
    ({"times": 3}, [1, 2, 3]),
    ({"after": 1, "times": 1}, [2]),
    ({"every": 3}, [3, 6, 9, 12]),
    ({"after": 2, "every": 3, "times": 2}, [5, 8]),
])
def test_after_times_every(when, expected):
    engine = FaultEngine()
    engine.add({"endpoint": "token", "preset": "rate_limited", **when})
    assert fired(engine) == expected
    assert engine.rules()[0]["matched"] == 12 and engine.rules()[0]["fired"] == len(expected)


def test_first_rule_that_fires_answers_and_later_rules_do_not_see_the_request():
    engine = FaultEngine()
    engine.add([{"name": "second", "endpoint": "token", "preset": "rate_limited", "after": 1},
                {"name": "always", "endpoint": "any", "preset": "server_error"},
                {"name": "never", "endpoint": "token", "preset": "invalid_client"}])
    assert engine.decide(TOKEN_REQ).rule == "always"  # "second" matched but waits
    assert engine.decide(TOKEN_REQ).rule == "second"
    assert engine.decide(post(REFRESH, {})).rule == "always"
    counts = [(r["name"], r["matched"], r["fired"]) for r in engine.rules()]
    assert counts == [("second", 2, 1), ("always", 2, 2), ("never", 0, 0)]


def test_requests_for_no_ups_endpoint_are_never_faulted():
    engine = FaultEngine()
    engine.add("any:reset")
    assert engine.decide(Request("GET", "example.com", "/security/v1/oauth/token")) is None
    assert engine.decide(Request("GET", "127.0.0.1", "/_upsproxy/faults",
                                 origin="http://127.0.0.1:1")) is None
    assert engine.decide(get(AUTHORIZE)).action == "reset"


def test_counts_are_exact_under_concurrency():
    engine = FaultEngine()
    engine.add({"endpoint": "token", "preset": "rate_limited", "after": 5, "every": 2,
                "times": 40})
    barrier = threading.Barrier(20)

    def hammer(_):
        barrier.wait(timeout=10)
        return sum(engine.decide(TOKEN_REQ) is not None for _ in range(50))

    with ThreadPoolExecutor(20) as pool:
        total = sum(pool.map(hammer, range(20)))
    assert total == 40
    assert (engine.rules()[0]["matched"], engine.rules()[0]["fired"]) == (1000, 40)


def test_probability_with_a_seed_is_the_same_sequence_in_every_engine():
    def run(seed):
        engine = FaultEngine()
        engine.add({"endpoint": "token", "preset": "rate_limited", "probability": 0.3,
                    "seed": seed})
        return fired(engine, n=200)

    first = run(42)
    assert first == run(42) and 30 < len(first) < 90
    assert run(43) != first
    never, always = FaultEngine(), FaultEngine()
    never.add("token:rate_limited:probability=0")
    always.add("token:rate_limited:probability=1")
    assert fired(never) == [] and len(fired(always)) == 12


def test_names_ids_and_clearing():
    engine = FaultEngine()
    assert not engine.active
    engine.add([{"preset": "rate_limited"}, {"name": "rule2", "preset": "server_error"},
                {"preset": "server_error"}])
    assert [(r["id"], r["name"]) for r in engine.rules()] == [
        (1, "rule1"), (2, "rule2"), (3, "rule3")]
    with pytest.raises(RuleProblem, match="a rule named 'rule2' exists"):
        engine.add({"name": "rule2", "preset": "server_error"})
    assert engine.active and not engine.on_redirect
    assert engine.clear("rule2") == 1 and engine.clear("rule2") == 0
    engine.add("login:drop_state")
    assert engine.on_redirect and engine.rules()[-1]["id"] == 4  # ids are never reused
    assert engine.clear() == 3 and not engine.active and not engine.on_redirect


def test_decisions_for_the_normal_answer_add_headers_and_a_delay():
    engine = FaultEngine()
    engine.add({"endpoint": "token", "delay_ms": 1500, "headers": {"X-Upsproxy": "slow"}})
    decision = engine.decide(TOKEN_REQ)
    assert decision.needs_normal and decision.delay_s == 1.5 and decision.label == "fault:rule1"
    normal = Response.json(200, {"ok": "1"}, rule="token.issued_basic",
                           headers=(("x-upsproxy", "old"),))
    sent = decision.answer(normal)
    assert sent.body == normal.body and sent.header("x-upsproxy") == "slow"
    assert [k for k, _ in sent.headers] == ["Content-Type", "X-Upsproxy"]


def test_state_actions_fire_on_redirects_back_to_the_app_only():
    sandbox = make_sandbox(auto_approve=True)
    sandbox.faults.add({"name": "lost", "client_id": "TESTCLIENT", "action": "drop_state"})
    req = get(AUTHORIZE, authorize_params(state="st"))
    normal = sandbox.handle(req)
    decision = sandbox.faults.decide(req)
    assert decision is None  # state actions wait for the answer
    changed = sandbox.faults.decide_redirect(req, normal).answer(normal)
    assert changed.header("location") == normal.header("location").replace("&state=st", "")
    assert changed.rule == "authorize.auto_approved fault:lost"
    other = get(AUTHORIZE, authorize_params(client_id="OTHER", state="st"))
    assert sandbox.faults.decide_redirect(other, sandbox.handle(other)) is None
    to_login = make_sandbox()  # authorize goes to the login page: not a redirect to the app
    to_login.faults.add("authorize:wrong_state")
    assert to_login.faults.decide_redirect(req, to_login.handle(req)) is None
    assert to_login.faults.rules()[0]["matched"] == 0


def test_presets_include_the_errors_the_cassette_names():
    sandbox = make_sandbox()
    presets = sandbox.faults.presets
    assert presets["invalid_refresh_token"] == (400, "10400", "Invalid Refresh Token")
    assert presets["invalid_token"] == (401, "250002", "Invalid Authentication Information.")
    assert "track_delivered" not in presets  # a success, not an error


def test_config_overrides_change_presets(tmp_path):
    sandbox = make_sandbox(config_text="errors:\n  blocked_merchant: {status: 451}\n",
                           tmp_path=tmp_path)
    assert sandbox.faults.presets["blocked_merchant"] == (451, "10403", "Blocked Merchant")


def test_files_and_shorthands_report_where(tmp_path):
    engine = FaultEngine()
    path = tmp_path / "f.yaml"
    path.write_text("- name: a\n  preset: rate_limited\n")
    engine.load_file(path)
    with pytest.raises(FaultRuleError, match=r"f\.yaml: rule 1: a rule named 'a' exists"):
        engine.load_file(path)
    with pytest.raises(FaultRuleError) as caught:
        engine.add_shorthand("token:nope")
    assert str(caught.value).startswith("--fault 'token:nope': preset: unknown preset 'nope'")


# -- the control API, through the sandbox's router ------------------------------------------


def call(sandbox, method, body=None, query=""):
    raw = json.dumps(body).encode() if body is not None else b""
    resp = sandbox.handle(Request(method, "127.0.0.1", "/_upsproxy/faults", query=query,
                                  body=raw, origin="http://127.0.0.1:8081", peer="127.0.0.1"))
    return resp.status, json.loads(resp.body)


def test_control_endpoints():
    sandbox = make_sandbox()
    status, body = call(sandbox, "POST", {"endpoint": "token", "preset": "rate_limited"})
    assert status == 200 and body["rules"][0]["name"] == "rule1"
    assert call(sandbox, "POST")[0] == 400
    status, body = call(sandbox, "POST", {"preset": 5})
    assert status == 400 and body["error"].startswith("preset: unknown preset 5")
    assert call(sandbox, "POST", "token:reset")[1]["rules"][0]["action"] == "reset"
    sandbox.handle(TOKEN_REQ)  # the sandbox alone does not count: the addon decides
    status, body = call(sandbox, "GET")
    assert [(r["name"], r["matched"]) for r in body["rules"]] == [("rule1", 0), ("rule2", 0)]
    assert call(sandbox, "DELETE", query="name=rule2") == (200, {"removed": 1})
    assert call(sandbox, "DELETE", query="name=rule2")[0] == 404
    assert call(sandbox, "DELETE", query="id=1")[0] == 400
    assert call(sandbox, "DELETE") == (200, {"removed": 1})


def test_the_sandbox_loads_files_and_shorthands_from_options(tmp_path):
    from upsproxy.sandbox import Sandbox, SandboxOptions

    path = tmp_path / "faults.yaml"
    path.write_text(f"faults:\n  - endpoint: token\n    preset: rate_limited\n"
                    f"  - endpoint: login\n    action: wrong_state\n    path: /lasso/*\n"
                    f"# callback {CALLBACK}\n")
    sandbox = Sandbox.from_options(SandboxOptions(faults=(str(path),),
                                                  fault_specs=("api:delay_ms=5",)))
    assert [r["name"] for r in sandbox.faults.rules()] == ["rule1", "rule2", "rule3"]
