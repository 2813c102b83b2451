"""Shared fixtures; the sandbox fixtures themselves come from upsproxy's pytest plugin."""

import pytest
from fake_ups import FakeUps
from recording import RecordProc


@pytest.fixture(autouse=True)
def _private_dirs(tmp_path_factory, monkeypatch):
    """Tests never write to the user's ~/.cache (big cassettes are cached there)..."""
    monkeypatch.setenv("UPSPROXY_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
    # ...nor to ~/.upsproxy (CA, JWT and recording keys) when a command gets no --confdir.
    monkeypatch.setenv("UPSPROXY_CONFDIR", str(tmp_path_factory.getbasetemp() / "confdir"))


@pytest.fixture
def fake(tmp_path):
    """A fake UPS over TLS (its own test CA) for the record tests."""
    server = FakeUps().start(tmp_path / "fake-ca.pem")
    yield server
    server.stop()


@pytest.fixture
def recorder(fake, tmp_path):
    """`upsproxy record` in a child process, forwarding to ``fake``."""
    proc = RecordProc(tmp_path / "rec.yaml", upstream=fake.url, upstream_ca=fake.ca_path,
                      confdir=tmp_path / "conf")
    yield proc
    if proc.proc.poll() is None:
        proc.stop()


def pytest_addoption(parser):
    parser.addoption("--run-online", action="store_true", default=False,
                     help="also run tests marked online (they talk to real UPS CIE)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-online"):
        return
    skip = pytest.mark.skip(reason="talks to real UPS; run with --run-online")
    for item in items:
        if "online" in item.keywords:
            item.add_marker(skip)
