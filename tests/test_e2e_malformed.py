"""Malformed input gets a UPS-shaped 400 and the sandbox keeps serving."""

import gzip
import json
import re
from html import unescape
from urllib.parse import urljoin

import pytest
import requests
from factories import CALLBACK, CLIENT, SECRET
from ups_client import UPS, UpsClient, envelope

TOKEN = f"{UPS}/security/v1/oauth/token"
FORM = "application/x-www-form-urlencoded"
GOOD = "grant_type=authorization_code&code=abc&redirect_uri=https%3A%2F%2Fapp.example.test%2Fcb"


@pytest.mark.parametrize(("content_type", "body", "message"), [
    ("application/json", json.dumps({"grant_type": "authorization_code", "code": "x",
                                     "redirect_uri": CALLBACK}).encode(), "Invalid Content-Type"),
    (FORM, GOOD.encode() + b"&code=second", "Invalid Request"),
    (FORM, b"", "Invalid Request"),
    ("text/plain", GOOD.encode(), "Invalid Content-Type"),
    (None, GOOD.encode(), "Invalid Content-Type"),
    (FORM, b"grant_type=" + b"a" * (1024 * 1024), "Request Body Too Large"),
    (FORM, b"grant_type=authorization_code&code=\xff\xfe&redirect_uri=x", "Invalid Request Body"),
    (FORM, b"grant_type=authorization_code&code=%ff%fe", "Invalid Request Body"),
    (FORM, b"grant_type", "Invalid Request Body"),
])
def test_malformed_token_requests(upsproxy_env, content_type, body, message):
    headers = {"Content-Type": content_type} if content_type else {}
    session = requests.Session()
    resp = session.post(TOKEN, data=body, headers=headers, auth=(CLIENT, SECRET), timeout=30)
    assert envelope(resp) == (400, "10400", message)
    # ...and the sandbox keeps serving a complete flow afterwards.
    ups = UpsClient()
    assert ups.token(ups.code(verifier=None), basic=(CLIENT, SECRET)).status_code == 200


def test_charset_on_the_form_type_is_accepted(upsproxy_env):
    ups = UpsClient()
    code = ups.code(verifier=None)
    resp = ups.http.post(TOKEN, auth=(CLIENT, SECRET), timeout=10,
                         headers={"Content-Type": f"{FORM}; charset=UTF-8"},
                         data={"grant_type": "authorization_code", "code": code,
                               "redirect_uri": CALLBACK})
    assert resp.status_code == 200


def test_form_field_order_never_matters(upsproxy_env):
    ups = UpsClient()
    code = ups.code(verifier=None)
    body = [("redirect_uri", CALLBACK), ("code", code), ("grant_type", "authorization_code")]
    resp = ups.http.post(TOKEN, data=body, auth=(CLIENT, SECRET), timeout=10)
    assert resp.status_code == 200


@pytest.mark.parametrize("auth", ["Basic !!!notbase64", "Bearer x", "Basic " + "Og==",
                                  "basic"])
def test_malformed_authorization_headers(upsproxy_env, auth):
    ups = UpsClient()
    resp = ups.http.post(TOKEN, data=GOOD, timeout=10,
                         headers={"Authorization": auth, "Content-Type": FORM})
    assert envelope(resp) == (401, "10400", "Invalid/Missing Authorization Header")


def test_garbage_on_every_endpoint_never_gives_an_uninjected_5xx(upsproxy_env):
    session = requests.Session()
    paths = ["/security/v1/oauth/authorize", "/security/v1/oauth/token",
             "/security/v1/oauth/refresh", "/api/track/v1/details/x"]
    bodies = [b"", b"\x00\x01\x02", b"%%%", b"a=b=c&&&=", "é=ü".encode("latin-1"), b"{" * 1000]
    for path in paths:
        for method in ("GET", "POST", "PUT", "DELETE"):
            for body in bodies:
                resp = session.request(method, f"{UPS}{path}?%zz=1&a", data=body, timeout=10,
                                       headers={"Content-Type": FORM})
                assert 400 <= resp.status_code < 500, (method, path, body, resp.status_code)
                assert "errors" in resp.json()["response"]


def test_a_compressed_form_body_is_refused_not_misread(upsproxy_env):
    resp = requests.post(TOKEN, data=gzip.compress(GOOD.encode()), auth=(CLIENT, SECRET),
                         headers={"Content-Type": FORM, "Content-Encoding": "gzip"}, timeout=10)
    assert envelope(resp) == (400, "10400", "Invalid Request Body")


def test_a_query_that_is_not_utf8_gets_a_400(upsproxy_env):
    resp = requests.get(f"{UPS}/security/v1/oauth/authorize?client_id=%ff%fe&response_type=code",
                        allow_redirects=False, timeout=10)
    assert resp.status_code == 400 and resp.json()["response"]["errors"][0]["code"] == "10400"


@pytest.mark.parametrize("redirect_uri", [f"{CALLBACK}\r\nSet-Cookie: x=1", f"{CALLBACK} x",
                                          f"{CALLBACK}\x00"])
def test_a_redirect_uri_with_control_characters_is_refused(upsproxy_env, redirect_uri):
    resp = UpsClient().authorize(redirect_uri=redirect_uri)
    assert resp.status_code == 400 and "Set-Cookie" not in resp.headers
    assert resp.json()["response"]["errors"][0]["code"] == "10400"


def test_the_login_form_needs_an_explicit_decision_and_keeps_the_sign_in(upsproxy_env):
    ups = UpsClient()
    location = ups.authorize().headers["Location"]
    page = ups.http.get(location, timeout=10).text
    txn = unescape(re.search(r'name=upsproxy_txn value="([^"]+)"', page).group(1))
    action = urljoin(location, unescape(re.search(r'action="([^"]+)"', page).group(1)))
    refused = ups.http.post(action, data={"upsproxy_txn": txn, "decision": "maybe"},
                            allow_redirects=False, timeout=10)
    assert refused.status_code == 400 and "decision=approve" in refused.text
    approved = ups.http.post(action, data={"upsproxy_txn": txn, "decision": "approve"},
                             allow_redirects=False, timeout=10)
    assert approved.status_code == 302 and "code=" in approved.headers["Location"]


def test_head_is_answered_without_a_body(upsproxy_env):
    resp = requests.head(f"{UPS}/security/v1/oauth/token", timeout=10)
    get = requests.get(f"{UPS}/security/v1/oauth/token", timeout=10)
    assert resp.status_code == get.status_code and resp.content == b""
    assert resp.headers["Content-Length"] == str(len(get.content))


def test_malformed_percent_escapes_are_refused_not_kept_literally(upsproxy):
    import http.client
    from urllib.parse import urlsplit

    base = urlsplit(upsproxy.base_url)
    conn = http.client.HTTPConnection(base.hostname, base.port, timeout=10)
    try:  # http.client sends the target as is (requests would re-quote %zz as %25zz)
        conn.request("GET", "/security/v1/oauth/authorize?client_id=C&state=%zz"
                     "&redirect_uri=https%3A%2F%2Fapp.example.test%2Fcb&response_type=code")
        resp = conn.getresponse()
        body = json.loads(resp.read())
    finally:
        conn.close()
    assert resp.status == 400 and body["response"]["errors"][0]["message"] == "Invalid Request"
    token = requests.post(f"{upsproxy.base_url}/security/v1/oauth/token",
                          data=GOOD.replace("code=abc", "code=ab%zz"),
                          headers={"Content-Type": FORM}, auth=(CLIENT, SECRET), timeout=10)
    assert envelope(token) == (400, "10400", "Invalid Request Body")


def test_two_content_types_are_refused(upsproxy):
    import socket
    from urllib.parse import urlsplit

    base = urlsplit(upsproxy.base_url)
    body = GOOD.encode()
    raw = (b"POST /security/v1/oauth/token HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
           b"Content-Type: " + FORM.encode() + b"\r\nContent-Type: application/json\r\n"
           b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    with socket.create_connection((base.hostname, base.port), timeout=10) as sock:
        sock.sendall(raw)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert json.loads(payload)["response"]["errors"][0]["message"] == "Invalid Request"


def test_a_body_past_the_proxy_limit_is_refused_while_reading_and_serving_goes_on(upsproxy_env):
    big = b"grant_type=" + b"a" * (3 * 1024 * 1024)
    for url in (TOKEN, f"{upsproxy_env.base_url}/security/v1/oauth/token"):
        try:
            resp = requests.post(url, data=big, headers={"Content-Type": FORM}, timeout=30)
        except requests.ConnectionError:
            pass  # mitmproxy closed the connection while the client was still sending
        else:
            assert resp.status_code == 413
        ok = requests.post(url, data=GOOD, headers={"Content-Type": FORM},
                           auth=(CLIENT, SECRET), timeout=10)
        assert envelope(ok) == (400, "10400", "Invalid Authorization Code")


DEEP = b"[" * 5000  # past Python's recursion limit: json.loads raises RecursionError


def test_json_nested_past_the_stack_is_a_400_not_a_500(upsproxy_env):
    """Found by scripts/fuzz_malformed.py: control and API bodies nested thousands deep."""
    clock = requests.post(f"{upsproxy_env.base_url}/_upsproxy/clock", data=DEEP,
                          headers={"Content-Type": "application/json"}, timeout=10)
    assert clock.status_code == 400 and clock.json() == {"error": "the body must be JSON"}
    ups = UpsClient()
    token = ups.token(ups.code(verifier=None), basic=(CLIENT, SECRET)).json()["access_token"]
    api = requests.post(f"{UPS}/api/track/v1/details/1Z023E2X0214323462", data=DEEP,
                        headers={"Authorization": f"Bearer {token}",
                                 "Content-Type": "application/json"}, timeout=10)
    assert envelope(api) == (404, "10404", "Resource Not Found")


def test_exchanges_list_a_path_that_is_not_utf8(upsproxy):
    """Found by the fuzzer: a raw ``GET /\\xff`` used to break ``GET exchanges`` (500)."""
    import socket
    from urllib.parse import urlsplit

    base = urlsplit(upsproxy.base_url)
    with socket.create_connection((base.hostname, base.port), timeout=10) as sock:
        sock.sendall(b"GET /\xff HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 404")
    listed = requests.get(f"{upsproxy.base_url}/_upsproxy/exchanges", timeout=10)
    assert listed.status_code == 200
    assert listed.json()["exchanges"][-1]["path"] == "/?"
