"""Faults while recording: a rule that answers does so instead of UPS (nothing sent,
nothing recorded); one that only delays or re-heads lets UPS answer and records it."""

from __future__ import annotations

import json
import time

import pytest
import requests
from fake_ups import CALLBACK, CLIENT, SECRET
from recording import RecordProc

from upsproxy.cassette import load_cassette

TOKEN = "/security/v1/oauth/token"
FORM = {"grant_type": "authorization_code", "code": "not-a-code", "redirect_uri": CALLBACK}


def start(fake, tmp_path, *faults: str) -> RecordProc:
    extra = tuple(arg for spec in faults for arg in ("--fault", spec))
    return RecordProc(tmp_path / "rec.yaml", upstream=fake.url, upstream_ca=fake.ca_path,
                      confdir=tmp_path / "conf", extra=extra)


def kinds(path) -> list[tuple[str, int]]:
    if not path.exists():
        return []
    return [(i.kind, i.response.status) for i in load_cassette(path).interactions]


def test_a_preset_answers_instead_of_ups_and_is_not_recorded(fake, tmp_path):
    rec = start(fake, tmp_path, "token:rate_limited:times=1")
    try:
        assert "faults    1 rule(s)" in rec.banner
        url = rec.base_url + TOKEN
        limited = requests.post(url, data=FORM, auth=(CLIENT, SECRET), timeout=10)
        assert limited.status_code == 429
        assert limited.json() == {"response": {"errors": [{"code": "10429",
                                                           "message": "Too Many Requests"}]}}
        assert TOKEN not in fake.hits  # UPS never saw it
        real = requests.post(url, data=FORM, auth=(CLIENT, SECRET), timeout=10)
        assert real.status_code == 400 and fake.hits.count(TOKEN) == 1  # then UPS answers
    finally:
        code, log = rec.stop()
    assert code == 0 and "fault:rule1 POST /security/v1/oauth/token -> 429" in log
    assert kinds(rec.cassette) == [("token", 400)]  # only what UPS said


def test_a_delay_lets_ups_answer_and_records_it(fake, tmp_path):
    rec = start(fake, tmp_path, "token:delay_ms=600")
    try:
        began = time.monotonic()
        slow = requests.post(rec.base_url + TOKEN, data=FORM, auth=(CLIENT, SECRET), timeout=10)
        assert time.monotonic() - began >= 0.6
        assert slow.status_code == 400 and fake.hits == [TOKEN]
    finally:
        rec.stop()
    assert kinds(rec.cassette) == [("token", 400)]


def test_rules_added_through_the_control_api_reset_the_connection(fake, tmp_path):
    rec = start(fake, tmp_path)
    try:
        added = requests.post(f"{rec.base_url}/_upsproxy/faults", timeout=10,
                              data=json.dumps({"endpoint": "token", "action": "reset"}))
        assert added.status_code == 200 and added.json()["rules"][0]["name"] == "rule1"
        with pytest.raises(requests.ConnectionError):
            requests.post(rec.base_url + TOKEN, data=FORM, auth=(CLIENT, SECRET), timeout=10)
        listed = requests.get(f"{rec.base_url}/_upsproxy/faults", timeout=10).json()
        assert listed["rules"][0]["fired"] == 1
        assert requests.delete(f"{rec.base_url}/_upsproxy/faults", timeout=10).ok
        after = requests.post(rec.base_url + TOKEN, data=FORM, auth=(CLIENT, SECRET), timeout=10)
        assert after.status_code == 400  # the recorder keeps serving, UPS answers again
    finally:
        rec.stop()
    assert fake.hits == [TOKEN]  # the control calls and the reset never went upstream
    assert kinds(rec.cassette) == [("token", 400)]


def test_a_bad_fault_is_refused_before_recording_starts(fake, tmp_path):
    import subprocess

    from children import UPSPROXY

    out = subprocess.run([*UPSPROXY, "record", "--cassette", str(tmp_path / "r.yaml"),
                          "--upstream", fake.url, "--fault", "token:no_such_preset"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "no_such_preset" in out.stderr
    assert not (tmp_path / "r.yaml").exists()
