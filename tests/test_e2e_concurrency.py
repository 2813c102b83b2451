"""Exactly-once through the proxy: 20 clients race for one code, one refresh token."""

import threading
from concurrent.futures import ThreadPoolExecutor

import requests
from factories import CLIENT, SECRET
from ups_client import UpsClient

RACERS = 20


def race(send):
    barrier = threading.Barrier(RACERS)

    def one(_):
        session = requests.Session()
        barrier.wait(timeout=10)
        return send(session).status_code

    with ThreadPoolExecutor(RACERS) as pool:
        return sorted(pool.map(one, range(RACERS)))


def test_twenty_concurrent_redemptions_of_one_code(upsproxy_env):
    code = UpsClient().code()
    statuses = race(lambda s: UpsClient(session=s).pkce_token(code))
    assert statuses.count(200) == 1 and statuses.count(400) == RACERS - 1


def test_twenty_concurrent_refreshes_of_one_token(upsproxy_env):
    ups = UpsClient()
    refresh = ups.token(ups.code(verifier=None), basic=(CLIENT, SECRET)).json()["refresh_token"]
    statuses = race(lambda s: UpsClient(session=s).refresh(refresh))
    assert statuses.count(200) == 1 and statuses.count(400) == RACERS - 1
