"""`upsproxy replay --state`: a restarted sandbox honours what apps saved."""

import signal

import requests
from factories import CLIENT, SECRET
from test_cli import Replay, run
from ups_client import UpsClient, envelope

TRACK = "/api/track/v1/details/1Z023E2X0214323462?locale=en_US&returnSignature=false"


def control(server, method, name, body=None):
    resp = requests.request(method, f"{server.base_url}/_upsproxy/{name}", json=body, timeout=10,
                            proxies={"http": "", "https": ""})
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_a_refresh_token_saved_before_a_restart_works_once_then_is_rotated(tmp_path):
    state = tmp_path / "state.db"
    server = Replay("--state", str(state), confdir=tmp_path / "conf")
    try:
        assert f"state     {state}" in server.banner
        ups = UpsClient(server.base_url, requests.Session())
        saved = ups.token(ups.code(verifier=None), basic=(CLIENT, SECRET)).json()
        control(server, "POST", "clock", {"advance": 3600})
    finally:
        code, log = server.stop()
    assert code == 0, log
    assert saved["refresh_token"] not in log and saved["access_token"].split(".")[2][:40] not in log

    server = Replay("--state", str(state), confdir=tmp_path / "conf")
    try:
        ups = UpsClient(server.base_url, requests.Session())
        # The clock is where the test left it, and the saved access token still works.
        assert 3_600_000 <= control(server, "GET", "clock")["offset_ms"] < 3_700_000
        bearer = {"Authorization": f"Bearer {saved['access_token']}"}
        assert ups.http.get(server.base_url + TRACK, headers=bearer, timeout=10).status_code == 200
        first = ups.refresh(saved["refresh_token"])
        assert first.status_code == 200 and first.json()["refresh_token"] != saved["refresh_token"]
        assert envelope(ups.refresh(saved["refresh_token"])) == (400, "10400",
                                                                 "Invalid Refresh Token")
        assert ups.refresh(first.json()["refresh_token"]).status_code == 200
    finally:
        code, log = server.stop()
    assert code == 0 and "refresh.token_rotated" in log, log


def test_a_state_file_that_is_not_upsproxys_stops_replay_with_a_clear_error(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database\n" * 50)
    out = run("replay", "--state", str(notes), "--confdir", str(tmp_path))
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert f"Error: {notes}: is not an upsproxy state file (not a SQLite database)" in out.stderr
    assert notes.read_text() == "not a database\n" * 50


def test_lifetime_flags_reach_the_token_answer(tmp_path):
    server = Replay("--access-ttl", "3600", "--refresh-ttl", "7200", confdir=tmp_path)
    try:
        ups = UpsClient(server.base_url, requests.Session())
        body = ups.pkce_token(ups.code()).json()
        assert (body["expires_in"], body["refresh_token_expires_in"]) == ("3600", "7200")
    finally:
        server.stop()
    out = run("replay", "--access-ttl", "0", "--confdir", str(tmp_path))
    assert out.returncode == 2 and "--access-ttl" in out.stderr


def test_a_killed_sandbox_loses_no_issued_token(tmp_path):
    """SIGKILL, no shutdown at all: every answered exchange was already committed."""
    state = tmp_path / "state.db"
    server = Replay("--state", str(state), confdir=tmp_path / "conf")
    try:
        ups = UpsClient(server.base_url, requests.Session())
        saved = [ups.token(ups.code(verifier=None), basic=(CLIENT, SECRET)).json()
                 for _ in range(3)]
    finally:
        server.proc.send_signal(signal.SIGKILL)
        server.proc.communicate(timeout=15)
    assert server.proc.returncode == -signal.SIGKILL
    server = Replay("--state", str(state), confdir=tmp_path / "conf")
    try:
        ups = UpsClient(server.base_url, requests.Session())
        assert [ups.refresh(s["refresh_token"]).status_code for s in saved] == [200] * 3
    finally:
        server.stop()
