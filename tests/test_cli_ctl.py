"""`upsproxy ctl`, run as a user runs it, against a running `upsproxy replay`."""

import json
import socket

import pytest
import requests
from factories import CALLBACK, CLIENT, SECRET, VERIFIER
from test_cli import Replay, run
from ups_client import UpsClient, envelope

from upsproxy.cli_ctl import parse_duration, parse_time
from upsproxy.pkce import s256_challenge


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    replay = Replay(confdir=tmp_path_factory.mktemp("conf"))
    yield replay
    replay.stop()


def ctl(server, *args):
    return run("ctl", "--url", server.base_url, *args)


def test_clock_show_advance_set_and_reset(server):
    shown = json.loads(ctl(server, "clock").stdout)
    out = ctl(server, "clock", "advance", "4h")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["offset_ms"] - shown["offset_ms"] in range(14_400_000,
                                                                             14_401_000)
    out = ctl(server, "clock", "set", "2030-01-01T00:00:00Z")
    assert json.loads(out.stdout)["now"].startswith("2030-01-01T00:00:0")
    assert abs(json.loads(ctl(server, "clock", "reset").stdout)["offset_ms"]) < 1000
    bad = ctl(server, "clock", "advance", "soon")
    assert bad.returncode == 2 and "not a duration" in bad.stderr


def test_code_state_exchanges_reset(server):
    out = ctl(server, "code", "--client-id", CLIENT, "--redirect-uri", CALLBACK,
              "--code-challenge", s256_challenge(VERIFIER))
    assert out.returncode == 0, out.stderr
    code = out.stdout.strip()
    ups = UpsClient(server.base_url, requests.Session())
    body = ups.pkce_token(code).json()
    state = json.loads(ctl(server, "state").stdout)
    assert [t["client_id"] for t in state["refresh_tokens"]] == [CLIENT]
    assert body["refresh_token"] not in json.dumps(state) and code not in json.dumps(state)
    lines = ctl(server, "exchanges", "--limit", "1").stdout.splitlines()
    assert len(lines) == 1 and "/security/v1/oauth/token -> 200 token.issued_pkce" in lines[0]
    assert f"client={CLIENT}" in lines[0] and code not in lines[0]
    assert json.loads(ctl(server, "reset").stdout)["reset"] is True
    assert envelope(ups.refresh(body["refresh_token"], basic=(CLIENT, SECRET)))[2] == \
        "Invalid Refresh Token"
    assert json.loads(ctl(server, "jwks").stdout)["keys"][0]["kty"] == "RSA"


def test_refusals_and_an_unreachable_sandbox_are_clear(server):
    out = ctl(server, "code", "--client-id", CLIENT, "--redirect-uri", "not-a-url")
    assert out.returncode == 1
    assert "the sandbox refused POST codes: HTTP 400: redirect_uri must be" in out.stderr
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    out = run("ctl", "--url", f"http://127.0.0.1:{port}", "state")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert f"cannot reach the sandbox at http://127.0.0.1:{port}" in out.stderr
    assert "UPSPROXY_URL" in out.stderr
    assert run("ctl", "--url", "file:///etc/passwd", "state").returncode == 2


def test_durations_and_times():
    assert [parse_duration(x) for x in ("90", "30s", "15m", "4h", "2d", "1.5h")] == \
        [90, 30, 900, 14400, 172800, 5400]
    assert parse_time("1800000000000") == 1_800_000_000_000
    assert parse_time("2027-01-15T08:00:00Z") == parse_time("2027-01-15T08:00:00") == \
        1_800_000_000_000
    assert parse_time("2027-01-15T09:00:00+01:00") == 1_800_000_000_000
    for bad in ("4 hours", "h", ""):
        with pytest.raises(ValueError):
            parse_duration(bad)
    with pytest.raises(ValueError):
        parse_time("next tuesday")


@pytest.mark.parametrize("command", ["state", "clock", "code", "reset", "exchanges", "jwks"])
def test_help_texts(command):
    out = run("ctl", command, "--help")
    assert out.returncode == 0 and f"Usage: upsproxy ctl {command}" in out.stdout


def test_faults_add_list_fire_and_clear(server, tmp_path):
    rules = tmp_path / "faults.yaml"
    rules.write_text("- name: slow-api\n  endpoint: api\n  delay_ms: 10\n")
    out = ctl(server, "faults", "add", "token:rate_limited:times=1",
              '{"name": "teapot", "endpoint": "refresh", "status": 418}', "--file", str(rules))
    assert out.returncode == 0, out.stderr
    assert [r["name"] for r in json.loads(out.stdout)["rules"]] == ["slow-api", "rule2", "teapot"]
    ups = UpsClient(server.base_url, requests.Session())
    assert ups.token("not-a-code", basic=(CLIENT, SECRET)).status_code == 429
    assert ups.refresh("not-a-token").status_code == 418
    listed = {r["name"]: r["fired"] for r in json.loads(ctl(server, "faults").stdout)["rules"]}
    assert listed == {"slow-api": 0, "rule2": 1, "teapot": 1}
    assert json.loads(ctl(server, "faults", "clear", "--name", "teapot").stdout)["removed"] == 1
    assert ups.refresh("not-a-token").status_code == 400
    bad = ctl(server, "faults", "add", "token:no_such_preset")
    assert bad.returncode == 1 and "no_such_preset" in bad.stderr
    assert ctl(server, "faults", "add").returncode == 2
    assert json.loads(ctl(server, "faults", "clear").stdout)["removed"] == 2
    assert json.loads(ctl(server, "faults", "list").stdout)["rules"] == []
