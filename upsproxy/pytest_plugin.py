"""pytest plugin: a real upsproxy sandbox for your test suite.

Installed with upsproxy (entry point ``pytest11``), so the fixtures are there
in any project that depends on it:

- ``upsproxy_server`` (session): one mitmproxy master on free loopback ports,
  with a proxy for ``HTTPS_PROXY`` and a plain-HTTP reverse listener.
- ``upsproxy`` (per test): a fresh sandbox (empty state, its own clock) behind
  that server. Its ``base_url``, ``proxy_url``, ``ca_bundle``, ``clock`` and
  ``sandbox`` are what a test needs. Configure it with the marker
  ``@pytest.mark.upsproxy(cassette=..., config=..., auto_approve=True)``;
  relative paths are taken from the rootdir.
- ``upsproxy_env`` (per test): ``upsproxy`` plus ``HTTPS_PROXY`` and the CA
  variables set in ``os.environ`` for the test's duration.

mitmproxy keeps one master per process, hence one session server whose
sandbox is swapped per test.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from upsproxy.clock import SandboxClock
from upsproxy.errors import FaultRuleError
from upsproxy.fault_rules import RuleProblem
from upsproxy.faults import FaultEngine
from upsproxy.sandbox import Sandbox, SandboxOptions


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "upsproxy(cassette=None, config=None, auto_approve=False, block_other_hosts=False, "
        "access_ttl=None, refresh_ttl=None, code_ttl=None, state=None, faults=None): "
        "configure the test's upsproxy sandbox (cassette path, config file path, skip the "
        "login page, refuse non-UPS hosts, lifetimes in seconds, SQLite state file, fault "
        "rules: a rule file path or a list of rule mappings / shorthand strings).",
    )


@dataclass
class UpsproxyServer:
    """The session's running proxy."""

    proxy_url: str
    base_url: str
    ca_cert: Path
    ca_bundle: Path
    replay: Any
    """The replay addon; its ``sandbox`` is swapped per test."""


@dataclass
class UpsproxyHandle:
    """What a test gets from the ``upsproxy`` fixture."""

    server: UpsproxyServer
    sandbox: Sandbox

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def proxy_url(self) -> str:
        return self.server.proxy_url

    @property
    def ca_cert(self) -> Path:
        return self.server.ca_cert

    @property
    def ca_bundle(self) -> Path:
        return self.server.ca_bundle

    @property
    def clock(self) -> SandboxClock:
        clock = self.sandbox.clock
        assert isinstance(clock, SandboxClock)
        return clock

    def mint_code(self, client_id: str, redirect_uri: str, code_challenge: str | None = None,
                  scope: str | None = None) -> str:
        """A code as if the user had approved at the login page (backend-only tests)."""
        return self.sandbox.auth.issue_code(client_id, redirect_uri, code_challenge, scope)

    @property
    def faults(self) -> FaultEngine:
        """The sandbox's fault rules: ``add(rule or [rules])``, ``rules()``, ``clear()``."""
        return self.sandbox.faults

    @property
    def upstream_attempts(self) -> int:
        """How often replay refused to dial a UPS host (should stay 0)."""
        return int(self.server.replay.upstream_attempts)

    def env(self) -> dict[str, str]:
        bundle = str(self.ca_bundle)
        return {"HTTPS_PROXY": self.proxy_url, "https_proxy": self.proxy_url,
                "SSL_CERT_FILE": bundle, "REQUESTS_CA_BUNDLE": bundle,
                "CURL_CA_BUNDLE": bundle, "NODE_EXTRA_CA_CERTS": str(self.ca_cert)}


@pytest.fixture(scope="session")
def upsproxy_server() -> Iterator[UpsproxyServer]:
    """One upsproxy replay proxy for the whole session, on free loopback ports."""
    with warnings.catch_warnings():
        # mitmproxy's dependencies (pyasn1, passlib) warn about their own
        # deprecations on import: not the user's code, so never the user's
        # failure under -W error / filterwarnings = error.
        warnings.simplefilter("ignore", DeprecationWarning)
        from upsproxy import mitm
        from upsproxy.addons.replay import Replay
        from upsproxy.cli import replay_settings
        from upsproxy.trust import combined_bundle

    confdir = Path(tempfile.mkdtemp(prefix="upsproxy-pytest-"))
    replay = Replay(Sandbox.from_options(SandboxOptions()))
    proxy = mitm.BackgroundProxy(
        replay_settings(confdir, ("127.0.0.1", 0), ("127.0.0.1", 0)), [replay])
    running = proxy.start()
    try:
        assert running.proxy_url and running.reverse_url
        yield UpsproxyServer(running.proxy_url, running.reverse_url, running.ca_cert,
                             combined_bundle(running.ca_cert), replay)
    finally:
        proxy.stop()
        shutil.rmtree(confdir, ignore_errors=True)  # it holds the session CA's private key


_MARKER_KEYS = frozenset({"cassette", "config", "auto_approve", "block_other_hosts",
                          "access_ttl", "refresh_ttl", "code_ttl", "state", "faults"})
_TTL_KEYS = ("access_ttl", "refresh_ttl", "code_ttl")


def _marker_options(request: pytest.FixtureRequest) -> SandboxOptions:
    """The test's marker as sandbox options; a typo fails the test, not silently."""
    marker = request.node.get_closest_marker("upsproxy")
    if marker is None:
        return SandboxOptions()
    if marker.args:
        pytest.fail(
            "@pytest.mark.upsproxy takes keyword arguments only "
            f"({', '.join(sorted(_MARKER_KEYS))})", pytrace=False)
    unknown = set(marker.kwargs) - _MARKER_KEYS
    if unknown:
        pytest.fail(
            f"@pytest.mark.upsproxy: unknown argument(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(sorted(_MARKER_KEYS))}", pytrace=False)
    for flag in ("auto_approve", "block_other_hosts"):
        if not isinstance(marker.kwargs.get(flag, False), bool):
            pytest.fail(f"@pytest.mark.upsproxy: {flag} must be True or False", pytrace=False)
    auto_approve = marker.kwargs.get("auto_approve", False)
    for key in _TTL_KEYS:
        value = marker.kwargs.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 1):
            pytest.fail(f"@pytest.mark.upsproxy: {key} must be whole seconds (1 or more)",
                        pytrace=False)
    root = request.config.rootpath

    def path(key: str) -> str | None:
        """Marker paths are relative to the rootdir, wherever pytest was started."""
        value = marker.kwargs.get(key)
        return str(root / value) if value else None

    fault_file = path("faults") if isinstance(marker.kwargs.get("faults"), str | Path) else None
    return SandboxOptions(cassette=path("cassette"), config=path("config"),
                          auto_approve=auto_approve, state=path("state"),
                          block_other_hosts=marker.kwargs.get("block_other_hosts", False),
                          access_ttl=marker.kwargs.get("access_ttl"),
                          refresh_ttl=marker.kwargs.get("refresh_ttl"),
                          code_ttl=marker.kwargs.get("code_ttl"),
                          faults=(fault_file,) if fault_file else ())


def _marker_fault_rules(request: pytest.FixtureRequest, sandbox: Sandbox) -> None:
    """``faults=[...]`` on the marker: rule mappings or shorthands, added in order."""
    marker = request.node.get_closest_marker("upsproxy")
    faults = marker.kwargs.get("faults") if marker is not None else None
    if faults is None or isinstance(faults, str | Path):
        return
    if not isinstance(faults, list | tuple):
        pytest.fail("@pytest.mark.upsproxy: faults is a rule file path or a list of rules",
                    pytrace=False)
    try:
        sandbox.faults.add(list(faults))
    except RuleProblem as bad:
        pytest.fail(f"@pytest.mark.upsproxy: faults: {bad}", pytrace=False)


@pytest.fixture
def upsproxy(upsproxy_server: UpsproxyServer,
             request: pytest.FixtureRequest) -> Iterator[UpsproxyHandle]:
    """A fresh sandbox for this test (state, clock), configured by its marker.

    At teardown the server gets a fresh default sandbox again, so a test that
    uses ``upsproxy_server`` alone never sees an earlier test's codes or rules.
    """
    try:
        sandbox = Sandbox.from_options(_marker_options(request))
    except FaultRuleError as exc:
        pytest.fail(f"@pytest.mark.upsproxy: {exc}", pytrace=False)
    _marker_fault_rules(request, sandbox)
    upsproxy_server.replay.sandbox = sandbox
    try:
        yield UpsproxyHandle(upsproxy_server, sandbox)
    finally:
        upsproxy_server.replay.sandbox = Sandbox.from_options(SandboxOptions())
        sandbox.close()


@pytest.fixture
def upsproxy_env(upsproxy: UpsproxyHandle, monkeypatch: pytest.MonkeyPatch) -> UpsproxyHandle:
    """``upsproxy`` with HTTPS_PROXY and CA variables set for the test."""
    for name, value in upsproxy.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    return upsproxy


__all__ = ["UpsproxyHandle", "UpsproxyServer"]
