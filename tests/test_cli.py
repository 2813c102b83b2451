"""The command line, run as a user runs it: real processes, real signals."""

import os
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests
from children import UPSPROXY, Child


def run(*args, timeout=60):
    return subprocess.run([*UPSPROXY, *args], capture_output=True, text=True, timeout=timeout)


class Replay(Child):
    """`upsproxy replay` on free loopback ports in a child process."""

    def __init__(self, *args, confdir):
        super().__init__("replay", "--listen", "127.0.0.1:0", "--reverse-listen",
                         "127.0.0.1:0", "--confdir", str(confdir), *args)


@pytest.fixture
def replay(tmp_path):
    server = Replay(confdir=tmp_path / "conf")
    yield server
    if server.proc.poll() is None:
        server.stop()


def test_the_banner_demo_hint_runs_as_printed(replay):
    hint = re.search(r"try it\s+(\S+) demo --base-url (\S+)", replay.banner)
    assert hint is not None and hint.group(2) == replay.base_url
    program = hint.group(1)
    assert program == "upsproxy" or Path(program).name == "upsproxy"
    if program != "upsproxy":  # not on PATH: the path the user typed
        assert Path(program).exists()


def test_banner_says_how_to_connect(replay, tmp_path):
    assert "HTTPS_PROXY=" + replay.proxy_url in replay.banner
    assert str(tmp_path / "conf" / "mitmproxy-ca-cert.pem") in replay.banner
    assert "REQUESTS_CA_BUNDLE=" in replay.banner and "NODE_EXTRA_CA_CERTS=" in replay.banner
    assert "ups-cie.yaml" in replay.banner


def test_demo_through_the_reverse_listener_and_the_proxy(replay, tmp_path):
    out = run("demo", "--base-url", replay.base_url)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "OK: the sandbox behaved as UPS does." in out.stdout
    assert 'old refresh token    -> 400 "Invalid Refresh Token"' in out.stdout
    out = run("demo", "--proxy", replay.proxy_url, "--confdir", str(tmp_path / "conf"))
    assert out.returncode == 0, out.stdout + out.stderr
    code, log = replay.stop()
    assert code == 0 and "upsproxy stopped." in log, log[-3000:]
    assert "saw no UPS traffic" not in log
    # One readable line per exchange, naming the rule; never a code or token.
    assert re.search(r"POST wwwcie\.ups\.com/security/v1/oauth/token -> 200 token\.issued_pkce "
                     r"client=UPSPROXYDEMO", log)
    assert "token.code_reused" in log and "refresh.token_rotated" in log
    assert "code=" not in log and "Bearer" not in log and "Traceback" not in log


def test_sigint_stops_cleanly(tmp_path):
    server = Replay(confdir=tmp_path)
    server.proc.send_signal(signal.SIGINT)
    rest = server.proc.communicate(timeout=15)[1]
    assert server.proc.returncode == 0 and "upsproxy stopped." in rest
    assert "Traceback" not in rest


def test_bad_cassette_is_reported_with_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\ninteractions:\n  - kind: token\n    request: {method: POST\n")
    out = run("replay", str(bad), "--confdir", str(tmp_path))
    assert out.returncode == 1
    assert re.search(rf"Error: {re.escape(str(bad))}:\d+: YAML syntax error", out.stderr)
    assert "Traceback" not in out.stderr
    bad.write_text("version: 9\ninteractions: []\n")
    out = run("replay", str(bad), "--confdir", str(tmp_path))
    assert f"{bad}:1: unknown cassette version 9" in out.stderr


def test_bad_config_is_reported_with_file_and_line(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("apps:\n  - client_id: A\n    redirect_uris: nope\n")
    out = run("replay", "--config", str(config), "--confdir", str(tmp_path))
    assert out.returncode == 1 and f"{config}:3: redirect_uris" in out.stderr


def test_port_in_use_is_a_clear_message(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = run("replay", "--listen", f"127.0.0.1:{port}", "--reverse-listen", "127.0.0.1:0",
                  "--confdir", str(tmp_path))
    assert out.returncode == 1 and "Error:" in out.stderr and "Traceback" not in out.stderr
    assert str(port) in out.stderr and "--listen 127.0.0.1:0" in out.stderr


def test_ca_and_env(tmp_path):
    out = run("ca", "--confdir", str(tmp_path))
    ca = Path(out.stdout.strip())
    assert out.returncode == 0 and ca.exists() and "BEGIN CERTIFICATE" in ca.read_text()
    assert oct(os.stat(tmp_path / "mitmproxy-ca.pem").st_mode & 0o777) == "0o600"
    out = run("env", "--confdir", str(tmp_path), "--listen", "127.0.0.1:9999")
    lines = out.stdout.splitlines()
    assert "export HTTPS_PROXY=http://127.0.0.1:9999" in lines
    bundle = tmp_path / "upsproxy-ca-bundle.pem"
    assert f"export REQUESTS_CA_BUNDLE={bundle}" in lines
    assert f"export NODE_EXTRA_CA_CERTS={ca}" in lines
    assert bundle.read_text().endswith(ca.read_text())
    assert bundle.read_text().count("BEGIN CERTIFICATE") > 10  # system roots too
    assert oct(bundle.stat().st_mode & 0o777) == "0o644"  # public: other users may read it
    out = run("env", "--confdir", str(tmp_path), "--listen", "[::1]:9999")
    assert "export HTTPS_PROXY=http://[::1]:9999" in out.stdout.splitlines()


def test_control_characters_from_a_request_are_escaped_in_the_log(replay):
    """A client_id or path with CR/LF or a terminal escape cannot forge log lines."""
    requests.get(replay.base_url + "/security/v1/oauth/authorize", timeout=10,
                 params={"client_id": "A\r\nFAKE 200 \x1b[31m", "response_type": "code",
                         "redirect_uri": "https://app.example.test/cb"}, allow_redirects=False)
    code, log = replay.stop()
    assert code == 0 and "client=A\\r\\nFAKE 200 \\x1b[31m" in log, log
    assert not any(line.startswith("FAKE") for line in log.splitlines())
    assert "\x1b" not in log


def test_demo_fails_against_something_that_is_not_ups(tmp_path):
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from threading import Thread

    class Always200(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Always200)
    Thread(target=server.serve_forever, daemon=True).start()
    try:
        out = run("demo", "--base-url", f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
    assert out.returncode == 1 and "deviation: authorize: expected HTTP 302" in out.stderr
    assert "got 200 (0 bytes of no content type)" in out.stderr


def test_demo_needs_exactly_one_target():
    assert run("demo").returncode == 2


@pytest.mark.parametrize("command", ["replay", "demo", "ca", "env"])
def test_help_texts(command):
    out = run(command, "--help")
    assert out.returncode == 0 and "Usage: upsproxy " + command in out.stdout


def test_no_ups_traffic_is_pointed_out_at_shutdown(replay):
    code, log = replay.stop()
    assert code == 0 and "upsproxy saw no UPS traffic" in log
    assert "reverse" in log and "NO_PROXY" in log


def test_env_refuses_port_zero(tmp_path):
    out = run("env", "--confdir", str(tmp_path), "--listen", "127.0.0.1:0")
    assert out.returncode == 2 and "not 0" in out.stderr


def test_demo_with_a_registered_client(tmp_path):
    config = tmp_path / "apps.yaml"
    config.write_text("apps:\n  - client_id: MYAPP\n    client_secret: pw\n"
                      "    redirect_uris: [https://my.example.test/cb]\n"
                      "  - client_id: PUBLICAPP\n"
                      "    redirect_uris: [https://my.example.test/cb]\n")
    server = Replay("--config", str(config), confdir=tmp_path)
    try:
        assert f"with apps from {config}" in server.banner
        assert "register client UPSPROXYDEMO" in server.banner
        refused = run("demo", "--base-url", server.base_url)
        assert refused.returncode == 1 and "UPS error 10401: ClientId is Invalid" in refused.stderr
        assert "--client-id" in refused.stderr and "b'" not in refused.stderr
        out = run("demo", "--base-url", server.base_url, "--client-id", "MYAPP",
                  "--client-secret", "pw", "--redirect-uri", "https://my.example.test/cb")
        assert out.returncode == 0, out.stdout + out.stderr
        public = run("demo", "--base-url", server.base_url, "--client-id", "PUBLICAPP",
                     "--client-secret", "", "--redirect-uri", "https://my.example.test/cb")
        assert public.returncode == 0, public.stdout + public.stderr
    finally:
        server.stop()


def test_both_listeners_on_ipv6_loopback(tmp_path):
    server = Replay("--listen", "[::1]:0", "--reverse-listen", "[::1]:0", confdir=tmp_path)
    try:
        assert server.proxy_url.startswith("http://[::1]:")
        assert server.base_url.startswith("http://[::1]:")
        resp = requests.post(f"{server.base_url}/security/v1/oauth/token", timeout=10)
        assert resp.status_code == 400 and resp.json()["response"]["errors"][0]["code"] == "10400"
        through = requests.post("https://wwwcie.ups.com/security/v1/oauth/token", timeout=10,
                                proxies={"https": server.proxy_url},
                                verify=str(tmp_path / "mitmproxy-ca-cert.pem"))
        assert through.status_code == 400
    finally:
        server.stop()


def test_a_bad_fault_file_is_refused_at_start_with_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("- endpoint: token\n  preset: rate_limited\n"
                   "- endpoint: refresh\n  preset: invalid_refresh_tokn\n")
    out = run("replay", "--faults", str(bad), "--confdir", str(tmp_path))
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert f"Error: {bad}:4: unknown preset 'invalid_refresh_tokn'; known: " in out.stderr
    out = run("replay", "--fault", "token:rate_limited:times=often", "--confdir", str(tmp_path))
    assert out.returncode == 1
    assert "Error: --fault 'token:rate_limited:times=often': times: times must be a number" \
        in out.stderr


def test_faults_from_the_command_line_fire_and_are_logged(tmp_path):
    rules = tmp_path / "faults.yaml"
    rules.write_text("- name: limited\n  endpoint: token\n  preset: rate_limited\n  times: 1\n"
                     "  headers: {Retry-After: 7}\n")
    server = Replay("--faults", str(rules), "--fault", "refresh:reset", confdir=tmp_path)
    try:
        assert "faults    2 rule(s): limited, rule2" in server.banner
        token = server.base_url + "/security/v1/oauth/token"
        resp = requests.post(token, data={"grant_type": "authorization_code"}, timeout=10)
        assert resp.status_code == 429 and resp.headers["Retry-After"] == "7"
        assert requests.post(token, timeout=10).status_code == 400  # fired once only
        with pytest.raises(requests.ConnectionError):
            requests.post(server.base_url + "/security/v1/oauth/refresh", timeout=10)
        listed = requests.get(server.base_url + "/_upsproxy/faults", timeout=10).json()
        assert [(r["name"], r["fired"]) for r in listed["rules"]] == [("limited", 1),
                                                                      ("rule2", 1)]
    finally:
        code, log = server.stop()
    assert code == 0
    assert re.search(r"POST http://127\.0\.0\.1:\d+/security/v1/oauth/token -> 429 "
                     r"fault:limited", log), log
    assert re.search(r"/security/v1/oauth/refresh -> no answer reset fault:rule2", log), log


def test_stopping_with_a_request_held_by_a_timeout_fault_does_not_hang(tmp_path):
    server = Replay("--fault", "token:timeout", confdir=tmp_path)
    outcome = []

    def client():
        try:
            requests.post(server.base_url + "/security/v1/oauth/token", timeout=60)
        except requests.RequestException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=client)
    worker.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        listed = requests.get(server.base_url + "/_upsproxy/faults", timeout=10).json()
        if listed["rules"][0]["fired"] == 1:
            break
        time.sleep(0.05)
    code, log = server.stop()  # bounded: communicate(timeout=15)
    worker.join(15)
    assert code == 0 and "upsproxy stopped." in log and "Traceback" not in log
    assert not worker.is_alive() and isinstance(outcome[0], requests.ConnectionError)


def test_replay_block_other_hosts_refuses_and_logs(tmp_path):
    server = Replay("--block-other-hosts", confdir=tmp_path / "conf")
    try:
        resp = requests.get("http://127.0.0.1:9/elsewhere", timeout=10,
                            proxies={"http": server.proxy_url})
        assert resp.status_code == 403 and "not a UPS host" in resp.text
        assert run("demo", "--base-url", server.base_url).returncode == 0
    finally:
        code, log = server.stop()
    assert code == 0 and "-> 403 other_host_blocked" in log


@pytest.mark.parametrize("command", ["replay", "record"])
def test_a_port_in_use_is_one_clear_line(command, tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        extra = ("--cassette", str(tmp_path / "c.yaml")) if command == "record" else ()
        out = run(command, "--listen", f"127.0.0.1:{port}", "--reverse-listen", "127.0.0.1:0",
                  "--confdir", str(tmp_path / "conf"), *extra)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith(f"Error: HTTP(S) proxy failed to listen on 127.0.0.1:{port}")
    assert last.endswith("Is another upsproxy running? Pick other ports, or 0 for free ones: "
                         "--listen 127.0.0.1:0 --reverse-listen 127.0.0.1:0")
