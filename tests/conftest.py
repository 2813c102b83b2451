"""Shared fixtures; the sandbox fixtures themselves come from upsproxy's pytest plugin."""

import pytest


@pytest.fixture(autouse=True)
def _private_dirs(tmp_path_factory, monkeypatch):
    """Tests never write to the user's ~/.cache (big cassettes are cached there)..."""
    monkeypatch.setenv("UPSPROXY_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
    # ...nor to ~/.upsproxy (CA, JWT and recording keys) when a command gets no --confdir.
    monkeypatch.setenv("UPSPROXY_CONFDIR", str(tmp_path_factory.getbasetemp() / "confdir"))


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
