"""Matchers: each says why two API calls differ, naming fields, never values."""

from upsproxy.match import Wanted, body, closest, first_match, method, parse_body, path, query
from upsproxy.match import wanted_from_recorded as recorded

TRACK = "https://wwwcie.ups.com/api/track/v1/details/1Z023E2X0214323462?locale=en_US&x=1"


def actual(m="GET", p="/api/track/v1/details/1Z023E2X0214323462", q=(("locale", "en_US"),
           ("x", "1")), b=b""):
    return Wanted(m, p, tuple(q), parse_body(b))


def test_an_equal_call_matches_whatever_the_query_and_key_order():
    want = recorded("GET", TRACK, None)
    assert all(f(want, actual(q=(("x", "1"), ("locale", "en_US")))) is None
               for f in (method, path, query, body))
    want = recorded("POST", "https://h/api/ship", {"json": {"a": 1, "b": {"c": [1, 2]}}})
    assert body(want, actual(b=b'{"b": {"c": [1, 2]}, "a": 1}')) is None


def test_each_matcher_names_what_differs_but_no_value():
    want = recorded("GET", TRACK, None)
    assert method(want, actual(m="POST")) == "method POST, recorded GET"
    assert path(want, actual(p="/api/track/v1/details/1ZSECRETNUMBER")) == \
        "path segment 5 differs"
    assert query(want, actual(q=(("locale", "de_DE"), ("y", "2")))) == \
        "query: missing x; extra y; value of locale differs"
    ship = recorded("POST", "https://h/api/ship", {"json": {"shipper": {"name": "A", "n": 1}}})
    reason = body(ship, actual(b=b'{"shipper": {"name": "Jane Doe", "n": 1}}'))
    assert reason == "body: value of shipper.name differs" and "Jane" not in reason
    assert body(ship, actual(b=b'{"shipper": {"n": 1}}')) == "body: missing field shipper.name"
    assert body(ship, actual(b=b"")) == "body: recorded one, got none"
    assert body(want, actual(b=b"{}")) == "body: recorded none, got one"
    assert body(ship, actual(b=b'{"shipper": []}')) == \
        "body: shipper is a list, recorded a mapping"


def test_a_recorded_placeholder_matches_any_value():
    want = recorded("POST", "https://h/api/accounts/<<personal:1>>?acct=<<personal:2>>",
                    {"json": {"number": "<<personal:3>>", "kind": "x"}})
    got = actual(m="POST", p="/api/accounts/123", q=(("acct", "987"),),
                 b=b'{"number": "555", "kind": "x"}')
    assert first_match([(want, "hit")], got) == "hit"
    assert first_match([(want, "hit")], actual(m="POST", p="/api/accounts/123",
                                               q=(("acct", "987"),),
                                               b=b'{"number": "555", "kind": "y"}')) is None


def test_closest_ranks_by_what_failed():
    a = recorded("GET", TRACK, None)
    b = recorded("GET", "https://h/api/track/v1/details/1Z023E2X0214323462?locale=en_US", None)
    c = recorded("POST", "https://h/api/other", None)
    near = closest([(c, "c"), (b, "b"), (a, "a")], actual(q=(("locale", "fr_FR"), ("x", "1"))))
    assert [m.candidate for m in near] == ["a", "b", "c"]
    assert near[0].reasons == ("query: value of locale differs",)
    assert near[2].reasons[0].startswith("method")
