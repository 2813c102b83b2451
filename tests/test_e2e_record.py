"""Record through the real proxy from real clients, against a local fake UPS over TLS;
then check the cassette holds no secret and replays the whole flow."""

from __future__ import annotations

import re
import ssl

import httpx
import pytest
import requests
from fake_ups import ACCESS_TTL, CLIENT, REFRESH_TTL, TOKEN_KEYS
from recording import App, NoRedirects, RecordProc, leaks, proxied_app

from upsproxy.cassette import load_cassette


def placeholders(text: str, kind: str) -> set[str]:
    return set(re.findall(rf"<<{kind}:\d+>>", text))


def test_requests_through_the_proxy_records_a_redacted_cassette(fake, recorder, monkeypatch):
    # As a user runs an app: the banner's HTTPS_PROXY and CA bundle in the environment.
    env = dict(re.findall(r"export (\w+)=(\S+)", recorder.banner))
    for name in ("HTTPS_PROXY", "REQUESTS_CA_BUNDLE"):
        monkeypatch.setenv(name, env[name])
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    app = App(NoRedirects(requests.Session()))
    app.full_session()
    code, log = recorder.stop()
    assert code == 0, log
    assert "9 interactions recorded" in log or "interactions recorded" in log, log
    text = recorder.cassette.read_text()
    assert leaks(text, fake.secrets | app.seen) == []
    assert leaks(log, fake.secrets | app.seen) == []
    cassette = load_cassette(recorder.cassette)
    kinds = [i.kind for i in cassette.interactions]
    assert kinds.count("authorize") == 2 and kinds.count("login") >= 4
    assert kinds.count("token") == 3 and kinds.count("refresh") == 2 and kinds[-1] == "api"
    names = {i.name for i in cassette.interactions if i.name}
    assert names == {"invalid_refresh_token", "invalid_client"}
    # Identity: the refreshed token is the one the first exchange issued, the API
    # call's bearer the one the refresh issued; one client, one secret.
    tokens = [i for i in cassette.interactions if i.kind == "token"]
    refreshes = [i for i in cassette.interactions if i.kind == "refresh"]
    first_refresh = tokens[0].response.json()["refresh_token"]
    assert refreshes[0].request.form()["refresh_token"] == first_refresh
    assert refreshes[1].request.form()["refresh_token"] == first_refresh
    new_access = refreshes[0].response.json()["access_token"]
    api = cassette.interactions[-1]
    assert api.request.header("authorization") == f"Bearer {new_access}"
    assert placeholders(text, "client_id") == {"<<client_id:1>>"}
    assert len(placeholders(text, "basic")) == 2  # the right secret and the wrong one
    # Codes: the login redirect's code is the one exchanged.
    logins = [i for i in cassette.interactions if i.kind == "login" and i.response.status == 302]
    issued = [re.search(r"code=(<<code:\d+>>)", i.response.header("location")).group(1)
              for i in logins]
    assert [t.request.form()["code"] for t in tokens[:2]] == issued
    # Personal fields of the API body are placeholders; non-personal ones stay.
    package = api.response.json()["trackResponse"]["shipment"][0]["package"][0]
    assert re.fullmatch(r"<<personal:\d+>>", package["deliveryInformation"]["receivedBy"])
    assert package["deliveryInformation"]["location"] == "Front Door"
    assert package["packageAddress"][0]["address"]["city"] == "SPRINGFIELD"
    assert re.fullmatch(r"<<personal:\d+>>", package["accountNumber"])
    # Shapes: what replay mints from.
    assert cassette.shapes["code"].length == 132 and cassette.shapes["code"].padding == 2
    assert cassette.shapes["refresh_token"].length == 164
    jwt = cassette.shapes["access_token"]
    assert list(jwt.claims) == ["iss", "sub", "clientid", "DisplayName", "uid", "scope", "ver",
                                "iat", "exp"]
    assert jwt.claims["clientid"] == "<<client_id>>" and jwt.claims["scope"] == "read"
    assert jwt.claims["sub"].startswith("<<random:")
    assert cassette.meta["how"] == "recorded" and cassette.meta["upstream"] == fake.url


def test_a_recorded_cassette_replays_the_full_flow(fake, recorder, tmp_path):
    proxied_app(recorder).full_session()
    assert recorder.stop()[0] == 0
    import factories
    from test_cli import Replay
    from ups_client import UpsClient

    server = Replay(str(recorder.cassette), confdir=tmp_path / "replay-conf")
    try:
        client = UpsClient(server.base_url)
        code = client.code(verifier=None)
        assert len(code) == 132 and code.endswith("==")  # the recorded code shape
        answer = client.token(code, basic=(factories.CLIENT, factories.SECRET))
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert tuple(body) == TOKEN_KEYS
        assert all(isinstance(v, str) for v in body.values())
        assert body["expires_in"] == ACCESS_TTL and body["refresh_token_expires_in"] == REFRESH_TTL
        assert len(body["refresh_token"]) == 164
        refreshed = client.refresh(body["refresh_token"])
        assert refreshed.status_code == 200 and tuple(refreshed.json()) == TOKEN_KEYS
        access = refreshed.json()["access_token"]
        import base64
        import json

        claims = json.loads(base64.urlsafe_b64decode(access.split(".")[1] + "=="))
        assert list(claims) == ["iss", "sub", "clientid", "DisplayName", "uid", "scope", "ver",
                                "iat", "exp"]
        assert claims["clientid"] == factories.CLIENT
        tracked = client.http.get(f"{server.base_url}/api/track/v1/details/1Z023E2X0214323462",
                                  params={"locale": "en_US"}, timeout=10,
                                  headers={"Authorization": f"Bearer {access}"})
        assert tracked.status_code == 200, tracked.text
        package = tracked.json()["trackResponse"]["shipment"][0]["package"][0]
        assert package["deliveryInformation"]["location"] == "Front Door"
        assert client.refresh(body["refresh_token"]).status_code == 400  # rotated
    finally:
        server.stop()
    assert CLIENT not in recorder.cassette.read_text()


class H2First(ssl.SSLContext):
    """httpx offers ALPN ["http/1.1", "h2"] and mitmproxy honours the client's first
    choice; browsers and curl put h2 first, and so does this context."""

    def set_alpn_protocols(self, protocols):
        super().set_alpn_protocols(sorted(protocols, key=lambda p: p != "h2"))


@pytest.mark.parametrize("http2", [True, False], ids=["http2", "http1"])
def test_httpx_through_the_proxy(fake, recorder, http2):
    context = H2First(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=str(recorder.ca))
    with httpx.Client(proxy=recorder.proxy_url, verify=context, http2=http2,
                      timeout=10) as client:
        app = App(client)
        app.full_session()
        versions = {client.get("https://wwwcie.ups.com/api/track/v1/details/X",
                               headers={"Authorization": "Bearer nope"}).http_version}
    assert versions == {"HTTP/2" if http2 else "HTTP/1.1"}
    assert recorder.stop()[0] == 0
    text = recorder.cassette.read_text()
    assert leaks(text, fake.secrets | app.seen) == []
    cassette = load_cassette(recorder.cassette)
    assert [i.kind for i in cassette.interactions].count("token") == 3
    assert cassette.interactions[-1].response.status == 401
    assert cassette.interactions[-1].name == "invalid_token"


def test_the_reverse_listener_records_under_the_ups_host(fake, recorder):
    app = proxied_app(recorder, api=recorder.base_url)
    app.full_session()
    assert recorder.stop()[0] == 0
    assert leaks(recorder.cassette.read_text(), fake.secrets | app.seen) == []
    cassette = load_cassette(recorder.cassette)
    token = next(i for i in cassette.interactions if i.kind == "token")
    assert token.request.url == "https://wwwcie.ups.com/security/v1/oauth/token"
    assert cassette.interactions[-1].kind == "api"


def test_other_hosts_are_not_recorded(fake, recorder):
    # A plain-HTTP request to a non-UPS host passes through untouched and unrecorded.
    import http.server
    import threading

    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "5")
            self.end_headers()
            self.wfile.write(b"hello")

        def log_message(self, *args):
            pass

    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        resp = requests.get(f"http://127.0.0.1:{other.server_address[1]}/x", timeout=10,
                            proxies={"http": recorder.proxy_url})
    finally:
        other.shutdown()
        other.server_close()
    assert resp.text == "hello"
    assert recorder.stop()[0] == 0
    assert load_cassette(recorder.cassette).interactions == []


def test_the_upstream_certificate_is_verified(fake, tmp_path):
    """Without --upstream-ca the fake's test CA is not trusted: nothing is recorded."""
    recorder = RecordProc(tmp_path / "c.yaml", upstream=fake.url, upstream_ca=None,
                          confdir=tmp_path / "conf")
    resp = proxied_app(recorder).token_basic("some-code-value")
    code, log = recorder.stop()
    assert resp.status_code == 502 and code == 0
    assert "NOT recorded: POST /security/v1/oauth/token: upstream failed" in log
    assert "Certificate verify failed" in log
    assert load_cassette(tmp_path / "c.yaml").interactions == []


def test_append_sessions_keep_the_client_and_refresh_token_placeholders(fake, tmp_path):
    """Two `upsproxy record` runs (the second `--mode append`) with the same client:
    one client placeholder, and session 2's refresh of the token session 1 was
    issued refers to session 1's refresh_token placeholder. Then it replays."""
    import stat

    import factories
    from test_cli import Replay, run
    from ups_client import UpsClient

    from upsproxy.fingerprint import KEY_FILE

    path, confdir = tmp_path / "two-sessions.yaml", tmp_path / "conf"
    first = RecordProc(path, upstream=fake.url, upstream_ca=fake.ca_path, confdir=confdir)
    app1 = proxied_app(first)
    issued = app1.token_basic(app1.code(state="session-one-state-1"))
    assert issued.status_code == 200, issued.text
    old_refresh = issued.json()["refresh_token"]
    code, log1 = first.stop()
    assert code == 0, log1
    key = confdir / KEY_FILE
    assert len(key.read_bytes()) == 32 and stat.S_IMODE(key.stat().st_mode) == 0o600
    before = path.read_text()

    second = RecordProc(path, upstream=fake.url, upstream_ca=fake.ca_path, confdir=confdir,
                        extra=("--mode", "append"))
    app2 = proxied_app(second)
    refreshed = app2.refresh(old_refresh)  # the token session 1 was issued
    assert refreshed.status_code == 200, refreshed.text
    assert app2.track(refreshed.json()["access_token"]).status_code == 200
    again = app2.token_basic(app2.code(state="session-two-state-2"))
    assert again.status_code == 200, again.text
    code, log2 = second.stop()
    assert code == 0 and "another recording key" not in log2 and "fingerprints" not in log2

    text = path.read_text()
    seen = fake.secrets | app1.seen | app2.seen | {key.read_bytes().hex()}
    assert leaks(text, seen) == [] and leaks(log1 + log2, seen) == []
    assert text.split("interactions:\n", 1)[1].startswith(before.split("interactions:\n", 1)[1])
    assert placeholders(text, "client_id") == {"<<client_id:1>>"}
    assert placeholders(text, "basic") == {"<<basic:1>>"}
    cassette = load_cassette(path)
    tokens = [i for i in cassette.interactions if i.kind == "token"]
    refresh = next(i for i in cassette.interactions if i.kind == "refresh")
    authorizes = [i for i in cassette.interactions if i.kind == "authorize"]
    assert [t.response.json()["client_id"] for t in tokens] == ["<<client_id:1>>"] * 2
    assert {re.search(r"client_id=(<<[^>]+>>)", a.request.url).group(1)
            for a in authorizes} == {"<<client_id:1>>"}
    assert refresh.request.form()["refresh_token"] == tokens[0].response.json()[
        "refresh_token"] == "<<refresh_token:1>>"
    assert refresh.response.json()["refresh_token"] == "<<refresh_token:2>>"
    assert tokens[1].response.json()["refresh_token"] == "<<refresh_token:3>>"
    assert list(cassette.meta["fingerprints"]) == [next(iter(cassette.meta["fingerprints"]))]
    # `cassette check` says nothing about meta (the fingerprints are its last block).
    check = run("cassette", "check", str(path))
    head = text[:text.index("\ninteractions:")].count("\n") + 1
    flagged = [int(n) for n in re.findall(rf"^{re.escape(str(path))}:(\d+):", check.stdout,
                                          re.MULTILINE)]
    assert "Traceback" not in check.stderr and all(n > head for n in flagged), check.stdout

    server = Replay(str(path), confdir=tmp_path / "replay-conf")
    try:
        client = UpsClient(server.base_url)
        answer = client.token(client.code(verifier=None),
                              basic=(factories.CLIENT, factories.SECRET))
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert tuple(body) == TOKEN_KEYS and len(body["refresh_token"]) == 164
        rotated = client.refresh(body["refresh_token"])
        assert rotated.status_code == 200 and tuple(rotated.json()) == TOKEN_KEYS
        assert client.refresh(body["refresh_token"]).status_code == 400  # rotated
        tracked = client.http.get(f"{server.base_url}/api/track/v1/details/1Z023E2X0214323462",
                                  params={"locale": "en_US"}, timeout=10, headers={
                                      "Authorization": f"Bearer {rotated.json()['access_token']}"})
        assert tracked.status_code == 200, tracked.text
    finally:
        server.stop()


def test_an_answer_nested_too_deep_is_left_out_and_recording_goes_on(fake, recorder):
    """The app still gets UPS's answer; the cassette keeps every other exchange."""
    app = proxied_app(recorder)
    for depth in (400, 5000):
        resp = app.http.get(f"{recorder.base_url}/api/nested/{depth}")
        assert resp.status_code == 200 and len(resp.content) == 2 * depth
    assert app.token_basic(app.code(state="after-deep")).status_code == 200
    code, log = recorder.stop()
    assert code == 0 and log.count("nested too deep to redact was left out") == 2
    kinds = [i.kind for i in load_cassette(recorder.cassette).interactions]
    assert kinds.count("token") == 1 and "api" not in kinds
