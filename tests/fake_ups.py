"""A local fake UPS over TLS, for recording tests: it behaves like UPS closely enough.

Its own test CA (trustme) signs a certificate for 127.0.0.1; `upsproxy record
--upstream https://127.0.0.1:PORT --upstream-ca CA` verifies it like a real
upstream. Authorize redirects to a sign-in page, the page's form redirects
back with code and state, the token endpoint takes Basic or PKCE and answers
the 10-key all-string body (a JWT access token, 164-character base64 refresh
tokens with ``+ / =``), refresh rotates, and ``/api/track/v1/details/{n}``
checks the bearer and answers a Tracking.yaml-shaped body with personal fields.
Everything it minted is kept in ``secrets`` so tests can look for leaks.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets as rnd
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import trustme

CLIENT = "FAKEUPSCLIENT0123456789abcdefABCDEF"
SECRET = 'Sx+/=:@ %"\\q' + "9" * 8  # every character that needs escaping somewhere
CALLBACK = "https://app.example.test/cb"
ACCESS_TTL = "3599"  # not the 14399 default: replay must take the recorded lifetime
REFRESH_TTL = "86399"
TOKEN_KEYS = ("refresh_token_expires_in", "refresh_token_status", "token_type", "issued_at",
              "client_id", "access_token", "refresh_token", "refresh_token_issued_at",
              "expires_in", "status")
PERSONAL = ("JANE Q ROE", "Roe Holdings", "Jane Roe", "742 Evergreen Terrace",
            "jane.roe@example.com", "+1 555 0100", "A1B2C3", "iVBORw0KGgoAAAANSUhEUgAAAAE")
JWT_PERSONAL = ("jane.roe.user@example.com", "Jane Q Roe (UPS)", "user-8c1d2f0e-41aa")


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _refresh_token() -> str:
    while True:  # 122 bytes: 164 characters ending in one "="; insist on "+" and "/"
        token = base64.b64encode(rnd.token_bytes(122)).decode()
        if "+" in token and "/" in token:
            return token


def _envelope(code: str, message: str) -> bytes:
    return json.dumps({"response": {"errors": [{"code": code, "message": message}]}},
                      separators=(",", ":")).encode()


class FakeUps:
    def __init__(self) -> None:
        self.ca = trustme.CA()
        self.secrets: set[str] = {CLIENT, SECRET, *PERSONAL, *JWT_PERSONAL,
                                  base64.b64encode(f"{CLIENT}:{SECRET}".encode()).decode()}
        self.codes: dict[str, dict[str, str]] = {}
        self.refresh: dict[str, str] = {}
        self.access: set[str] = set()
        self.logins: dict[str, dict[str, str]] = {}
        self.hits: list[str] = []
        """Paths asked for, in order: what reached "UPS"."""
        self.lock = threading.Lock()
        cert = self.ca.issue_cert("127.0.0.1")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        fake = self

        class Handler(_Handler):
            ups = fake

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self, ca_path: Path) -> FakeUps:
        self.ca.cert_pem.write_to_path(str(ca_path))
        self.ca_path = ca_path
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def mint(self, n: int) -> str:
        value = base64.b64encode(rnd.token_bytes(n)).decode()
        with self.lock:
            self.secrets.add(value)
        return value

    def tokens(self, client_id: str) -> bytes:
        now = int(time.time())
        header = {"kid": "fa4e0ad6-2f47-4a3b-9d0e-58f41b2c9a77", "typ": "JWT", "alg": "RS384"}
        claims = {"iss": "https://apis.ups.com", "sub": JWT_PERSONAL[0], "clientid": client_id,
                  "DisplayName": JWT_PERSONAL[1], "uid": JWT_PERSONAL[2],
                  "scope": "read", "ver": "1.0", "iat": now, "exp": now + int(ACCESS_TTL) + 1}
        access = ".".join([_b64url(json.dumps(header).encode()),
                           _b64url(json.dumps(claims).encode()),
                           _b64url(rnd.token_bytes(256))])
        refresh = _refresh_token()
        with self.lock:
            self.access.add(access)
            self.refresh[refresh] = client_id
            self.secrets.update({access, refresh, *access.split(".")[1:]})
        ms = str(now * 1000)
        values = {"refresh_token_expires_in": REFRESH_TTL, "refresh_token_status": "approved",
                  "token_type": "Bearer", "issued_at": ms, "client_id": client_id,
                  "access_token": access, "refresh_token": refresh,
                  "refresh_token_issued_at": ms, "expires_in": ACCESS_TTL, "status": "approved"}
        return json.dumps({k: values[k] for k in TOKEN_KEYS}, separators=(",", ":")).encode()


def tracking_body(number: str) -> dict[str, object]:
    """A details answer shaped like Tracking.yaml's TrackApiResponse, personal fields in."""
    name, company, attention, street, email, phone, account, image = PERSONAL
    return {"trackResponse": {"shipment": [{
        "inquiryNumber": number,
        "userRelation": ["SHIPPER"],
        "package": [{
            "trackingNumber": number,
            "packageAddress": [{
                "type": "DESTINATION", "name": company, "attentionName": attention,
                "address": {"addressLine1": street, "city": "SPRINGFIELD",
                            "stateProvince": "OR", "postalCode": "97403", "countryCode": "US",
                            "country": "US"}}],
            "deliveryInformation": {"location": "Front Door", "receivedBy": name,
                                    "signature": {"image": image}},
            "currentStatus": {"description": "Delivered", "code": "011"},
            "activity": [{"location": {"address": {"city": "SPRINGFIELD", "country": "US"}},
                          "status": {"type": "D", "description": "DELIVERED", "code": "FS"},
                          "date": "20240601", "time": "143000"}],
            "accountNumber": account,
            "contact": {"email": email, "phone": phone},
            "packageCount": 1}]}]}}


class _Handler(BaseHTTPRequestHandler):
    ups: FakeUps
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes = b"", headers: tuple[tuple[str, str], ...] = (),
              content_type: str | None = "application/json") -> None:
        self.send_response(status)
        if content_type and body:
            self.send_header("Content-Type", content_type)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _form(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        return dict(parse_qsl(self.rfile.read(length).decode(), keep_blank_values=True))

    def _basic(self) -> tuple[str, str] | None:
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "basic":
            return None
        client, _, secret = base64.b64decode(token).decode().partition(":")
        return client, secret

    def do_GET(self) -> None:
        self.ups.hits.append(urlsplit(self.path).path)
        parts = urlsplit(self.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        if parts.path == "/security/v1/oauth/authorize":
            if query.get("redirect_uri") != CALLBACK:
                return self._send(400, _envelope("10400", "Invalid Redirect URL"))
            login = self.ups.mint(24)
            with self.ups.lock:
                self.ups.logins[login] = query
            params = {k: query[k] for k in ("client_id", "redirect_uri", "response_type",
                                            "scope", "state") if k in query}
            location = "https://www.ups.com/lasso/signin?" + urlencode(
                {**params, "type": "ups_com_api"})
            return self._send(302, headers=(
                ("Location", location), ("appname", "Fake Recorder App"),
                ("displayname", "Fake Recorder App"),
                ("Set-Cookie", f"ups_login={login}; Domain=ups.com; Path=/; Secure; HttpOnly")))
        if parts.path == "/lasso/signin":
            page = ("<html><body><form method=post action=/lasso/signin>"
                    "<input name=username><input name=password type=password>"
                    "<button name=decision value=approve>Approve</button></form></body></html>")
            return self._send(200, page.encode(), (("Set-Cookie", "bm_sv=" + self.ups.mint(30)
                                                    + "; Path=/"),), "text/html")
        if parts.path.startswith("/api/track/v1/details/"):
            scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
            if scheme != "Bearer" or token not in self.ups.access:
                return self._send(401, _envelope("250002", "Invalid Authentication Information."))
            number = parts.path.rsplit("/", 1)[1]
            body = json.dumps(tracking_body(number), separators=(",", ":")).encode()
            return self._send(200, body, (("transId", self.headers.get("transId") or ""),))
        if parts.path.startswith("/api/nested/"):  # hostile answers: JSON N levels deep
            depth = int(parts.path.rsplit("/", 1)[1])
            return self._send(200, b"[" * depth + b"]" * depth)
        self._send(404, _envelope("10404", "Resource Not Found"))

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        self.ups.hits.append(path)
        form = self._form()
        if path == "/lasso/signin":
            cookie = self.headers.get("Cookie") or ""
            login = dict(p.strip().split("=", 1) for p in cookie.split(";") if "=" in p)
            pending = self.ups.logins.pop(login.get("ups_login", ""), None)
            if pending is None or form.get("decision") != "approve":
                return self._send(400, b"<p>no sign-in</p>", content_type="text/html")
            code = self.ups.mint(97)  # 132 characters ending in "=="
            with self.ups.lock:
                self.ups.codes[code] = pending
            callback = {"code": code}
            if "state" in pending:
                callback["state"] = pending["state"]
            return self._send(302, headers=(
                ("Location", f"{pending['redirect_uri']}?{urlencode(callback)}"),))
        if path == "/security/v1/oauth/token":
            return self._token(form)
        if path == "/security/v1/oauth/refresh":
            basic = self._basic()
            if basic != (CLIENT, SECRET):
                return self._send(401, _envelope("10401", "ClientId is Invalid"))
            with self.ups.lock:
                owner = self.ups.refresh.pop(form.get("refresh_token", ""), None)
            if owner is None:
                return self._send(400, _envelope("10400", "Invalid Refresh Token"))
            return self._send(200, self.ups.tokens(owner))
        self._send(404, _envelope("10404", "Resource Not Found"))

    def _token(self, form: dict[str, str]) -> None:
        basic = self._basic()
        if basic is None and "code_verifier" not in form:
            return self._send(401, _envelope("10400", "Invalid/Missing Authorization Header"))
        if basic is not None and basic != (CLIENT, SECRET):
            return self._send(401, _envelope("10401", "ClientId is Invalid"))
        with self.ups.lock:
            grant = self.ups.codes.pop(form.get("code", ""), None)
        if grant is None or grant.get("redirect_uri") != form.get("redirect_uri"):
            return self._send(400, _envelope("10400", "Invalid Authorization Code"))
        if basic is None:
            verifier = form["code_verifier"]
            challenge = _b64url(hashlib.sha256(verifier.encode()).digest())
            if form.get("client_id") != grant["client_id"] or \
                    challenge != grant.get("code_challenge"):
                return self._send(400, _envelope("10400", "Invalid code_verifier"))
        self._send(200, self.ups.tokens(grant["client_id"]))
