"""The adapter's own pieces, on real mitmproxy objects (no proxy running)."""

from mitmproxy import http
from mitmproxy.test import tflow

from upsproxy import mitm
from upsproxy.messages import Response


def test_responses_take_the_fast_path_on_this_mitmproxy():
    # If a mitmproxy release changes Response's layout, the adapter falls back to
    # the public constructor; this test says so, so the speed loss is noticed.
    assert mitm._new_response.__name__ == "fast"


def test_answers_are_independent_complete_messages():
    first, second = tflow.tflow(), tflow.tflow()
    mitm.apply_response(first, Response(404, (("Content-Type", "application/json"),), b"{}"))
    mitm.apply_response(second, Response(302, (("Location", "https://x.test/cb"),), b""))
    a, b = first.response, second.response
    assert (a.status_code, a.reason, a.content) == (404, "Not Found", b"{}")
    assert a.headers["content-length"] == "2" and "location" not in a.headers
    assert (b.status_code, b.headers["location"], b.headers["content-length"]) == (
        302, "https://x.test/cb", "0")
    assert a.data is not b.data and a.headers is not b.headers
    # A flow a user saves with `mitmdump -w` must survive its state round trip.
    copy = http.Response.from_state(a.get_state())
    assert copy.status_code == 404 and copy.content == b"{}"
    assert first.is_replay == "response"


def test_a_head_answer_has_the_length_but_no_body():
    flow = tflow.tflow()
    flow.request.method = "HEAD"
    mitm.apply_response(flow, Response(400, (), b"0123456789"))
    assert flow.response.raw_content == b"" and flow.response.headers["content-length"] == "10"
