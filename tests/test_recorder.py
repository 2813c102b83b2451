"""Unit tests of upsproxy.recorder: modes, error names, shapes, the guard's veto."""

import base64
import json

import pytest

from upsproxy.cassette import load_cassette
from upsproxy.errors import CassetteError, LeakError
from upsproxy.messages import Request, Response
from upsproxy.profile import profile_from_cassette
from upsproxy.recorder import Exchange, Recorder, default_cassette, error_name
from upsproxy.upstream import recorded_host, resolve_upstream

JSON = (("Content-Type", "application/json"),)


def token_exchange(access="at-" + "x" * 20, refresh="rt-" + "y" * 20, ttl="3599"):
    body = {"token_type": "Bearer", "access_token": access, "refresh_token": refresh,
            "expires_in": ttl, "status": "approved"}
    return Exchange("token", "https://wwwcie.ups.com/security/v1/oauth/token",
                    Request("POST", "wwwcie.ups.com", "/security/v1/oauth/token", "",
                            (("content-type", "application/x-www-form-urlencoded"),
                             ("user-agent", "app/1.0"), ("content-length", "40")),
                            b"grant_type=authorization_code&code=THECODE1234"),
                    Response(200, (*JSON, ("Date", "today"), ("X-Custom", "kept")),
                             json.dumps(body).encode()))


def test_error_names_come_from_the_catalogue_else_the_code():
    def env(code, message):
        return {"response": {"errors": [{"code": code, "message": message}]}}

    assert error_name(401, env("10401", "ClientId is Invalid")) == "invalid_client"
    assert error_name(400, env("10400", "Invalid Redirect URL")) == "invalid_redirect"
    assert error_name(400, env("10400", "Something New")) == "error_10400"
    assert error_name(500, {"oops": 1}) is None and error_name(200, env("1", "x")) is None


def test_new_writes_an_empty_cassette_and_refuses_an_existing_one(tmp_path):
    Recorder(tmp_path / "c.yaml").open()
    cassette = load_cassette(tmp_path / "c.yaml")
    assert cassette.interactions == [] and cassette.meta["how"] == "recorded"
    with pytest.raises(CassetteError, match="already exists"):
        Recorder(tmp_path / "c.yaml").open()
    Recorder(tmp_path / "c.yaml", mode="overwrite").open()


def test_noise_headers_are_dropped_and_lifetimes_reach_replay(tmp_path):
    recorder = Recorder(tmp_path / "c.yaml")
    recorder.open()
    assert recorder.record(token_exchange()) == 1
    cassette = load_cassette(tmp_path / "c.yaml")
    interaction = cassette.interactions[0]
    assert interaction.request.headers == {"content-type": "application/x-www-form-urlencoded"}
    assert interaction.response.headers == {"content-type": "application/json",
                                            "x-custom": "kept"}
    assert interaction.request.form()["code"] == "<<code:1>>"
    assert profile_from_cassette(cassette).access_ttl_s == 3599
    assert cassette.shapes["refresh_token"].length == 23


def test_a_leak_drops_the_exchange_and_keeps_the_last_good_file(tmp_path):
    recorder = Recorder(tmp_path / "c.yaml")
    recorder.open()
    recorder.record(token_exchange())
    good = (tmp_path / "c.yaml").read_text()
    # The code turns up, encoded, somewhere no rule looks at (a text body) and in a
    # spelling the substitution does not produce: base64 of a longer text.
    hidden = base64.b64encode(b"prefix THECODE1234 suffix").decode()
    leaking = Exchange("api", "https://wwwcie.ups.com/api/x",
                       Request("GET", "wwwcie.ups.com", "/api/x"),
                       Response(200, (("Content-Type", "text/plain"),), hidden.encode()))
    with pytest.raises(LeakError) as caught:
        recorder.record(leaking)
    assert caught.value.kind == "code" and "THECODE" not in str(caught.value)
    assert (tmp_path / "c.yaml").read_text() == good
    assert recorder.record(token_exchange(access="at-" + "z" * 20)) == 2


def test_append_keeps_shapes_and_numbers_after_the_file(tmp_path):
    first = Recorder(tmp_path / "c.yaml")
    first.open()
    first.record(token_exchange())
    second = Recorder(tmp_path / "c.yaml", mode="append")
    second.open()
    second.record(token_exchange(access="at-" + "q" * 30, refresh="rt-" + "w" * 30))
    cassette = load_cassette(tmp_path / "c.yaml")
    assert [i.response.json()["access_token"] for i in cassette.interactions] == [
        "<<access_token:1>>", "<<access_token:2>>"]
    assert cassette.shapes["refresh_token"].length == 23  # the first session's shape stays


def test_html_pages_and_binary_bodies_are_left_out(tmp_path):
    recorder = Recorder(tmp_path / "c.yaml")
    recorder.open()
    recorder.record(Exchange("login", "https://www.ups.com/lasso/signin",
                             Request("GET", "www.ups.com", "/lasso/signin"),
                             Response(200, (("Content-Type", "text/html"),),
                                      b"<html><input name=csrf value=SECRETCSRF></html>")))
    recorder.record(Exchange("api", "https://wwwcie.ups.com/api/label",
                             Request("GET", "wwwcie.ups.com", "/api/label"),
                             Response(200, (("Content-Type", "image/png"),), b"\x89PNG\xff")))
    text = (tmp_path / "c.yaml").read_text()
    assert "SECRETCSRF" not in text and "PNG" not in text
    assert load_cassette(tmp_path / "c.yaml").interactions[0].response.body is None


def test_upstreams():
    assert resolve_upstream("cie") == "https://wwwcie.ups.com"
    assert resolve_upstream("PROD") == "https://onlinetools.ups.com"
    assert resolve_upstream("https://127.0.0.1:8443/") == "https://127.0.0.1:8443"
    for bad in ("http://x.test", "https://x.test/p", "ftp://x", "https://x.test:99999"):
        with pytest.raises(ValueError):
            resolve_upstream(bad)
    assert recorded_host("https://onlinetools.ups.com") == "onlinetools.ups.com"
    assert recorded_host("https://127.0.0.1:1") == "wwwcie.ups.com"
    assert str(default_cassette(0)) == "cassettes/recorded-19700101-000000.yaml"


def test_shapes_come_from_issued_values_not_from_junk_the_app_sent(tmp_path):
    recorder = Recorder(tmp_path / "c.yaml")
    recorder.open()
    junk = Exchange("token", "https://wwwcie.ups.com/security/v1/oauth/token",
                    Request("POST", "wwwcie.ups.com", "/security/v1/oauth/token", "",
                            (("content-type", "application/x-www-form-urlencoded"),),
                            b"grant_type=authorization_code&code=junk-code-1"),
                    Response(400, JSON, b'{"response":{"errors":[{"code":"10400",'
                                        b'"message":"Invalid Authorization Code"}]}}'))
    recorder.record(junk)
    assert recorder.shapes["code"] == {"alphabet": "base64url", "length": 11}  # provisional
    issued = base64.b64encode(b"k" * 97).decode()
    recorder.record(Exchange("login", "https://www.ups.com/lasso/signin",
                             Request("POST", "www.ups.com", "/lasso/signin"),
                             Response(302, (("Location", f"https://a.test/cb?code={issued}"),))))
    assert load_cassette(tmp_path / "c.yaml").shapes["code"].length == 132
