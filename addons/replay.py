"""upsproxy replay: answer UPS OAuth traffic offline from a cassette.

    mitmdump -s addons/replay.py --set upsproxy_cassette=cassettes/ups-cie.yaml \
        --set connection_strategy=lazy --set allow_hosts='^(wwwcie|onlinetools|www)\\.ups\\.com'

Requests for UPS hosts (through the proxy, or anything on a reverse listener)
are answered by the sandbox and never leave the machine; other hosts pass
through untouched.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from mitmproxy import ctx, exceptions, http
from mitmproxy.connection import Server
from mitmproxy.proxy import server_hooks

try:
    from upsproxy.errors import UpsproxyError
except ImportError:  # loaded with `mitmdump -s` from a checkout that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from upsproxy.errors import UpsproxyError

from upsproxy import logsink, mitm
from upsproxy.fault_rules import client_id_of
from upsproxy.messages import Request, Response, printable
from upsproxy.routes import UPS_HOSTS
from upsproxy.sandbox import Sandbox, SandboxOptions

OPTIONS = ("upsproxy_cassette", "upsproxy_config", "upsproxy_auto_approve",
           "upsproxy_block_other_hosts", "upsproxy_state",
           "upsproxy_access_ttl", "upsproxy_refresh_ttl", "upsproxy_code_ttl",
           "upsproxy_faults", "upsproxy_fault")


def _ttl(name: str, value: int) -> int | None:
    """0 means the cassette's lifetime; anything else must be positive seconds."""
    if value < 0:
        raise exceptions.OptionsError(f"{name} must be seconds (0: the cassette's), not {value}")
    return value or None


class Replay:
    """Answers UPS hosts from a stateful sandbox; counts refused upstream dials."""

    def __init__(self, sandbox: Sandbox | None = None) -> None:
        self.sandbox = sandbox
        self.upstream_attempts = 0
        self.answered = 0
        """UPS requests answered; zero at shutdown means the app bypassed the proxy."""
        self._preset = sandbox is not None

    def load(self, loader):  # type: ignore[no-untyped-def]
        loader.add_option("upsproxy_cassette", str, "",
                          "Cassette to replay (default: the bundled ups-cie.yaml).")
        loader.add_option("upsproxy_config", str, "",
                          "Config file: registered apps and error overrides.")
        loader.add_option("upsproxy_block_other_hosts", bool, False,
                          "Refuse requests for hosts other than UPS's instead of passing "
                          "them through.")
        loader.add_option("upsproxy_auto_approve", bool, False,
                          "Skip the login page: authorize redirects straight to the callback.")
        loader.add_option("upsproxy_state", str, "",
                          "SQLite file for codes, tokens and the clock (default: in memory).")
        loader.add_option("upsproxy_access_ttl", int, 0,
                          "Access token lifetime in seconds (0: the cassette's).")
        loader.add_option("upsproxy_refresh_ttl", int, 0,
                          "Refresh token lifetime in seconds (0: the cassette's).")
        loader.add_option("upsproxy_code_ttl", int, 0,
                          "Authorization code lifetime in seconds (0: the default 300).")
        loader.add_option("upsproxy_faults", str, "",
                          "Fault rule file (YAML): UPS errors, delays, resets on demand.")
        loader.add_option("upsproxy_fault", Sequence[str], [],
                          "Fault rule shorthand ENDPOINT:WHAT[:KEY=VALUE,...]; repeatable.")

    def configure(self, updated: set[str]) -> None:
        if self._preset or (not (updated & set(OPTIONS)) and self.sandbox is not None):
            return
        opts = ctx.options
        options = SandboxOptions(
            cassette=opts.upsproxy_cassette or None,
            config=opts.upsproxy_config or None,
            auto_approve=opts.upsproxy_auto_approve,
            block_other_hosts=opts.upsproxy_block_other_hosts,
            state=opts.upsproxy_state or None,
            access_ttl=_ttl("upsproxy_access_ttl", opts.upsproxy_access_ttl),
            refresh_ttl=_ttl("upsproxy_refresh_ttl", opts.upsproxy_refresh_ttl),
            code_ttl=_ttl("upsproxy_code_ttl", opts.upsproxy_code_ttl),
            keydir=opts.confdir,
            faults=(opts.upsproxy_faults,) if opts.upsproxy_faults else (),
            fault_specs=tuple(opts.upsproxy_fault),
        )
        try:
            sandbox = Sandbox.from_options(options)
        except UpsproxyError as exc:
            raise exceptions.OptionsError(str(exc)) from None
        old, self.sandbox = self.sandbox, sandbox
        if old is not None:
            old.close()

    def done(self) -> None:
        """Answer flows a fault still holds, then close the state store of a
        sandbox this addon made (not a preset one)."""
        mitm.release_held_flows()
        if not self._preset and self.sandbox is not None:
            self.sandbox.close()

    def request(self, flow: http.HTTPFlow) -> None:
        if flow.response or not flow.live or self.sandbox is None:
            return
        origin = mitm.reverse_origin(flow)
        if origin is None and mitm.target_host(flow) not in UPS_HOSTS:
            if self.sandbox.block_other_hosts:
                mitm.apply_response(flow, blocked(mitm.target_host(flow)))
            return  # not UPS: pass through untouched
        req = mitm.to_request(flow)
        self.answered += 1
        if self.sandbox.faults.active:
            self._with_faults(flow, req, origin)
            return
        self._answer(flow, req, origin, self.sandbox.handle(req))

    def _answer(self, flow: http.HTTPFlow, req: Request, origin: str | None,
                response: Response) -> None:
        assert self.sandbox is not None
        try:
            mitm.apply_response(flow, response)
        except ValueError:  # a header value mitmproxy cannot encode: answer, never forward
            response = self.sandbox.internal_error("unsendable_response")
            mitm.apply_response(flow, response)
        _log_exchange(req, origin, response.status, response.rule, response.extra)

    def _with_faults(self, flow: http.HTTPFlow, req: Request, origin: str | None) -> None:
        """The request path while fault rules exist (``upsproxy.faults``)."""
        assert self.sandbox is not None
        faults = self.sandbox.faults
        decision = faults.decide(req)
        normal = None
        if decision is None or decision.needs_normal:
            normal = self.sandbox.handle(req)
            if decision is None:
                decision = faults.decide_redirect(req, normal)
        if decision is None:
            assert normal is not None
            self._answer(flow, req, origin, normal)
            return
        try:
            sent = mitm.apply_fault(flow, decision, normal)
        except ValueError:
            sent = self.sandbox.internal_error("unsendable_response")
            mitm.apply_response(flow, sent)
        delay = f" delay_ms={round(decision.delay_s * 1000)}" if decision.delay_s else ""
        if sent is None:
            client = client_id_of(req)
            _log_exchange(req, origin, None, f"{decision.action} {decision.label}{delay}",
                          {"client_id": client} if client else {})
        else:
            rule = sent.rule if decision.label in sent.rule else f"{sent.rule} {decision.label}"
            client = sent.extra.get("client_id") or client_id_of(req)
            _log_exchange(req, origin, sent.status, rule + delay,
                          {"client_id": client} if client else {})

    def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        """Offline means offline: never dial UPS, whatever else happens."""
        server: Server = data.server
        names = {server.sni or "", server.address[0] if server.address else ""}
        if any(name.lower().rstrip(".") in UPS_HOSTS for name in names):
            self.upstream_attempts += 1
            server.error = "upsproxy replay never connects to UPS"
        elif self.sandbox is not None and self.sandbox.block_other_hosts:
            server.error = "upsproxy replay --block-other-hosts: not a UPS host"
            host = str(server.address[0]) if server.address else "?"
            logsink.emit(f"CONNECT {printable(host)} -> refused other_host_blocked")


def blocked(host: str) -> Response:
    """The answer to a plain-HTTP request for another host under --block-other-hosts."""
    body = (f"upsproxy replay --block-other-hosts: {host} is not a UPS host; "
            "this sandbox answers UPS only.\n").encode()
    logsink.emit(f"{printable(host)} -> 403 other_host_blocked")
    return Response(403, (("Content-Type", "text/plain; charset=utf-8"),), body,
                    "other_host_blocked")


def _log_exchange(req: Request, origin: str | None, status: int | None, rule: str,
                  extra: dict[str, str]) -> None:
    """One line per exchange, naming the rule that decided it; never a secret."""
    client = extra.get("client_id")
    logsink.emit(f"{req.method} {req.host if origin is None else origin}{printable(req.path)}"
                 f" -> {status if status is not None else 'no answer'} {rule}"
                 f"{f' client={printable(client)}' if client else ''}")


addons = [Replay()]
