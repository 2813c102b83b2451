"""Property-based: arbitrary secrets, in every place and encoding, never reach the file.

Each generated secret mixes the characters that break naive redaction
(``: @ + / = % " \\``, spaces, ``& ? # '``, non-ASCII) with a unique marker of
characters outside that alphabet, so a secret can only appear in the file by
leaking, never by coincidence with the cassette's own text.
"""

from __future__ import annotations

import base64
import json
import re
import tempfile
from pathlib import Path
from urllib.parse import urlencode

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from recording import spellings

from upsproxy.cassette import load_cassette
from upsproxy.cassette_check import scan
from upsproxy.errors import CassetteError
from upsproxy.messages import Request, Response
from upsproxy.recorder import Exchange, Recorder
from upsproxy.yamlfile import parse_text

ALPHABET = 'abcdef0123456789:@+/=%"\\ &?#\'.-_~!*()[]{}$é'
# tmpfs where there is one: fsync is the recorder's durability, not what is tested here.
SHM = "/dev/shm"  # noqa: S108 - only as the parent of a mkdtemp directory
SCRATCH = SHM if Path(SHM).is_dir() else None
FORM = ("content-type", "application/x-www-form-urlencoded")
JSON = ("Content-Type", "application/json")


@st.composite
def secret(draw, n, alphabet=ALPHABET, marker="ZQ{n}Z"):
    head = draw(st.text(alphabet, max_size=10))
    tail = draw(st.text(alphabet, max_size=10))
    return f"{head}{marker.format(n=n)}{tail}"


@st.composite
def sessions(draw):
    names = ("client_id", "client_secret", "state", "code", "verifier", "challenge",
             "access", "refresh", "cookie", "person")
    values = {}
    for n, name in enumerate(names):
        alphabet = ALPHABET
        if name == "client_id":
            alphabet = ALPHABET.replace(":", "")  # Basic splits at the first colon
        if name == "cookie":
            alphabet = ALPHABET.replace(";", "").replace(" ", "").replace(",", "")
        value = draw(secret(n, alphabet))
        if name in ("access", "cookie"):
            value = value.strip()  # header values have no outer whitespace on the wire
        values[name] = value
    return values


def exchanges(s: dict[str, str]) -> list[Exchange]:
    api = "https://wwwcie.ups.com"
    query = urlencode({"client_id": s["client_id"], "redirect_uri": "https://app.test/cb",
                       "response_type": "code", "state": s["state"],
                       "code_challenge": s["challenge"]})
    callback = "https://app.test/cb?" + urlencode({"code": s["code"], "state": s["state"]})
    basic = "Basic " + base64.b64encode(f"{s['client_id']}:{s['client_secret']}".encode()).decode()
    tokens = json.dumps({"token_type": "Bearer", "client_id": s["client_id"],
                         "access_token": s["access"], "refresh_token": s["refresh"],
                         "expires_in": "14399"}, ensure_ascii=False).encode()
    form = urlencode({"grant_type": "authorization_code", "code": s["code"],
                      "redirect_uri": "https://app.test/cb", "code_verifier": s["verifier"],
                      "client_id": s["client_id"]}).encode()
    refresh = urlencode({"grant_type": "refresh_token", "refresh_token": s["refresh"]}).encode()
    tracking = json.dumps({"trackResponse": {"shipment": [{"package": [{
        "deliveryInformation": {"receivedBy": s["person"], "location": "Front Door"}}]}]}})
    return [
        Exchange("authorize", f"{api}/security/v1/oauth/authorize?{query}",
                 Request("GET", "wwwcie.ups.com", "/security/v1/oauth/authorize", query),
                 Response(302, (("Location", callback),
                                ("Set-Cookie", f"sid={s['cookie']}; Path=/; Secure")))),
        Exchange("token", f"{api}/security/v1/oauth/token",
                 Request("POST", "wwwcie.ups.com", "/security/v1/oauth/token", "",
                         (FORM, ("authorization", basic), ("cookie", f"sid={s['cookie']}")),
                         form),
                 Response(200, (JSON,), tokens)),
        Exchange("refresh", f"{api}/security/v1/oauth/refresh",
                 Request("POST", "wwwcie.ups.com", "/security/v1/oauth/refresh", "",
                         (FORM, ("Authorization", basic)), refresh),
                 Response(200, (JSON,), tokens)),
        Exchange("api", f"{api}/api/track/v1/details/1Z0",
                 Request("GET", "wwwcie.ups.com", "/api/track/v1/details/1Z0", "",
                         (("AUTHORIZATION", f"Bearer {s['access']}"),)),
                 Response(200, (JSON,), tracking.encode())),
    ]


def record(path: Path, session: dict[str, str], mode: str) -> str:
    recorder = Recorder(path, mode=mode)
    recorder.open()
    for exchange in exchanges(session):
        recorder.record(exchange)
    return path.read_text()


def assert_no_secret(text: str, session: dict[str, str]) -> None:
    for name, value in session.items():
        for spelled in spellings(value):
            assert spelled not in text, f"{name} leaked"
    assert "ZQ" not in text  # no fragment of a secret either


def placeholder_of(pattern: str, text: str) -> list[str]:
    return re.findall(pattern, text)


@settings(max_examples=180, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sessions(), sessions())
def test_no_secret_reaches_the_file_and_one_value_is_one_placeholder(first, second):
    with tempfile.TemporaryDirectory(dir=SCRATCH) as tmp:
        path = Path(tmp) / "c.yaml"
        text = record(path, first, "new")
        assert_no_secret(text, first)
        cassette = load_cassette(path)
        authorize, token, refresh, api = cassette.interactions
        # The same value has one placeholder everywhere, both directions.
        code = re.search(r"code=(<<code:\d+>>)", authorize.response.header("location")).group(1)
        assert token.request.form()["code"] == code
        state = re.findall(r"state=(<<state:\d+>>)", authorize.request.url)
        assert state == re.findall(r"state=(<<state:\d+>>)", authorize.response.header("location"))
        issued = token.response.json()
        assert refresh.request.form()["refresh_token"] == issued["refresh_token"]
        assert api.request.header("authorization") == f"Bearer {issued['access_token']}"
        assert token.request.form()["client_id"] == issued["client_id"]
        assert token.request.header("authorization") == refresh.request.header("authorization")
        cookie = authorize.response.header("set-cookie").split(";")[0]
        assert token.request.header("cookie") == cookie

        # Append: earlier interactions unchanged, new values numbered after them.
        appended = record(path, second, "append")
        assert_no_secret(appended, first)
        assert_no_secret(appended, second)
        old = text.split("interactions:\n", 1)[1]
        assert appended.split("interactions:\n", 1)[1].startswith(old)
        again = load_cassette(path)
        assert len(again.interactions) == 8
        assert again.interactions[5].request.form()["code"] == "<<code:2>>"


def _spell(value: str, how: str) -> str:
    from urllib.parse import quote, quote_plus

    if how == "raw":
        return value
    if how == "percent":
        return quote(value, safe="")
    if how == "percent-lower":
        return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), quote(value, safe=""))
    if how == "plus":
        return quote_plus(value)
    if how == "json":
        return json.dumps(value)[1:-1]
    return "Basic " + base64.b64encode(f"someclient:{value}".encode()).decode()


@settings(max_examples=300, deadline=None)
@given(value=secret(1, marker="ZQ{n}ZQZ"),  # at least MIN_SECRET characters: guarded
       how=st.sampled_from(["raw", "percent", "percent-lower", "plus",
                                             "json", "basic"]),
       where=st.sampled_from(["url", "header", "text", "json", "key"]))
def test_the_leak_guard_finds_a_secret_in_any_spelling_anywhere(value, how, where):
    from upsproxy.cassette_io import dump_cassette
    from upsproxy.errors import LeakError
    from upsproxy.leak import check_text

    spelled = _spell(value, how)
    request = {"method": "GET", "url": "https://wwwcie.ups.com/api/x"}
    response = {"status": 200}
    if where == "url":
        request["url"] += "?q=" + spelled
    elif where == "header":
        request["headers"] = {"x-thing": spelled}
    elif where == "text":
        response["body"] = {"text": f"line one\nthe value: {spelled}\n"}
    elif where == "json":
        response["body"] = {"json": {"deep": [{"value": spelled}]}}
    else:
        response["body"] = {"json": {spelled: "x"}}
    text = dump_cassette({"version": 1, "interactions": [
        {"kind": "api", "request": request, "response": response}]})
    try:
        check_text(text, {value: "client_secret"}, "c.yaml")
    except LeakError as exc:
        assert exc.kind == "client_secret" and value not in str(exc)
        assert spelled not in str(exc)
    else:
        raise AssertionError(f"not found: {how} in {where}")


# -- append: one value, one placeholder, across recording sessions --------------------------

KEY = bytes(range(32))
REUSABLE = ("state", "code", "verifier", "challenge", "access", "refresh", "cookie", "person")


def identities(interactions, session: dict[str, str], refreshed: str) -> list[tuple[str, str]]:
    """(raw value, its placeholder) at every place the exchanges of ``session`` put one."""
    authorize, token, refresh, api = interactions
    issued = token.response.json()
    out = [
        (session["client_id"], token.request.form()["client_id"]),
        (session["client_id"], issued["client_id"]),
        (base64.b64encode(f"{session['client_id']}:{session['client_secret']}".encode())
         .decode(), token.request.header("authorization").removeprefix("Basic ")),
        (session["code"], token.request.form()["code"]),
        (session["verifier"], token.request.form()["code_verifier"]),
        (session["state"], re.search(r"state=(<<[^>]+>>)", authorize.request.url).group(1)),
        (session["challenge"],
         re.search(r"code_challenge=(<<[^>]+>>)", authorize.request.url).group(1)),
        (session["access"], issued["access_token"]),
        (session["refresh"], issued["refresh_token"]),
        (refreshed, refresh.request.form()["refresh_token"]),
        (session["cookie"], token.request.header("cookie").removeprefix("sid=")),
        (session["person"], api.response.json()["trackResponse"]["shipment"][0]["package"][0]
         ["deliveryInformation"]["receivedBy"]),
    ]
    return [(raw, text) for raw, text in out if raw]


def record_keyed(path: Path, session: dict[str, str], mode: str,
                 refresh_with: str | None = None) -> str:
    recorder = Recorder(path, mode=mode, key=KEY)
    recorder.open()
    for exchange in exchanges(session):
        if exchange.kind == "refresh" and refresh_with is not None:
            body = urlencode({"grant_type": "refresh_token",
                              "refresh_token": refresh_with}).encode()
            exchange = Exchange(exchange.kind, exchange.url,
                                Request(exchange.request.method, exchange.request.host,
                                        exchange.request.path, "", exchange.request.headers,
                                        body), exchange.response)
        recorder.record(exchange)
    return path.read_text()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sessions(), sessions(), st.sets(st.sampled_from(REUSABLE)))
def test_an_append_session_gives_values_seen_before_their_placeholders(first, fresh, reused):
    # The same app (client id and secret) comes back, refreshes the token the first
    # session was issued, and may meet any other value of the first session again.
    second = {**fresh, "client_id": first["client_id"],
              "client_secret": first["client_secret"],
              **{name: first[name] for name in reused}}
    with tempfile.TemporaryDirectory(dir=SCRATCH) as tmp:
        path = Path(tmp) / "c.yaml"
        text = record_keyed(path, first, "new")
        appended = record_keyed(path, second, "append", refresh_with=first["refresh"])
        assert_no_secret(appended, first)
        assert_no_secret(appended, second)
        assert appended.split("interactions:\n", 1)[1].startswith(
            text.split("interactions:\n", 1)[1])
        cassette = load_cassette(path)
        pairs = (identities(cassette.interactions[:4], first, first["refresh"])
                 + identities(cassette.interactions[4:], second, first["refresh"]))
        # One value, one placeholder; one placeholder, one value: across both sessions.
        by_value: dict[str, set[str]] = {}
        by_placeholder: dict[str, set[str]] = {}
        for raw, placeholder in pairs:
            assert re.fullmatch(r"<<[a-z_]+:\d+>>", placeholder), placeholder
            by_value.setdefault(raw, set()).add(placeholder)
            by_placeholder.setdefault(placeholder, set()).add(raw)
        assert all(len(p) == 1 for p in by_value.values())
        assert all(len(v) == 1 for v in by_placeholder.values())
        token = cassette.interactions[5]
        assert token.request.form()["client_id"] == "<<client_id:1>>"
        assert token.request.header("authorization") == "Basic <<basic:1>>"
        assert cassette.interactions[6].request.form()["refresh_token"] == \
            cassette.interactions[1].response.json()["refresh_token"]
        # The fingerprints trip neither the leak guard (it ran on every write) nor
        # `cassette check`, and hold nothing of a secret (assert_no_secret above).
        head = appended[:appended.index("\ninteractions:")].count("\n") + 1
        findings = scan(appended, parse_text(appended, str(path), CassetteError))
        assert [f for f in findings if f.line is None or f.line <= head] == []
