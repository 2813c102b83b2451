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


def test_record_sends_api_hosts_upstream_and_keeps_the_login_host_for_cie():
    flow = tflow.tflow()
    flow.request.url = "https://onlinetools.ups.com/security/v1/oauth/token"
    flow.request.headers["Host"] = "onlinetools.ups.com"
    mitm.send_upstream(flow, "https://127.0.0.1:8443", login_too=True)
    assert flow.request.url == "https://127.0.0.1:8443/security/v1/oauth/token"
    assert flow.request.host_header == "127.0.0.1:8443"
    login = tflow.tflow()
    login.request.url = "https://www.ups.com/lasso/signin"
    mitm.send_upstream(login, "https://wwwcie.ups.com", login_too=False)
    assert login.request.url == "https://www.ups.com/lasso/signin"
    other = tflow.tflow()
    other.request.url = "https://example.org/x"
    mitm.send_upstream(other, "https://127.0.0.1:8443", login_too=True)
    assert other.request.host == "example.org"


def test_to_response_decodes_the_body():
    flow = tflow.tflow(resp=True)
    flow.response.headers["content-encoding"] = "gzip"
    flow.response.content = b'{"a":1}'  # the setter encodes it with gzip
    assert flow.response.raw_content != b'{"a":1}'
    assert mitm.to_response(flow).body == b'{"a":1}'


def test_record_settings_intercept_the_upstream_host_too():
    import re

    settings = mitm.record_settings(mitm.Path("/tmp/x"), ("127.0.0.1", 0), None,  # noqa: S108
                                    "https://fake.test:8443", mitm.Path("ca.pem"))
    hosts = settings.options["allow_hosts"]
    assert any(re.match(p, "fake.test:8443") for p in hosts)
    assert any(re.match(p, "wwwcie.ups.com:443") for p in hosts)
    assert not any(re.match(p, "example.org:443") for p in hosts)
    assert settings.options["ssl_verify_upstream_trusted_ca"] == "ca.pem"
    assert settings.options["connection_strategy"] == "lazy"
