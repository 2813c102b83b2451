"""upsproxy record: forward UPS traffic to a real upstream, write a redacted cassette.

    mitmdump -s addons/record.py --set upsproxy_cassette=cassettes/mine.yaml \
        --set upsproxy_upstream=cie --set connection_strategy=lazy \
        --set allow_hosts='^(wwwcie|onlinetools|www)\\.ups\\.com'

Requests for the UPS API hosts go to the upstream (``cie``, ``prod`` or an
https URL); ``www.ups.com`` (the human sign-in) goes to the real site, or to
the upstream URL when one is given. Other hosts pass through unrecorded. The
app gets the upstream's answer unchanged; each completed UPS exchange is
redacted and written at once (``upsproxy.recorder``).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import NamedTuple

from mitmproxy import ctx, exceptions, http

try:
    from upsproxy.errors import UpsproxyError
except ImportError:  # loaded with `mitmdump -s` from a checkout that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from upsproxy.errors import UpsproxyError

from upsproxy import mitm
from upsproxy.config import load_config
from upsproxy.errors import CassetteError, LeakError
from upsproxy.messages import Request, printable
from upsproxy.recorder import Exchange, Recorder, default_cassette
from upsproxy.redact_rules import RedactRules
from upsproxy.routes import UPS_HOSTS, endpoint_of
from upsproxy.upstream import UPSTREAMS, recorded_host, resolve_upstream

log = logging.getLogger("upsproxy.record")

OPTIONS = ("upsproxy_cassette", "upsproxy_upstream", "upsproxy_record_mode", "upsproxy_config")
_PENDING = "upsproxy_record"


class _Pending(NamedTuple):
    """What the request hook saw, for the response hook. (Not a dataclass: mitmdump
    loads scripts outside sys.modules, where dataclasses cannot resolve them.)"""

    kind: str
    url: str
    request: Request


def build_recorder(cassette: str, upstream: str, mode: str, config: str) -> Recorder:
    """The session the options describe, opened; ValueError / UpsproxyError if not."""
    rules = load_config(config).redact if config else RedactRules()
    recorder = Recorder(cassette or default_cassette(), mode=mode,
                        upstream=resolve_upstream(upstream), rules=rules)
    try:
        recorder.open()
    except OSError as exc:
        raise CassetteError(str(recorder.path), f"cannot write: {exc.strerror}") from None
    return recorder


class Record:
    """Sends UPS traffic upstream and records every completed UPS exchange."""

    def __init__(self, recorder: Recorder | None = None) -> None:
        self.recorder = recorder
        self._preset = recorder is not None
        self.failed = 0
        """Exchanges not written (leak guard, disk)."""

    def load(self, loader):  # type: ignore[no-untyped-def]
        loader.add_option("upsproxy_cassette", str, "",
                          "Cassette to write (default: cassettes/recorded-<time>.yaml).")
        loader.add_option("upsproxy_upstream", str, "cie",
                          "Where UPS traffic goes: cie, prod or an https:// URL.")
        loader.add_option("upsproxy_record_mode", str, "new",
                          "new (refuse an existing file), append or overwrite.")
        loader.add_option("upsproxy_config", str, "",
                          "Config file; its redact: section extends the redaction rules.")

    def configure(self, updated: set[str]) -> None:
        if self._preset or (not (updated & set(OPTIONS)) and self.recorder is not None):
            return
        try:
            self.recorder = build_recorder(ctx.options.upsproxy_cassette,
                                           ctx.options.upsproxy_upstream,
                                           ctx.options.upsproxy_record_mode,
                                           ctx.options.upsproxy_config)
        except (ValueError, UpsproxyError) as exc:
            raise exceptions.OptionsError(str(exc)) from None

    def request(self, flow: http.HTTPFlow) -> None:
        if flow.response or not flow.live or self.recorder is None:
            return
        origin = mitm.reverse_origin(flow)
        if origin is None and mitm.target_host(flow) not in UPS_HOSTS:
            return  # not UPS: pass through untouched, unrecorded
        req = mitm.to_request(flow)
        kind = endpoint_of(req)
        # (Fault injection, when wired in, decides here: before anything goes upstream.)
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
        except LeakError as exc:
            self.failed += 1
            log.error("NOT recorded: %s", exc)
            return
        except OSError as exc:
            self.failed += 1
            log.error("NOT recorded: cannot write %s: %s", self.recorder.path, exc.strerror)
            return
        log.info("recorded #%d %s %s %s -> %d", number, pending.kind, pending.request.method,
                 printable(pending.request.path), flow.response.status_code)

    def error(self, flow: http.HTTPFlow) -> None:
        pending = flow.metadata.pop(_PENDING, None)
        if isinstance(pending, _Pending):
            reason = flow.error.msg if flow.error else "no answer"
            log.error("NOT recorded: %s %s: upstream failed: %s", pending.request.method,
                      printable(pending.request.path), printable(reason))


addons = [Record()]
