"""Unit tests of the leak guard: found in any spelling, reported without the value."""

import base64

import pytest

from upsproxy.cassette_io import dump_cassette
from upsproxy.errors import LeakError
from upsproxy.leak import check_text, yaml_spellings

SECRET = 'p@ss w+rd/="x\\'


def doc(**response):
    return dump_cassette({"version": 1, "interactions": [{
        "kind": "api", "request": {"method": "GET", "url": "https://wwwcie.ups.com/api/x"},
        "response": {"status": 200, **response}}]})


@pytest.mark.parametrize("body", [
    {"text": f"raw {SECRET}"},
    {"text": "pct p%40ss%20w%2Brd%2F%3D%22x%5C"},
    {"text": "lower p%40ss%20w%2brd%2f%3d%22x%5c"},
    {"text": "plus p%40ss+w%2Brd%2F%3D%22x%5C"},
    {"json": {"k": SECRET}},
    {"text": 'json "p@ss w+rd/=\\"x\\\\"'},
    {"text": "basic " + base64.b64encode(f"client:{SECRET}".encode()).decode()},
    {"text": "html p@ss w+rd/=&quot;x\\"},
])
def test_every_spelling_is_found(body):
    with pytest.raises(LeakError) as caught:
        check_text(doc(body=body), {SECRET: "client_secret"}, "c.yaml")
    message = str(caught.value)
    assert message.startswith("c.yaml:") and "a client_secret value" in message
    assert SECRET not in message and "p@ss" not in message and "nothing was written" in message
    assert caught.value.kind == "client_secret"


def test_placement_names_the_field_and_line():
    text = doc(headers={"x-token": "abc " + SECRET})
    with pytest.raises(LeakError) as caught:
        check_text(text, {SECRET: "refresh_token"}, "c.yaml")
    assert caught.value.where == "interactions[0].response.headers.x-token"
    assert text.splitlines()[caught.value.line - 1].strip().startswith("x-token:")


def test_clean_text_passes_and_short_values_are_not_searched():
    check_text(doc(body={"text": "nothing here"}), {SECRET: "client_secret"}, "c.yaml")
    check_text(doc(body={"text": "a 200 OK"}), {"200": "state"}, "c.yaml")


def test_yaml_spellings_include_both_quote_styles():
    assert "it''s" in yaml_spellings("it's") and 'a\\"b' in yaml_spellings('a"b')


def test_a_secret_inside_a_url_inside_a_url_is_found():
    from urllib.parse import quote

    inner = "https://u.test/authorize?state=" + quote(SECRET, safe="")
    text = doc(headers={"location": "https://www.ups.com/lasso?returnto=" + quote(inner,
                                                                                  safe="")})
    with pytest.raises(LeakError):
        check_text(text, {SECRET: "state"}, "c.yaml")
