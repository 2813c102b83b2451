"""Unit tests of upsproxy.cassette_check's heuristics."""

from upsproxy.cassette_check import scan
from upsproxy.errors import CassetteError
from upsproxy.sandbox import default_cassette_path
from upsproxy.yamlfile import parse_text


def findings(text):
    return [(f.line, f.reason) for f in scan(text, parse_text(text, "c", CassetteError))]


def test_the_bundled_cassette_is_clean():
    assert findings(default_cassette_path().read_text()) == []


def test_placeholders_pass_values_do_not():
    ok = ("version: 1\ninteractions:\n- kind: refresh\n  request:\n    method: POST\n"
          "    url: https://wwwcie.ups.com/x?state=<<state:1>>\n"
          "    headers: {Authorization: Basic <<basic:1>>, Cookie: ''}\n"
          "    body: {form: {refresh_token: <<refresh_token:1>>}}\n  response: {status: 200}\n")
    assert findings(ok) == []
    bad = ok.replace("state=<<state:1>>", "state=abc").replace("<<refresh_token:1>>", "tok1")
    assert findings(bad) == [
        (6, "query parameter 'state' holds a value, not a placeholder"),
        (8, "form field 'refresh_token' holds a value, not a placeholder")]


def test_comments_and_paths_are_not_tokens():
    text = ("# eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJl\nversion: 1\n"
            "interactions:\n- kind: api\n  request: {method: GET, url: "
            "'https://wwwcie.ups.com/api/track/v1/details/1Z023E2X0214323462?locale=en_US'}\n"
            "  response: {status: 200}\n")
    assert findings(text) == []


def test_a_recorded_cookie_header_keeps_names_and_passes_values_do_not():
    text = ("version: 1\ninteractions:\n- kind: api\n  request:\n    method: GET\n"
            "    url: https://wwwcie.ups.com/api/x\n"
            "    headers: {Cookie: 'sid=<<cookie:1>>; lang=<<cookie:2>>'}\n"
            "  response: {status: 200}\n")
    assert findings(text) == []
    assert findings(text.replace("<<cookie:2>>", "en-US")) == [
        (7, "header 'Cookie' holds a value, not a placeholder")]
