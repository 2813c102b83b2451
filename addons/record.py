"""upsproxy record: forward UPS traffic to a real upstream, write a redacted cassette.

    mitmdump -s addons/record.py --set upsproxy_cassette=cassettes/mine.yaml \
        --set upsproxy_upstream=cie --set connection_strategy=lazy \
        --set allow_hosts='^(wwwcie|onlinetools|www)\\.ups\\.com'

Requests for the UPS API hosts go to the upstream (``cie``, ``prod`` or an
https URL); ``www.ups.com`` (the human sign-in) goes to the real site, or to
the upstream URL when one is given. Other hosts pass through unrecorded. The
app gets the upstream's answer unchanged; each completed UPS exchange is
redacted and written at once (``upsproxy.recorder``).

Fault rules (``upsproxy.faults``; ``upsproxy_faults``/``upsproxy_fault``, or
``/_upsproxy/faults`` on the reverse listener) work here as in replay: a rule
that answers does so instead of upstream (nothing is sent, nothing recorded);
a delay, added headers or a state rule change what the app gets after the
real answer has been recorded as UPS sent it.

The recording key (``upsproxy.fingerprint``: what lets ``append`` give a value
recorded before its old placeholder) is kept in mitmproxy's ``confdir``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

from mitmproxy import ctx, exceptions, http

try:
    from upsproxy.errors import UpsproxyError
except ImportError:  # loaded with `mitmdump -s` from a checkout that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from upsproxy.errors import UpsproxyError

from upsproxy import mitm
from upsproxy.config import SandboxConfig, load_config
from upsproxy.control import CONTROL_PREFIX, ControlApi
from upsproxy.envelopes import resolve
from upsproxy.errors import CassetteError
from upsproxy.faults import FaultDecision, FaultEngine, load_sources, presets_of, register_control
from upsproxy.fingerprint import load_recording_key
from upsproxy.messages import Request, Response, printable
from upsproxy.recorder import Exchange, Recorder, default_cassette
from upsproxy.redact_rules import RedactRules
from upsproxy.routes import UPS_HOSTS, endpoint_of
from upsproxy.upstream import UPSTREAMS, recorded_host, resolve_upstream

log = logging.getLogger("upsproxy.record")

OPTIONS = ("upsproxy_cassette", "upsproxy_upstream", "upsproxy_record_mode", "upsproxy_config",
           "upsproxy_faults", "upsproxy_fault")
_PENDING = "upsproxy_record"
_FAULT = "upsproxy_fault"
_FRAMING = frozenset({"content-encoding", "content-length", "transfer-encoding"})


class _Pending(NamedTuple):
    """What the request hook saw, for the response hook. (Not a dataclass: mitmdump
    loads scripts outside sys.modules, where dataclasses cannot resolve them.)"""

    kind: str
    url: str
    request: Request


def build_recorder(cassette: str, upstream: str, mode: str, config: str,
                   confdir: str | Path | None = None) -> Recorder:
    """The session the options describe, opened; ValueError / UpsproxyError if not.
    ``confdir`` holds the recording key (made there on first use) whose
    fingerprints let a later ``append`` recognise this session's values."""
    rules = load_config(config).redact if config else RedactRules()
    resolved = resolve_upstream(upstream)
    key = load_recording_key(confdir) if confdir is not None else None
    recorder = Recorder(cassette or default_cassette(), mode=mode, upstream=resolved,
                        rules=rules, key=key)
    try:
        recorder.open()
    except OSError as exc:
        raise CassetteError(str(recorder.path), f"cannot write: {exc.strerror}") from None
    return recorder


def build_faults(config: str, files: Sequence[str], specs: Sequence[str]) -> FaultEngine:
    """The fault rules for record: presets are UPS's catalogue as the config's
    ``errors:`` changes it (no cassette is loaded); FaultRuleError / ConfigError."""
    overrides = (load_config(config) if config else SandboxConfig()).error_overrides
    return load_sources(FaultEngine(presets_of(resolve({}, overrides))), files, specs)


class Record:
    """Sends UPS traffic upstream and records every completed UPS exchange."""

    def __init__(self, recorder: Recorder | None = None,
                 faults: FaultEngine | None = None) -> None:
        self.recorder = recorder
        self._preset = recorder is not None
        self.failed = 0
        """Exchanges not written (leak guard, disk)."""
        self.faults = faults if faults is not None else FaultEngine()
        self.control = ControlApi()
        register_control(self.control, self.faults)

    def load(self, loader):  # type: ignore[no-untyped-def]
        loader.add_option("upsproxy_cassette", str, "",
                          "Cassette to write (default: cassettes/recorded-<time>.yaml).")
        loader.add_option("upsproxy_upstream", str, "cie",
                          "Where UPS traffic goes: cie, prod or an https:// URL.")
        loader.add_option("upsproxy_record_mode", str, "new",
                          "new (refuse an existing file), append or overwrite.")
        loader.add_option("upsproxy_config", str, "",
                          "Config file; its redact: section extends the redaction rules.")
        loader.add_option("upsproxy_faults", str, "",
                          "Fault rule file (YAML): UPS errors, delays, resets instead of UPS.")
        loader.add_option("upsproxy_fault", Sequence[str], [],
                          "Fault rule shorthand ENDPOINT:WHAT[:KEY=VALUE,...]; repeatable.")

    def configure(self, updated: set[str]) -> None:
        if self._preset or (not (updated & set(OPTIONS)) and self.recorder is not None):
            return
        try:
            opts = ctx.options
            faults = build_faults(opts.upsproxy_config,
                                  [opts.upsproxy_faults] if opts.upsproxy_faults else [],
                                  opts.upsproxy_fault)
            self.recorder = build_recorder(opts.upsproxy_cassette, opts.upsproxy_upstream,
                                           opts.upsproxy_record_mode, opts.upsproxy_config,
                                           opts.confdir)
            self.faults = faults
            self.control = ControlApi()
            register_control(self.control, faults)
        except (ValueError, UpsproxyError) as exc:
            raise exceptions.OptionsError(str(exc)) from None

    def request(self, flow: http.HTTPFlow) -> None:
        if flow.response or not flow.live or self.recorder is None:
            return
        origin = mitm.reverse_origin(flow)
        if origin is None and mitm.target_host(flow) not in UPS_HOSTS:
            return  # not UPS: pass through untouched, unrecorded
        req = mitm.to_request(flow)
        if origin is not None and req.path.startswith(CONTROL_PREFIX):
            mitm.apply_response(flow, self.control.handle(req))  # never sent upstream
            return
        kind = endpoint_of(req)
        if self.faults.active:
            decision = self.faults.decide(req)
            if decision is not None and not decision.needs_normal:
                self._fault(flow, req, decision, None)  # instead of upstream: not recorded
                return
            if decision is not None:
                flow.metadata[_FAULT] = decision  # applied to upstream's answer
        upstream = self.recorder.upstream
        if kind is not None:
            host = req.host if origin is None else (
                "www.ups.com" if kind == "login" else recorded_host(upstream))
            url = f"https://{host}{req.path}" + (f"?{req.query}" if req.query else "")
            flow.metadata[_PENDING] = _Pending(kind, url, req)
        mitm.send_upstream(flow, upstream, login_too=upstream not in UPSTREAMS.values())

    def response(self, flow: http.HTTPFlow) -> None:
        pending = flow.metadata.pop(_PENDING, None)
        if not isinstance(pending, _Pending) or flow.response is None or self.recorder is None:
            return
        if flow.is_replay == "response":
            return  # answered here (a fault), not by UPS
        exchange = Exchange(pending.kind, pending.url, pending.request, mitm.to_response(flow))
        try:
            number = self.recorder.record(exchange)
        except UpsproxyError as exc:  # a leak caught, an exchange that cannot be redacted
            self.failed += 1
            log.error("NOT recorded: %s", exc)
        except OSError as exc:
            self.failed += 1
            log.error("NOT recorded: cannot write %s: %s", self.recorder.path, exc.strerror)
        except Exception as exc:  # noqa: BLE001 - one bad exchange never ends a recording
            self.failed += 1  # the type only: a message could quote a raw value
            log.error("NOT recorded: internal error (%s) while redacting this exchange; "
                      "the cassette keeps its earlier interactions", type(exc).__name__)
        else:
            log.info("recorded #%d %s %s %s -> %d", number, pending.kind,
                     pending.request.method, printable(pending.request.path),
                     flow.response.status_code)
        self._fault_after(flow, pending.request, exchange.response)

    def _fault_after(self, flow: http.HTTPFlow, req: Request, real: Response) -> None:
        """A fault that changes UPS's (already recorded) answer on its way to the app."""
        decision = flow.metadata.pop(_FAULT, None)
        if decision is None and self.faults.on_redirect:
            decision = self.faults.decide_redirect(req, real)
        if isinstance(decision, FaultDecision):
            # The body is decoded: framing headers are the proxy's to set again.
            unframed = tuple((k, v) for k, v in real.headers if k.lower() not in _FRAMING)
            self._fault(flow, req, decision, replace(real, headers=unframed))

    def _fault(self, flow: http.HTTPFlow, req: Request, decision: FaultDecision,
               normal: Response | None) -> None:
        try:
            sent = mitm.apply_fault(flow, decision, normal)
        except ValueError:  # a header mitmproxy cannot encode: fail loudly, never forward
            log.error("fault %s: an answer header cannot be sent", decision.label)
            flow.kill()
            return
        what = f"-> {sent.status}" if sent is not None else f"-> no answer ({decision.action})"
        delay = f" delay_ms={round(decision.delay_s * 1000)}" if decision.delay_s else ""
        log.info("%s %s %s %s%s", decision.label, req.method, printable(req.path), what, delay)

    def done(self) -> None:
        mitm.release_held_flows()

    def error(self, flow: http.HTTPFlow) -> None:
        pending = flow.metadata.pop(_PENDING, None)
        if isinstance(pending, _Pending):
            reason = flow.error.msg if flow.error else "no answer"
            log.error("NOT recorded: %s %s: upstream failed: %s", pending.request.method,
                      printable(pending.request.path), printable(reason))


addons = [Record()]
