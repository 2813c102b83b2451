"""Unit tests of upsproxy.recorder: modes, error names, shapes, the guard's veto."""

import base64
import json
import re

import pytest
from recording import leaks

from upsproxy.cassette import load_cassette
from upsproxy.cassette_check import scan
from upsproxy.errors import CassetteError, LeakError, UnrecordableError
from upsproxy.fingerprint import Fingerprinter
from upsproxy.messages import Request, Response
from upsproxy.profile import profile_from_cassette
from upsproxy.recorder import Exchange, Recorder, default_cassette, error_name
from upsproxy.upstream import recorded_host, resolve_upstream
from upsproxy.yamlfile import parse_text

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


# -- append: a value recorded before keeps its placeholder -----------------------------------

KEY = b"k" * 32
CLIENT_ID, CLIENT_SECRET = "CLIENT-0123456789", "s3cret: with +/= and spaces"


def oauth_exchange(kind="token", code="THECODE1234", access="at-" + "x" * 20,
                   refresh="rt-" + "y" * 20, send_refresh=None, client=CLIENT_ID):
    """A token (or refresh) exchange with Basic client auth and a token answer."""
    basic = base64.b64encode(f"{client}:{CLIENT_SECRET}".encode()).decode()
    form = (f"grant_type=refresh_token&refresh_token={send_refresh}" if kind == "refresh"
            else f"grant_type=authorization_code&code={code}")
    body = {"client_id": client, "access_token": access, "refresh_token": refresh}
    path = f"/security/v1/oauth/{kind}"
    return Exchange(kind, f"https://wwwcie.ups.com{path}",
                    Request("POST", "wwwcie.ups.com", path, "",
                            (("content-type", "application/x-www-form-urlencoded"),
                             ("authorization", f"Basic {basic}")), form.encode()),
                    Response(200, JSON, json.dumps(body).encode()))


def record_session(path, exchanges, *, mode, key=KEY):
    recorder = Recorder(path, mode=mode, key=key)
    recorder.open()
    for exchange in exchanges:
        recorder.record(exchange)
    return path.read_text()


def fingerprint_lines(text):
    block = text.split("  fingerprints:\n", 1)[1].split("\nshapes:", 1)[0]
    return block.splitlines()


def test_append_gives_a_value_recorded_before_its_placeholder_back(tmp_path):
    path = tmp_path / "c.yaml"
    first_refresh = "rt-issued-in-session-one-0001"
    before = record_session(path, [oauth_exchange(refresh=first_refresh)], mode="new")
    after = record_session(path, [
        oauth_exchange("refresh", access="at-session-two-0002", refresh="rt-session-two-0002",
                       send_refresh=first_refresh),
        oauth_exchange(code="SECONDCODE99", access="at-session-two-0003",
                       refresh="rt-session-two-0003")], mode="append")
    one, refresh, two = load_cassette(path).interactions
    # The client, its secret (inside Basic) and the refreshed token: one placeholder each.
    assert one.request.header("authorization") == refresh.request.header("authorization") \
        == two.request.header("authorization") == "Basic <<basic:1>>"
    assert {i.response.json()["client_id"] for i in (one, refresh, two)} == {"<<client_id:1>>"}
    assert refresh.request.form()["refresh_token"] == one.response.json()["refresh_token"] \
        == "<<refresh_token:1>>"
    # New values: numbered after the file's.
    assert refresh.response.json()["refresh_token"] == "<<refresh_token:2>>"
    assert two.request.form()["code"] == "<<code:2>>"
    assert after.split("interactions:\n", 1)[1].startswith(before.split("interactions:\n", 1)[1])
    # meta.fingerprints: our key's section, one 30-hex-digit line per placeholder, the
    # earlier lines kept (an append only adds lines), no secret in any spelling.
    fingerprint = Fingerprinter(KEY)
    section = load_cassette(path).meta["fingerprints"][fingerprint.key_id]
    assert section["<<client_id:1>>"] == fingerprint(CLIENT_ID)
    assert section["<<client_secret:1>>"] == fingerprint(CLIENT_SECRET)
    assert section["<<refresh_token:1>>"] == fingerprint(first_refresh)
    assert all(re.fullmatch(r"[0-9a-f]{30}", digest) for digest in section.values())
    assert set(fingerprint_lines(before)) <= set(fingerprint_lines(after))
    raw = {CLIENT_ID, CLIENT_SECRET, first_refresh, "THECODE1234", "SECONDCODE99",
           "rt-session-two-0002", "at-session-two-0003", KEY.decode()}
    assert leaks(after, raw) == []
    # `cassette check` has nothing to say about fingerprints.
    assert scan(after, parse_text(after, str(path), CassetteError)) == []


def test_append_with_another_key_numbers_anew_and_says_why(tmp_path, caplog):
    path = tmp_path / "c.yaml"
    record_session(path, [oauth_exchange()], mode="new")
    with caplog.at_level("WARNING", logger="upsproxy.recorder"):
        text = record_session(path, [oauth_exchange(code="OTHERCODE77")], mode="append",
                              key=b"o" * 32)
    assert [i.response.json()["client_id"] for i in load_cassette(path).interactions] == [
        "<<client_id:1>>", "<<client_id:2>>"]
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "another recording key" in lines[0]
    assert CLIENT_ID not in lines[0]
    # Both keys' sections are in the file; the first is left as it was.
    sections = load_cassette(path).meta["fingerprints"]
    assert set(sections) == {Fingerprinter(KEY).key_id, Fingerprinter(b"o" * 32).key_id}
    assert sections[Fingerprinter(KEY).key_id]["<<client_id:1>>"] == \
        Fingerprinter(KEY)(CLIENT_ID)
    # Back on the first machine: both placeholders are known, the first one matches.
    record_session(path, [oauth_exchange(code="THIRDCODE55")], mode="append")
    assert load_cassette(path).interactions[-1].response.json()["client_id"] == \
        "<<client_id:1>>"
    assert leaks(text, {CLIENT_ID, CLIENT_SECRET}) == []


def test_a_cassette_without_fingerprints_still_appends_as_before(tmp_path, caplog):
    path = tmp_path / "c.yaml"
    record_session(path, [oauth_exchange()], mode="new", key=None)
    assert "fingerprints" not in path.read_text()
    with caplog.at_level("WARNING", logger="upsproxy.recorder"):
        record_session(path, [oauth_exchange(code="OTHERCODE77")], mode="append")
    assert "has no fingerprints" in caplog.text and CLIENT_ID not in caplog.text
    cassette = load_cassette(path)
    assert [i.response.json()["client_id"] for i in cassette.interactions] == [
        "<<client_id:1>>", "<<client_id:2>>"]
    assert "<<client_id:2>>" in cassette.meta["fingerprints"][Fingerprinter(KEY).key_id]
    # Without a key, an append keeps the fingerprints it found and adds none.
    kept = cassette.meta["fingerprints"]
    record_session(path, [oauth_exchange(code="KEYLESSCODE1")], mode="append", key=None)
    assert load_cassette(path).meta["fingerprints"] == kept


def test_a_secret_spelled_inside_a_fingerprint_is_no_false_leak(tmp_path, caplog):
    path = tmp_path / "c.yaml"
    recorder = Recorder(path, key=KEY)
    recorder.open()
    recorder.record(oauth_exchange())
    # A six-digit account number that happens to be spelled in the client's fingerprint.
    digest = Fingerprinter(KEY)(CLIENT_ID)
    number = next(digest[i:i + 6] for i in range(len(digest) - 5))
    api = Exchange("api", "https://wwwcie.ups.com/api/x",
                   Request("GET", "wwwcie.ups.com", "/api/x", "", (("AccountNumber", number),)),
                   Response(200, JSON, b"{}"))
    with caplog.at_level("WARNING", logger="upsproxy.recorder"):
        assert recorder.record(api) == 2
    assert "fingerprint of <<client_id:1>> left out" in caplog.text and number not in caplog.text
    text = path.read_text()
    assert digest not in text and "<<client_id:1>>: " not in text
    assert load_cassette(path).interactions[1].request.header("accountnumber") == \
        "<<personal:1>>"
    # A real leak is still one.
    hidden = base64.b64encode(f"x {number} y".encode()).decode()
    leaking = Exchange("api", "https://wwwcie.ups.com/api/y",
                       Request("GET", "wwwcie.ups.com", "/api/y"),
                       Response(200, (("Content-Type", "text/plain"),), hidden.encode()))
    with pytest.raises(LeakError):
        recorder.record(leaking)
    assert path.read_text() == text


def test_broken_fingerprints_are_a_clear_error(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("version: 1\nmeta:\n  fingerprints: [1, 2]\ninteractions: []\n")
    with pytest.raises(CassetteError, match=r"meta\.fingerprints must map"):
        Recorder(path, mode="append", key=KEY).open()


@pytest.mark.parametrize("depth", [400, 5000])  # past the redactor's walk / past json.loads
def test_json_nested_too_deep_is_left_out_and_recording_goes_on(tmp_path, depth):
    """Found by scripts/soak_redaction.py: one such answer used to wedge the session."""
    recorder = Recorder(tmp_path / "c.yaml")
    recorder.open()
    assert recorder.record(token_exchange()) == 1
    deep = token_exchange()
    deep = Exchange(deep.kind, deep.url, deep.request,
                    Response(200, JSON, b"[" * depth + b"]" * depth))
    with pytest.raises(UnrecordableError, match="nested too deep"):
        recorder.record(deep)
    assert len(load_cassette(tmp_path / "c.yaml").interactions) == 1
    assert recorder.record(token_exchange(access="at-" + "z" * 20)) == 2
    assert len(load_cassette(tmp_path / "c.yaml").interactions) == 2
