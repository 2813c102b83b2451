"""Redaction soak: thousands of generated recording sessions, no secret on disk (DESIGN §7).

Target: "zero secrets in cassettes over thousands of generated sessions". This
drives the pure core recorder in-process (``upsproxy.recorder.Recorder`` fed
``Exchange`` objects, as ``tests/test_record_properties.py`` does, no proxy),
``--sessions`` times (default 2000, at most ``--seconds``), from a seeded
generator (``--seed``): a run is reproducible, and ``--show N`` prints the
secrets and exchanges of session N.

Each session is an app's OAuth flow as UPS would answer it, with random
variations: authorize (Basic or PKCE, approve or deny, sometimes through the
sign-in page with a username and password), token (success or UPS error;
Basic, PKCE or client_secret in the form; form or JSON body), refresh with
rotation (or a public client, or an error), a Tracking call. Every secret
(client id and secret, state, code, verifier, challenge, access, id and refresh
tokens, cookies, the sign-in form's user and password, personal data in API
answers) mixes ``: @ + / = % " \\``, spaces, ``& ? # '``, quotes and non-ASCII
(accents, a snowman, an emoji, a zero-width space) around a marker unique to
the session (``ZQ<session>x<n>Z``), and is placed in every encoding the wire
allows: query strings (``+`` or ``%20``, upper- or lower-case hex), redirect
``Location`` URLs (also URL-inside-URL, encoded twice), form bodies, JSON with
and without ``\\u`` escapes, Basic auth (base64), Bearer, Cookie/Set-Cookie, and
echoed where nothing structural names it (a response header, a text body, a
JSON key, an HTML page).

Sessions are written to a temporary cassette in mode ``new``; about half are
followed by a second session on the same file in mode ``append`` and some by
one in mode ``overwrite``. After each exchange and at the end of each session
the file is checked:

- no secret of the session in any spelling (this script's own list: raw,
  JSON both ways, YAML double/single-quoted, HTML-escaped, percent-encoded
  with several safe sets, ``+``-encoded, lower-case hex, encoded twice, base64
  of the value and of ``client_id:secret``; plus ``upsproxy.redact.encodings``
  and ``upsproxy.leak.yaml_spellings``), and no ``ZQ`` marker fragment in the
  text or in any string of the parsed YAML once URL-, HTML-, JSON- or
  base64-decoded;
- one value, one placeholder: every place the flow put one secret (a code in
  the redirect and in the token form, a refresh token in the answer and in the
  refresh form, ...) holds the same ``<<kind:N>>``, distinct secrets hold
  distinct placeholders, and an appended session never reuses a number;
- the file loads with ``upsproxy.cassette.load_cassette``; an append keeps
  the earlier interactions byte for byte.

A ``LeakError`` from the recorder's own guard is not a leak (nothing was
written; the exchange is dropped) and is counted; so is an
``UnrecordableError`` (JSON nested too deep to redact: left out), after which
the session must go on recording. Any other exception from the recorder is a
crash. Exit 1 on any leak, placeholder mismatch, unloadable
file or crash.

    python scripts/soak_redaction.py [--sessions 2000] [--seconds 85] [--seed 1]
    python scripts/soak_redaction.py --show 17
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import html
import json
import re
import shutil
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from random import Random
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, unquote, unquote_plus, urlencode, urlsplit

import yaml

from upsproxy.cassette import Interaction, load_cassette
from upsproxy.errors import LeakError, UnrecordableError
from upsproxy.leak import yaml_spellings
from upsproxy.messages import Request, Response
from upsproxy.recorder import Exchange, Recorder
from upsproxy.redact import PLACEHOLDER, encodings

UPS = "https://wwwcie.ups.com"
HOST = "wwwcie.ups.com"
CALLBACK = "https://app.example.test/cb"
# No upper-case letters: the marker's Z and Q never occur by chance.
ALPHABET = 'abcdef0123456789:@+/=%"\\ &?#\'.-_~!*()[]{}$,;<>é ü☃😀\u200b'
HEADER_UNSAFE = "\r\n"
SCRATCH = "/dev/shm"  # noqa: S108 - only as the parent of a mkdtemp directory
FORM = "application/x-www-form-urlencoded"
JSON_TYPE = "application/json"


# -- generation ---------------------------------------------------------------------------


def secret(rng: Random, marker: str, alphabet: str = ALPHABET) -> str:
    def part() -> str:
        n = rng.choice([0, 1, 3, 8, 16]) if rng.random() > 0.005 else rng.randint(100, 600)
        return "".join(rng.choice(alphabet) for _ in range(n))

    return f"{part()}{marker}{part()}"


NAMES = ("client_id", "client_secret", "state", "code", "verifier", "challenge", "access",
         "id_token", "refresh", "access2", "refresh2", "cookie", "cookie2", "person", "user",
         "password", "txn")


def session_secrets(rng: Random, sid: int) -> dict[str, str]:
    values = {}
    for n, name in enumerate(NAMES):
        alphabet = ALPHABET
        if name == "client_id":
            alphabet = ALPHABET.replace(":", "")  # Basic splits at the first colon
        if name.startswith("cookie"):
            alphabet = "".join(c for c in ALPHABET if c not in ";, \"\\\u200b")
        value = secret(rng, f"ZQ{sid}x{n}Z", alphabet)
        if name in ("access", "access2", "cookie", "cookie2", "txn"):
            value = value.strip()  # header values have no outer whitespace on the wire
        values[name] = value
    return values


@dataclass
class Place:
    """Where a secret went in interaction ``n`` (of this session): how to read it back."""

    name: str
    n: int
    how: str
    key: str = ""


@dataclass
class Session:
    sid: int
    secrets: dict[str, str]
    exchanges: list[Exchange] = field(default_factory=list)
    places: list[Place] = field(default_factory=list)
    deep_json: bool = False

    def add(self, exchange: Exchange, *places: tuple[str, str, str]) -> None:
        n = len(self.exchanges)
        # Request header names are lower-case (upsproxy.messages.Request's contract,
        # as mitm.to_request and the HAR reader build them); response names keep case.
        request = replace(exchange.request, headers=tuple(
            (k.lower(), v) for k, v in exchange.request.headers))
        self.exchanges.append(replace(exchange, request=request))
        self.places += [Place(name, n, how, key) for name, how, key in places]


def case(rng: Random, name: str) -> str:
    return rng.choice([name, name.lower(), name.upper(), name.title()])


def query(rng: Random, pairs: list[tuple[str, str]]) -> str:
    text = urlencode(pairs, quote_via=rng.choice([quote_plus, quote]))
    if rng.random() < 0.3:
        text = re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), text)
    return text


def jdump(rng: Random, data: object) -> bytes:
    return json.dumps(data, ensure_ascii=rng.random() < 0.5,
                      indent=rng.choice([None, None, 2])).encode()


def basic(client_id: str, client_secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()


def build(rng: Random, sid: int, deep_json_rate: float) -> Session:
    s = session_secrets(rng, sid)
    sess = Session(sid, s)
    pkce = rng.random() < 0.4
    via_login = rng.random() < 0.3
    deny = rng.random() < 0.08
    json_type = (case(rng, "Content-Type"), JSON_TYPE)
    form_type = (case(rng, "content-type"), rng.choice([FORM, FORM + "; charset=UTF-8"]))

    # authorize (and perhaps the sign-in page)
    pairs = [("client_id", s["client_id"]), ("redirect_uri", CALLBACK), ("response_type", "code"),
             ("state", s["state"]), ("scope", "read")]
    if pkce:
        pairs.append(("code_challenge", s["challenge"]))
    rng.shuffle(pairs)
    q = query(rng, pairs)
    callback_pairs = [("error", "access_denied")] if deny else [("code", s["code"])]
    callback_pairs.append(("state", s["state"]))
    callback = CALLBACK + "?" + query(rng, callback_pairs)
    places = [("client_id", "query", "client_id"), ("state", "query", "state")]
    if pkce:
        places.append(("challenge", "query", "code_challenge"))
    cookie = f"sid={s['cookie']}; Path=/; Secure; HttpOnly"
    if via_login:
        signin = "https://www.ups.com/lasso/signin?" + query(rng, [
            ("client_id", s["client_id"]), ("state", s["state"]), ("upsproxy_txn", s["txn"]),
            ("returnto", f"{UPS}/security/v1/oauth/authorize?{q}")])
        sess.add(Exchange("authorize", f"{UPS}/security/v1/oauth/authorize?{q}",
                          Request("GET", HOST, "/security/v1/oauth/authorize", q),
                          Response(302, ((case(rng, "Location"), signin),
                                         (case(rng, "Set-Cookie"), cookie),
                                         ("appname", "My App"), ("displayname", "My App")))),
                 *places, ("state", "location", "state"), ("txn", "location", "upsproxy_txn"))
        login_form = urlencode({"username": s["user"], "password": s["password"],
                                "upsproxy_txn": s["txn"], "decision": "approve"}).encode()
        page = f"<html><body>Welcome {html.escape(s['user'])} <a href='{html.escape(callback)}'>" \
               f"continue</a></body></html>".encode()
        sess.add(Exchange("login", "https://www.ups.com/lasso/signin",
                          Request("POST", "www.ups.com", "/lasso/signin", "",
                                  (form_type, ("Cookie", f"sid={s['cookie']}")), login_form),
                          Response(302, (("Location", callback),
                                         ("Content-Type", "text/html; charset=utf-8")),
                                   page)),
                 ("txn", "form", "upsproxy_txn"), ("cookie", "cookie", "sid"),
                 ("state", "location", "state"),
                 *([] if deny else [("code", "location", "code")]))
    else:
        sess.add(Exchange("authorize", f"{UPS}/security/v1/oauth/authorize?{q}",
                          Request("GET", HOST, "/security/v1/oauth/authorize", q),
                          Response(302, ((case(rng, "Location"), callback),
                                         (case(rng, "Set-Cookie"), cookie)))),
                 *places, ("state", "location", "state"),
                 *([] if deny else [("code", "location", "code")]))
    if deny:
        return sess

    # token
    form = [("grant_type", "authorization_code"), ("code", s["code"]),
            ("redirect_uri", CALLBACK)]
    headers: list[tuple[str, str]] = [form_type, (case(rng, "Cookie"),
                                                  f"lang=en; sid={s['cookie']}")]
    places = [("code", "form", "code"), ("cookie", "cookie", "sid")]
    auth = rng.choice(["basic", "basic", "secret_in_form"]) if not pkce else "pkce"
    if auth == "basic":
        headers.append((case(rng, "Authorization"), basic(s["client_id"], s["client_secret"])))
        places.append(("basic", "header", "authorization"))
    elif auth == "secret_in_form":
        form += [("client_id", s["client_id"]), ("client_secret", s["client_secret"])]
        places += [("client_id", "form", "client_id"), ("client_secret", "form", "client_secret")]
    else:
        form += [("client_id", s["client_id"]), ("code_verifier", s["verifier"])]
        places += [("client_id", "form", "client_id"), ("verifier", "form", "code_verifier")]
    rng.shuffle(form)
    if rng.random() < 0.1:  # a JSON body to an OAuth endpoint: a form in disguise
        headers[0] = json_type
        body = jdump(rng, dict(form))
        places = [(n, "reqjson" if how == "form" else how, k) for n, how, k in places]
    else:
        body = query(rng, form).encode()
    failed = rng.random() < 0.15
    if failed:
        answer = Response(400, (json_type,), jdump(rng, {"response": {"errors": [
            {"code": "10400", "message": "Invalid Authorization Code"}]}}))
        answer_places: list[tuple[str, str, str]] = []
    else:
        tokens = {"token_type": "Bearer", "issued_at": "1700000000000",
                  "client_id": s["client_id"], "access_token": s["access"], "scope": "read",
                  "expires_in": "14399", "refresh_count": "0", "status": "approved",
                  "refresh_token": s["refresh"], "refresh_token_expires_in": "5183999"}
        if rng.random() < 0.3:
            tokens["id_token"] = s["id_token"]
        answer = Response(200, (json_type, ("Set-Cookie", f"sid2={s['cookie2']}; Path=/")),
                          jdump(rng, tokens))
        answer_places = [("access", "json", "access_token"), ("refresh", "json", "refresh_token"),
                         ("client_id", "json", "client_id"), ("cookie2", "setcookie", "sid2")]
    sess.add(Exchange("token", f"{UPS}/security/v1/oauth/token",
                      Request("POST", HOST, "/security/v1/oauth/token", "", tuple(headers), body),
                      answer), *places, *answer_places)
    if failed:
        return sess

    # refresh, with rotation
    public = rng.random() < 0.15
    form = [("grant_type", "refresh_token"), ("refresh_token", s["refresh"])]
    headers = [form_type]
    places = [("refresh", "form", "refresh_token")]
    if public:
        form.append(("client_id", s["client_id"]))
        places.append(("client_id", "form", "client_id"))
    else:
        headers.append((case(rng, "Authorization"), basic(s["client_id"], s["client_secret"])))
        places.append(("basic", "header", "authorization"))
    refused = rng.random() < 0.1
    if refused:
        answer = Response(400, (json_type,), jdump(rng, {"response": {"errors": [
            {"code": "10400", "message": "Invalid Refresh Token"}]}}))
        answer_places = []
    else:
        answer = Response(200, (json_type,), jdump(rng, {
            "refresh_token_expires_in": "5183999", "refresh_token_status": "approved",
            "token_type": "Bearer", "client_id": s["client_id"], "access_token": s["access2"],
            "refresh_token": s["refresh2"], "expires_in": "14399", "refresh_count": "1"}))
        answer_places = [("access2", "json", "access_token"), ("refresh2", "json", "refresh_token"),
                         ("client_id", "json", "client_id")]
    sess.add(Exchange("refresh", f"{UPS}/security/v1/oauth/refresh",
                      Request("POST", HOST, "/security/v1/oauth/refresh", "", tuple(headers),
                              query(rng, form).encode()), answer), *places, *answer_places)

    # a Tracking call, with echoes nothing structural names
    bearer_name = "access2" if not refused else "access"
    tracking: dict[str, Any] = {"trackResponse": {"shipment": [{"package": [{
        "deliveryInformation": {"receivedBy": s["person"], "location": "Front Door"}}]}]}}
    echo = rng.choice(["none", "none", "header", "text", "key", "field", "html"])
    resp_headers: list[tuple[str, str]] = [json_type]
    content = jdump(rng, tracking)
    # Only a value the session already sent where the structure names it can be known
    # as a secret; a PKCE app never sends its client secret.
    echoed = rng.choice(["refresh", "state", "code", bearer_name,
                         *(["client_secret"] if auth != "pkce" else [])])
    if echo == "header":
        resp_headers.append(("X-Debug", s[echoed].replace("\r", "").replace("\n", "")))
    elif echo == "text":
        resp_headers = [("Content-Type", "text/plain; charset=utf-8")]
        content = f"debug: {s[echoed]} / {quote(s[echoed], safe='')}".encode()
    elif echo == "key":
        tracking["trackResponse"][s[echoed]] = "x"
        content = jdump(rng, tracking)
    elif echo == "field":
        tracking["trackResponse"]["note"] = f"seen {s[echoed]} and {quote_plus(s[echoed])}"
        content = jdump(rng, tracking)
    elif echo == "html":
        resp_headers = [("Content-Type", "text/html")]
        content = f"<p>{html.escape(s[echoed])}</p>".encode()
    if deep_json_rate and rng.random() < deep_json_rate:
        sess.deep_json = True
        depth = rng.randint(400, 900)
        content = b'{"trackResponse":' + b"[" * depth + b"]" * depth + b"}"
        resp_headers = [json_type]
    api_query = query(rng, [("locale", "en_US"), ("returnSignature", "false")])
    sess.add(Exchange("api", f"{UPS}/api/track/v1/details/1Z023E2X0214323462?{api_query}",
                      Request("GET", HOST, "/api/track/v1/details/1Z023E2X0214323462", api_query,
                              ((case(rng, "Authorization"), f"Bearer {s[bearer_name]}"),
                               ("transId", s["txn"]))),
                      Response(200, tuple(resp_headers), content)),
             (bearer_name, "bearer", "authorization"))
    return sess


# -- checking -----------------------------------------------------------------------------


_YAML_NAMED = {"\0": "\\0", "\a": "\\a", "\b": "\\b", "\t": "\\t", "\n": "\\n",
               "\v": "\\v", "\f": "\\f", "\r": "\\r", "\x1b": "\\e", "\x85": "\\N",
               "\xa0": "\\_", "\u2028": "\\L", "\u2029": "\\P", '"': '\\"',
               "\\": "\\\\"}


def _yaml_escape(c: str, unicode: bool) -> str:
    """One character inside a YAML double-quoted scalar, by PyYAML's emitter rules
    (written out here, so the check does not trust the code it checks)."""
    o = ord(c)
    plain = 0x20 <= o <= 0x7E or (unicode and (0xA0 <= o <= 0xD7FF or 0xE000 <= o <= 0xFFFD))
    if plain and c not in '"\\\x85\u2028\u2029\ufeff':
        return c
    if c in _YAML_NAMED:
        return _YAML_NAMED[c]
    return f"\\x{o:02X}" if o <= 0xFF else f"\\u{o:04X}" if o <= 0xFFFF else f"\\U{o:08X}"


@lru_cache(maxsize=256)
def spellings(value: str, client_id: str) -> frozenset[str]:
    """Every way this script can think of to write ``value``, plus upsproxy's own lists."""
    out = {value, html.escape(value), html.escape(value, quote=False),
           json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1],
           base64.b64encode(value.encode()).decode(),
           base64.b64encode(f"{client_id}:{value}".encode()).decode()}
    out.add(value.replace("'", "''"))  # YAML single-quoted
    out.add("".join(_yaml_escape(c, False) for c in value))  # YAML double-quoted
    out.add("".join(_yaml_escape(c, True) for c in value))
    for safe in ("", "/", ":@", "!$&'()*+,;=:@/?~"):
        for text in (quote(value, safe=safe), quote_plus(value, safe=safe)):
            out.add(text)
            out.add(re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), text))
            out.add(quote(text, safe=""))
    out |= set(encodings(value)) | set(yaml_spellings(value))
    return frozenset(s for s in out if len(s) >= 4)


_B64 = re.compile(r"[A-Za-z0-9+/_-]{8,}={0,2}")


def decoded_forms(text: str) -> set[str]:
    forms = {text}
    for _ in range(2):
        for item in list(forms):
            forms |= {unquote(item), unquote_plus(item), html.unescape(item)}
            if "\\" in item:
                with contextlib.suppress(ValueError):
                    forms.add(json.loads(f'"{item}"'))
    for item in list(forms):
        for word in _B64.findall(item):
            for decode in (base64.b64decode, base64.urlsafe_b64decode):
                try:
                    forms.add(decode(word + "=" * (-len(word) % 4)).decode("utf-8", "replace"))
                except (binascii.Error, ValueError):
                    continue
    return forms


def strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in (*strings(k), *strings(v))]
    if isinstance(node, list):
        return [s for v in node for s in strings(v)]
    return []


def leaks(text: str, secrets: dict[str, str]) -> list[str]:
    """Names of leaked secrets (never their values), and marker fragments."""
    found = []
    client_id = secrets["client_id"]
    for name, value in secrets.items():
        if any(s in text for s in spellings(value, client_id)):
            found.append(f"{name} (spelled)")
    if "ZQ" in text:
        found.append("a ZQ marker fragment in the text")
    try:
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506
    except yaml.YAMLError:
        return [*found, "the file is not YAML"]
    for string in strings(data):
        if any("ZQ" in form for form in decoded_forms(string)):
            found.append("a ZQ marker fragment in a decoded string")
            break
    return found


def read_back(interaction: Interaction, place: Place) -> str | None:
    req, resp = interaction.request, interaction.response
    if place.how == "query":
        return dict(parse_qsl(urlsplit(req.url).query)).get(place.key)
    if place.how == "location":
        return dict(parse_qsl(urlsplit(resp.header("location") or "").query)).get(place.key)
    if place.how == "form":
        return (req.form() or {}).get(place.key)
    if place.how == "reqjson":
        return (req.json() or {}).get(place.key)
    if place.how == "json":
        return (resp.json() or {}).get(place.key)
    if place.how in ("header", "bearer"):
        value = req.header(place.key) or ""
        return value.split(" ", 1)[1] if " " in value else value
    if place.how in ("cookie", "setcookie"):
        value = (req.header("cookie") if place.how == "cookie" else
                 (resp.header("set-cookie") or "").split(";")[0]) or ""
        pairs = dict(p.strip().partition("=")[::2] for p in value.split(";") if "=" in p)
        return pairs.get(place.key)
    raise ValueError(place.how)


def placeholder_problems(interactions: list[Interaction], sess: Session,
                         index_of: dict[int, int]) -> tuple[list[str], set[str]]:
    """One value -> one placeholder, distinct values -> distinct placeholders."""
    problems: list[str] = []
    seen: dict[str, set[str]] = {}
    for place in sess.places:
        if place.n not in index_of:
            continue  # dropped by the leak guard
        got = read_back(interactions[index_of[place.n]], place)
        if got is None:
            problems.append(f"{place.name} missing at interaction {place.n} ({place.how} "
                            f"{place.key})")
            continue
        if not PLACEHOLDER.fullmatch(got):
            problems.append(f"{place.name} at interaction {place.n} ({place.how} {place.key}) "
                            "is not a placeholder")
            continue
        seen.setdefault(place.name, set()).add(got)
    owner: dict[str, str] = {}
    for name, found in seen.items():
        if len(found) > 1:
            problems.append(f"{name} has {len(found)} placeholders: {sorted(found)}")
        for text in found:
            if text in owner and owner[text] != name and not (
                    {name, owner[text]} <= {"client_id"}):
                problems.append(f"{name} and {owner[text]} share {text}")
            owner[text] = name
    return problems, {p for found in seen.values() for p in found}


# -- running ------------------------------------------------------------------------------


@dataclass
class Tally:
    sessions: int = 0
    files: int = 0
    modes: Counter[str] = field(default_factory=Counter)
    exchanges: int = 0
    recorded: int = 0
    guard_drops: Counter[str] = field(default_factory=Counter)
    secrets_checked: int = 0
    places_checked: int = 0
    loads: int = 0
    leaks: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    load_errors: list[str] = field(default_factory=list)
    crashes: Counter[str] = field(default_factory=Counter)
    crash_examples: list[str] = field(default_factory=list)


def run_session(path: Path, mode: str, sess: Session, tally: Tally,
                check_each: bool) -> set[str] | None:
    """Record one session into ``path``; returns its placeholders (None on a crash)."""
    before = path.read_text() if mode == "append" else ""
    recorder = Recorder(path, mode=mode, now=lambda: 1_700_000_000.0)
    recorder.open()
    index_of: dict[int, int] = {}
    tally.modes[mode] += 1
    tally.sessions += 1
    crashed = False
    for n, exchange in enumerate(sess.exchanges):
        tally.exchanges += 1
        try:
            number = recorder.record(exchange)
        except LeakError as exc:
            tally.guard_drops[f"{exchange.kind}: {exc.kind} ({exc.encoding})"] += 1
            continue
        except UnrecordableError:
            tally.guard_drops[f"{exchange.kind}: JSON nested too deep (left out)"] += 1
            continue
        except Exception as exc:  # noqa: BLE001 - a crash of the recorder is a finding
            where = traceback.extract_tb(exc.__traceback__)[-1]
            tally.crashes[f"{type(exc).__name__} at {Path(where.filename).name}:{where.lineno}"
                          f" ({exchange.kind}{', deep JSON' if sess.deep_json else ''})"] += 1
            if len(tally.crash_examples) < 3:
                tally.crash_examples.append(f"session {sess.sid} exchange {n}: "
                                            + "".join(traceback.format_exception_only(exc)))
            crashed = True
            break
        tally.recorded += 1
        index_of[n] = number - 1
        if check_each:
            found = leaks(path.read_text(), sess.secrets)
            if found:
                tally.leaks.append(f"session {sess.sid} after exchange {n} ({mode}): {found}")
    text = path.read_text()
    tally.secrets_checked += len(sess.secrets)
    found = leaks(text, sess.secrets)
    if found:
        tally.leaks.append(f"session {sess.sid} ({mode}): {found}")
    try:
        cassette = load_cassette(path)
        tally.loads += 1
    except Exception as exc:  # noqa: BLE001 - any failure to load is a finding
        tally.load_errors.append(f"session {sess.sid} ({mode}): {type(exc).__name__}: {exc}")
        return None
    if mode == "append" and not text.split("interactions:\n", 1)[-1].startswith(
            before.split("interactions:\n", 1)[-1]):
        tally.mismatches.append(f"session {sess.sid}: append changed earlier interactions")
    problems, placeholders = placeholder_problems(cassette.interactions, sess, index_of)
    tally.places_checked += sum(1 for p in sess.places if p.n in index_of)
    tally.mismatches += [f"session {sess.sid} ({mode}): {p}" for p in problems]
    return None if crashed else placeholders


def show(seed: int, sid: int, deep_json_rate: float) -> None:
    sess = build(Random(f"{seed}:{sid}"), sid, deep_json_rate)
    for name, value in sess.secrets.items():
        print(f"{name:14} {value!r}")
    for exchange in sess.exchanges:
        print(f"\n{exchange.kind} {exchange.request.method} {exchange.url}")
        for k, v in exchange.request.headers:
            print(f"  > {k}: {v}")
        if exchange.request.body:
            print(f"  > {exchange.request.body[:300]!r}")
        print(f"  < {exchange.response.status}")
        for k, v in exchange.response.headers:
            print(f"  < {k}: {v}")
        print(f"  < {exchange.response.body[:300]!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=2000, help="sessions to record (2000)")
    parser.add_argument("--seconds", type=float, default=85.0, help="stop after this long (85)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (1)")
    parser.add_argument("--deep-json", type=float, default=0.005, metavar="RATE",
                        help="share of sessions whose API answer is JSON nested 400-900 deep "
                             "(0.005; 0 to leave them out)")
    parser.add_argument("--check-each", action="store_true",
                        help="also scan the file after every exchange (slower)")
    parser.add_argument("--show", type=int, metavar="N", help="print session N and exit")
    args = parser.parse_args(argv)
    if args.show is not None:
        show(args.seed, args.show, args.deep_json)
        return 0

    scratch = Path(tempfile.mkdtemp(prefix="upsproxy-soak-",
                                    dir=SCRATCH if Path(SCRATCH).is_dir() else None))
    tally = Tally()
    started = time.monotonic()
    deadline = started + args.seconds
    sid = 0
    try:
        while sid < args.sessions and time.monotonic() < deadline:
            path = scratch / f"c{tally.files}.yaml"
            tally.files += 1
            rng = Random(f"{args.seed}:file{tally.files}")
            sess = build(Random(f"{args.seed}:{sid}"), sid, args.deep_json)
            first = run_session(path, "new", sess, tally, args.check_each)
            sid += 1
            follow = rng.random()
            if first is not None and sid < args.sessions and follow < 0.6:
                mode = "append" if follow < 0.5 else "overwrite"
                sess2 = build(Random(f"{args.seed}:{sid}"), sid, args.deep_json)
                second = run_session(path, mode, sess2, tally, args.check_each)
                sid += 1
                if mode == "append" and second is not None and first & second:
                    tally.mismatches.append(f"session {sid - 1}: an appended session reused "
                                            f"{sorted(first & second)[:3]}")
                # the earlier session's secrets must still be absent after the second
                found = leaks(path.read_text(), sess.secrets)
                if found:
                    tally.leaks.append(f"session {sess.sid} after {mode}: {found}")
            path.unlink(missing_ok=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    elapsed = time.monotonic() - started

    capped = " (stopped at the --seconds cap)" if tally.sessions < args.sessions else ""
    print(f"{tally.sessions} sessions ({dict(tally.modes)}) in {tally.files} cassettes, "
          f"{elapsed:.1f} s, seed {args.seed}{capped}")
    print(f"exchanges: {tally.exchanges}, recorded: {tally.recorded}, dropped by the leak "
          f"guard: {sum(tally.guard_drops.values())}")
    for key, n in tally.guard_drops.most_common(8):
        print(f"  guard: {key:60} {n}")
    print(f"secrets checked: {tally.secrets_checked} (each in its spellings and as marker "
          f"fragments), placeholder places checked: {tally.places_checked}")
    print(f"files loaded with load_cassette: {tally.loads}")
    sections: list[tuple[str, list[str]]] = [("LEAKS", tally.leaks),
                                             ("PLACEHOLDER MISMATCHES", tally.mismatches),
                                             ("LOAD ERRORS", tally.load_errors)]
    for title, items in sections:
        print(f"{title}: {len(items)}")
        for item in items[:10]:
            print("  " + item)
    print(f"RECORDER CRASHES: {sum(tally.crashes.values())}")
    for key, n in tally.crashes.most_common():
        print(f"  {key} x{n}")
    for example in tally.crash_examples:
        print("  e.g. " + example.strip()[:300])
    failed = tally.leaks or tally.mismatches or tally.load_errors or tally.crashes
    print("FAIL" if failed else "PASS: no secret reached a cassette")
    return 1 if failed else 0



if __name__ == "__main__":
    sys.exit(main())
