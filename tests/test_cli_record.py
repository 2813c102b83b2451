"""`upsproxy record` as a user runs it, and addons/record.py under stock mitmdump."""

from __future__ import annotations

import base64
import json
import queue
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests
from children import UPSPROXY
from fake_ups import CLIENT, SECRET
from recording import RecordProc, leaks, proxied_app
from test_cli import run

from upsproxy.cassette import load_cassette
from upsproxy.fingerprint import KEY_FILE, Fingerprinter

ROOT = Path(__file__).resolve().parent.parent
MITMDUMP = Path(sys.executable).parent / "mitmdump"


def test_banner_and_clean_stop(fake, tmp_path):
    recorder = RecordProc(tmp_path / "c.yaml", upstream=fake.url, upstream_ca=fake.ca_path,
                          confdir=tmp_path / "conf")
    assert f"record: forwarding UPS traffic to {fake.url}" in recorder.banner
    assert f"cassette  {tmp_path / 'c.yaml'}   (mode new" in recorder.banner
    assert "HTTPS_PROXY=" + recorder.proxy_url in recorder.banner
    recorder.proc.send_signal(signal.SIGINT)
    rest = recorder.proc.communicate(timeout=15)[1]
    assert recorder.proc.returncode == 0 and "Traceback" not in rest
    assert f"upsproxy stopped: 0 interactions recorded in {tmp_path / 'c.yaml'}." in rest
    assert load_cassette(tmp_path / "c.yaml").interactions == []


def test_new_refuses_an_existing_file(tmp_path):
    (tmp_path / "c.yaml").write_text("version: 1\ninteractions: []\n")
    out = run("record", "--cassette", str(tmp_path / "c.yaml"), "--confdir", str(tmp_path))
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert f"{tmp_path / 'c.yaml'}: already exists" in out.stderr
    assert "--mode append" in out.stderr


def test_append_refuses_a_broken_cassette(tmp_path):
    (tmp_path / "c.yaml").write_text("version: 1\ninteractions:\n  - kind: nope\n")
    out = run("record", "--cassette", str(tmp_path / "c.yaml"), "--mode", "append",
              "--confdir", str(tmp_path))
    assert out.returncode == 1 and f"{tmp_path / 'c.yaml'}:3:" in out.stderr


@pytest.mark.parametrize("upstream", ["http://wwwcie.ups.com", "https://x.test/path", "moon"])
def test_bad_upstream_is_a_usage_error(tmp_path, upstream):
    out = run("record", "--upstream", upstream, "--cassette", str(tmp_path / "c.yaml"))
    assert out.returncode == 2 and "--upstream" in out.stderr
    assert not (tmp_path / "c.yaml").exists()


def test_default_cassette_path_is_under_cassettes(fake, tmp_path):
    proc = subprocess.Popen(
        [*UPSPROXY, "record", "--upstream", fake.url, "--upstream-ca", str(fake.ca_path),
         "--listen", "127.0.0.1:0", "--reverse-listen", "127.0.0.1:0",
         "--confdir", str(tmp_path / "conf")],
        cwd=tmp_path, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    banner = ""
    while "Ctrl-C" not in banner:
        line = proc.stderr.readline()
        assert line, banner
        banner += line
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=15)
    assert re.search(r"cassette  cassettes/recorded-\d{8}-\d{6}\.yaml", banner), banner
    assert len(list((tmp_path / "cassettes").glob("recorded-*.yaml"))) == 1


def test_append_continues_numbering_and_keeps_the_old_interactions(fake, tmp_path):
    path = tmp_path / "c.yaml"
    first = RecordProc(path, upstream=fake.url, upstream_ca=fake.ca_path,
                       confdir=tmp_path / "conf")
    app = proxied_app(first)
    app.token_basic(app.code(state="first-state-0001"))
    assert first.stop()[0] == 0
    before = path.read_text()
    second = RecordProc(path, upstream=fake.url, upstream_ca=fake.ca_path,
                        confdir=tmp_path / "conf", extra=("--mode", "append"))
    app2 = proxied_app(second)
    app2.token_basic(app2.code(state="second-state-0002"))
    code, log = second.stop()
    assert code == 0 and "interactions recorded" in log
    after = path.read_text()
    old_items = before.split("interactions:\n", 1)[1]
    assert after.split("interactions:\n", 1)[1].startswith(old_items)
    assert "<<code:1>>" in old_items and "<<code:2>>" not in old_items
    assert "<<code:2>>" in after and "<<state:2>>" in after
    assert leaks(after, fake.secrets | app.seen | app2.seen) == []
    assert "updated_at" in load_cassette(path).meta


def test_config_redact_rules_extend_and_relax_the_defaults(fake, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("redact:\n  fields: [location]\n  keep: [receivedBy]\n"
                      "  paths: ['trackResponse.shipment[*].package[*].packageCount']\n"
                      "  patterns: ['SPRING\\w+']\n")
    recorder = RecordProc(tmp_path / "c.yaml", upstream=fake.url, upstream_ca=fake.ca_path,
                          confdir=tmp_path / "conf", extra=("--config", str(config)))
    app = proxied_app(recorder)
    access = app.token_basic(app.code(state="configured-state")).json()["access_token"]
    assert app.track(access).status_code == 200
    assert recorder.stop()[0] == 0
    package = load_cassette(tmp_path / "c.yaml").interactions[-1].response.json()[
        "trackResponse"]["shipment"][0]["package"][0]
    assert package["deliveryInformation"]["receivedBy"] == "JANE Q ROE"  # relaxed
    assert re.fullmatch(r"<<personal:\d+>>", package["deliveryInformation"]["location"])
    assert re.fullmatch(r"<<personal:\d+>>", package["packageCount"])  # by path
    assert re.fullmatch(r"<<personal:\d+>>", package["packageAddress"][0]["address"]["city"])


def test_a_bad_redact_rule_names_file_and_line(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("redact:\n  patterns: ['(']\n")
    out = run("record", "--config", str(config), "--cassette", str(tmp_path / "c.yaml"))
    assert out.returncode == 1 and f"{config}:2: redact.patterns:" in out.stderr


@pytest.mark.skipif(not MITMDUMP.exists(), reason="mitmdump is not installed")
def test_the_record_addon_under_stock_mitmdump(fake, tmp_path):
    path = tmp_path / "dump.yaml"
    proc = subprocess.Popen(
        [str(MITMDUMP), "-s", str(ROOT / "addons" / "record.py"),
         "--set", f"confdir={tmp_path / 'conf'}", "--set", "connection_strategy=lazy",
         "--set", f"upsproxy_cassette={path}", "--set", f"upsproxy_upstream={fake.url}",
         "--set", f"ssl_verify_upstream_trusted_ca={fake.ca_path}", "--set", "flow_detail=0",
         "--set", "upsproxy_fault=api:blocked_merchant",
         "--mode", f"reverse:{fake.url}@127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()
    output, deadline = "", time.monotonic() + 30
    try:
        while (match := re.search(r"listening at 127\.0\.0\.1:(\d+)", output)) is None:
            output += lines.get(timeout=max(0.1, deadline - time.monotonic()))
        base = f"http://127.0.0.1:{match.group(1)}"
        resp = requests.post(f"{base}/security/v1/oauth/refresh", timeout=10,
                             data={"grant_type": "refresh_token", "refresh_token": "x" * 40},
                             auth=(CLIENT, "wrong-secret-value"))
        assert resp.status_code == 401
        blocked = requests.get(f"{base}/api/track/v1/details/1Z", timeout=10)  # the fault option
        assert blocked.status_code == 403 and "/api/track/v1/details/1Z" not in fake.hits
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        proc.stdout.close()
    interaction = load_cassette(path).interactions[0]
    assert interaction.kind == "refresh" and interaction.name == "invalid_client"
    assert "wrong-secret-value" not in path.read_text()
    # The recording key lives in mitmproxy's confdir option, as replay's JWT key does.
    key = tmp_path / "conf" / KEY_FILE
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert "<<client_id:1>>" in load_cassette(path).meta["fingerprints"][
        Fingerprinter(key.read_bytes()).key_id]


def test_an_unwritable_cassette_is_a_clear_message(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    out = run("record", "--cassette", str(tmp_path / "file" / "c.yaml"),
              "--confdir", str(tmp_path))
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert f"{tmp_path / 'file' / 'c.yaml'}: cannot write:" in out.stderr


@pytest.mark.parametrize("command", [["record"], ["cassette"], ["cassette", "check"],
                                     ["cassette", "show"], ["cassette", "import"]])
def test_help_texts(command):
    out = run(*command, "--help")
    assert out.returncode == 0 and "Usage: upsproxy " + " ".join(command) in out.stdout


def test_the_cli_offers_exactly_the_recorder_modes():
    from upsproxy import cli_record, recorder

    assert cli_record.MODES == recorder.MODES


def _har(path: Path, code: str, refresh: str, sent_refresh: str | None = None) -> set[str]:
    """A HAR file: one token exchange (or refresh, with ``sent_refresh``) by CLIENT."""
    basic = base64.b64encode(f"{CLIENT}:{SECRET}".encode()).decode()
    kind = "refresh" if sent_refresh else "token"
    form = ({"grant_type": "refresh_token", "refresh_token": sent_refresh} if sent_refresh
            else {"grant_type": "authorization_code", "code": code,
                  "redirect_uri": "https://a.test/cb"})
    tokens = {"token_type": "Bearer", "client_id": CLIENT, "access_token": "at-" + code,
              "refresh_token": refresh, "expires_in": "14399", "status": "approved"}
    entry = {
        "request": {"method": "POST", "url": f"https://wwwcie.ups.com/security/v1/oauth/{kind}",
                    "headers": [{"name": "Authorization", "value": f"Basic {basic}"},
                                {"name": "Content-Type",
                                 "value": "application/x-www-form-urlencoded"}],
                    "postData": {"mimeType": "application/x-www-form-urlencoded",
                                 "text": urlencode(form)}},
        "response": {"status": 200,
                     "headers": [{"name": "Content-Type", "value": "application/json"}],
                     "content": {"mimeType": "application/json", "text": json.dumps(tokens)}}}
    path.write_text(json.dumps({"log": {"version": "1.2", "entries": [entry]}}))
    return {CLIENT, SECRET, basic, code, refresh, "at-" + code}


def test_import_append_recognises_values_with_the_same_confdir_only(tmp_path):
    out, conf = tmp_path / "c.yaml", tmp_path / "conf"
    old_refresh = "rt-" + "R" * 40 + "+/=="
    seen = _har(tmp_path / "one.har", "CODE-ONE-1234", old_refresh)
    first = run("cassette", "import", str(tmp_path / "one.har"), "-o", str(out),
                "--confdir", str(conf))
    assert first.returncode == 0, first.stderr
    assert stat.S_IMODE((conf / KEY_FILE).stat().st_mode) == 0o600
    seen |= _har(tmp_path / "two.har", "CODE-TWO-1234", "rt-" + "S" * 40,
                 sent_refresh=old_refresh)
    second = run("cassette", "import", str(tmp_path / "two.har"), "-o", str(out),
                 "--mode", "append", "--confdir", str(conf))
    assert second.returncode == 0 and "another recording key" not in second.stderr
    one, two = load_cassette(out).interactions
    assert one.request.header("authorization") == two.request.header("authorization")
    assert two.request.form()["refresh_token"] == one.response.json()["refresh_token"]
    assert one.response.json()["client_id"] == two.response.json()["client_id"]
    # Another machine (another confdir, so another key): new placeholders, said once.
    seen |= _har(tmp_path / "three.har", "CODE-THREE-12", "rt-" + "T" * 40)
    other = run("cassette", "import", str(tmp_path / "three.har"), "-o", str(out),
                "--mode", "append", "--confdir", str(tmp_path / "elsewhere"))
    assert other.returncode == 0, other.stderr
    assert other.stderr.count("another recording key") == 1
    third = load_cassette(out).interactions[2]
    assert third.response.json()["client_id"] == "<<client_id:2>>"
    assert leaks(out.read_text(), seen) == [] and leaks(other.stderr, seen) == []
    assert (conf / KEY_FILE).read_bytes().hex() not in out.read_text()
    check = run("cassette", "check", str(out))
    assert check.returncode == 0, check.stdout


def test_import_help_names_the_confdir():
    out = run("cassette", "import", "--help")
    assert out.returncode == 0 and "--confdir" in out.stdout and "recording key" in out.stdout
