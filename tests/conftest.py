"""Shared fixtures; the sandbox fixtures themselves come from upsproxy's pytest plugin."""

import pytest


@pytest.fixture(autouse=True)
def _private_cassette_cache(tmp_path_factory, monkeypatch):
    """Tests never write to the user's ~/.cache (big cassettes are cached there)."""
    monkeypatch.setenv("UPSPROXY_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
