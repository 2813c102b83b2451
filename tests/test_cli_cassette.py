"""`upsproxy cassette check|show|import` as a user (or a pre-commit hook) runs them."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from urllib.parse import urlencode

from recording import leaks
from test_cli import run

from upsproxy.cassette import load_cassette
from upsproxy.sandbox import default_cassette_path

JWT = "eyJhbGciOiJSUzM4NCJ9.eyJzdWIiOiJqYW5lQGV4YW1wbGUuY29tIn0.c2lnbmF0dXJlc2lnbmF0dXJl"
CLIENT, SECRET = "IMPORTCLIENT42", "imp0rt+secret/=value"
CODE = base64.b64encode(b"c" * 97).decode()
REFRESH = base64.b64encode(b"\xfb\xff" * 61).decode()


def test_check_passes_the_bundled_cassette():
    out = run("cassette", "check", str(default_cassette_path()))
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout == ""


def test_check_names_file_line_and_reason_never_the_value(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: 1\n"
        "interactions:\n"
        "  - kind: token\n"
        "    request:\n"
        "      method: POST\n"
        "      url: https://wwwcie.ups.com/security/v1/oauth/token\n"
        "      headers: {Authorization: Basic SU1QT1JUQ0xJRU5UNDI6c2VjcmV0}\n"
        "      body: {form: {grant_type: authorization_code, code: abcdefgh12345}}\n"
        "    response:\n"
        "      status: 200\n"
        f"      body: {{json: {{access_token: {JWT}, refresh_token: <<refresh_token:1>>}}}}\n")
    out = run("cassette", "check", str(bad), str(default_cassette_path()))
    assert out.returncode == 1
    lines = out.stdout.splitlines()
    assert f"{bad}:7: Basic credentials outside a placeholder" in lines
    assert f"{bad}:7: header 'Authorization' holds a value, not a placeholder" in lines
    assert f"{bad}:8: form field 'code' holds a value, not a placeholder" in lines
    assert f"{bad}:11: a JWT (eyJ...) outside a placeholder" in lines
    assert f"{bad}:11: JSON member 'access_token' holds a value, not a placeholder" in lines
    assert "SU1QT1JU" not in out.stdout and "abcdefgh" not in out.stdout and JWT not in out.stdout
    assert str(default_cassette_path()) not in out.stdout


def test_check_reports_schema_errors_with_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\ninteractions:\n  - kind: nope\n")
    out = run("cassette", "check", str(bad))
    assert out.returncode == 1 and f"{bad}:3: interaction 1: kind must be one of" in out.stdout


def test_check_finds_a_long_random_token(tmp_path):
    bad = tmp_path / "bad.yaml"
    token = "Zx9" + base64.b64encode(bytes(range(40, 80))).decode()
    bad.write_text("version: 1\ninteractions:\n  - kind: api\n    request:\n"
                   "      method: GET\n      url: https://wwwcie.ups.com/api/x\n"
                   f"      headers: {{x-api-key: {token}}}\n    response: {{status: 200}}\n")
    out = run("cassette", "check", str(bad))
    assert out.returncode == 1
    assert f"{bad}:7: a random-looking token of {len(token)} characters" in out.stdout


def test_show_prints_a_table():
    out = run("cassette", "show", str(default_cassette_path()))
    assert out.returncode == 0
    lines = out.stdout.splitlines()
    assert lines[2].split() == ["#", "kind", "method", "path", "status", "name"]
    assert lines[3].split() == ["1", "authorize", "GET", "/security/v1/oauth/authorize", "302"]
    assert "invalid_refresh_token" in lines[7]


def _har(path: Path) -> set[str]:
    basic = base64.b64encode(f"{CLIENT}:{SECRET}".encode()).decode()
    tokens = {"token_type": "Bearer", "client_id": CLIENT, "access_token": JWT,
              "refresh_token": REFRESH, "expires_in": "14399", "status": "approved"}
    entries = [
        {"request": {"method": "POST", "url": "https://wwwcie.ups.com/security/v1/oauth/token",
                     "headers": [{"name": "Authorization", "value": f"Basic {basic}"},
                                 {"name": "Content-Type",
                                  "value": "application/x-www-form-urlencoded"}],
                     "postData": {"mimeType": "application/x-www-form-urlencoded",
                                  "text": urlencode({"grant_type": "authorization_code",
                                                     "code": CODE,
                                                     "redirect_uri": "https://a.test/cb"})}},
         "response": {"status": 200,
                      "headers": [{"name": "Content-Type", "value": "application/json"}],
                      "content": {"mimeType": "application/json",
                                  "encoding": "base64",
                                  "text": base64.b64encode(json.dumps(tokens).encode()).decode()}}},
        {"request": {"method": "GET", "url": "https://example.org/other", "headers": []},
         "response": {"status": 200, "headers": [], "content": {"text": "hi"}}},
    ]
    path.write_text(json.dumps({"log": {"version": "1.2", "entries": entries}}))
    return {CLIENT, SECRET, basic, CODE, REFRESH, JWT}


def test_import_a_har_file(tmp_path):
    secrets = _har(tmp_path / "session.har")
    out = run("cassette", "import", str(tmp_path / "session.har"), "-o", str(tmp_path / "c.yaml"))
    assert out.returncode == 0, out.stderr
    assert "1 UPS interactions imported" in out.stderr and "1 other exchanges skipped" in out.stderr
    text = (tmp_path / "c.yaml").read_text()
    assert leaks(text, secrets) == []
    cassette = load_cassette(tmp_path / "c.yaml")
    assert cassette.meta["imported_from"] == "session.har"
    assert cassette.interactions[0].response.json()["refresh_token"] == "<<refresh_token:1>>"
    assert cassette.shapes["refresh_token"].length == 164
    # new refuses the existing file
    again = run("cassette", "import", str(tmp_path / "session.har"), "-o",
                str(tmp_path / "c.yaml"))
    assert again.returncode == 1 and "already exists" in again.stderr


def test_import_a_mitmproxy_flow_file(tmp_path):
    from mitmproxy import io
    from mitmproxy.test import tflow

    flow = tflow.tflow(resp=True)
    flow.request.url = "https://wwwcie.ups.com/security/v1/oauth/refresh"
    flow.request.method = "POST"
    flow.request.headers["Content-Type"] = "application/x-www-form-urlencoded"
    flow.request.headers["Authorization"] = "Basic " + base64.b64encode(
        f"{CLIENT}:{SECRET}".encode()).decode()
    flow.request.content = urlencode({"grant_type": "refresh_token",
                                      "refresh_token": REFRESH}).encode()
    flow.response.status_code = 400
    flow.response.headers["Content-Type"] = "application/json"
    flow.response.content = json.dumps(
        {"response": {"errors": [{"code": "10400", "message": "Invalid Refresh Token"}]}}).encode()
    with (tmp_path / "flows").open("wb") as handle:
        io.FlowWriter(handle).add(flow)
    out = run("cassette", "import", str(tmp_path / "flows"), "-o", str(tmp_path / "c.yaml"))
    assert out.returncode == 0, out.stderr
    assert leaks((tmp_path / "c.yaml").read_text(), {CLIENT, SECRET, REFRESH}) == []
    interaction = load_cassette(tmp_path / "c.yaml").interactions[0]
    assert interaction.kind == "refresh" and interaction.name == "invalid_refresh_token"


def test_import_refuses_what_is_no_flow_file(tmp_path):
    (tmp_path / "junk").write_bytes(b"\x00\x01 not flows")
    out = run("cassette", "import", str(tmp_path / "junk"), "-o", str(tmp_path / "c.yaml"))
    assert out.returncode == 1 and "Error:" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "c.yaml").exists()
