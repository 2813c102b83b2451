"""Faults through real mitmproxy with real clients: exactly what the app sees.

Tests of resets, timeouts and errors end with normal requests that succeed:
a fault never takes the sandbox down.
"""

import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import requests
from factories import CLIENT, SECRET
from ups_client import UPS, UpsClient, callback_params

from upsproxy import mitm
from upsproxy.fault_answers import WRONG_STATE
from upsproxy.sandbox import Sandbox, SandboxOptions, default_cassette_path

TOKEN = "/security/v1/oauth/token"
REFRESH = "/security/v1/oauth/refresh"
TRACK = "/api/track/v1/details/1Z023E2X0214323462"
TRACK_PARAMS = {"locale": "en_US", "returnSignature": "false"}
PRESETS = {  # the list, with UPS's (or the sandbox's documented) answers
    "invalid_client": (401, "10401", "ClientId is Invalid"),
    "missing_auth_header": (401, "10400", "Invalid/Missing Authorization Header"),
    "invalid_redirect": (400, "10400", "Invalid Redirect URL"),
    "invalid_refresh_token": (400, "10400", "Invalid Refresh Token"),
    "rate_limited": (429, "10429", "Too Many Requests"),
    "invalid_token": (401, "250002", "Invalid Authentication Information."),
    "blocked_merchant": (403, "10403", "Blocked Merchant"),
    "server_error": (500, "10500", "Internal Server Error"),
}


def envelope_bytes(code, message):
    return json.dumps({"response": {"errors": [{"code": code, "message": message}]}},
                      separators=(",", ":")).encode()


def tokens(ups):
    """A real code exchange: proves the sandbox still serves normally."""
    resp = ups.token(ups.code(verifier=None), basic=(CLIENT, SECRET))
    assert resp.status_code == 200, resp.text
    return resp.json()


def control(upsproxy, method, body=None, query=""):
    return httpx.request(method, f"{upsproxy.base_url}/_upsproxy/faults{query}",
                         json=body, trust_env=False, timeout=10)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_each_preset_through_the_https_proxy(upsproxy_env, preset):
    upsproxy_env.faults.add({"endpoint": "token", "preset": preset, "times": 1})
    ups = UpsClient()
    code = ups.code(verifier=None)
    resp = ups.token(code, basic=(CLIENT, SECRET))
    status, code_, message = PRESETS[preset]
    assert resp.status_code == status
    assert resp.content == envelope_bytes(code_, message)
    expected = {"content-type": "application/json", "content-length": str(len(resp.content))}
    if code_ == "250002":  # UPS's API gateway names the error in headers too
        expected |= {"apierrorcode": code_, "apierrormessage": message}
    assert {k.lower(): v for k, v in resp.headers.items()} == expected
    # The fault answered instead of the sandbox: the code is still good.
    assert ups.token(code, basic=(CLIENT, SECRET)).status_code == 200


def test_invalid_token_preset_on_an_api_call_looks_like_the_real_401(upsproxy_env):
    """The fault and the sandbox's own bearer check give byte- and header-identical 401s."""
    ups = UpsClient()
    token = ups.token(ups.code(verifier=None), basic=(CLIENT, SECRET)).json()["access_token"]
    url = f"{UPS}/api/track/v1/details/1Z999AA10123456784"
    real = requests.get(url, headers={"Authorization": "Bearer nope"}, timeout=10)
    upsproxy_env.faults.add({"endpoint": "api", "preset": "invalid_token", "times": 1})
    fault = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert real.status_code == fault.status_code == 401
    assert real.content == fault.content
    assert real.headers["APIErrorCode"] == fault.headers["APIErrorCode"] == "250002"
    assert fault.headers["APIErrorMessage"] == "Invalid Authentication Information."


def test_extra_headers_html_empty_and_literal_bodies(upsproxy):
    upsproxy.faults.add([
        {"name": "limited", "endpoint": "token", "preset": "rate_limited", "times": 1,
         "headers": {"Retry-After": 30}},
        {"name": "page", "endpoint": "token", "status": 503, "body": "html", "times": 1,
         "message": "Service <Unavailable>"},
        {"name": "nothing", "endpoint": "token", "status": 502, "body": "empty", "times": 1},
        {"name": "text", "endpoint": "token", "status": 504, "body": "upstream timed out",
         "times": 1},
        {"name": "explicit", "endpoint": "token", "status": 400, "code": "99999",
         "message": "Custom", "times": 1},
    ])
    with httpx.Client(base_url=upsproxy.base_url, trust_env=False, timeout=10) as client:
        def post():
            return client.post(TOKEN, data={"grant_type": "authorization_code"})

        limited = post()
        assert limited.status_code == 429 and limited.headers["retry-after"] == "30"
        assert limited.content == envelope_bytes("10429", "Too Many Requests")
        page = post()
        assert page.status_code == 503
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert page.text.startswith("<!DOCTYPE html>")
        assert "<p>Service &lt;Unavailable&gt;</p>" in page.text
        empty = post()
        assert empty.status_code == 502 and empty.content == b""
        assert empty.headers["content-length"] == "0" and "content-type" not in empty.headers
        text = post()
        assert text.status_code == 504 and text.text == "upstream timed out"
        assert text.headers["content-type"] == "text/plain; charset=utf-8"
        explicit = post()
        assert explicit.status_code == 400
        assert explicit.content == envelope_bytes("99999", "Custom")
        again = post()  # the sandbox answers again: no Basic auth
        assert again.content == envelope_bytes("10400", "Invalid/Missing Authorization Header")
    rules = {r["name"]: r for r in upsproxy.faults.rules()}
    assert all(r["fired"] == 1 for r in rules.values())


def test_an_error_the_cassette_names_is_a_preset(upsproxy, tmp_path):
    cassette = tmp_path / "with-error.yaml"
    cassette.write_text(default_cassette_path().read_text() + """\
  - kind: api
    name: shipper_suspended
    request:
      method: GET
      url: https://wwwcie.ups.com/api/track/v1/details/1Z999
    response:
      status: 403
      headers: {Content-Type: application/json}
      body: {json: {response: {errors: [{code: "120100", message: Shipper Suspended}]}}}
""")
    sandbox = Sandbox.from_options(SandboxOptions(cassette=str(cassette)))
    upsproxy.server.replay.sandbox = sandbox  # the fixture restores a default at teardown
    sandbox.faults.add("api:shipper_suspended")
    resp = requests.get(upsproxy.base_url + TRACK, params=TRACK_PARAMS, timeout=10)
    assert resp.status_code == 403
    assert resp.content == envelope_bytes("120100", "Shipper Suspended")


def test_reset_gives_the_client_a_connection_error(upsproxy_env):
    upsproxy_env.faults.add({"endpoint": "token", "action": "reset", "times": 2})
    with pytest.raises(requests.ConnectionError):
        requests.post(UPS + TOKEN, data={"grant_type": "authorization_code"}, timeout=10)
    with pytest.raises(requests.ConnectionError):
        requests.post(upsproxy_env.base_url + TOKEN, data={"grant_type": "x"}, timeout=10,
                      proxies={"http": None})
    tokens(UpsClient())


def test_a_late_reset(upsproxy):
    upsproxy.faults.add("token:reset:delay_ms=300,times=1")
    started = time.monotonic()
    with pytest.raises(requests.ConnectionError):
        requests.post(upsproxy.base_url + TOKEN, timeout=10)
    assert time.monotonic() - started >= 0.3  # a lower bound: the timer cannot be early
    assert requests.post(upsproxy.base_url + TOKEN, timeout=10).status_code == 400


def test_reset_is_a_tcp_reset(upsproxy):
    upsproxy.faults.add("token:reset")
    host, port = upsproxy.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"POST /security/v1/oauth/token HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: 0\r\n\r\n")
        with pytest.raises(ConnectionResetError):
            sock.recv(1024)


def test_timeout_makes_the_clients_own_read_timeout_fire(upsproxy_env):
    upsproxy_env.faults.add({"endpoint": "token", "action": "timeout", "times": 2})
    with pytest.raises(requests.ReadTimeout):
        requests.post(UPS + TOKEN, data={"grant_type": "x"}, timeout=(10, 1))
    with httpx.Client(trust_env=False) as client, pytest.raises(httpx.ReadTimeout):
        client.post(upsproxy_env.base_url + TOKEN, data={"grant_type": "x"},
                    timeout=httpx.Timeout(10, read=1))
    # Once the clients gave up, the proxy lets go of the held flows.
    deadline = time.monotonic() + 10
    while mitm._HELD and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not mitm._HELD
    tokens(UpsClient())


def test_delay_alone_is_a_slow_success_and_others_are_not_held_up(upsproxy_env):
    upsproxy_env.faults.add({"name": "slow", "endpoint": "token", "delay_ms": 3000,
                             "times": 2})
    ups = UpsClient()
    code = ups.code(verifier=None)
    with pytest.raises(requests.ReadTimeout):  # the answer comes, but late
        requests.post(UPS + TOKEN, data={"grant_type": "x"}, timeout=(10, 0.5))
    done = threading.Event()
    result = {}

    def slow():
        result["resp"] = ups.token(code, basic=(CLIENT, SECRET))
        done.set()

    worker = threading.Thread(target=slow)
    worker.start()
    # While the slow answer is pending, other requests are answered at once.
    track = requests.get(UPS + TRACK, params=TRACK_PARAMS, timeout=10)
    assert track.status_code == 401 and not done.is_set()
    worker.join(20)
    resp = result["resp"]
    assert resp.status_code == 200 and next(iter(resp.json())) == "refresh_token_expires_in"
    assert upsproxy_env.faults.rules()[0]["fired"] == 2


def test_delay_with_an_error_is_a_slow_error(upsproxy):
    upsproxy.faults.add("token:server_error:delay_ms=300,times=1")
    started = time.monotonic()
    resp = requests.post(upsproxy.base_url + TOKEN, data={}, timeout=10)
    assert resp.status_code == 500 and resp.content == envelope_bytes("10500",
                                                                      "Internal Server Error")
    assert time.monotonic() - started >= 0.3  # a lower bound: the timer cannot be early


@pytest.mark.parametrize("action", ["drop_state", "wrong_state"])
def test_state_faults_on_the_login_redirect(upsproxy_env, action):
    upsproxy_env.faults.add({"endpoint": "login", "action": action, "times": 2})
    ups = UpsClient()
    for decision in ("approve", "deny"):
        resp = ups.authorize(state="s-1", verifier=None)  # to the login page: not faulted
        assert resp.status_code == 302
        params = callback_params(ups.login(resp.headers["Location"], decision)
                                 .headers["Location"])
        assert ("code" in params) == (decision == "approve")
        if action == "drop_state":
            assert "state" not in params
        else:
            assert params["state"] == WRONG_STATE
    assert upsproxy_env.faults.rules()[0]["fired"] == 2
    resp = ups.authorize(state="s-1", verifier=None)
    approved = ups.login(resp.headers["Location"])
    assert callback_params(approved.headers["Location"])["state"] == "s-1"


@pytest.mark.upsproxy(auto_approve=True)
def test_state_faults_on_the_auto_approve_redirect(upsproxy):
    upsproxy.faults.add("authorize:wrong_state:times=1")
    ups = UpsClient(upsproxy.base_url, requests.Session())
    first = callback_params(ups.authorize(state="abc").headers["Location"])
    assert first["state"] == WRONG_STATE and "code" in first
    second = callback_params(ups.authorize(state="abc").headers["Location"])
    assert second["state"] == "abc"


RACERS = 20


def race(url):
    barrier = threading.Barrier(RACERS)

    def one(_):
        with httpx.Client(trust_env=False, timeout=10) as client:
            barrier.wait(timeout=10)
            return client.post(url, data={"grant_type": "x"}).status_code

    with ThreadPoolExecutor(RACERS) as pool:
        return list(pool.map(one, range(RACERS)))


@pytest.mark.parametrize(("rule", "fires"), [
    ({"after": 3}, 17), ({"times": 4}, 4), ({"every": 3}, 6), ({"after": 2, "times": 5}, 5),
    ({"after": 4, "every": 4, "times": 3}, 3),
])
def test_counts_are_exact_under_twenty_concurrent_requests(upsproxy, rule, fires):
    upsproxy.faults.add({"endpoint": "token", "preset": "rate_limited", **rule})
    statuses = race(upsproxy.base_url + TOKEN)
    assert statuses.count(429) == fires and statuses.count(400) == RACERS - fires
    listed = control(upsproxy, "GET").json()["rules"][0]
    assert (listed["matched"], listed["fired"]) == (RACERS, fires)


def fault_sequence(upsproxy):
    """30 requests in a row on a fresh sandbox: which were faulted."""
    sandbox = Sandbox.from_options(SandboxOptions())
    upsproxy.server.replay.sandbox = sandbox
    sandbox.faults.add("token:server_error:probability=0.4,seed=1234")
    with httpx.Client(base_url=upsproxy.base_url, trust_env=False, timeout=10) as client:
        return [client.post(TOKEN, data={}).status_code == 500 for _ in range(30)]


def test_probability_with_a_seed_gives_the_same_sequence_every_run(upsproxy):
    first = fault_sequence(upsproxy)
    assert 0 < sum(first) < 30
    assert fault_sequence(upsproxy) == first


def test_the_control_api_adds_lists_and_clears(upsproxy):
    added = control(upsproxy, "POST", [{"endpoint": "token", "preset": "rate_limited"},
                                       "refresh:invalid_refresh_token:name=r"])
    assert added.status_code == 200
    assert [(r["id"], r["name"]) for r in added.json()["rules"]] == [(1, "rule1"), (2, "r")]
    bad = control(upsproxy, "POST", {"endpoint": "token", "preset": "nope"})
    assert bad.status_code == 400 and "unknown preset 'nope'" in bad.json()["error"]
    bad = control(upsproxy, "POST", [{"endpoint": "token", "preset": "rate_limited"},
                                     {"endpoint": "tokens", "preset": "rate_limited"}])
    assert bad.status_code == 400 and bad.json()["error"].startswith("1.endpoint: unknown")
    assert len(control(upsproxy, "GET").json()["rules"]) == 2  # all or nothing
    assert requests.post(upsproxy.base_url + TOKEN, timeout=10).status_code == 429
    listed = control(upsproxy, "GET").json()["rules"]
    assert [(r["matched"], r["fired"]) for r in listed] == [(1, 1), (0, 0)]
    assert control(upsproxy, "DELETE", query="?name=rule1").json() == {"removed": 1}
    assert control(upsproxy, "DELETE", query="?name=rule1").status_code == 404
    assert control(upsproxy, "DELETE").json() == {"removed": 1}
    assert control(upsproxy, "GET").json() == {"rules": []}
    assert requests.post(upsproxy.base_url + TOKEN, timeout=10).status_code == 400


def test_control_api_is_not_faulted_and_not_reachable_through_the_proxy(upsproxy_env):
    upsproxy_env.faults.add("any:reset")
    assert control(upsproxy_env, "GET").status_code == 200
    through_proxy = requests.get(UPS + "/_upsproxy/faults", timeout=10)
    assert through_proxy.status_code == 404  # a UPS path there, and no UPS endpoint


# -- a scenario a user would write -----------------------------------------------------------


class App:
    """A small app's UPS connection, with the retry logic apps really have:
    refresh when the access token is refused, connect again from scratch when
    the refresh token is refused."""

    def __init__(self, ups):
        self.ups = ups
        self.tokens = None
        self.connections = 0

    def connect(self):
        self.connections += 1
        resp = self.ups.token(self.ups.code(verifier=None), basic=(CLIENT, SECRET))
        resp.raise_for_status()
        self.tokens = resp.json()

    def refresh(self):
        resp = self.ups.refresh(self.tokens["refresh_token"])
        if resp.status_code == 400 and resp.json()["response"]["errors"][0]["message"] == \
                "Invalid Refresh Token":
            self.connect()  # the user re-authorizes
            return
        resp.raise_for_status()
        self.tokens = resp.json()

    def track(self):
        for _ in range(2):
            resp = self.ups.http.get(
                f"{self.ups.base}{TRACK}", params=TRACK_PARAMS, timeout=10,
                headers={"Authorization": f"Bearer {self.tokens['access_token']}"})
            if resp.status_code != 401:
                return resp
            self.refresh()
        return resp


def test_second_refresh_fails_and_the_app_reauthorizes(upsproxy_env):
    upsproxy_env.faults.add({"name": "second-refresh", "endpoint": "refresh",
                             "preset": "invalid_refresh_token", "after": 1, "times": 1})
    app = App(UpsClient())
    app.connect()
    for _ in range(3):  # three token expiries: refresh, refresh (fails), refresh
        assert app.track().status_code == 200
        upsproxy_env.clock.advance(4 * 3600 + 1)
        assert app.track().json()["trackResponse"]["shipment"][0]["inquiryNumber"]
    assert app.connections == 2  # the first connect, and one after the failed refresh
    rule = upsproxy_env.faults.rules()[0]
    assert (rule["matched"], rule["fired"]) == (3, 1)


def test_the_exchange_log_names_the_fault_rule(upsproxy, caplog):
    upsproxy.faults.add(["token:rate_limited:name=limit,times=1", "token:reset:name=cut"])
    with caplog.at_level("INFO", logger="upsproxy.exchange"):
        requests.post(upsproxy.base_url + TOKEN, timeout=10)
        with pytest.raises(requests.ConnectionError):
            requests.post(upsproxy.base_url + TOKEN, timeout=10)
        deadline = time.monotonic() + 5  # the reset reaches the client before the log line
        while (not any("fault:cut" in r.getMessage() for r in caplog.records)
               and time.monotonic() < deadline):
            time.sleep(0.05)
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.endswith("/security/v1/oauth/token -> 429 fault:limit") for line in lines)
    assert any(line.endswith("-> no answer reset fault:cut") for line in lines), lines


@pytest.mark.parametrize("host_header", ["127.0.0.1:8081", None])
def test_a_host_header_rule_matches_the_ups_host_on_the_reverse_listener(upsproxy, host_header):
    """replay keeps the client's Host (keep_host_header), yet the sandbox sees the
    UPS host on the reverse listener, as it does through the proxy, so a rule on
    ``Host`` fires whatever Host the client sent (HTTP/1.0 may send none)."""
    upsproxy.faults.add({"endpoint": "token", "preset": "rate_limited",
                         "header": {"Host": "wwwcie.ups.com*"}})
    port = int(upsproxy.base_url.rsplit(":", 1)[1])
    body = b"grant_type=authorization_code&code=x&redirect_uri=https%3A%2F%2Fa.test%2Fcb"
    head = (b"POST /security/v1/oauth/token HTTP/1.0\r\n"
            + (f"Host: {host_header}\r\n".encode() if host_header else b"")
            + b"Content-Type: application/x-www-form-urlencoded\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode())
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head + body)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.0 429") or reply.startswith(b"HTTP/1.1 429"), reply[:200]
    assert envelope_bytes("10429", "Too Many Requests") in reply
