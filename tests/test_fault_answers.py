"""What fault rules answer: error bodies, and redirects with a changed state."""

import pytest

from upsproxy.fault_answers import (
    WRONG_STATE,
    error_answer,
    is_callback_redirect,
    merge_headers,
    rewrite_state,
)
from upsproxy.fault_rules import ErrorAnswer
from upsproxy.messages import Response


def redirect(location, rule="login.approved"):
    return Response.redirect(location, rule=rule, headers=(("Cache-Control", "no-store"),))


def test_envelopes_are_compact_ups_json():
    resp = error_answer(ErrorAnswer(429, "10429", "Too Many Requests"), "fault:r",
                        (("Retry-After", "30"),))
    assert resp.body == b'{"response":{"errors":[{"code":"10429","message":"Too Many Requests"}]}}'
    assert resp.headers == (("Content-Type", "application/json"), ("Retry-After", "30"))
    assert resp.rule == "fault:r"


def test_html_empty_and_text_bodies():
    html = error_answer(ErrorAnswer(502, "10502", "Bad <gateway>", "html"), "fault:r")
    assert html.header("content-type") == "text/html; charset=utf-8"
    assert b"<title>502 Bad Gateway</title>" in html.body and b"Bad &lt;gateway&gt;" in html.body
    assert error_answer(ErrorAnswer(204, "x", "y", "empty"), "r").body == b""
    assert error_answer(ErrorAnswer(204, "x", "y", "empty"), "r").headers == ()
    text = error_answer(ErrorAnswer(500, "x", "y", "oops"), "r",
                        (("content-type", "text/xml"),))
    assert text.body == b"oops" and text.headers == (("content-type", "text/xml"),)


def test_merge_headers_replaces_by_name_case_insensitively():
    assert merge_headers((("A", "1"), ("B", "2")), (("a", "3"),)) == (("B", "2"), ("a", "3"))


@pytest.mark.parametrize(("location", "expected"), [
    ("https://app.test/cb?code=abc&state=s", True),
    ("https://app.test/cb?error=access_denied&state=s", True),
    ("https://www.ups.com/lasso/signin?response_type=code&state=s", False),
    ("https://app.test/cb", False),
])
def test_callback_redirects(location, expected):
    assert is_callback_redirect(redirect(location)) is expected
    assert not is_callback_redirect(Response(200, (("Location", location),)))


def test_drop_and_wrong_state_keep_every_other_byte():
    location = "https://app.test/cb?x=1&code=a%2Bb%3D%3D&state=a%2Fb%2Bc&z="
    dropped = rewrite_state(redirect(location), "drop_state", "fault:r")
    assert dropped.header("location") == "https://app.test/cb?x=1&code=a%2Bb%3D%3D&z="
    assert dropped.header("cache-control") == "no-store"
    assert dropped.rule == "login.approved fault:r"
    wrong = rewrite_state(redirect(location), "wrong_state", "fault:r")
    assert wrong.header("location") == (
        f"https://app.test/cb?x=1&code=a%2Bb%3D%3D&state={WRONG_STATE}&z=")
    # An app that sent no state gets one; one that sent ours gets another.
    assert rewrite_state(redirect("https://app.test/cb?code=a"), "wrong_state", "f").header(
        "location") == f"https://app.test/cb?code=a&state={WRONG_STATE}"
    same = rewrite_state(redirect(f"https://app.test/cb?state={WRONG_STATE}&code=a"),
                         "wrong_state", "f")
    assert same.header("location") == f"https://app.test/cb?state={WRONG_STATE}-2&code=a"
    only = rewrite_state(redirect("https://app.test/cb?state=s#frag"), "drop_state", "f")
    assert only.header("location") == "https://app.test/cb#frag"
