"""Record against real UPS CIE (skipped by default: no network here).

Run with ``pytest --run-online tests/test_online_record.py`` and
UPSPROXY_CIE_CLIENT_ID, UPSPROXY_CIE_CLIENT_SECRET and UPSPROXY_CIE_REFRESH_TOKEN
(a refresh token of that app, from one human sign-in) in the environment. It
refreshes through `upsproxy record --upstream cie`, calls the tracking API with
the new token and checks no credential reached the cassette or the log. UPS
rotates refresh tokens: the one given is spent afterwards (the new one is not
shown anywhere, by design).
"""

from __future__ import annotations

import os
import re

import pytest
import requests
from recording import NoRedirects, RecordProc, leaks

from upsproxy.cassette import load_cassette

pytestmark = pytest.mark.online

ENV = ("UPSPROXY_CIE_CLIENT_ID", "UPSPROXY_CIE_CLIENT_SECRET", "UPSPROXY_CIE_REFRESH_TOKEN")


@pytest.fixture
def credentials():
    values = [os.environ.get(name) for name in ENV]
    if not all(values):
        pytest.skip(f"set {', '.join(ENV)} to record against real CIE")
    return values


def test_record_a_refresh_and_a_tracking_call_against_cie(credentials, tmp_path):
    client_id, secret, refresh_token = credentials
    recorder = RecordProc(tmp_path / "cie.yaml", upstream="cie", upstream_ca=None,
                          confdir=tmp_path / "conf")
    try:
        session = requests.Session()
        session.trust_env = False
        session.proxies = {"https": recorder.proxy_url}
        session.verify = str(recorder.ca)
        http = NoRedirects(session)
        refreshed = http.post("https://wwwcie.ups.com/security/v1/oauth/refresh",
                              data={"grant_type": "refresh_token",
                                    "refresh_token": refresh_token},
                              auth=(client_id, secret))
        assert refreshed.status_code == 200, refreshed.text
        tokens = refreshed.json()
        tracked = http.get("https://wwwcie.ups.com/api/track/v1/details/1Z12345E0205271688",
                           headers={"Authorization": f"Bearer {tokens['access_token']}",
                                    "transId": "upsproxy-online-1",
                                    "transactionSrc": "upsproxy"})
        assert tracked.status_code in (200, 400, 404), tracked.text
    finally:
        code, log = recorder.stop()
    assert code == 0, log
    text = (tmp_path / "cie.yaml").read_text()
    secrets = {client_id, secret, refresh_token, tokens["access_token"], tokens["refresh_token"]}
    assert leaks(text, secrets) == [] and leaks(log, secrets) == []
    cassette = load_cassette(tmp_path / "cie.yaml")
    assert [i.kind for i in cassette.interactions] == ["refresh", "api"]
    assert re.fullmatch(r"<<refresh_token:\d+>>",
                        cassette.interactions[0].response.json()["refresh_token"])
