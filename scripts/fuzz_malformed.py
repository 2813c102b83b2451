"""Malformed-request fuzz driver for ``upsproxy replay`` (DESIGN §7, reliability).

Target: "zero crashes and zero un-injected 5xx over thousands of malformed
requests". A real ``upsproxy replay`` runs as a child process (loopback ports
picked by the OS, a fresh ``--confdir``, ``--block-other-hosts`` so that not
even a badly routed request could leave the machine: UPS hosts are never
dialled in replay, and every other host is refused). Then ``--count``
generated requests (default 3000, at most ``--seconds``) go to it:

- the reverse listener over raw sockets: broken request lines, bad methods,
  huge and broken headers, bad Content-Length, chunked garbage, invalid UTF-8,
  HTTP/2 and TLS prefaces on the plain port, pipelining, then valid HTTP that is
  wrong for UPS (JSON or wrong content types, duplicated fields, 1 MB and 3 MB
  bodies, gzip, junk Basic/Bearer) at the OAuth endpoints, the Tracking API, the
  sign-in page, random paths with %-escapes, and junk JSON at ``/_upsproxy/``;
- through the proxy to https://wwwcie.ups.com: CONNECT + TLS trusting
  ``<confdir>/mitmproxy-ca-cert.pem`` with raw bytes inside the tunnel, or with
  ``requests`` and ``httpx``; plus absolute-form plain HTTP and garbage sent to
  the proxy port itself (only ever naming wwwcie.ups.com);
- near-valid flows: a real code / refresh / access token (minted through the
  control API and the token endpoint) with one thing wrong.

Every case comes from ``random.Random(f"{seed}:{index}")``: a run is
reproducible and ``--show N`` prints case N's bytes (near-valid cases show
placeholder grant values). Each answer is classified: upsproxy's own (a UPS
envelope, a control-API JSON, a redirect or page) or mitmproxy's own error page
(``Server: mitmproxy``, HTML). A 5xx fails the run unless it is mitmproxy's own
answer to a request that is not valid HTTP; no fault rules are loaded, and one
the fuzz adds through ``POST /_upsproxy/faults`` is cleared at once, so no 5xx
can be injected. Every 500 requests and at the end ``upsproxy demo --base-url``
must pass (and ``demo --proxy`` at the end), the process must be alive, stop
cleanly on SIGTERM, and its stderr must hold no Traceback and no "internal
error" line.

    python scripts/fuzz_malformed.py [--count 3000] [--seconds 70] [--seed 1]
    python scripts/fuzz_malformed.py --show 1234

Exit status 1 on any crash, Traceback, un-injected 5xx or failed health check.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import http.client
import json
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from random import Random
from urllib.parse import quote, urlencode

import httpx
import requests

from upsproxy.demo import CLIENT_ID, CLIENT_SECRET, REDIRECT_URI
from upsproxy.pkce import s256_challenge

LOOPBACK = "127.0.0.1"
UPS_HOST = "wwwcie.ups.com"
AUTHORIZE = "/security/v1/oauth/authorize"
TOKEN = "/security/v1/oauth/token"
REFRESH = "/security/v1/oauth/refresh"
OAUTH = (AUTHORIZE, TOKEN, REFRESH)
TRACK = "/api/track/v1/details/"
LOGIN = "/lasso/signin"
CONTROL = ("state", "clock", "codes", "reset", "exchanges", "jwks", "faults")
FORM = "application/x-www-form-urlencoded"
FIELDS = ("grant_type", "code", "redirect_uri", "code_verifier", "client_id", "client_secret",
          "refresh_token", "response_type", "state", "scope", "code_challenge",
          "code_challenge_method", "upsproxy_txn", "decision", "locale", "returnSignature")
JUNK = ':@+/=%"\\ &?#\';,.-_~!*()[]{}$<>éü\u2603\U0001f600\x00\t'
ASCII = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
TOKEN_CHARS = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}")
HEALTH_EVERY = 500
READ_TIMEOUT = 3.0
CHANNELS = ("reverse", "tunnel", "proxy", "requests", "httpx")


# -- cases --------------------------------------------------------------------------------


@dataclass
class Http:
    """A syntactically valid HTTP/1.1 request, before serialization."""

    method: str
    target: str
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""


@dataclass
class Case:
    index: int
    kind: str
    channel: str
    valid: bool
    """Valid HTTP/1.1 syntax: then no 5xx is acceptable from anyone."""
    raw: bytes = b""
    http: Http | None = None
    half_close: bool = False
    """Send EOF after the bytes: the request is incomplete on purpose."""
    head: bool = False
    faults_post: bool = False

    def describe(self, limit: int = 400) -> str:
        data = self.raw if self.http is None else serialize(self.http, host_for(self.channel))
        text = repr(data[:limit]) + (f"... ({len(data)} bytes)" if len(data) > limit else "")
        return f"#{self.index} {self.kind} via {self.channel}: {text}"


@dataclass
class Grants:
    """Real values for near-valid cases, refreshed now and then."""

    code: str = "<code>"
    verifier: str = "<verifier>"
    refresh: str = "<refresh_token>"
    access: str = "<access_token>"
    pkce: bool = False


def host_for(channel: str) -> bytes:
    return UPS_HOST.encode() if channel != "reverse" else f"{LOOPBACK}:8081".encode()


def junk(rng: Random, maxlen: int = 24) -> str:
    roll = rng.random()
    if roll < 0.05:
        return ""
    if roll < 0.07:
        return rng.choice(ASCII) * rng.randint(9_000, 70_000)
    return "".join(rng.choice(ASCII if rng.random() < 0.6 else JUNK)
                   for _ in range(rng.randint(1, maxlen)))


def pct_path(rng: Random) -> str:
    pieces = ["%zz", "%", "%2", "%00", "%ff", "%FE", "%2F", "%2f", "%25", "..", "", ";x=1",
              "%C3%A9", "%E2%98", "%0d%0a", "~", "security", "v1", "oauth", "token", "api",
              "track", "_upsproxy", "%5F%75psproxy", "lasso", "signin"]
    return "/" + "/".join(rng.choice(pieces) + rng.choice(["", junk(rng, 4)])
                          for _ in range(rng.randint(0, 6)))


def safe_target(text: str) -> str:
    """``text`` as a request target: no whitespace or control bytes (quoted)."""
    return quote(text, safe="/%;:@!$&'()*+,=?~-._")


def random_query(rng: Random) -> str:
    roll = rng.random()
    if roll < 0.3:
        return ""
    if roll < 0.4:
        return rng.choice(["%zz=1&a", "&&&=&=", "a=%ff%fe", "=", "%", "a=b=c", "?",
                           "client_id=%C3", "x=" + "y" * 9000])
    pairs = [(rng.choice(FIELDS), junk(rng)) for _ in range(rng.randint(1, 6))]
    if rng.random() < 0.3 and pairs:
        pairs.append(pairs[0])  # duplicated parameter
    return urlencode(pairs, quote_via=rng.choice([quote, quote]))


def random_json(rng: Random, depth: int = 0) -> object:
    roll = rng.random()
    if depth > 4 or roll < 0.3:
        return rng.choice([None, True, False, 0, -1, 1e308, 2**70, "", junk(rng),
                           "\ud800", 3.5, "NaN"])
    if roll < 0.65:
        return {rng.choice((*FIELDS, "advance", "set", "reset", "endpoint", "preset", "status",
                            junk(rng, 8))): random_json(rng, depth + 1)
                for _ in range(rng.randint(0, 4))}
    return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]


def json_bytes(rng: Random) -> bytes:
    roll = rng.random()
    if roll < 0.08:
        return b"[" * rng.randint(1_000, 200_000)
    if roll < 0.14:
        return b'{"a":' * rng.randint(1_000, 100_000) + b"1" + b"}" * 3
    if roll < 0.2:
        return rng.choice([b"NaN", b"Infinity", b"-Infinity", b"1e999", b'"\\ud800"',
                           b"{\"advance\": 1e999}", b"\xff\xfe{}", b"{", b"null", b"[]",
                           b'{"set": 253402300799999}', b'{"advance": -315360000}',
                           b'{"set": 1}', b'{"reset": true}', b"\x00"])
    text = json.dumps(random_json(rng), ensure_ascii=rng.random() < 0.5)
    return text.encode("utf-8", "surrogatepass")


def form_body(rng: Random) -> bytes:
    roll = rng.random()
    if roll < 0.15:
        return rng.choice([b"", b"=", b"&&", b"grant_type", b"a=%zz", b"a=%ff%fe", b"\xff=\xfe",
                           b"a=b=c&&=d", "é=ü".encode("latin-1"), b"\x00=\x00", b"+=+"])
    pairs = [(rng.choice(FIELDS), junk(rng)) for _ in range(rng.randint(0, 7))]
    if rng.random() < 0.3 and pairs:
        pairs.append((pairs[0][0], junk(rng)))
    return urlencode(pairs).encode()


def content_type(rng: Random) -> bytes | None:
    return rng.choice([FORM.encode(), FORM.encode(), b"application/x-www-form-urlencoded; "
                       b"charset=UTF-8", b"application/x-www-form-urlencoded; charset=latin-1",
                       b"application/json", b"text/plain", b"multipart/form-data; boundary=x",
                       b"APPLICATION/X-WWW-FORM-URLENCODED", b"", b";;;", b"application/xml",
                       b"application/x-www-form-urlencoded\xff", None])


def authorization(rng: Random) -> bytes | None:
    def b64(raw: bytes) -> bytes:
        return base64.b64encode(raw)

    return rng.choice([
        None, None,
        b"Basic " + b64(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()),
        b"Basic " + b64(f"{junk(rng)}:{junk(rng)}".encode()),
        b"Basic " + b64(b"\xff\xfe:\x80"), b"Basic " + b64(b"nocolon"), b"Basic " + b64(b":"),
        b"Basic !!!notbase64", b"Basic", b"basic Og==", b"Basic Og==Og==", b"Bearer",
        b"Bearer " + junk(rng).encode("utf-8", "surrogatepass").replace(b"\r", b"")
        .replace(b"\n", b"").replace(b"\x00", b""),
        b"Bearer eyJhbGciOiJub25lIn0.eyJleHAiOjF9.", b"Digest x", b"Basic " + b"A" * 70_000,
    ])


def semantic(rng: Random, channel: str, grants: Grants) -> Http:
    """Valid HTTP, wrong for UPS in one or more ways."""
    roll = rng.random()
    if roll < 0.45:
        path = rng.choice(OAUTH)
    elif roll < 0.6:
        path = TRACK + rng.choice(["1Z023E2X0214323462", junk(rng, 30), "", "%zz", "1Z" * 40])
    elif roll < 0.67:
        path = LOGIN
    elif roll < 0.8:
        path = "/_upsproxy/" + rng.choice([*CONTROL, junk(rng, 6), ""])
    elif roll < 0.9:
        path = pct_path(rng)
    else:
        path = rng.choice(["/", "/security/v1/oauth/token/", "/SECURITY/V1/OAUTH/TOKEN",
                           "/api/security/v1/oauth/token", "//security/v1/oauth/token",
                           "/security/v1/oauth/../oauth/token", "/api/", "/api"])
    method = rng.choice(["POST"] * 5 + ["GET"] * 3 + ["PUT", "DELETE", "HEAD", "OPTIONS",
                                                       "PATCH"])
    query = random_query(rng)
    target = safe_target(path) + ("?" + query if query else "")
    headers: list[tuple[bytes, bytes]] = []
    ctype = content_type(rng) if not path.startswith("/_upsproxy/") else rng.choice(
        [b"application/json", None, b"text/plain", FORM.encode()])
    if ctype is not None:
        headers.append((b"Content-Type", ctype))
    auth = authorization(rng)
    if path.startswith("/api/") and rng.random() < 0.5:
        auth = b"Bearer " + rng.choice([grants.access, grants.access + "x", grants.access[:-3],
                                        grants.access.upper(), ""]).encode()
    if auth is not None:
        headers.append((b"Authorization", auth))
    extras = [(b"Content-Encoding", b"gzip"), (b"Content-Encoding", b"br"), (b"Accept", b"*/*"),
              (b"Cookie", junk(rng).encode("utf-8", "replace")), (b"X-Forwarded-For", b"10.0.0.1"),
              (b"Accept-Charset", b"\xff"), (b"Authorization", b"Basic Og==")]
    for _ in range(rng.randint(0, 2)):
        headers.append(rng.choice(extras))
    headers = [(k, v.translate(None, b"\r\n\x00").strip()) for k, v in headers]
    if path.startswith("/_upsproxy/"):
        body = json_bytes(rng) if rng.random() < 0.85 else form_body(rng)
    else:
        body_roll = rng.random()
        if body_roll < 0.55:
            body = form_body(rng)
        elif body_roll < 0.75:
            body = json_bytes(rng)
        elif body_roll < 0.85:
            body = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 300)))
        elif body_roll < 0.93:
            body = b""
        elif body_roll < 0.96:
            body = gzip.compress(form_body(rng), mtime=0)
        elif body_roll < 0.99:
            body = b"grant_type=" + b"a" * (1024 * 1024)
        else:
            body = b"a=" + b"b" * (3 * 1024 * 1024)  # past mitmproxy's 2 MiB limit
    if method in ("GET", "HEAD") and rng.random() < 0.7:
        body = b""
    return Http(method, target, headers, body)


def near_valid(rng: Random, grants: Grants) -> Http:
    """A real grant with one or two things wrong (reaches the deeper rules)."""

    def wrong(value: str) -> str:
        return rng.choice([value, value, value + "x", value[:-1], value.swapcase(),
                           quote(value, safe=""), value.replace("+", " "), value * 2, "",
                           value + "é", value.replace("=", ""), junk(rng)])

    which = rng.choice(["token", "token", "refresh", "api", "authorize"])
    basic = f"{CLIENT_ID}:{CLIENT_SECRET}"
    if rng.random() < 0.3:
        basic = rng.choice([f"{CLIENT_ID}:{wrong(CLIENT_SECRET)}", f"{wrong(CLIENT_ID)}:"
                            f"{CLIENT_SECRET}", CLIENT_ID, f"{CLIENT_ID}:{CLIENT_SECRET}:x"])
    auth = (b"Authorization", b"Basic " + base64.b64encode(basic.encode()))
    form_type = (b"Content-Type", FORM.encode())
    if which == "api":
        bearer = wrong(grants.access) if rng.random() < 0.6 else grants.access
        query = rng.choice(["locale=en_US&returnSignature=false", "locale=en_US", "",
                            "returnSignature=false&locale=en_US", random_query(rng)])
        target = TRACK + rng.choice(["1Z023E2X0214323462", "1Z023E2X0214323463", "%31Z"])
        headers = [(b"Authorization", f"Bearer {bearer}".encode())]
        if rng.random() < 0.3:  # a JSON body, matched against the recorded calls
            headers.append((b"Content-Type", b"application/json"))
            return Http("POST", target + ("?" + query if query else ""), headers, json_bytes(rng))
        return Http(rng.choice(["GET", "GET", "POST"]), target + ("?" + query if query else ""),
                    headers)
    if which == "authorize":
        pairs = [("client_id", CLIENT_ID), ("redirect_uri", REDIRECT_URI),
                 ("response_type", "code"), ("state", junk(rng)),
                 ("code_challenge", s256_challenge(grants.verifier))]
    elif which == "token":
        pairs = [("grant_type", "authorization_code"), ("code", grants.code),
                 ("redirect_uri", REDIRECT_URI)]
        if grants.pkce or rng.random() < 0.2:
            pairs.append(("code_verifier", grants.verifier))
    else:
        pairs = [("grant_type", "refresh_token"), ("refresh_token", grants.refresh)]
    for _ in range(rng.randint(1, 2)):
        n = rng.randrange(len(pairs))
        action = rng.random()
        if action < 0.6:
            pairs[n] = (pairs[n][0], wrong(pairs[n][1]))
        elif action < 0.75:
            del pairs[n]
            if not pairs:
                break
        elif action < 0.9:
            pairs.append((pairs[n][0], wrong(pairs[n][1])))
        else:
            pairs.append(("client_secret", CLIENT_SECRET))
    rng.shuffle(pairs)
    if which == "authorize":
        return Http("GET", f"{AUTHORIZE}?{urlencode(pairs)}", [])
    headers = [form_type] + ([auth] if rng.random() < 0.85 else [])
    path = TOKEN if which == "token" else REFRESH
    return Http("POST", path, headers, urlencode(pairs).encode())


def serialize(req: Http, host: bytes, *, framing: bool = True) -> bytes:
    lines = [f"{req.method} {req.target} HTTP/1.1".encode(), b"Host: " + host]
    lines += [k + b": " + v for k, v in req.headers]
    if framing and (req.body or req.method in ("POST", "PUT", "PATCH")):
        lines.append(b"Content-Length: " + str(len(req.body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + req.body


def malformed(rng: Random, kind: str, host: bytes, grants: Grants) -> tuple[bytes, bool, bool]:
    """Raw bytes, whether they are valid HTTP, whether to half-close after them."""
    base = semantic(rng, "reverse", grants)
    base.method = "POST"
    base.target = rng.choice(OAUTH)
    base.headers = [(b"Content-Type", FORM.encode())]
    base.body = form_body(rng) or b"grant_type=authorization_code"
    h = b"Host: " + host + b"\r\n"
    if kind == "request_line":
        choices: list[tuple[bytes, bool, bool]] = [
            (b"GARBAGE\r\n\r\n", False, False), (b"GET\r\n\r\n", False, False),
            (b"GET /security/v1/oauth/token\r\n\r\n", False, False),
            (b"GET / HTTP/9.9\r\n" + h + b"\r\n", False, False),
            (b"GET  /  HTTP/1.1\r\n" + h + b"\r\n", False, False),
            (b"GET / HTTP/1.1 extra\r\n" + h + b"\r\n", False, False),
            (b"POST /security/v1/oauth/token http/1.1\r\n\r\n", False, False),
            (b"\r\n\r\n\r\n", False, True), (b"\x00\x01\x02\x03 / HTTP/1.1\r\n\r\n", False, False),
            (bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 200))) + b"\r\n\r\n",
             False, True),
            (b"GET /" + b"a" * rng.randint(10_000, 200_000) + b" HTTP/1.1\r\n" + h + b"\r\n",
             True, False),
            (b"GET /\tHTTP/1.1\r\n\r\n", False, False),
            (b"GET / HTTP/1.1\n" + h.replace(b"\r", b"") + b"\n", False, True),
            (b"GET /security/v1/oauth/token HTTP/1.1\r\n" + h, False, True),
            (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 40, False, True),
            (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes(rng.getrandbits(8) for _ in range(64)),
             False, True),
            (b"GET /\xff\xfe/\x80 HTTP/1.1\r\n" + h + b"\r\n", False, False),
            (b"GET /sec urity HTTP/1.1\r\n" + h + b"\r\n", False, False),
            (b"GET " + TOKEN.encode() + b"?a=\x01\x7f HTTP/1.1\r\n" + h + b"\r\n", False, False),
            (b"OPTIONS * HTTP/1.1\r\n" + h + b"\r\n", True, False),
            (b"GET http://" + host + TOKEN.encode() + b" HTTP/1.1\r\n" + h + b"\r\n", True,
             False),
            (b"GET / HTTP/1.0\r\n\r\n", True, False), (b"GET /\r\n", False, True),
        ]
        return rng.choice(choices)
    if kind == "method":
        method = rng.choice([b"FOO", b"get", b"P0ST", b"CONNECT", b"TRACE", b"OPTIONS", b"PATCH",
                             b"PROPFIND", b"G@T", b"GET\x00", b"M" * 5000, b"\xff\xfe", b"BREW",
                             b"HEAD", b"DELETE", b"PUT", b"post"])
        req = serialize(base, host)
        valid = bool(TOKEN_CHARS.fullmatch(method)) and method != b"CONNECT"
        return method + req[req.index(b" "):], valid, False
    if kind == "headers":
        variant = rng.randrange(10)
        extra: bytes
        valid = True
        if variant == 0:
            extra = b"".join(b"X-Fuzz-%d: %d\r\n" % (i, i) for i in range(rng.randint(200, 3000)))
        elif variant == 1:
            extra = b"X-Big: " + b"v" * rng.randint(64_000, 400_000) + b"\r\n"
        elif variant == 2:
            extra, valid = b"NoColonHere\r\n", False
        elif variant == 3:
            extra, valid = b"Bad Name: x\r\n", False
        elif variant == 4:
            extra, valid = b"X-Folded: a\r\n  continued\r\n", False
        elif variant == 5:
            extra, valid = b"X-Nul: a\x00b\r\n", False
        elif variant == 6:
            extra = rng.choice([b"Authorization: Basic \xff\xfe\r\n",
                                b"Cookie: sid=\xe9\xff\r\n", b"Accept: \x80\x81\r\n"])
        elif variant == 7:
            extra = b"Content-Type: application/json\r\nAuthorization: Basic Og==\r\n" \
                    b"Authorization: Bearer x\r\n"
        elif variant == 8:
            extra, valid = b": empty-name\r\n", False
        else:
            extra = h  # a second Host header
        req = serialize(base, host)
        cut = req.index(b"\r\n") + 2
        return req[:cut] + extra + req[cut:], valid, False
    if kind == "content_length":
        body = base.body
        head = f"POST {base.target} HTTP/1.1\r\n".encode() + h + \
            b"Content-Type: " + FORM.encode() + b"\r\n"
        variant = rng.randrange(11)
        if variant == 0:
            return head + b"Content-Length: -1\r\n\r\n" + body, False, False
        if variant == 1:
            return head + b"Content-Length: abc\r\n\r\n" + body, False, False
        if variant == 2:
            return head + b"Content-Length: +5\r\n\r\n" + body, False, False
        if variant == 3:
            return head + b"Content-Length: 3\r\nContent-Length: 7\r\n\r\n" + body, False, False
        if variant == 4:
            return head + b"Content-Length: 99999999999999999999999\r\n\r\n" + body, False, False
        if variant == 5:
            return head + b"Content-Length: %d\r\n\r\n" % (len(body) + rng.randint(1, 500)) \
                + body, False, True
        if variant == 6:
            return head + b"Content-Length: %d\r\n\r\n" % max(0, len(body) - 3) + body + \
                b"GARBAGE\r\n\r\n", True, False
        if variant == 7:
            return head + b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n" % len(body) \
                + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n", False, False
        if variant == 8:
            return head + b"Content-Length: 0x10\r\n\r\n" + body, False, False
        if variant == 9:
            return head + b"Content-Length: 5000000\r\n\r\n" + body, True, True
        return head + b"Content-Length: 0\r\n\r\n" + body + b"\r\n\r\n", True, False
    if kind == "chunked":
        body = base.body
        head = f"POST {base.target} HTTP/1.1\r\n".encode() + h + \
            b"Content-Type: " + FORM.encode() + b"\r\n"
        te = b"Transfer-Encoding: chunked\r\n\r\n"
        variant = rng.randrange(9)
        if variant == 0:
            return head + te + b"zz\r\nabc\r\n0\r\n\r\n", False, False
        if variant == 1:
            return head + te + b"%x\r\n" % len(body) + body + b"\r\n", False, True
        if variant == 2:
            return head + te + b"%x\r\n" % (len(body) + 50) + body, False, True
        if variant == 3:
            return head + te + b"%x;ext=1\r\n" % len(body) + body + b"\r\n0\r\n\r\n", True, False
        if variant == 4:
            return head + te + b"FFFFFFFFFFFFFFFFFF\r\nabc\r\n", False, True
        if variant == 5:
            return head + b"Transfer-Encoding: gzip, chunked\r\n\r\n" + b"%x\r\n" % len(body) \
                + body + b"\r\n0\r\n\r\n", False, False
        if variant == 6:
            return head + b"Transfer-Encoding: xchunked\r\n\r\n" + body, False, True
        if variant == 7:
            return head + te + b"-5\r\nabcde\r\n0\r\n\r\n", False, False
        chunks = b""
        rest = body
        while rest:
            n = rng.randint(1, max(1, len(rest)))
            chunks += b"%x\r\n" % n + rest[:n] + b"\r\n"
            rest = rest[n:]
        return head + te + chunks + b"0\r\nX-Trailer: 1\r\n\r\n", True, False
    if kind == "utf8":
        bad = rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80\x80", b"\xf8\x88\x80\x80\x80"])
        variant = rng.randrange(4)
        if variant == 0:
            return b"GET " + AUTHORIZE.encode() + b"?client_id=" + bad + b" HTTP/1.1\r\n" + h + \
                b"\r\n", False, False
        if variant == 1:
            base.target = AUTHORIZE + "?client_id=" + quote(bad) + "&response_type=code"
            base.method, base.body = "GET", b""
            return serialize(base, host), True, False
        if variant == 2:
            base.body = b"grant_type=authorization_code&code=" + bad + b"&redirect_uri=x"
            return serialize(base, host), True, False
        base.headers = [(b"Content-Type", FORM.encode()),
                        (b"Authorization", b"Basic " + base64.b64encode(bad + b":" + bad))]
        return serialize(base, host), True, False
    if kind == "pipelined":
        first = serialize(base, host)
        return first + serialize(semantic(rng, "reverse", grants), host), True, False
    raise ValueError(kind)


MALFORMED = ("request_line", "method", "headers", "content_length", "chunked", "utf8",
             "pipelined")


def make_case(seed: int, index: int, grants: Grants) -> Case:
    rng = Random(f"{seed}:{index}")
    channel = rng.choices(CHANNELS, weights=(45, 25, 6, 12, 12))[0]
    roll = rng.random()
    host = host_for(channel)
    if channel in ("reverse", "tunnel") and roll < 0.35:
        kind = rng.choice(MALFORMED)
        raw, valid, half_close = malformed(rng, kind, host, grants)
        return Case(index, kind, channel, valid, raw=raw, half_close=half_close,
                    head=raw.startswith(b"HEAD "))
    if channel == "proxy" and roll < 0.3:
        # Garbage at the proxy port itself; any Host it names is a UPS host.
        raw, valid, half_close = malformed(rng, "request_line", host, grants)
        return Case(index, "proxy_garbage", channel, valid, raw=raw, half_close=half_close)
    if roll < 0.5:
        req, kind = near_valid(rng, grants), "near_valid"
    else:
        req, kind = semantic(rng, channel, grants), "semantic"
        if req.target.startswith("/_upsproxy/"):
            kind = "control"
    case = Case(index, kind, channel, True, http=req, head=req.method == "HEAD")
    case.faults_post = channel == "reverse" and req.method == "POST" and \
        req.target.split("?")[0].rstrip("/") == "/_upsproxy/faults"
    if channel in ("reverse", "tunnel", "proxy"):
        if channel == "proxy":
            req.target = f"http://{UPS_HOST}{req.target}"
        case.raw = serialize(req, host)
    return case


# -- the sandbox --------------------------------------------------------------------------


class Sandbox:
    """``upsproxy replay`` in a child process; its stderr kept by a thread."""

    def __init__(self, confdir: Path) -> None:
        self.confdir = confdir
        self.ca = confdir / "mitmproxy-ca-cert.pem"
        self.proc = subprocess.Popen(
            [*upsproxy_command(), "replay", "--listen", f"{LOOPBACK}:0", "--reverse-listen",
             f"{LOOPBACK}:0", "--confdir", str(confdir), "--block-other-hosts"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        assert self.proc.stderr is not None
        banner = ""
        deadline = time.monotonic() + 60
        while "Ctrl-C" not in banner:
            line = self.proc.stderr.readline()
            if not line or time.monotonic() > deadline:
                self.proc.kill()
                raise SystemExit(f"upsproxy replay did not start:\n{banner}")
            banner += line.decode("utf-8", "replace")
        self.banner = banner
        proxy = re.search(r"proxy\s+http://([\d.]+):(\d+)", banner)
        base = re.search(r"base URL\s+http://([\d.]+):(\d+)", banner)
        assert proxy and base and proxy.group(1) == LOOPBACK == base.group(1)
        self.proxy_port, self.reverse_port = int(proxy.group(2)), int(base.group(2))
        self.proxy_url = f"http://{LOOPBACK}:{self.proxy_port}"
        self.base_url = f"http://{LOOPBACK}:{self.reverse_port}"
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.decode("utf-8", "replace"))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._reader.join(timeout=5)
        return code

    def log(self) -> str:
        return "".join(self.lines)


def upsproxy_command() -> list[str]:
    entry = Path(sys.executable).with_name("upsproxy")
    return [str(entry)] if entry.exists() else [sys.executable, "-m", "upsproxy"]


def demo(sandbox: Sandbox, proxy: bool = False) -> tuple[bool, str]:
    where = ["--proxy", sandbox.proxy_url, "--confdir", str(sandbox.confdir)] if proxy \
        else ["--base-url", sandbox.base_url]
    try:
        out = subprocess.run([*upsproxy_command(), "demo", *where], capture_output=True,
                             text=True, timeout=60, check=False)
    except subprocess.TimeoutExpired:
        return False, "demo timed out"
    return out.returncode == 0, (out.stdout + out.stderr)[-1500:]


# -- sending ------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int | None = None
    source: str = "none"
    error: str | None = None


def _complete(buf: bytes, head: bool) -> bool:
    while True:
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return False
        status = re.match(rb"HTTP/\d\.\d (\d{3})", buf)
        if status and status.group(1).startswith(b"1"):
            buf = buf[end + 4:]  # interim answer (100 Continue)
            continue
        header = buf[:end].lower()
        if head or (status and status.group(1) in (b"204", b"304")):
            return True
        length = re.search(rb"\r\ncontent-length:\s*(\d+)", header)
        if length:
            return len(buf) - end - 4 >= int(length.group(1))
        if b"transfer-encoding: chunked" in header:
            return buf.endswith(b"0\r\n\r\n")
        return False  # read to EOF


def read_answer(sock: socket.socket, head: bool, deadline: float) -> tuple[bytes, str | None]:
    buf = b""
    while not _complete(buf, head):
        left = deadline - time.monotonic()
        if left <= 0:
            return buf, "timeout"
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return buf, "timeout"
        except ssl.SSLError as exc:
            return buf, f"ssl:{exc.reason}"
        except OSError as exc:
            return buf, type(exc).__name__
        if not chunk:
            return buf, None if buf else "closed"
        buf += chunk
    return buf, None


def classify(buf: bytes, head_request: bool = False) -> Answer:
    while True:
        match = re.match(rb"HTTP/\d(?:\.\d)? (\d{3})", buf)
        if not match:
            return Answer(None, "none", "no HTTP answer" if buf else None)
        if match.group(1).startswith(b"1"):
            end = buf.find(b"\r\n\r\n")
            buf = buf[end + 4:]
            continue
        break
    status = int(match.group(1))
    end = buf.find(b"\r\n\r\n")
    head = buf[:end].decode("latin-1").lower() if end >= 0 else ""
    body = buf[end + 4:] if end >= 0 else b""
    length = re.search(r"\ncontent-length:\s*(\d+)", head)
    if length:
        body = body[:int(length.group(1))]  # a pipelined answer may follow
    return Answer(status, source_of(head, body, head_request))


def source_of(head: str, body: bytes, head_request: bool = False) -> str:
    """Who answered: mitmproxy's own error page, or upsproxy (and in what form)."""
    if "server: mitmproxy" in head and "text/html" in head:
        return "mitmproxy"
    if "application/json" in head:
        if head_request:
            return "upsproxy-json(HEAD)"
        try:
            data = json.loads(body)
        except ValueError:
            return "upsproxy-bad-json"
        if isinstance(data, dict) and isinstance(data.get("response"), dict) and \
                "errors" in data["response"]:
            return "upsproxy-envelope"
        if isinstance(data, dict) and "error" in data:
            return "upsproxy-control"
        return "upsproxy-json"
    if "text/html" in head:
        return "upsproxy-html"
    if not body:
        return "upsproxy-empty"
    return "other"


class Sender:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.tls = ssl.create_default_context(cafile=str(sandbox.ca))
        self.tls.set_alpn_protocols(["http/1.1"])
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.proxies = {"https": sandbox.proxy_url, "http": sandbox.proxy_url}
        self.session.verify = str(sandbox.ca)
        self.httpx = httpx.Client(proxy=sandbox.proxy_url, verify=self.tls, trust_env=False,
                                  timeout=10, follow_redirects=False)

    def close(self) -> None:
        self.session.close()
        self.httpx.close()

    def send(self, case: Case) -> Answer:
        if case.channel in ("requests", "httpx"):
            return self._client(case)
        port = self.sandbox.proxy_port if case.channel != "reverse" else \
            self.sandbox.reverse_port
        deadline = time.monotonic() + READ_TIMEOUT
        try:
            sock = socket.create_connection((LOOPBACK, port), timeout=READ_TIMEOUT)
        except OSError as exc:
            return Answer(error=f"connect:{type(exc).__name__}")
        try:
            if case.channel == "tunnel":
                sock.sendall(f"CONNECT {UPS_HOST}:443 HTTP/1.1\r\nHost: {UPS_HOST}:443\r\n\r\n"
                             .encode())
                reply = b""
                while b"\r\n\r\n" not in reply:
                    chunk = sock.recv(4096)
                    if not chunk:
                        return Answer(error="CONNECT: closed")
                    reply += chunk
                if not reply.startswith(b"HTTP/1.1 200"):
                    return Answer(error=f"CONNECT: {reply[:40]!r}")
                sock = self.tls.wrap_socket(sock, server_hostname=UPS_HOST)
            send_error = None
            try:
                sock.sendall(case.raw)
                if case.half_close:
                    sock.shutdown(socket.SHUT_WR)
            except OSError as exc:
                send_error = type(exc).__name__
            buf, error = read_answer(sock, case.head, deadline)
            answer = classify(buf, case.head)
            answer.error = answer.error or error or (
                send_error if answer.status is None else None)
            if answer.status is None and error:
                answer.error = f"{send_error or ''}{'/' if send_error else ''}{error}"
            return answer
        except (OSError, ssl.SSLError) as exc:
            return Answer(error=f"{type(exc).__name__}")
        finally:
            sock.close()

    def _client(self, case: Case) -> Answer:
        req = case.http
        assert req is not None
        url = f"https://{UPS_HOST}{req.target}"
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in req.headers}
        try:
            if case.channel == "requests":
                resp = self.session.request(req.method, url, headers=headers, data=req.body,
                                            allow_redirects=False, timeout=10)
                status, head, body = resp.status_code, resp.headers, resp.content
            else:
                resp2 = self.httpx.request(req.method, url, headers=headers, content=req.body)
                status, head, body = resp2.status_code, resp2.headers, resp2.content
        except (ValueError, UnicodeError, requests.exceptions.InvalidHeader,
                requests.exceptions.InvalidURL, httpx.InvalidURL, httpx.LocalProtocolError) \
                as exc:
            return Answer(source="client-refused", error=f"client:{type(exc).__name__}")
        except (requests.RequestException, httpx.HTTPError) as exc:
            return Answer(error=f"{case.channel}:{type(exc).__name__}")
        lines = "\n".join(f"{k}: {v}" for k, v in head.items()).lower()
        return Answer(status, source_of(lines, body, req.method == "HEAD"))


def control(sandbox: Sandbox, method: str, name: str, payload: object = None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection(LOOPBACK, sandbox.reverse_port, timeout=10)
    try:
        body = json.dumps(payload).encode() if payload is not None else None
        conn.request(method, f"/_upsproxy/{name}", body=body,
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"{}")
    finally:
        conn.close()


def fresh_grants(sandbox: Sandbox, rng: Random) -> Grants:
    """A real code, and real tokens from exchanging another code, for near-valid cases."""
    grants = Grants(verifier="".join(rng.choice(ASCII + "-._~") for _ in range(64)))
    grants.pkce = rng.random() < 0.5
    ask = {"client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI}
    challenge = {"code_challenge": s256_challenge(grants.verifier)} if grants.pkce else {}
    try:
        _, issued = control(sandbox, "POST", "codes", {**ask, **challenge})
        grants.code = issued.get("code", grants.code)
        _, other = control(sandbox, "POST", "codes", ask)
        conn = http.client.HTTPConnection(LOOPBACK, sandbox.reverse_port, timeout=10)
        basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        conn.request("POST", TOKEN, body=urlencode(
            {"grant_type": "authorization_code", "code": other.get("code", ""),
             "redirect_uri": REDIRECT_URI}),
            headers={"Content-Type": FORM, "Authorization": f"Basic {basic}"})
        resp = conn.getresponse()
        tokens = json.loads(resp.read() or b"{}")
        conn.close()
        grants.refresh = tokens.get("refresh_token", grants.refresh)
        grants.access = tokens.get("access_token", grants.access)
    except (OSError, ValueError, http.client.HTTPException):
        pass  # the sandbox's health is judged elsewhere; keep the placeholders
    return grants


# -- the run ------------------------------------------------------------------------------


@dataclass
class Report:
    sent: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    bad_5xx: list[str] = field(default_factory=list)
    ok_5xx: list[str] = field(default_factory=list)
    mitm_valid_4xx: Counter[str] = field(default_factory=Counter)
    health: list[tuple[str, bool, str]] = field(default_factory=list)
    faults_added: int = 0


def record(report: Report, case: Case, answer: Answer) -> None:
    report.sent += 1
    report.kinds[f"{case.kind}/{case.channel}"] += 1
    if answer.source == "client-refused":
        report.refused[answer.error or "?"] += 1
        return
    if answer.status is None:
        report.errors[f"{case.kind}/{case.channel} {answer.error or 'no answer'}"] += 1
        return
    report.statuses[f"{answer.status} {answer.source}"] += 1
    if answer.status >= 500:
        acceptable = answer.source == "mitmproxy" and not case.valid and answer.status == 502
        (report.ok_5xx if acceptable else report.bad_5xx).append(
            f"{answer.status} {answer.source}: {case.describe()}")
    elif answer.source == "mitmproxy" and case.valid:
        report.mitm_valid_4xx[f"{answer.status} {case.kind}"] += 1


def check_health(sandbox: Sandbox, report: Report, label: str, proxy: bool = False) -> bool:
    alive = sandbox.alive()
    ok, out = demo(sandbox, proxy) if alive else (False, "process is dead")
    report.health.append((label, ok and alive, "" if ok else out))
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=3000, help="requests to send (3000)")
    parser.add_argument("--seconds", type=float, default=70.0,
                        help="stop sending after this long (70)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (1)")
    parser.add_argument("--show", type=int, metavar="N", help="print case N and exit")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every case")
    args = parser.parse_args(argv)
    if args.show is not None:
        print(make_case(args.seed, args.show, Grants()).describe(limit=4000))
        return 0

    confdir = Path(tempfile.mkdtemp(prefix="upsproxy-fuzz-"))
    started = time.monotonic()
    sandbox = Sandbox(confdir)
    sender = Sender(sandbox)
    report = Report()
    grant_rng = Random(f"{args.seed}:grants")
    grants = fresh_grants(sandbox, grant_rng)
    print(f"upsproxy replay on proxy {sandbox.proxy_url}, reverse {sandbox.base_url}; "
          f"seed {args.seed}, up to {args.count} requests / {args.seconds:g} s", flush=True)
    try:
        check_health(sandbox, report, "before")
        deadline = time.monotonic() + args.seconds
        for index in range(args.count):
            if time.monotonic() > deadline or not sandbox.alive():
                break
            if index and index % 100 == 0:
                grants = fresh_grants(sandbox, grant_rng)
            case = make_case(args.seed, index, grants)
            answer = sender.send(case)
            record(report, case, answer)
            if args.verbose:
                print(f"{answer.status} {answer.source} {answer.error or ''} "
                      f"{case.describe(120)}", flush=True)
            if case.faults_post and answer.status == 200:
                report.faults_added += 1
                control(sandbox, "DELETE", "faults")  # nothing may be injected
            if (index + 1) % HEALTH_EVERY == 0:
                check_health(sandbox, report, f"after {index + 1}")
                print(f"  {index + 1} sent, {time.monotonic() - started:.0f} s", flush=True)
        if report.sent % HEALTH_EVERY:
            check_health(sandbox, report, f"after {report.sent}")
        check_health(sandbox, report, "end (proxy)", proxy=True)
    finally:
        sender.close()
        alive_at_end = sandbox.alive()
        code = sandbox.stop()
        shutil.rmtree(confdir, ignore_errors=True)
    log = sandbox.log()
    tracebacks = log.count("Traceback")
    internal = [line.strip() for line in log.splitlines() if "internal error" in line]
    logged_5xx = Counter(m.group(1) for m in re.finditer(r"-> (5\d\d \S+)", log))
    elapsed = time.monotonic() - started

    print(f"\nsent {report.sent} requests in {elapsed:.1f} s (seed {args.seed})")
    print("answers by status and source:")
    for key, n in sorted(report.statuses.items()):
        print(f"  {key:32} {n}")
    print(f"no answer / connection errors: {sum(report.errors.values())}")
    for key, n in report.errors.most_common():
        print(f"  {key:40} {n}")
    if report.refused:
        print("not sent (the client library refused the request): " +
              ", ".join(f"{k} x{n}" for k, n in report.refused.items()))
    print("cases by kind/channel: " + ", ".join(f"{k} {n}" for k, n in
                                                sorted(report.kinds.items())))
    if report.mitm_valid_4xx:
        print("mitmproxy's own 4xx to valid HTTP (framing limits, not upsproxy): " +
              ", ".join(f"{k} x{n}" for k, n in report.mitm_valid_4xx.items()))
    print(f"fault rules added by the fuzz (cleared at once): {report.faults_added}")
    print(f"acceptable 5xx (mitmproxy's own, invalid HTTP): {len(report.ok_5xx)}")
    print(f"UN-INJECTED 5xx: {len(report.bad_5xx)}")
    for line in report.bad_5xx[:15]:
        print("  " + line)
    print(f"5xx in upsproxy's exchange log: {dict(logged_5xx) or 'none'}")
    print(f"connections refused by --block-other-hosts: {log.count('other_host_blocked')} "
          "(the fuzz only ever names UPS hosts: expected 0)")
    print(f"'internal error' log lines: {len(internal)}")
    for line in sorted(set(internal))[:10]:
        print("  " + line)
    for label, ok, out in report.health:
        print(f"health check {label:14} {'ok' if ok else 'FAILED'}")
        if not ok:
            print("    " + out.replace("\n", "\n    "))
    print(f"process alive at the end: {alive_at_end}; exit code on SIGTERM: {code}; "
          f"Tracebacks in stderr: {tracebacks}")
    failed = (report.bad_5xx or internal or tracebacks or not alive_at_end or code != 0
              or not all(ok for _, ok, _ in report.health))
    print("FAIL" if failed else "PASS: no crash, no un-injected 5xx, healthy throughout")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
