"""Offline means offline: UPS hosts are never resolved or dialled in replay,
and other hosts pass through the proxy untouched (not TLS-intercepted)."""

import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from factories import CLIENT, SECRET
from ups_client import UpsClient


@pytest.fixture
def ups_unresolvable(monkeypatch):
    """Make every UPS host unresolvable in this process and record any attempt."""
    lookups: list[str] = []
    real = socket.getaddrinfo

    def guarded(host, *args, **kwargs):
        if isinstance(host, bytes):
            host = host.decode()
        if isinstance(host, str) and host.lower().endswith("ups.com"):
            lookups.append(host)
            raise socket.gaierror(socket.EAI_NONAME, "UPS is unreachable in this test")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)
    return lookups


def test_full_flow_with_ups_unresolvable(upsproxy_env, ups_unresolvable):
    ups = UpsClient()
    body = ups.token(ups.code(verifier=None), basic=(CLIENT, SECRET)).json()
    assert ups.refresh(body["refresh_token"]).status_code == 200
    assert ups.pkce_token(ups.code()).status_code == 200
    assert ups_unresolvable == []
    assert upsproxy_env.upstream_attempts == 0


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"hello from a non-UPS host"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def local_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_plain_http_to_other_hosts_passes_through(upsproxy, local_server):
    port = local_server.server_address[1]
    resp = requests.get(f"http://127.0.0.1:{port}/x", timeout=10,
                        proxies={"http": upsproxy.proxy_url})
    assert resp.status_code == 200 and resp.text == "hello from a non-UPS host"


def test_https_to_other_hosts_is_tunnelled_not_intercepted(upsproxy, local_server):
    """A CONNECT to a non-UPS host gets a raw tunnel: the TLS handshake inside it
    reaches the real server, and upsproxy's CA never signs anything for it."""
    port = local_server.server_address[1]
    proxy_host, proxy_port = upsproxy.proxy_url.removeprefix("http://").split(":")
    with socket.create_connection((proxy_host, int(proxy_port)), timeout=10) as sock:
        sock.sendall(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
                     .encode())
        assert sock.recv(1024).startswith(b"HTTP/1.1 200")
        # The local server speaks plain HTTP: a raw tunnel carries our bytes to it
        # unchanged, while an intercepting proxy would expect a TLS ClientHello.
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    assert data.endswith(b"hello from a non-UPS host")


def test_ups_hosts_are_intercepted_with_upsproxy_ca(upsproxy):
    proxy_host, proxy_port = upsproxy.proxy_url.removeprefix("http://").split(":")
    context = ssl.create_default_context(cafile=str(upsproxy.ca_cert))
    with socket.create_connection((proxy_host, int(proxy_port)), timeout=10) as sock:
        sock.sendall(b"CONNECT wwwcie.ups.com:443 HTTP/1.1\r\nHost: wwwcie.ups.com:443\r\n\r\n")
        assert sock.recv(1024).startswith(b"HTTP/1.1 200")
        with context.wrap_socket(sock, server_hostname="wwwcie.ups.com") as tls:
            issuer = dict(x[0] for x in tls.getpeercert()["issuer"])
            assert issuer["organizationName"] == "upsproxy"
    assert upsproxy.upstream_attempts == 0


@pytest.mark.parametrize("host", ["wwwcie.ups.com.", "WWWCIE.UPS.COM"])
def test_spellings_of_a_ups_host_are_answered_offline(upsproxy, ups_unresolvable, host):
    """A trailing dot or capitals name the same host: answered in-process, never dialled."""
    proxy_host, proxy_port = upsproxy.proxy_url.removeprefix("http://").split(":")
    context = ssl.create_default_context(cafile=str(upsproxy.ca_cert))
    with socket.create_connection((proxy_host, int(proxy_port)), timeout=10) as sock:
        sock.sendall(f"CONNECT {host}:443 HTTP/1.1\r\nHost: {host}:443\r\n\r\n".encode())
        assert sock.recv(1024).startswith(b"HTTP/1.1 200")
        with context.wrap_socket(sock, server_hostname="wwwcie.ups.com") as tls:
            tls.sendall(f"POST /security/v1/oauth/token HTTP/1.1\r\nHost: {host}\r\n"
                        "Content-Length: 0\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := tls.recv(4096):
                data += chunk
    assert data.startswith(b"HTTP/1.1 40") and b'"errors"' in data
    assert ups_unresolvable == [] and upsproxy.upstream_attempts == 0


@pytest.mark.upsproxy(block_other_hosts=True)
def test_block_other_hosts_refuses_plain_http(upsproxy, local_server):
    port = local_server.server_address[1]
    resp = requests.get(f"http://127.0.0.1:{port}/x", timeout=10,
                        proxies={"http": upsproxy.proxy_url})
    assert resp.status_code == 403
    assert "--block-other-hosts" in resp.text and "hello" not in resp.text


@pytest.mark.upsproxy(block_other_hosts=True)
def test_block_other_hosts_refuses_tunnels(upsproxy, local_server):
    """The tunnel to a non-UPS host is never connected: our bytes never arrive."""
    port = local_server.server_address[1]
    proxy_host, proxy_port = upsproxy.proxy_url.removeprefix("http://").split(":")
    with socket.create_connection((proxy_host, int(proxy_port)), timeout=10) as sock:
        sock.sendall(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
                     .encode())
        data = b""
        try:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            while chunk := sock.recv(4096):
                data += chunk
        except ConnectionError:
            pass
    assert b"hello from a non-UPS host" not in data


@pytest.mark.upsproxy(block_other_hosts=True)
def test_block_other_hosts_still_answers_ups(upsproxy_env):
    ups = UpsClient()
    assert ups.pkce_token(ups.code()).status_code == 200
    assert upsproxy_env.upstream_attempts == 0
