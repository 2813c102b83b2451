"""Fault rules from YAML files (with lines) and from --fault shorthands."""

import pytest

from upsproxy.envelopes import CATALOGUE
from upsproxy.errors import FaultRuleError
from upsproxy.fault_rules import ErrorAnswer, RuleProblem
from upsproxy.fault_sources import load_rule_file, parse_shorthand

PRESETS = {name: (e.status, e.code, e.message) for name, e in CATALOGUE.items()}


def problem(text):
    with pytest.raises(RuleProblem) as caught:
        parse_shorthand(text, PRESETS)
    return str(caught.value)


def test_shorthands():
    assert parse_shorthand("token:rate_limited", PRESETS).error.status == 429
    r = parse_shorthand("refresh:invalid_refresh_token:after=1,times=1", PRESETS)
    assert (r.endpoints, r.after, r.times) == (frozenset({"refresh"}), 1, 1)
    assert parse_shorthand("api:delay_ms=2000", PRESETS).delay_ms == 2000
    assert parse_shorthand("token:reset", PRESETS).action == "reset"
    assert parse_shorthand("token:503:message=Down: for now", PRESETS).error == ErrorAnswer(
        503, "10503", "Down: for now")
    r = parse_shorthand("any:server_error:probability=0.25,seed=7,headers.Retry-After=5,"
                        "header.X-Case=a*,name=flaky", PRESETS)
    assert (r.probability, r.seed, r.headers, r.name) == (0.25, 7, (("Retry-After", "5"),),
                                                          "flaky")
    assert r.header[0][0] == "x-case"
    assert problem("token") == "expected ENDPOINT:WHAT[:KEY=VALUE,...], e.g. token:rate_limited"
    assert problem("token:rate_limited:times") == "'times' is not KEY=VALUE"
    assert problem("token:rate_limited:times=x") == "times: times must be a number, not 'x'"
    assert problem("token:rate_limited:times=1,times=2") == "times: given twice"


def test_a_bad_rule_file_names_file_and_line(tmp_path):
    path = tmp_path / "faults.yaml"
    path.write_text("- endpoint: token\n  preset: rate_limited\n"
                    "- endpoint: refresh\n  after: 1\n  preset: invalid_refresh_tokn\n")
    with pytest.raises(FaultRuleError) as caught:
        load_rule_file(path, PRESETS)
    assert str(caught.value).startswith(f"{path}:5: unknown preset 'invalid_refresh_tokn'")
    path.write_text("faults:\n  - endpoint: token\n    times: zero\n    preset: rate_limited\n")
    with pytest.raises(FaultRuleError, match=r"faults\.yaml:3: times must be an integer"):
        load_rule_file(path, PRESETS)
    path.write_text("- endpoint: [token\n")
    with pytest.raises(FaultRuleError, match=r"faults\.yaml:2: YAML syntax error"):
        load_rule_file(path, PRESETS)
    path.write_text("")
    assert load_rule_file(path, PRESETS) == []
    with pytest.raises(FaultRuleError, match="no such file"):
        load_rule_file(tmp_path / "missing.yaml", PRESETS)
