"""Repeated SIGKILL of a recording session: the file always parses and holds every
exchange the app had an answer for (the answer leaves only after the write)."""

from __future__ import annotations

import threading
import time

import requests
from fake_ups import CLIENT
from recording import RecordProc

from upsproxy.cassette import load_cassette


def _client(recorder: RecordProc, done: list[int], stop: threading.Event) -> None:
    session = requests.Session()
    session.trust_env = False
    session.proxies = {"https": recorder.proxy_url}
    session.verify = str(recorder.ca)
    for n in range(300):
        if stop.is_set():
            return
        try:
            resp = session.get("https://wwwcie.ups.com/security/v1/oauth/authorize",
                               params={"client_id": CLIENT, "response_type": "code",
                                       "redirect_uri": f"https://unregistered.test/{n}"},
                               allow_redirects=False, timeout=10)
        except requests.RequestException:
            return  # the recorder died mid-request
        if resp.status_code == 400:
            done.append(n)


def test_sigkill_at_varied_points_leaves_every_completed_interaction(fake, tmp_path):
    path = tmp_path / "killed.yaml"
    for round_, target in enumerate([0, 1, 3, 6, 10]):  # 5 kills
        before = len(load_cassette(path).interactions) if path.exists() else 0
        recorder = RecordProc(path, upstream=fake.url, upstream_ca=fake.ca_path,
                              confdir=tmp_path / "conf",
                              extra=("--mode", "new" if round_ == 0 else "append"))
        done: list[int] = []
        stop = threading.Event()
        thread = threading.Thread(target=_client, args=(recorder, done, stop), daemon=True)
        if target:
            thread.start()
            deadline = time.monotonic() + 30
            while len(done) < target and time.monotonic() < deadline:
                time.sleep(0.001)
            assert len(done) >= target, "the client made no progress"
        recorder.kill()  # while the next request is in flight
        stop.set()
        if target:
            thread.join(timeout=15)
        cassette = load_cassette(path)  # parses, every time
        after = len(cassette.interactions)
        assert before + len(done) <= after <= before + len(done) + 1, (round_, before, done)
        assert all(i.name == "invalid_redirect" for i in cassette.interactions)
    # A clean start removes the temporary files killed writes may have left behind.
    recorder = RecordProc(path, upstream=fake.url, upstream_ca=fake.ca_path,
                          confdir=tmp_path / "conf", extra=("--mode", "append"))
    assert recorder.stop()[0] == 0
    assert list(tmp_path.glob(".killed.yaml.*")) == []
    assert len(load_cassette(path).interactions) == after
