"""The replay sandbox: routes a request for a UPS host to the right handler.

This is the single entry point the mitmproxy addon calls. ``routes`` decides
which endpoint a request is for (by host and exact path), and this module
turns any unexpected exception into a UPS-shaped 500 so one bad request
never takes the proxy down.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from upsproxy.cassette import Cassette, load_cassette
from upsproxy.clock import Clock, SandboxClock
from upsproxy.config import SandboxConfig, load_config
from upsproxy.control import CONTROL_PREFIX, ControlApi
from upsproxy.envelopes import error_response, resolve
from upsproxy.faults import FaultEngine, register_control
from upsproxy.messages import Request, Response, printable
from upsproxy.oauth import AuthServer
from upsproxy.profile import profile_from_cassette
from upsproxy.protected import ProtectedApi
from upsproxy.routes import endpoint_of
from upsproxy.shapes import Minter
from upsproxy.store import MemoryStore, StateStore

__all__ = ["DEFAULT_CASSETTE", "Sandbox", "SandboxOptions"]

log = logging.getLogger(__name__)

MAX_QUERY = 8 * 1024
"""Longer queries (an 8 MB ``state``) are refused rather than stored and echoed."""
DEFAULT_CASSETTE = Path(__file__).resolve().parent / "cassettes" / "ups-cie.yaml"


def default_cassette_path() -> Path:
    """The bundled cassette, installed (``upsproxy/cassettes``) or in a checkout."""
    if DEFAULT_CASSETTE.exists():
        return DEFAULT_CASSETTE
    return Path(__file__).resolve().parent.parent / "cassettes" / "ups-cie.yaml"


@dataclass(frozen=True)
class SandboxOptions:
    cassette: str | None = None
    config: str | None = None
    auto_approve: bool = False
    faults: tuple[str, ...] = ()
    """Fault rule files, loaded in order."""
    fault_specs: tuple[str, ...] = ()
    """``--fault`` shorthands, added after the files."""


class Sandbox:
    """Answers requests for UPS hosts from a cassette and live OAuth state."""

    def __init__(self, cassette: Cassette, *, config: SandboxConfig | None = None,
                 store: StateStore | None = None, clock: Clock | None = None,
                 rng: random.Random | None = None, auto_approve: bool = False) -> None:
        self.cassette = cassette
        self.config = config or SandboxConfig()
        self.store: StateStore = store if store is not None else MemoryStore()
        self.clock = clock if clock is not None else SandboxClock()
        self.profile = profile_from_cassette(cassette)
        self.errors = resolve(
            {name: (e.status, e.code, e.message) for name, e in self.profile.errors.items()},
            self.config.error_overrides)
        self.auth = AuthServer(profile=self.profile, config=self.config, store=self.store,
                               clock=self.clock, minter=Minter(rng), errors=self.errors,
                               auto_approve=auto_approve)
        self.api = ProtectedApi(cassette, self.store, self.clock, self.errors)
        self._routes: dict[str, Callable[[Request], Response]] = {
            "authorize": self.auth.authorize,
            "login": self.auth.login,
            "token": self.auth.token,
            "refresh": self.auth.refresh,
            "api": self.api.handle,
        }
        self.control = ControlApi()
        """``/_upsproxy/...`` on the reverse listener; features add their endpoints."""
        # Presets: every error the cassette names, then the catalogue as resolved.
        presets = {name: (e.status, e.code, e.message) for name, e in self.profile.errors.items()}
        presets.update({name: (e.status, e.code, e.message) for name, e in self.errors.items()})
        self.faults = FaultEngine(presets)
        register_control(self.control, self.faults)

    @classmethod
    def from_options(cls, options: SandboxOptions, **kwargs: object) -> Sandbox:
        """Load files named by the user; raises CassetteError / ConfigError /
        FaultRuleError."""
        cassette = load_cassette(options.cassette or default_cassette_path())
        config = load_config(options.config) if options.config else SandboxConfig()
        sandbox = cls(cassette, config=config, auto_approve=options.auto_approve,
                      **kwargs)  # type: ignore[arg-type]
        for path in options.faults:  # FaultRuleError, with the file and line
            sandbox.faults.load_file(path)
        for spec in options.fault_specs:
            sandbox.faults.add_shorthand(spec)
        return sandbox

    def handle(self, req: Request) -> Response:
        try:
            response = self._route(req)
        except Exception as exc:  # noqa: BLE001 - the proxy must keep serving
            # Only the type and place: an exception's text may carry request data.
            tb = exc.__traceback__
            while tb is not None and tb.tb_next is not None:
                tb = tb.tb_next
            where = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb else "?"
            log.error("internal error %s at %s for %s %s", type(exc).__name__, where,
                      req.method, printable(req.path))
            return self.internal_error("internal_error")
        for _, value in response.headers:
            if not value.isprintable():
                # CR/LF from a cassette or config value would split the answer.
                log.error("refusing to send a header with control characters (%s)",
                          response.rule)
                return self.internal_error("unsafe_header")
        return response

    def internal_error(self, rule: str) -> Response:
        return error_response(self.errors["server_error"], rule=rule)

    def _route(self, req: Request) -> Response:
        path = req.path
        if req.query:
            if len(req.query) > MAX_QUERY:
                return error_response(self.errors["invalid_request"], rule="query_too_long")
            try:
                req.query_pairs  # noqa: B018 - parse once, strictly, before any handler
            except ValueError:
                return error_response(self.errors["invalid_request"], rule="query_not_utf8")
        if path.startswith(CONTROL_PREFIX) and req.origin is not None:
            return self.control.handle(req)
        endpoint = endpoint_of(req)
        handler = self._routes.get(endpoint) if endpoint is not None else None
        if handler is not None:
            return handler(req)
        return error_response(self.errors["not_found"], rule="not_found")
