"""The replay addon loaded into stock mitmdump with `-s`, as mitmproxy users do."""

import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from factories import CALLBACK, CLIENT, SECRET
from ups_client import UpsClient

ROOT = Path(__file__).resolve().parent.parent
MITMDUMP = Path(sys.executable).parent / "mitmdump"


@pytest.fixture
def mitmdump(tmp_path):
    """mitmdump -s addons/replay.py on a free reverse port; yields its base URL."""
    config = tmp_path / "upsproxy.yaml"
    config.write_text(f"apps:\n  - client_id: {CLIENT}\n    client_secret: {SECRET}\n"
                      f"    redirect_uris: [{CALLBACK}]\n")
    faults = tmp_path / "faults.yaml"
    faults.write_text("- endpoint: refresh\n  preset: invalid_refresh_token\n  after: 1\n")
    proc = subprocess.Popen(
        [str(MITMDUMP), "-s", str(ROOT / "addons" / "replay.py"),
         "--set", f"confdir={tmp_path}", "--set", "connection_strategy=lazy",
         "--set", f"upsproxy_config={config}", "--set", "flow_detail=0",
         "--set", "upsproxy_access_ttl=120", "--set", f"upsproxy_state={tmp_path / 'state.db'}",
         "--set", f"upsproxy_faults={faults}", "--set", "upsproxy_fault=api:rate_limited",
         "--mode", "reverse:https://wwwcie.ups.com@127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()
    output, deadline = "", time.monotonic() + 30
    while (match := re.search(r"listening at 127\.0\.0\.1:(\d+)", output)) is None:
        try:
            output += lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            proc.kill()
            proc.wait()
            pytest.fail(f"mitmdump did not start within 30 s: {output}")
    yield f"http://127.0.0.1:{match.group(1)}"
    assert (tmp_path / "state.db").stat().st_size > 0  # upsproxy_state
    proc.terminate()
    proc.wait(timeout=15)
    proc.stdout.close()


@pytest.mark.skipif(not MITMDUMP.exists(), reason="mitmdump is not installed")
def test_full_flow_through_stock_mitmdump(mitmdump):
    ups = UpsClient(mitmdump, requests.Session())
    resp = ups.token(ups.code(verifier=None), basic=(CLIENT, SECRET))
    assert resp.status_code == 200 and next(iter(resp.json())) == "refresh_token_expires_in"
    assert resp.json()["expires_in"] == "120"  # upsproxy_access_ttl
    refreshed = ups.refresh(resp.json()["refresh_token"])
    assert refreshed.status_code == 200
    # The fault options were applied: the second refresh fails, API calls are limited.
    assert ups.refresh(refreshed.json()["refresh_token"]).status_code == 400
    assert ups.http.get(f"{mitmdump}/api/track/v1/details/1Z", timeout=10).status_code == 429
    # The config file was applied: an unregistered client is refused.
    assert ups.authorize(client_id="STRANGER").status_code == 401


@pytest.mark.skipif(not MITMDUMP.exists(), reason="mitmdump is not installed")
def test_a_bad_cassette_option_is_refused_by_mitmdump(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 3\ninteractions: []\n")
    out = subprocess.run(
        [str(MITMDUMP), "-s", str(ROOT / "addons" / "replay.py"), "--set",
         f"upsproxy_cassette={bad}", "--set", f"confdir={tmp_path}", "--mode",
         "reverse:https://wwwcie.ups.com@127.0.0.1:0"],
        capture_output=True, text=True, timeout=30)
    assert out.returncode != 0
    assert f"{bad}:1: unknown cassette version 3" in out.stdout + out.stderr


@pytest.mark.skipif(not MITMDUMP.exists(), reason="mitmdump is not installed")
def test_a_negative_lifetime_option_is_refused_by_mitmdump(tmp_path):
    out = subprocess.run(
        [str(MITMDUMP), "-s", str(ROOT / "addons" / "replay.py"), "--set",
         "upsproxy_access_ttl=-5", "--set", f"confdir={tmp_path}", "--mode",
         "reverse:https://wwwcie.ups.com@127.0.0.1:0"],
        capture_output=True, text=True, timeout=30)
    assert out.returncode != 0
    assert "upsproxy_access_ttl must be seconds" in out.stdout + out.stderr
