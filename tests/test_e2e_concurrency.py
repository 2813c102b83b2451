"""Exactly-once through the proxy: 20 clients race for one code, one refresh token,
with the in-memory store and with the SQLite one (``--state``)."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from factories import CLIENT, SECRET
from ups_client import UpsClient

from upsproxy.sandbox import Sandbox, SandboxOptions

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


@pytest.fixture
def sqlite_sandbox(upsproxy_env, tmp_path):
    """The session proxy answering from a sandbox whose state is a SQLite file."""
    sandbox = Sandbox.from_options(SandboxOptions(state=str(tmp_path / "state.db")))
    upsproxy_env.server.replay.sandbox = sandbox
    yield sandbox
    upsproxy_env.server.replay.sandbox = upsproxy_env.sandbox
    sandbox.close()


def test_twenty_concurrent_redemptions_of_one_code_with_sqlite(sqlite_sandbox):
    code = UpsClient().code()
    statuses = race(lambda s: UpsClient(session=s).pkce_token(code))
    assert statuses.count(200) == 1 and statuses.count(400) == RACERS - 1
    assert type(sqlite_sandbox.store).__name__ == "SqliteStore"


def test_twenty_concurrent_refreshes_of_one_token_with_sqlite(sqlite_sandbox):
    ups = UpsClient()
    refresh = ups.token(ups.code(verifier=None), basic=(CLIENT, SECRET)).json()["refresh_token"]
    statuses = race(lambda s: UpsClient(session=s).refresh(refresh))
    assert statuses.count(200) == 1 and statuses.count(400) == RACERS - 1
    assert sqlite_sandbox.store.counts()["refresh_tokens"] == 2  # the spent one and its heir
