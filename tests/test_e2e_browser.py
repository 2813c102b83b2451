"""The login page in a real browser: headless Chromium clicks Approve and Deny.

Needs the ``playwright`` package and Debian's Chromium at /usr/bin/chromium
(``.ci/run`` installs it); without them this module is skipped.
"""

import base64
import hashlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import pytest
import requests
from factories import CLIENT, VERIFIER, authorize_params

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
STATE = "a/b+c== x"  # every character a sloppy client or server would mangle
AUTHORIZE = "/security/v1/oauth/authorize"


class Callback:
    """The app's redirect_uri: a loopback HTTP server that records each callback's query."""

    def __init__(self) -> None:
        self.queries: list[str] = []
        queries = self.queries

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if urlsplit(self.path).path == "/cb":
                    queries.append(urlsplit(self.path).query)
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"callback received")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/cb"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def params(self) -> dict[str, str]:
        """The single callback received, decoded."""
        assert len(self.queries) == 1, self.queries
        return {k: v[0] for k, v in parse_qs(self.queries[0], keep_blank_values=True).items()}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def callback() -> Iterator[Callback]:
    cb = Callback()
    yield cb
    cb.close()


@pytest.fixture(scope="module")
def chromium() -> Iterator[sync_api.BrowserType]:
    """One Playwright driver per module; each test launches its own browser (flags differ)."""
    with sync_api.sync_playwright() as pw:
        yield pw.chromium


def launch(chromium: sync_api.BrowserType, *extra: str) -> sync_api.Browser:
    return chromium.launch(executable_path=str(CHROMIUM), args=[*FLAGS, *extra])


def authorize_url(base: str, redirect_uri: str) -> str:
    """``state`` percent-encoded (``+`` as %2B, space as %20), as a careful app sends it."""
    params = authorize_params(redirect_uri=redirect_uri, state=STATE)
    return f"{base}{AUTHORIZE}?{urlencode(params, quote_via=quote, safe='')}"


def spki_hash(cert: Path) -> str:
    """Chromium's pin for one certificate: base64(SHA-256(SubjectPublicKeyInfo))."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    key = x509.load_pem_x509_certificate(cert.read_bytes()).public_key()
    der = key.public_bytes(serialization.Encoding.DER,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def test_approve_in_a_browser_then_exchange_the_code(upsproxy, callback, chromium, tmp_path):
    """A human's path: authorize, see the login page, click Approve, exchange the code."""
    browser = launch(chromium)
    try:
        page = browser.new_page()
        page.goto(authorize_url(upsproxy.base_url, callback.url))
        assert page.url.startswith(f"{upsproxy.base_url}/lasso/signin?")
        assert page.title() == "UPS sign in - upsproxy sandbox"
        shot = tmp_path / "login.png"
        page.screenshot(path=shot, full_page=True)
        assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 1000
        page.click("#approve")
        page.wait_for_url(lambda url: url.startswith(callback.url))
    finally:
        browser.close()
    params = callback.params()
    assert params["state"] == STATE and set(params) == {"code", "state"}
    with requests.Session() as http:
        http.trust_env = False  # a developer's http_proxy must not catch loopback
        token = http.post(f"{upsproxy.base_url}/security/v1/oauth/token", timeout=10, data={
            "grant_type": "authorization_code", "code": params["code"],
            "redirect_uri": callback.url, "client_id": CLIENT, "code_verifier": VERIFIER})
    assert token.status_code == 200, token.text
    assert token.json()["access_token"] and token.json()["refresh_token"]


def test_deny_in_a_browser_returns_access_denied(upsproxy, callback, chromium):
    """Deny must send the user back with error=access_denied and the same state."""
    browser = launch(chromium)
    try:
        page = browser.new_page()
        page.goto(authorize_url(upsproxy.base_url, callback.url))
        page.click("#deny")
        page.wait_for_url(lambda url: url.startswith(callback.url))
    finally:
        browser.close()
    assert callback.params() == {"error": "access_denied", "state": STATE}


def test_browser_through_the_proxy_sees_ups_own_urls(upsproxy, callback, chromium):
    """With --proxy-server the browser keeps UPS's URLs; upsproxy's CA is the only one trusted."""
    browser = launch(chromium, f"--proxy-server={upsproxy.proxy_url}",
                     f"--ignore-certificate-errors-spki-list={spki_hash(upsproxy.ca_cert)}")
    try:
        page = browser.new_page()
        page.goto(authorize_url("https://wwwcie.ups.com", callback.url))
        assert page.url.startswith("https://www.ups.com/lasso/signin?")
        assert page.locator("#approve").is_visible()
        page.click("#approve")  # the callback is loopback: Chromium bypasses the proxy
        page.wait_for_url(lambda url: url.startswith(callback.url))
    finally:
        browser.close()
    params = callback.params()
    assert params["state"] == STATE and params["code"]
    assert upsproxy.upstream_attempts == 0
