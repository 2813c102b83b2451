"""The replay sandbox: routes a request for a UPS host to the right handler.

This is the single entry point the mitmproxy addon calls. ``routes`` decides
which endpoint a request is for (by host and exact path), and this module
turns any unexpected exception into a UPS-shaped 500 so one bad request
never takes the proxy down.
"""

from __future__ import annotations

import logging
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from upsproxy import control_endpoints
from upsproxy.cassette import Cassette, load_cassette
from upsproxy.clock import MovableClock, SandboxClock
from upsproxy.config import SandboxConfig, load_config
from upsproxy.control import CONTROL_PREFIX, ControlApi
from upsproxy.envelopes import error_response, resolve
from upsproxy.errors import UpsproxyError
from upsproxy.faults import FaultEngine, load_sources, presets_of, register_control
from upsproxy.jwtkeys import JwtSigner, key_bits_for, load_signer
from upsproxy.messages import Request, Response, printable
from upsproxy.oauth import AuthServer
from upsproxy.profile import Lifetimes, profile_from_cassette, with_lifetimes
from upsproxy.protected import ProtectedApi
from upsproxy.routes import endpoint_of
from upsproxy.shapes import JwtShape, Minter
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


EXCHANGES_KEPT = 500
"""Recent exchanges kept for ``GET /_upsproxy/exchanges`` (a bounded deque)."""
Exchange = tuple[int, str, str, str, int, str, str | None]
"""(sandbox time ms, method, host or listener, path, status, rule, client_id):
what the sandbox answered, never a body, a query or a header."""


@dataclass(frozen=True)
class SandboxOptions:
    cassette: str | None = None
    config: str | None = None
    auto_approve: bool = False
    block_other_hosts: bool = False
    """Refuse, instead of passing through, requests for hosts other than UPS's."""
    state: str | None = None
    """A SQLite state file (``--state``); None keeps state in memory."""
    access_ttl: int | None = None
    refresh_ttl: int | None = None
    code_ttl: int | None = None
    keydir: str | None = None
    """Where the JWT signing key is kept (the confdir); None: one per process."""
    faults: tuple[str, ...] = ()
    """Fault rule files, loaded in order."""
    fault_specs: tuple[str, ...] = ()
    """``--fault`` shorthands, added after the files."""


class Sandbox:
    """Answers requests for UPS hosts from a cassette and live OAuth state."""

    def __init__(self, cassette: Cassette, *, config: SandboxConfig | None = None,
                 store: StateStore | None = None, clock: MovableClock | None = None,
                 rng: random.Random | None = None, auto_approve: bool = False,
                 lifetimes: Lifetimes | None = None, keydir: Path | None = None,
                 block_other_hosts: bool = False) -> None:
        """Raises ValueError for a bad lifetime, StartupError for an unusable key file."""
        self.cassette = cassette
        self.block_other_hosts = block_other_hosts
        """Read by the proxy adapter: other hosts are refused, not passed through."""
        self.config = config or SandboxConfig()
        self.store: StateStore = store if store is not None else MemoryStore()
        if clock is None:
            # A persistent store remembers where tests moved the clock.
            clock = SandboxClock(self.store.clock_offset() or 0,
                                 on_change=self.store.save_clock_offset)
        self.clock: MovableClock = clock
        profile = profile_from_cassette(cassette)
        self.profile = with_lifetimes(profile, lifetimes) if lifetimes else profile
        self.errors = resolve(
            {name: (e.status, e.code, e.message) for name, e in self.profile.errors.items()},
            self.config.error_overrides)
        self.signer = _signer_for(self.profile.access_shape, keydir)
        self.auth = AuthServer(profile=self.profile, config=self.config, store=self.store,
                               clock=self.clock, minter=Minter(rng, self.signer),
                               errors=self.errors, auto_approve=auto_approve)
        self.api = ProtectedApi(cassette, self.store, self.clock, self.errors)
        self._routes: dict[str, Callable[[Request], Response]] = {
            "authorize": self.auth.authorize,
            "login": self.auth.login,
            "token": self.auth.token,
            "refresh": self.auth.refresh,
            "api": self.api.handle,
        }
        self.exchanges: deque[Exchange] = deque(maxlen=EXCHANGES_KEPT)
        self.control = ControlApi()
        """``/_upsproxy/...`` on the reverse listener; features add their endpoints."""
        control_endpoints.install(self)
        # Presets: every error the cassette names, then the catalogue as resolved.
        self.faults = FaultEngine(presets_of(self.profile.errors, self.errors))
        register_control(self.control, self.faults)

    @classmethod
    def from_options(cls, options: SandboxOptions, **kwargs: object) -> Sandbox:
        """Load files named by the user; raises CassetteError / ConfigError /
        StateFileError, FaultRuleError, or UpsproxyError for a bad lifetime."""
        cassette = load_cassette(options.cassette or default_cassette_path())
        config = load_config(options.config) if options.config else SandboxConfig()
        lifetimes = Lifetimes(options.access_ttl, options.refresh_ttl, options.code_ttl)
        if "store" not in kwargs and options.state:
            from upsproxy.store_sqlite import SqliteStore

            kwargs["store"] = SqliteStore(options.state)
        try:
            sandbox = cls(cassette, config=config, auto_approve=options.auto_approve,
                          block_other_hosts=options.block_other_hosts,
                          lifetimes=lifetimes,
                          keydir=Path(options.keydir) if options.keydir else None,
                          **kwargs)  # type: ignore[arg-type]
            load_sources(sandbox.faults, options.faults, options.fault_specs)
        except BaseException as exc:
            store = kwargs.get("store")
            if store is not None:
                store.close()  # type: ignore[attr-defined]
            if isinstance(exc, ValueError):
                raise UpsproxyError(str(exc)) from None
            raise
        return sandbox

    def close(self) -> None:
        """Release the state store (a SQLite file is checkpointed and closed)."""
        self.store.close()

    def handle(self, req: Request) -> Response:
        """Answer ``req``; remember the exchange (not control calls) for ``GET exchanges``."""
        response = self._handle(req)
        if not (req.origin is not None and req.path.startswith(CONTROL_PREFIX)):
            self.exchanges.append((self.clock.now_ms(), req.method, req.origin or req.host,
                                   req.path, response.status, response.rule,
                                   response.extra.get("client_id")))
        return response

    def _handle(self, req: Request) -> Response:
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
                return error_response(self.errors["invalid_request"], rule="bad_query")
        if path.startswith(CONTROL_PREFIX) and req.origin is not None:
            return self.control.handle(req)
        endpoint = endpoint_of(req)
        handler = self._routes.get(endpoint) if endpoint is not None else None
        if handler is not None:
            return handler(req)
        return error_response(self.errors["not_found"], rule="not_found")


def _signer_for(shape: object, keydir: Path | None) -> JwtSigner | None:
    """The signing key minted JWTs need (made or loaded now, not per request)."""
    if not isinstance(shape, JwtShape):
        return None
    bits = key_bits_for(shape.signature_length) if str(shape.header.get("alg", "")) \
        .startswith("RS") else 2048
    return load_signer(keydir, bits)
