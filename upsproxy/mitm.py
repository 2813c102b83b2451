"""The adapter between mitmproxy and the pure core: flows in, core types out,
and an embedded master for the CLI and the pytest plugin.

This module and ``addons/`` are the only places that import mitmproxy (a ruff
banned-api rule keeps it so). The master is deliberately minimal: mitmproxy's
default ``DumpMaster`` dispatches every event through ~35 addons, which costs
more than half of the request time (DESIGN §7); the sandbox needs only core,
proxyserver, next_layer and tlsconfig plus its own addons.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import struct
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mitmproxy import certs, ctx, exceptions, http
from mitmproxy.addons import core, next_layer, proxyserver, tlsconfig
from mitmproxy.connection import ConnectionState
from mitmproxy.master import Master
from mitmproxy.net.http import status_codes, url
from mitmproxy.options import Options
from mitmproxy.proxy.mode_specs import ReverseMode

from upsproxy.errors import StartupError
from upsproxy.messages import Request, Response
from upsproxy.routes import API_HOSTS, LOGIN_HOSTS

if TYPE_CHECKING:
    from upsproxy.faults import FaultDecision

__all__ = [
    "CA_CERT_NAME",
    "UPS_ALLOW_HOSTS",
    "BackgroundProxy",
    "ProxySettings",
    "RunningProxy",
    "apply_fault",
    "apply_response",
    "ensure_ca",
    "read_flows",
    "record_settings",
    "release_held_flows",
    "send_upstream",
    "start_proxy",
    "stop_proxy",
    "to_request",
    "to_response",
    "upstream_allow_hosts",
]

log = logging.getLogger(__name__)

CA_BASENAME = "mitmproxy"
CA_CERT_NAME = f"{CA_BASENAME}-ca-cert.pem"
UPS_ALLOW_HOSTS = [r"^(?:wwwcie|onlinetools|www)\.ups\.com\.?(?::[0-9]+)?$"]


# -- flows <-> core ------------------------------------------------------------------


def reverse_origin(flow: http.HTTPFlow) -> str | None:
    """``http://host:port`` of the reverse listener the client used, else None."""
    if not isinstance(flow.client_conn.proxy_mode, ReverseMode):
        return None
    sockname = flow.client_conn.sockname
    host = sockname[0]
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{sockname[1]}"


def target_host(flow: http.HTTPFlow) -> str:
    """The host the request is for, normalised: the request target (not the Host
    header, which a client may set to anything), lower-case, without a trailing
    dot (``wwwcie.ups.com.`` is the same host)."""
    return flow.request.host.lower().rstrip(".")


def to_request(flow: http.HTTPFlow) -> Request:
    """The core's view of a request. The body stays as sent: decompressing it here
    would let a small gzip body inflate to gigabytes before any size check, so the
    core refuses encoded bodies instead."""
    req = flow.request
    body = req.raw_content or b""
    path, _, query = req.path.partition("?")
    # Decoded as ``Headers.items(multi=True)`` does, straight from the raw fields.
    headers = tuple((k.decode("utf-8", "surrogateescape").lower(),
                     v.decode("utf-8", "surrogateescape")) for k, v in req.headers.fields)
    origin = reverse_origin(flow)
    if origin is not None and req.http_version.startswith("HTTP/1"):
        headers = _with_host(headers, url.hostport(req.scheme, req.host, req.port))
    return Request(
        method=req.method.upper(),
        host=target_host(flow),
        path=path,
        query=query,
        headers=headers,
        body=body,
        scheme=req.scheme,
        origin=origin,
        peer=str(flow.client_conn.peername[0]) if flow.client_conn.peername else None,
    )


def _with_host(headers: tuple[tuple[str, str], ...], host: str) -> tuple[tuple[str, str], ...]:
    """``headers`` with one Host, ``host``: what a request on the reverse listener
    carries to UPS. replay keeps the client's Host header (``keep_host_header``,
    no rewrite in mitmproxy for a target it never dials), so the core, and fault
    rules that match on ``Host``, see the UPS host here instead, as through the
    proxy."""
    out: list[tuple[str, str]] = []
    seen = False
    for name, value in headers:
        if name == "host":
            if seen:
                continue
            seen, value = True, host
        out.append((name, value))
    if not seen:
        out.append(("host", host))
    return tuple(out)


# mitmproxy's table lacks some codes UPS and fault rules send (429): the stdlib's fills in.
_REASONS = {status.value: status.phrase.encode() for status in HTTPStatus}
_REASONS.update({code: phrase.encode() for code, phrase in status_codes.RESPONSES.items()})


def _response_factory() -> Any:
    """A fast way to build ``http.Response`` objects, checked once at import.

    Under ``__debug__`` (Python without ``-O``, i.e. always in practice)
    mitmproxy type-checks every field of every new message with
    ``typing.get_origin``; that was a quarter of the addon's time per request.
    So one response is built the public way and later ones are shallow copies
    with their fields set, provided the object has the layout this relies on
    (all state in ``.data``); otherwise the public constructor is used.
    """
    template = http.Response(b"HTTP/1.1", 200, b"OK", http.Headers(), b"", None, 0.0, 0.0)

    def public(status: int, headers: http.Headers, body: bytes, now: float) -> http.Response:
        return http.Response(b"HTTP/1.1", status, _REASONS.get(status, b""), headers, body,
                             None, now, now)

    if set(vars(template)) != {"data"} or set(vars(template.data)) != {
        "http_version", "headers", "content", "trailers", "timestamp_start",
        "timestamp_end", "status_code", "reason",
    }:  # pragma: no cover - a future mitmproxy with another layout
        return public

    # What copy.copy does for these objects, without its generic __reduce_ex__ path.
    data_type, response_type = type(template.data), type(template)
    fields = vars(template.data)

    def fast(status: int, headers: http.Headers, body: bytes, now: float) -> http.Response:
        data = object.__new__(data_type)
        data.__dict__ = {**fields, "status_code": status, "reason": _REASONS.get(status, b""),
                         "headers": headers, "content": body, "timestamp_start": now,
                         "timestamp_end": now}
        response = object.__new__(response_type)
        response.__dict__["data"] = data
        return response

    return fast


_new_response = _response_factory()


def apply_response(flow: http.HTTPFlow, response: Response) -> None:
    """Answer ``flow`` with ``response``; ValueError if a header cannot be encoded.

    The core never sets framing headers (Content-Length, Transfer-Encoding,
    Content-Encoding); this does. ``Response.make`` is not used: it re-parses
    the headers and re-encodes the body through the content setter.
    """
    fields = [(k.encode(), v.encode()) for k, v in response.headers]
    fields.append((b"content-length", str(len(response.body)).encode()))
    # A HEAD answer announces the body's length but carries none.
    body = b"" if flow.request.method.upper() == "HEAD" else response.body
    flow.response = _new_response(response.status, http.Headers(fields), body, time.time())
    flow.is_replay = "response"


# -- faults -------------------------------------------------------------------------------

_HELD: dict[http.HTTPFlow, asyncio.TimerHandle] = {}
"""Flows a fault holds back (a delay, a timeout), with the timer that lets them go."""
TIMEOUT_POLL_S = 0.2
"""How often a timed-out flow checks whether its client has given up."""


def apply_fault(flow: http.HTTPFlow, decision: FaultDecision,
                normal: Response | None = None) -> Response | None:
    """Carry out a fault decision (``upsproxy.faults``) on ``flow``, from its
    ``request`` hook, without blocking the hook. ``normal`` is the answer the
    flow would get without the fault; it is needed when ``decision.needs_normal``
    (a slow or re-headered normal answer). Returns the answer set, or None.

    - ``action == "reset"``: the client's TCP connection is reset (RST), after
      ``decision.delay_s`` if set. Every request on that connection dies with
      it, as when UPS's edge drops one; the proxy keeps serving others.
    - ``action == "timeout"``: no answer ever. The flow is held (intercepted)
      until its client closes the connection (its read timeout fired) or the
      proxy stops (``release_held_flows``); then it is dropped.
    - otherwise: ``decision.answer(normal)`` is set as the response and, with a
      delay, the flow is intercepted and resumed ``delay_s`` later by a loop
      timer, so the hook returns at once and other flows go on.

    Raises ValueError like ``apply_response`` when a header cannot be encoded.
    """
    if decision.action == "timeout":
        flow.intercept()
        _HELD[flow] = asyncio.get_running_loop().call_later(
            TIMEOUT_POLL_S, _check_timed_out, flow)
        return None
    if decision.action == "reset":
        if decision.delay_s > 0:
            flow.intercept()
            _HELD[flow] = asyncio.get_running_loop().call_later(
                decision.delay_s, _release, flow, True)
        else:
            _reset_client(flow)
            flow.kill()
        return None
    response = decision.answer(normal)
    if response is None:
        raise ValueError("this fault decision needs the normal answer")
    apply_response(flow, response)
    if decision.delay_s > 0:
        flow.intercept()
        _HELD[flow] = asyncio.get_running_loop().call_later(
            decision.delay_s, _release, flow, False)
    return response


def _release(flow: http.HTTPFlow, kill: bool) -> None:
    """Let a held flow go on: answered, or (``kill``) reset and dropped.
    Resume first: ``kill`` alone clears ``intercepted`` without waking the
    hook that waits for the resume, which would then wait forever."""
    _HELD.pop(flow, None)
    if kill:
        _reset_client(flow)
    flow.resume()
    if kill and flow.killable:
        flow.kill()


def _check_timed_out(flow: http.HTTPFlow) -> None:
    if not flow.live or not flow.client_conn.state & ConnectionState.CAN_READ:
        _release(flow, True)  # the client gave up: nothing to answer
    else:
        _HELD[flow] = asyncio.get_running_loop().call_later(
            TIMEOUT_POLL_S, _check_timed_out, flow)


def release_held_flows() -> None:
    """Send delayed answers now and drop timed-out flows: at shutdown, so no
    hook is left waiting on a loop that is about to end."""
    for flow, timer in list(_HELD.items()):
        timer.cancel()
        _release(flow, flow.response is None)


def _reset_client(flow: http.HTTPFlow) -> None:
    """Close the client's connection with a TCP RST (SO_LINGER 0, then abort)."""
    try:
        handler = ctx.master.addons.get("proxyserver").connections[flow.client_conn.id]
        writer = handler.transports[flow.client_conn].writer
        transport = writer.transport
    except (AttributeError, KeyError):
        return  # already gone: killing the flow closes what is left
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


# -- the CA ------------------------------------------------------------------------------


def ensure_ca(confdir: Path) -> Path:
    """Create upsproxy's CA in ``confdir`` if needed; return the certificate's path.

    It is made under mitmproxy's file names (so tlsconfig finds it) but carries
    upsproxy's name, so a user who inspects a certificate sees who signed it.
    """
    confdir = confdir.expanduser()
    try:
        if not (confdir / f"{CA_BASENAME}-ca.pem").exists():
            certs.CertStore.create_store(confdir, CA_BASENAME, 2048, organization="upsproxy",
                                         cn="upsproxy sandbox CA (local, not for production)")
    except OSError as exc:
        raise StartupError(f"cannot create the CA in {confdir}: {exc.strerror}") from None
    return confdir / CA_CERT_NAME


# -- an embedded master ----------------------------------------------------------------------


@dataclass(frozen=True)
class ProxySettings:
    confdir: Path
    listen: tuple[str, int] | None = ("127.0.0.1", 8080)
    reverse_listen: tuple[str, int] | None = ("127.0.0.1", 8081)
    reverse_target: str = "https://wwwcie.ups.com"
    options: dict[str, Any] = field(default_factory=dict)
    """Further mitmproxy options (connection_strategy, allow_hosts, addon options)."""


@dataclass
class RunningProxy:
    master: Master
    proxy_address: tuple[str, int] | None
    reverse_address: tuple[str, int] | None
    ca_cert: Path

    @property
    def proxy_url(self) -> str | None:
        return _url(self.proxy_address)

    @property
    def reverse_url(self) -> str | None:
        return _url(self.reverse_address)


def _url(address: tuple[str, int] | None) -> str | None:
    if address is None:
        return None
    host = f"[{address[0]}]" if ":" in address[0] else address[0]
    return f"http://{host}:{address[1]}"


def _spec_address(address: tuple[str, int]) -> str:
    """``host:port`` as a mode spec wants it: mitmproxy splits at the last colon
    and hands the host to getaddrinfo as is, so IPv6 goes without brackets."""
    return f"{address[0]}:{address[1]}"


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class _StartupErrors(logging.Handler):
    """Collects mitmproxy's ERROR records while the listeners come up, so the
    CLI can report "port in use" instead of mitmproxy's errorcheck sys.exit."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


async def start_proxy(settings: ProxySettings, addons: Iterable[Any]) -> RunningProxy:
    """Start a minimal master with ``addons`` inside the running loop."""
    modes: list[str] = []
    listen, reverse = settings.listen, settings.reverse_listen
    if listen and reverse and listen[1] == 0 and reverse[1] == 0 and listen[0] == reverse[0]:
        # mitmproxy refuses two modes on the same "host:0"; give one a real free port.
        reverse = (reverse[0], _free_port(reverse[0]))
    if listen and reverse and listen == reverse:
        raise StartupError(f"the proxy and the reverse listener cannot share "
                           f"{_url(listen)}; give them different ports")
    if listen:
        modes.append(f"regular@{_spec_address(listen)}")
    if reverse:
        modes.append(f"reverse:{settings.reverse_target}@{_spec_address(reverse)}")
    ensure_ca(settings.confdir)
    master = Master(Options(), with_termlog=False)
    master.addons.add(core.Core(), proxyserver.Proxyserver(), next_layer.NextLayer(),
                      tlsconfig.TlsConfig(), *addons)
    errors = _StartupErrors()
    mitm_logger = logging.getLogger("mitmproxy")
    mitm_logger.addHandler(errors)
    try:
        # confdir last and through update(): with it in Options(...) mitmproxy 12 can
        # accept a connection before the CA store exists (DESIGN §8).
        try:
            master.options.update(mode=modes, **settings.options)
            master.options.update(confdir=str(settings.confdir.expanduser()))
        except exceptions.OptionsError as exc:
            raise StartupError(str(exc)) from None
        ps = master.addons.get("proxyserver")
        ok = await ps.setup_servers()
        await asyncio.sleep(0)
        if not ok or errors.messages:
            await _stop_servers(master)
            unique = list(dict.fromkeys(m.strip() for m in errors.messages if m.strip()))
            reason = "; ".join(unique) or "the listeners could not be started"
            raise StartupError(reason)
        await master.running()
    finally:
        mitm_logger.removeHandler(errors)
    proxy_address = reverse_address = None
    for server in ps.servers:
        addrs = server.listen_addrs
        if not addrs:
            continue
        address = (str(addrs[0][0]), int(addrs[0][1]))
        if isinstance(server.mode, ReverseMode):
            reverse_address = address
        else:
            proxy_address = address
    return RunningProxy(master, proxy_address, reverse_address,
                        settings.confdir.expanduser() / CA_CERT_NAME)


async def _stop_servers(master: Master) -> None:
    ps = master.addons.get("proxyserver")
    with contextlib.suppress(Exception):
        await ps.servers.update([])


async def stop_proxy(running: RunningProxy) -> None:
    """Stop listening, close open client connections, then run ``done``."""
    master = running.master
    await _stop_servers(master)
    release_held_flows()
    ps = master.addons.get("proxyserver")
    for handler in list(ps.connections.values()):
        for io in list(handler.transports.values()):
            if io.writer is not None:
                with contextlib.suppress(Exception):
                    io.writer.close()
    for _ in range(50):
        if not ps.connections:
            break
        await asyncio.sleep(0.01)
    await master.done()


class BackgroundProxy:
    """A proxy on its own event loop in a daemon thread (pytest plugin, demo).

    mitmproxy keeps its master in module globals, so one process runs one
    master at a time: use one BackgroundProxy per process (a session fixture).
    """

    def __init__(self, settings: ProxySettings, addons: Sequence[Any]) -> None:
        self.settings = settings
        self.addons = list(addons)
        self.running: RunningProxy | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None

    def start(self, timeout: float = 30.0) -> RunningProxy:
        ready = threading.Event()
        failure: list[BaseException] = []

        def main() -> None:
            async def serve() -> None:
                self._stopped = asyncio.Event()
                try:
                    self.running = await start_proxy(self.settings, self.addons)
                except BaseException as exc:  # noqa: BLE001 - reported to the caller
                    failure.append(exc)
                    ready.set()
                    return
                ready.set()
                await self._stopped.wait()
                await stop_proxy(self.running)

            self._loop = asyncio.new_event_loop()
            try:
                self._loop.run_until_complete(serve())
            finally:
                self._loop.close()

        self._thread = threading.Thread(target=main, name="upsproxy-master", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise StartupError(f"the proxy did not start within {timeout:.0f} s")
        if failure:
            raise failure[0]
        assert self.running is not None
        return self.running

    def stop(self, timeout: float = 10.0) -> None:
        if self._loop is None or self._stopped is None or self._thread is None:
            return
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(timeout)



# -- recording ---------------------------------------------------------------------------------


def to_response(flow: http.HTTPFlow) -> Response:
    """The core's view of UPS's answer, body decoded (gzip/br/deflate): a cassette
    holds readable bodies. An encoding mitmproxy cannot decode keeps the raw bytes."""
    resp = flow.response
    assert resp is not None
    try:
        body = resp.get_content(strict=True) or b""
    except ValueError:
        body = resp.raw_content or b""
    return Response(resp.status_code, tuple(resp.headers.items(multi=True)), body)


def upstream_allow_hosts(upstream: str) -> list[str]:
    """allow_hosts for record: the UPS hosts plus the upstream's own host and port,
    else the reverse listener's TLS connection to a non-UPS upstream would be
    tunnelled raw. Only that port: another service on the same host (a local test
    server on 127.0.0.1) is still tunnelled untouched. mitmproxy matches these
    against ``host:port``."""
    parts = urlsplit(upstream)
    host = (parts.hostname or "").lower()
    port = parts.port or 443
    return [*UPS_ALLOW_HOSTS, rf"^{re.escape(host)}\.?:{port}$"]


def record_settings(confdir: Path, listen: tuple[str, int] | None,
                    reverse_listen: tuple[str, int] | None, upstream: str,
                    upstream_ca: Path | None = None) -> ProxySettings:
    """Listeners for record: lazy connections (the request hook picks the upstream
    before any dial), TLS interception for UPS hosts only, upstream certificates
    verified against the system store or ``upstream_ca``."""
    options: dict[str, Any] = {"connection_strategy": "lazy",
                               "allow_hosts": upstream_allow_hosts(upstream)}
    if upstream_ca is not None:
        options["ssl_verify_upstream_trusted_ca"] = str(upstream_ca)
    return ProxySettings(confdir=confdir, listen=listen, reverse_listen=reverse_listen,
                         reverse_target=upstream, options=options)


def send_upstream(flow: http.HTTPFlow, upstream: str, *, login_too: bool) -> None:
    """Point a proxied request for a UPS API host (and, with ``login_too``, for the
    login host) at ``upstream``, as mitmproxy's mapremote would: scheme, host and
    port change, the Host header follows. The reverse listener already targets it."""
    if reverse_origin(flow) is not None:
        return
    host = target_host(flow)
    if host not in API_HOSTS and not (login_too and host in LOGIN_HOSTS):
        return
    parts = urlsplit(upstream)
    if parts.hostname is None:
        return
    flow.request.scheme = parts.scheme
    flow.request.host = parts.hostname
    flow.request.port = parts.port or (443 if parts.scheme == "https" else 80)


def read_flows(path: Path) -> Iterator[tuple[Request, Response]]:
    """The HTTP exchanges with a response in a mitmproxy flow file (``-w`` output);
    ValueError when the file is no flow file."""
    from mitmproxy import io as mitm_io

    with path.open("rb") as handle:
        try:
            for flow in mitm_io.FlowReader(handle).stream():
                if isinstance(flow, http.HTTPFlow) and flow.response is not None:
                    yield to_request(flow), to_response(flow)
        except exceptions.FlowReadException as exc:
            raise ValueError(str(exc)) from None
