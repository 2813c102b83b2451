"""Record mode leaves other hosts alone: a CONNECT to a non-UPS server is a raw
tunnel (its own TLS certificate reaches the client, bytes pass unchanged) and
nothing about it is written to the cassette, while UPS traffic next to it is
recorded as usual."""

from __future__ import annotations

import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import trustme
from fake_ups import FakeUps
from recording import RecordProc, proxied_app

from upsproxy.cassette import load_cassette

PROBE = "probe-7f3c9a1e-not-ups"
"""A value that must never appear in the cassette or the recorder's log."""


class _Echo(BaseHTTPRequestHandler):
    """Answers with the request head exactly as it arrived."""

    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = b"non-UPS server saw:\n" + bytes(self.raw_requestline) + \
            self.headers.as_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Served-By", "the-real-server")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def _serve(server):
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def other_ca():
    return trustme.CA(organization_name="not-upsproxy test CA")


@pytest.fixture
def tls_server(other_ca):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    other_ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    yield _serve(server)
    server.shutdown()
    server.server_close()


@pytest.fixture
def plain_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    yield _serve(server)
    server.shutdown()
    server.server_close()


def _connect(recorder: RecordProc, target: str) -> socket.socket:
    host, port = recorder.proxy_url.removeprefix("http://").rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        assert chunk, head
        head += chunk
    assert head.startswith(b"HTTP/1.1 200"), head
    return sock


def _get(conn, host: str) -> bytes:  # type: ignore[no-untyped-def]
    # Header names in odd case and a secret-looking value: an intercepting proxy
    # would normalise or record them; a tunnel carries them byte for byte.
    conn.sendall(f"GET /other/{PROBE}?token={PROBE} HTTP/1.1\r\nHost: {host}\r\n"
                 f"X-Probe-CASE: {PROBE}\r\nauthorization: Bearer {PROBE}\r\n"
                 "Connection: close\r\n\r\n".encode())
    data = b""
    while chunk := conn.recv(4096):
        data += chunk
    return data


def _assert_untouched(data: bytes, host: str) -> None:
    assert data.startswith(b"HTTP/1.1 200"), data[:200]
    assert b"X-Served-By: the-real-server" in data
    assert f"GET /other/{PROBE}?token={PROBE} HTTP/1.1\r\n".encode() in data
    assert f"X-Probe-CASE: {PROBE}\n".encode() in data  # name case kept
    assert f"authorization: Bearer {PROBE}\n".encode() in data
    assert f"Host: {host}\n".encode() in data


def _assert_not_recorded(recorder: RecordProc, port: int, fake: FakeUps) -> None:
    code, log = recorder.stop()
    assert code == 0, log
    text = recorder.cassette.read_text()
    cassette = load_cassette(recorder.cassette)
    # Only the UPS flow next to the tunnel: authorize, sign-in page and form, token.
    assert [i.kind for i in cassette.interactions] == ["authorize", "login", "login", "token"]
    assert all(i.request.url.startswith(("https://wwwcie.ups.com/", "https://www.ups.com/"))
               for i in cassette.interactions)
    for needle in (PROBE, f":{port}", "/other/", "X-Probe", "the-real-server"):
        assert needle not in text, needle
        assert needle not in log, needle
    assert PROBE not in "".join(fake.hits)


@pytest.mark.parametrize("host", [
    "localhost",
    "127.0.0.1",  # the fake upstream's own host, on another port
])
def test_connect_to_a_non_ups_tls_server_is_tunnelled_untouched_and_unrecorded(
        fake, recorder, tls_server, other_ca, host):
    """The TLS handshake inside the tunnel reaches the real server: the client
    trusts only that server's own CA (not upsproxy's) and it verifies.

    127.0.0.1 is also the fake upstream's host, on another port: the recorder
    must not take any port of its upstream's host for UPS."""
    app = proxied_app(recorder)
    assert app.token_basic(app.code(state="s-1")).status_code == 200
    port = tls_server.server_address[1]
    context = ssl.create_default_context()
    other_ca.configure_trust(context)  # the real server's CA only
    with _connect(recorder, f"{host}:{port}") as raw, \
            context.wrap_socket(raw, server_hostname=host) as tls:
        issuer = dict(x[0] for x in tls.getpeercert()["issuer"])
        assert issuer["organizationName"] == "not-upsproxy test CA"
        data = _get(tls, f"{host}:{port}")
    _assert_untouched(data, f"{host}:{port}")
    _assert_not_recorded(recorder, port, fake)


def test_connect_to_a_non_ups_plain_server_is_a_raw_tunnel_and_unrecorded(
        fake, recorder, plain_server):
    """Plain HTTP bytes inside the tunnel: an intercepting proxy would wait for a
    TLS ClientHello; a tunnel delivers them as sent."""
    app = proxied_app(recorder)
    assert app.token_basic(app.code(state="s-2")).status_code == 200
    port = plain_server.server_address[1]
    with _connect(recorder, f"localhost:{port}") as raw:
        data = _get(raw, f"localhost:{port}")
    _assert_untouched(data, f"localhost:{port}")
    _assert_not_recorded(recorder, port, fake)
