"""Unit tests of upsproxy.har."""

import base64
import json

import pytest

from upsproxy.har import looks_like_har, read_har


def test_entries_become_exchanges():
    har = {"log": {"entries": [
        {"request": {"method": "post", "url": "https://WWWCIE.ups.com./security/v1/oauth/token?x=1",
                     "headers": [{"name": "Content-Type", "value": "a/b"},
                                 {"name": ":authority", "value": "h2 pseudo header"}],
                     "postData": {"text": "a=1"}},
         "response": {"status": 200, "headers": [{"name": "X", "value": "y"}],
                      "content": {"encoding": "base64",
                                  "text": base64.b64encode(b"{}").decode()}}},
        {"request": {"method": "GET", "url": "https://x.test/"}, "response": {"status": 0}},
    ]}}
    raw = json.dumps(har).encode()
    assert looks_like_har(raw)
    [(request, response)] = list(read_har(raw))
    assert (request.method, request.host, request.path, request.query) == (
        "POST", "wwwcie.ups.com", "/security/v1/oauth/token", "x=1")
    assert request.headers == (("content-type", "a/b"),) and request.body == b"a=1"
    assert (response.status, response.headers, response.body) == (200, (("X", "y"),), b"{}")


def test_what_is_no_har_is_refused():
    with pytest.raises(ValueError, match="not a HAR"):
        list(read_har(b"{}"))
    assert not looks_like_har(b"\x00flows")
