"""Side-by-side throughput, latency and start-up benchmark of ``upsproxy replay``.

Why: DESIGN §7 states upsproxy's speed targets as *ratios* against two
references measured in the same run on the same machine, because absolute
req/s swing by ±20 % between runs of a shared 2-core box:

- the floor: a minimal mitmproxy master with a canned ~100 B answer
  (``scripts/bench_floor.py``): upsproxy ≥ 0.9x its throughput;
- ``mitmdump --server-replay`` on equivalent recorded flows: upsproxy ≥ 2x
  (plain-HTTP reverse listener) and ≥ 1.6x (HTTPS through the proxy);
- p99 ≤ 25 ms at 10 keep-alive clients; start-up to first answer ≤ 1.2x bare
  mitmdump; core decision ≤ 50 µs per request.

Every server runs with ``upsproxy replay``'s own mitmproxy setup (its reverse
target and options, ``Listening``), so a ratio compares what answers.

How: each server runs as its own process pinned to one core (``taskset``), the
load generator ``hey`` (Debian package ``hey``) to another, 10 keep-alive
clients, loopback only. Every server is warmed up, then measured on the token
endpoint (POST /security/v1/oauth/token, form body, Basic auth) and the refresh
endpoint, both over the reverse listener (plain HTTP) and through the regular
proxy (CONNECT + TLS, certificate minted by the proxy's CA). hey does not verify
TLS certificates, so one request per server is also made with Python's ``ssl``
trusting only ``mitmproxy-ca-cert.pem`` to show interception really works.

upsproxy is stateful: a code is single use, a refresh token rotates. hey sends
one body over and over, so the benchmark mints a real code (and a real refresh
token) just before each measurement: the first request gets 200, every other a
400 envelope ("reused" code / refresh token). Each 400 is still a full decision
of the core (form parsing, Basic auth, store lookup); the status mix and the
rule mix from upsproxy's exchange log are printed with each row. The
``token-200`` cells time the success path under load too: ``scripts/loadgen.py``
sends every server the same load, upsproxy with a fresh code (minted before the
cell) in each request, so each answer is a newly minted, signed token. They are
reported, not judged: an RS384 signature with UPS's 4096-bit key size costs
~1.3 ms of CPU (~760 a second per core, a ceiling no proxy work can lift), while
the references answer with a canned body whatever is asked.

The output is a report, not a test: PASS/MISS per target, exit 0 unless a
server could not be started or something crashed.

    /tmp/v311/bin/python scripts/bench_replay.py [--duration 3] [--rounds 3] [--json out.json]

Default run: 3 rounds x 18 cells x 3 s of load, plus warm-up, start-up and the
in-process part: about 3.5 minutes.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import itertools
import json
import logging
import os
import random
import re
import resource
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

UPS_HOST = "wwwcie.ups.com"
UPS_ORIGIN = f"https://{UPS_HOST}"
AUTHORIZE_PATH = "/security/v1/oauth/authorize"
TOKEN_PATH = "/security/v1/oauth/token"
REFRESH_PATH = "/security/v1/oauth/refresh"
FORM = "application/x-www-form-urlencoded"
CLIENT_ID, CLIENT_SECRET = "bench-client", "bench-secret"
BASIC = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
REDIRECT_URI = "https://app.example.test/cb"
REQUEST_HEADERS: dict[str | bytes, str | bytes] = {
    "Host": UPS_HOST, "Content-Type": FORM, "Authorization": BASIC}
CA_CERT = "mitmproxy-ca-cert.pem"
NOISY = 0.05
"""Foreign CPU share on the pinned cores above which a cell is flagged as disturbed."""

SERVERS = ("floor", "server-replay", "upsproxy")
TRANSPORTS = ("reverse-http", "proxy-https")
ENDPOINTS = {"token": TOKEN_PATH, "refresh": REFRESH_PATH}
FRESH = "token-200"
"""The token endpoint with a fresh code in every request (``loadgen``, not hey):
upsproxy mints and signs a token each time; the references answer as always."""
CELL_ENDPOINTS = (*ENDPOINTS, FRESH)
FRESH_CODES_PER_S = 1200
"""Codes minted per second of a token-200 cell: more than upsproxy's signing rate."""
# DESIGN §7 targets: upsproxy's req/s over each reference's, per transport; and limits.
RATIO_TARGETS = {"floor": {"reverse-http": 0.9, "proxy-https": 0.9},
                 "server-replay": {"reverse-http": 2.0, "proxy-https": 1.6}}
P99_TARGET_MS = 25.0
STARTUP_TARGET = 1.2
CORE_TARGET_US = 50.0
URL_LINE = re.compile(r"^\s+(proxy|base URL)\s+(http://\S+)", re.MULTILINE)
EXCHANGE_LINE = re.compile(rb"-> (\d{3}) (\S+)")

log = logging.getLogger("bench")


# -- results ------------------------------------------------------------------------------


@dataclass
class Cell:
    """One measurement: a server, a transport, an endpoint."""

    server: str
    transport: str
    endpoint: str
    rps: float = float("nan")
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    bytes_per_response: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    rules: dict[str, int] = field(default_factory=dict)
    """upsproxy only: which core rule decided the answers (from its exchange log)."""
    rounds: list[float] = field(default_factory=list)
    """req/s of each round; rps is their median."""
    server_cpu: float = float("nan")
    """Share of its core the server used: ~1.0 means it, not hey, was the limit."""
    background_cpu: float = float("nan")
    """Share of the two pinned cores taken meanwhile by other processes or the
    hypervisor (steal): noise."""
    cpu_us: float = float("nan")
    """The server's own CPU time per answered request. Other load moves it much less
    than req/s (shared caches still inflate it a little), so its ratios are the
    steadier view on a busy machine."""


@dataclass
class Report:
    settings: dict[str, Any]
    cells: list[Cell] = field(default_factory=list)
    tls_checks: dict[str, str] = field(default_factory=dict)
    startup_s: dict[str, list[float]] = field(default_factory=dict)
    core_us: dict[str, float] = field(default_factory=dict)
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def cell(self, server: str, transport: str, endpoint: str) -> Cell | None:
        for c in self.cells:
            if (c.server, c.transport, c.endpoint) == (server, transport, endpoint):
                return c
        return None


# -- processes ------------------------------------------------------------------------------


@dataclass
class Pinning:
    server: list[str]
    load: list[str]
    server_core: int | None
    load_core: int | None

    @classmethod
    def detect(cls, enabled: bool) -> Pinning:
        cores = sorted(os.sched_getaffinity(0))
        if enabled and len(cores) >= 2 and shutil.which("taskset"):
            return cls(["taskset", "-c", str(cores[0])], ["taskset", "-c", str(cores[1])],
                       cores[0], cores[1])
        return cls([], [], None, None)


@dataclass(frozen=True)
class CpuSnapshot:
    """Clock ticks from /proc: per pinned core (busy, total), the server, hey + us."""

    cores: dict[int, tuple[int, int]]
    server: int
    ours: float

    @classmethod
    def take(cls, pinning: Pinning, pid: int) -> CpuSnapshot | None:
        if pinning.server_core is None or pinning.load_core is None:
            return None
        try:
            cores = {}
            for line in Path("/proc/stat").read_text().splitlines():
                name, *values = line.split()
                if name in (f"cpu{pinning.server_core}", f"cpu{pinning.load_core}"):
                    v = [int(x) for x in values[:8]]
                    busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
                    cores[int(name[3:])] = (busy, busy + v[3] + v[4])
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            server = int(fields[11]) + int(fields[12])
        except (OSError, ValueError, IndexError):
            return None
        own, children = resource.getrusage(resource.RUSAGE_SELF), \
            resource.getrusage(resource.RUSAGE_CHILDREN)
        ours = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
        return cls(cores, server, ours)

    def shares(self, later: CpuSnapshot, pinning: Pinning) -> tuple[float, float, float]:
        """(server's share of its core, others' share of both cores, server CPU seconds)."""
        assert pinning.server_core is not None and pinning.load_core is not None
        hz = os.sysconf("SC_CLK_TCK")
        s0, s1 = self.cores[pinning.server_core], later.cores[pinning.server_core]
        l0, l1 = self.cores[pinning.load_core], later.cores[pinning.load_core]
        server = later.server - self.server
        total = (s1[1] - s0[1]) + (l1[1] - l0[1])
        if total <= 0 or s1[1] == s0[1]:
            return float("nan"), float("nan"), server / hz
        busy = (s1[0] - s0[0]) + (l1[0] - l0[0])
        ours = (later.ours - self.ours) * hz  # hey (a reaped child) and this script
        return server / (s1[1] - s0[1]), max(0.0, busy - server - ours) / total, server / hz


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    """A benchmarked server: started, addressed, stopped, its log read."""

    name: str
    argv: list[str]
    log_path: Path
    ports: tuple[int, int] | None = None
    """(proxy, reverse) when the command line fixes them; else read from the log."""
    proc: subprocess.Popen[bytes] | None = None
    proxy_url: str = ""
    base_url: str = ""

    def start(self, pin: list[str], timeout: float = 60.0) -> None:
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen([*pin, *self.argv], stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        if self.ports is not None:
            self.proxy_url = f"http://127.0.0.1:{self.ports[0]}"
            self.base_url = f"http://127.0.0.1:{self.ports[1]}"
        else:
            while time.monotonic() < deadline:
                self._check_alive()
                found = dict(URL_LINE.findall(self.log_text()))
                if "proxy" in found and "base URL" in found:
                    self.proxy_url, self.base_url = found["proxy"], found["base URL"]
                    break
                time.sleep(0.05)
            else:
                raise RuntimeError(f"{self.name}: no listener addresses within {timeout:.0f} s")
        # Ready = answers the token request on the reverse listener (not merely an
        # open port); server-replay kills anything that is not a recorded request.
        for _ in range(int(timeout / 0.05)):
            self._check_alive()
            with contextlib.suppress(OSError, http.client.HTTPException):
                http_request(self.base_url, "POST", TOKEN_PATH, FIXED_BODIES["token"],
                             {"Content-Type": FORM, "Authorization": BASIC}, timeout=2.0)
                return
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        raise RuntimeError(f"{self.name}: no HTTP answer within {timeout:.0f} s")

    def _check_alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            tail = self.log_text()[-2000:]
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{tail}")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def rules_since(self, offset: int) -> dict[str, int]:
        with self.log_path.open("rb") as f:
            f.seek(offset)
            data = f.read()
        return {f"{s.decode()} {r.decode()}": n
                for (s, r), n in Counter(EXCHANGE_LINE.findall(data)).most_common()}

    def stop(self) -> None:
        stop_process(self.proc)


def stop_process(proc: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


# -- plain HTTP helpers (setup, readiness, TLS check) ----------------------------------------


def http_request(base_url: str, method: str, path: str, body: str = "",
                 headers: dict[str, str] | None = None,
                 timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    try:
        conn.request(method, path, body.encode() or None, headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def verified_via_proxy(proxy_url: str, cafile: Path, path: str, body: str) -> str:
    """One request through the proxy to UPS's name, trusting only the proxy's CA."""
    parts = urlsplit(proxy_url)
    context = ssl.create_default_context(cafile=str(cafile))
    conn = http.client.HTTPSConnection(parts.hostname or "127.0.0.1", parts.port,
                                       context=context, timeout=10)
    try:
        conn.set_tunnel(UPS_HOST, 443)
        conn.request("POST", path, body.encode(), {"Content-Type": FORM, "Authorization": BASIC})
        resp = conn.getresponse()
        resp.read()
        return f"ok: {resp.status} over TLS verified against {cafile.name}"
    except (OSError, ssl.SSLError, http.client.HTTPException) as exc:
        return f"FAILED: {type(exc).__name__}: {exc}"
    finally:
        conn.close()


def authorize_query() -> str:
    return urlencode({"client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI,
                      "response_type": "code", "scope": "read"})


def token_body(code: str) -> str:
    return urlencode({"grant_type": "authorization_code", "code": code,
                      "redirect_uri": REDIRECT_URI})


def refresh_body(token: str) -> str:
    return urlencode({"grant_type": "refresh_token", "refresh_token": token})


def mint_code(base_url: str) -> str:
    """A fresh code from upsproxy (started with --auto-approve)."""
    status, headers, _ = http_request(base_url, "GET", f"{AUTHORIZE_PATH}?{authorize_query()}")
    location = headers.get("location", "")
    codes = parse_qs(urlsplit(location).query).get("code")
    if status != 302 or not codes:
        raise RuntimeError(f"authorize answered {status} {location!r}: cannot mint a code")
    return codes[0]


def mint_codes(base_url: str, n: int) -> list[str]:
    """``n`` fresh codes over one keep-alive connection (before a cell, not timed)."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    codes = []
    try:
        for _ in range(n):
            conn.request("GET", f"{AUTHORIZE_PATH}?{authorize_query()}")
            resp = conn.getresponse()
            resp.read()
            found = parse_qs(urlsplit(resp.getheader("location", "")).query).get("code")
            if resp.status != 302 or not found:
                raise RuntimeError(f"authorize answered {resp.status}: cannot mint codes")
            codes.append(found[0])
    finally:
        conn.close()
    return codes


def mint_refresh_token(base_url: str) -> str:
    status, _, body = http_request(base_url, "POST", TOKEN_PATH, token_body(mint_code(base_url)),
                                   {"Content-Type": FORM, "Authorization": BASIC})
    if status != 200:
        raise RuntimeError(f"token exchange answered {status}: {body[:200]!r}")
    return str(json.loads(body)["refresh_token"])


# Same-shaped stand-ins for the stateless servers (DESIGN §3: 132-char codes
# ending in "==", 164-char refresh tokens), fixed so recorded flows match them.
_rng = random.Random(7)
FIXED_CODE = base64.b64encode(_rng.randbytes(97)).decode()
FIXED_REFRESH = base64.b64encode(_rng.randbytes(123)).decode()
FIXED_BODIES = {"token": token_body(FIXED_CODE), "refresh": refresh_body(FIXED_REFRESH)}


# -- the flow file for mitmdump --server-replay ----------------------------------------------


def ups_token_answer(refresh_count: int) -> bytes:
    """A UPS-shaped 200 token answer (DESIGN §3: string values, UPS's key order)."""

    def b64url(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    now_ms = 1_717_200_000_000
    header = b64url(json.dumps({"kid": "k" * 36, "typ": "JWT", "alg": "RS384"}).encode())
    claims = b64url(json.dumps({
        "iss": "https://apis.ups.com", "sub": "s" * 32, "clientid": CLIENT_ID,
        "azp": CLIENT_ID, "sid": "x" * 64, "aud": "https://apis.ups.com", "scope": "read",
        "auth_type": "authorization_code", "jti": "j" * 36, "ver": "1.0",
        "iat": now_ms // 1000, "nbf": now_ms // 1000, "exp": now_ms // 1000 + 14400,
    }).encode())
    access = f"{header}.{claims}.{b64url(_rng.randbytes(512))}"
    body = {
        "refresh_token_expires_in": "5183999", "refresh_token_status": "approved",
        "token_type": "Bearer", "issued_at": str(now_ms), "client_id": CLIENT_ID,
        "access_token": access, "refresh_token": FIXED_REFRESH,
        "refresh_token_issued_at": str(now_ms), "expires_in": "14399",
        "refresh_count": str(refresh_count), "status": "approved",
    }
    return json.dumps(body, separators=(",", ":")).encode()


def write_flows(path: Path, reverse_target: str) -> None:
    """A token and a refresh exchange, as `mitmdump -w` would have recorded them:
    once for the proxy (https://wwwcie.ups.com) and once as the reverse listener
    sees them (``reverse_target``), since server-replay matches on the scheme."""
    from mitmproxy import connection, http, io

    with path.open("wb") as f:
        writer = io.FlowWriter(f)
        for origin, (endpoint, count) in itertools.product(
                (UPS_ORIGIN, reverse_target), (("token", 0), ("refresh", 1))):
            client = connection.Client(peername=("127.0.0.1", 50000), sockname=("127.0.0.1", 0),
                                       timestamp_start=time.time())
            server = connection.Server(address=(UPS_HOST, 443))
            flow = http.HTTPFlow(client, server)
            flow.request = http.Request.make(
                "POST", origin + ENDPOINTS[endpoint], FIXED_BODIES[endpoint],
                REQUEST_HEADERS)
            flow.response = http.Response.make(200, ups_token_answer(count),
                                               {"Content-Type": "application/json"})
            writer.add(flow)


def ensure_ca(confdir: Path) -> Path:
    """Create the CA once, before any timing, so no server pays for key generation."""
    from mitmproxy import certs

    confdir.mkdir(parents=True, exist_ok=True)
    certs.CertStore.from_store(str(confdir), "mitmproxy", 2048)
    return confdir / CA_CERT


# -- the servers --------------------------------------------------------------------------


@dataclass(frozen=True)
class Tools:
    upsproxy: str
    mitmdump: str
    python: str
    hey: str

    @classmethod
    def find(cls, upsproxy: str | None = None) -> Tools:
        """Tools next to this interpreter (its venv), else on PATH."""
        bindir = Path(sys.executable).parent

        def tool(name: str) -> str:
            local = bindir / name
            found = str(local) if local.exists() else shutil.which(name)
            if not found:
                raise SystemExit(f"bench_replay: `{name}` not found next to {sys.executable} "
                                 "nor on PATH" + (" (apt-get install hey)" if name == "hey"
                                                  else ""))
            return found

        return cls(upsproxy or tool("upsproxy"), tool("mitmdump"), sys.executable, tool("hey"))


def mitmdump_modes(proxy_port: int, reverse_port: int, target: str) -> list[str]:
    return ["--mode", f"regular@127.0.0.1:{proxy_port}",
            "--mode", f"reverse:{target}@127.0.0.1:{reverse_port}"]


@dataclass(frozen=True)
class Listening:
    """How ``upsproxy replay`` configures mitmproxy, which every reference copies:
    the reverse listener's target and the options (lazy connections, no upstream
    certificates, TLS interception for UPS hosts only, the body size limit).

    So the ratios compare what answers, not how mitmproxy was set up: the plain
    HTTP reverse target spares each request a (never connected) server TLS layer
    under the HTTP layer, and the body size limit costs each request a second
    look at its framing headers; each moves a server's req/s by a few percent.
    """

    reverse_target: str
    sets: tuple[str, ...]
    """``key=value`` specs, as mitmdump's ``--set`` takes them."""

    @classmethod
    def of_upsproxy(cls) -> Listening:
        from upsproxy.cli import replay_settings

        settings = replay_settings(Path(tempfile.gettempdir()), None, None)
        sets = []
        for key, value in settings.options.items():
            for item in value if isinstance(value, list) else [value]:
                sets.append(f"{key}={str(item).lower() if isinstance(item, bool) else item}")
        return cls(settings.reverse_target, tuple(sets))

    def set_args(self) -> list[str]:
        return [arg for spec in self.sets for arg in ("--set", spec)]


def server_process(name: str, tools: Tools, workdir: Path, confdir: Path, flows: Path,
                   listening: Listening, replay_quiet: bool = True) -> ServerProcess:
    log_path = workdir / f"{name}.log"
    if name == "upsproxy":
        # --auto-approve only lets the benchmark mint codes without the login page.
        return ServerProcess(name, [tools.upsproxy, "replay", "--listen", "127.0.0.1:0",
                                    "--reverse-listen", "127.0.0.1:0", "--confdir",
                                    str(confdir), "--auto-approve"], log_path)
    if name == "floor":
        script = Path(__file__).resolve().parent / "bench_floor.py"
        return ServerProcess(name, [tools.python, str(script), "--confdir", str(confdir),
                                    "--reverse-target", listening.reverse_target,
                                    *listening.set_args()], log_path)
    ports = (free_port(), free_port())
    # -q: mitmdump's per-flow console line off, the kindest setting for the reference.
    argv = [tools.mitmdump, *(["-q"] if replay_quiet else []), "--set", f"confdir={confdir}",
            *mitmdump_modes(*ports, listening.reverse_target), *listening.set_args(),
            "--server-replay", str(flows), "--set", "server_replay_reuse=true",
            "--set", "server_replay_extra=kill",
            # keep_host_header leaves the reverse listener's requests with the client's
            # Host (127.0.0.1:port), which server-replay would otherwise match on.
            "--set", "server_replay_ignore_host=true"]
    return ServerProcess(name, argv, log_path, ports)


# -- load ---------------------------------------------------------------------------------


@dataclass
class HeyResult:
    rps: float
    p50_ms: float
    p99_ms: float
    size: int
    statuses: dict[str, int]
    errors: dict[str, int]


def parse_hey(text: str) -> HeyResult:
    def number(pattern: str) -> float:
        match = re.search(pattern, text, re.MULTILINE)
        return float(match.group(1)) if match else float("nan")

    statuses = {s: int(n) for s, n in
                re.findall(r"^\s+\[(\d+)\]\s+(\d+) responses", text, re.MULTILINE)}
    errors: dict[str, int] = {}
    if "Error distribution:" in text:
        tail = text.split("Error distribution:", 1)[1]
        for n, message in re.findall(r"^\s+\[(\d+)\]\s+(.+)$", tail, re.MULTILINE):
            errors[message.strip()[:160]] = int(n)
    size = number(r"Size/request:\s+(\d+) bytes")
    return HeyResult(rps=number(r"Requests/sec:\s+([\d.]+)"),
                     p50_ms=number(r"^\s+50% in ([\d.]+) secs") * 1000,
                     p99_ms=number(r"^\s+99% in ([\d.]+) secs") * 1000,
                     size=0 if size != size else int(size), statuses=statuses, errors=errors)


def run_hey(hey: str, pin: list[str], url: str, body: str, *, proxy: str | None,
            duration: float, concurrency: int) -> HeyResult:
    """hey for ``duration`` seconds (its -z; it then ignores -n), with a hard timeout."""
    argv = [*pin, hey, "-z", f"{duration:g}s", "-c", str(concurrency), "-cpus", "1", "-t", "10",
            "-m", "POST", "-T", FORM, "-H", f"Authorization: {BASIC}", "-d", body]
    if proxy:
        argv += ["-x", proxy]
    done = subprocess.run([*argv, url], capture_output=True, text=True,
                          timeout=duration + 30, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"hey failed ({done.returncode}): {done.stderr[-500:]}")
    return parse_hey(done.stdout)


@dataclass(frozen=True)
class Target:
    """Where hey sends a request for a server and transport."""

    url: str
    proxy: str | None


def target(server: ServerProcess, transport: str, path: str) -> Target:
    if transport == "reverse-http":
        return Target(server.base_url + path, None)
    return Target(UPS_ORIGIN + path, server.proxy_url)


def body_for(server: ServerProcess, endpoint: str) -> str:
    """What hey sends: a just-minted code/refresh token for upsproxy (first use 200)."""
    if server.name != "upsproxy":
        return FIXED_BODIES[endpoint]
    if endpoint == "token":
        return token_body(mint_code(server.base_url))
    return refresh_body(mint_refresh_token(server.base_url))


def warm_up(server: ServerProcess, args: argparse.Namespace, tools: Tools, pinning: Pinning,
            cafile: Path, report: Report) -> None:
    """One CA-verified request, then hey on each transport (certs minted, code paths hot)."""
    report.tls_checks[server.name] = verified_via_proxy(server.proxy_url, cafile, TOKEN_PATH,
                                                        FIXED_BODIES["token"])
    for transport in TRANSPORTS:
        warm = target(server, transport, TOKEN_PATH)
        run_hey(tools.hey, pinning.load, warm.url, FIXED_BODIES["token"], proxy=warm.proxy,
                duration=args.warmup, concurrency=args.concurrency)


def fresh_bodies(server: ServerProcess, args: argparse.Namespace) -> list[bytes]:
    """Token request bodies for a token-200 cell: a new code each for upsproxy (minted
    before the cell's timing starts); the stateless references get the fixed body."""
    count = int(FRESH_CODES_PER_S * args.duration)
    if server.name == "upsproxy":
        return [token_body(code).encode() for code in mint_codes(server.base_url, count)]
    return [FIXED_BODIES["token"].encode()] * count


def run_fresh(server: ServerProcess, transport: str, bodies: list[bytes],
              args: argparse.Namespace) -> HeyResult:
    """Each body sent once (``loadgen``, in this process, pinned to the load core)."""
    from loadgen import run_load

    count = len(bodies)
    url = urlsplit(server.base_url if transport == "reverse-http" else server.proxy_url)
    result = run_load(url.hostname or "127.0.0.1", url.port or 80, TOKEN_PATH, bodies,
                      {"Content-Type": FORM, "Authorization": BASIC},
                      concurrency=args.concurrency, duration=args.duration,
                      tunnel_to=UPS_HOST if transport == "proxy-https" else None)
    if result.exhausted:
        log.warning("  %s %s: the %d fresh codes ran out before %g s", server.name, transport,
                    count, args.duration)
    return HeyResult(result.rps, result.p50_ms, result.p99_ms, result.size, result.statuses,
                     result.errors)


def measure_cell(server: ServerProcess, transport: str, endpoint: str,
                 args: argparse.Namespace, tools: Tools, pinning: Pinning) -> Cell:
    if endpoint == FRESH:
        bodies = fresh_bodies(server, args)
    else:
        where = target(server, transport, ENDPOINTS[endpoint])
        body = body_for(server, endpoint)
    offset = server.log_size()
    assert server.proc is not None
    before = CpuSnapshot.take(pinning, server.proc.pid)
    if endpoint == FRESH:
        result = run_fresh(server, transport, bodies, args)
    else:
        result = run_hey(tools.hey, pinning.load, where.url, body, proxy=where.proxy,
                         duration=args.duration, concurrency=args.concurrency)
    after = CpuSnapshot.take(pinning, server.proc.pid)
    server_share, background, server_s = (before.shares(after, pinning) if before and after
                                          else (float("nan"),) * 3)
    answered = sum(result.statuses.values())
    rules: dict[str, int] = {}
    if server.name == "upsproxy":
        time.sleep(0.2)  # let the exchange log catch up
        rules = server.rules_since(offset)
    cell = Cell(server.name, transport, endpoint, result.rps, result.p50_ms, result.p99_ms,
                result.size, result.statuses, result.errors, rules, [result.rps], server_share,
                background, server_s / answered * 1e6 if answered else float("nan"))
    log.info("  %-13s %-12s %-7s %8.1f req/s  p50 %5.1f ms  p99 %5.1f ms  %4.0f CPU µs/req  "
             "srv %3.0f%%  bg %3.0f%%  %s", server.name, transport, endpoint, cell.rps,
             cell.p50_ms, cell.p99_ms, cell.cpu_us, cell.server_cpu * 100,
             cell.background_cpu * 100, _mix(cell.statuses))
    return cell


def measure_all(running: list[ServerProcess], args: argparse.Namespace, tools: Tools,
                pinning: Pinning) -> list[list[Cell]]:
    """Cells interleaved server by server, so compared numbers are seconds apart and
    share whatever else the machine is doing; the server order rotates per round."""
    rounds: list[list[Cell]] = []
    for n in range(args.rounds):
        order = running[n % len(running):] + running[:n % len(running)]
        log.info("round %d/%d", n + 1, args.rounds)
        cells = [measure_cell(server, transport, endpoint, args, tools, pinning)
                 for endpoint in CELL_ENDPOINTS for transport in TRANSPORTS for server in order]
        rounds.append(cells)
    return rounds


def merge_rounds(rounds: list[list[Cell]]) -> list[Cell]:
    """Median req/s and latencies per cell over rounds; counts summed."""
    merged: dict[tuple[str, str, str], list[Cell]] = {}
    for cells in rounds:
        for c in cells:
            merged.setdefault((c.server, c.transport, c.endpoint), []).append(c)
    out = []
    for (server, transport, endpoint), cs in merged.items():
        statuses: Counter[str] = Counter()
        errors: Counter[str] = Counter()
        rules: Counter[str] = Counter()
        for c in cs:
            statuses.update(c.statuses)
            errors.update(c.errors)
            rules.update(c.rules)
        out.append(Cell(server, transport, endpoint,
                        statistics.median(c.rps for c in cs),
                        statistics.median(c.p50_ms for c in cs),
                        statistics.median(c.p99_ms for c in cs),
                        cs[0].bytes_per_response, dict(statuses), dict(errors),
                        dict(rules.most_common()), [c.rps for c in cs],
                        statistics.median(c.server_cpu for c in cs),
                        max(c.background_cpu for c in cs),
                        statistics.median(c.cpu_us for c in cs)))
    return out


# -- start-up -------------------------------------------------------------------------------


FIRST_REQUEST = (f"GET {AUTHORIZE_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 "Connection: close\r\n\r\n").encode()


def time_to_first_answer(argv: list[str], reverse_port: int, log_path: Path,
                         timeout: float = 30.0) -> float:
    """Seconds from spawning ``argv`` until its reverse listener answers HTTP."""
    with log_path.open("ab") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        for _ in range(int(timeout / 0.002)):
            if time.perf_counter() - start > timeout:
                break
            if proc.poll() is not None:
                raise RuntimeError(f"{argv[0]} exited with {proc.returncode} (see {log_path})")
            try:
                with socket.create_connection(("127.0.0.1", reverse_port), timeout=5) as sock:
                    sock.sendall(FIRST_REQUEST)
                    if sock.recv(16).startswith(b"HTTP/1."):
                        return time.perf_counter() - start
            except OSError:
                pass
            time.sleep(0.002)
        raise RuntimeError(f"{argv[0]} gave no answer within {timeout:.0f} s")
    finally:
        stop_process(proc)


def compile_upsproxy(python: str) -> None:
    """Write upsproxy's bytecode, as ``pip install`` does. An editable install in an
    environment with PYTHONDONTWRITEBYTECODE would compile every upsproxy module at
    each start (~35 ms here), while mitmdump's modules come compiled."""
    code = ("import compileall, pathlib, upsproxy, upsproxy.addons\n"
            "for m in (upsproxy, upsproxy.addons):\n"
            "    compileall.compile_dir(pathlib.Path(m.__file__).parent, quiet=1)\n")
    subprocess.run([python, "-c", code], check=False, timeout=120)


def measure_startup(tools: Tools, pinning: Pinning, confdir: Path, workdir: Path,
                    reps: int) -> dict[str, list[float]]:
    """upsproxy replay vs bare mitmdump (same two listeners, nothing loaded), interleaved."""
    compile_upsproxy(tools.python)
    times: dict[str, list[float]] = {"upsproxy": [], "mitmdump": [], "floor": []}
    floor = Path(__file__).resolve().parent / "bench_floor.py"
    for _ in range(reps):
        for name in times:
            proxy_port, reverse_port = free_port(), free_port()
            if name == "upsproxy":
                argv = [tools.upsproxy, "replay", "--listen", f"127.0.0.1:{proxy_port}",
                        "--reverse-listen", f"127.0.0.1:{reverse_port}",
                        "--confdir", str(confdir)]
            elif name == "mitmdump":
                # Reverse to a closed loopback port: its answer is a quick 502, and
                # nothing is dialled outside the machine.
                argv = [tools.mitmdump, "--set", f"confdir={confdir}",
                        *mitmdump_modes(proxy_port, reverse_port, f"http://127.0.0.1:{free_port()}"),
                        "--set", "connection_strategy=lazy"]
            else:
                argv = [tools.python, str(floor), "--confdir", str(confdir),
                        "--listen", f"127.0.0.1:{proxy_port}",
                        "--reverse-listen", f"127.0.0.1:{reverse_port}"]
            seconds = time_to_first_answer([*pinning.server, *argv], reverse_port,
                                           workdir / f"startup-{name}.log")
            times[name].append(seconds)
            log.info("  start-up %-9s %.3f s", name, seconds)
    return times


# -- the core, in process -------------------------------------------------------------------


def _per_call_us(fn: Callable[[], object], n: int) -> float:
    """CPU time of this thread per call: other processes on the machine do not count."""
    start = time.thread_time()
    for _ in range(n):
        fn()
    return (time.thread_time() - start) / n * 1e6


def measure_core(n: int) -> dict[str, float]:
    """µs per ``Sandbox.handle`` decision (no proxy, no I/O), and per addon call.

    Every call gets a new ``Request`` (as from the adapter), so nothing cached on
    the object (its header map) is reused; building it costs ~3 µs and is included.
    """
    from upsproxy.messages import Request
    from upsproxy.sandbox import Sandbox, SandboxOptions

    sandbox = Sandbox.from_options(SandboxOptions(auto_approve=True))
    headers = (("host", UPS_HOST), ("content-type", FORM), ("authorization", BASIC))

    def post(path: str, body: str) -> Callable[[], Request]:
        raw = body.encode()
        return lambda: Request("POST", UPS_HOST, path, headers=headers, body=raw)

    query = authorize_query()

    def authorize() -> Request:
        return Request("GET", UPS_HOST, AUTHORIZE_PATH, query=query,
                       headers=(("host", UPS_HOST),))

    def new_code() -> str:
        location = sandbox.handle(authorize()).header("location") or ""
        return parse_qs(urlsplit(location).query)["code"][0]

    out: dict[str, float] = {}
    used = post(TOKEN_PATH, token_body(new_code()))
    assert sandbox.handle(used()).status == 200
    out["token 400 (code reused)"] = _per_call_us(lambda: sandbox.handle(used()), n)
    unknown = post(REFRESH_PATH, refresh_body(FIXED_REFRESH))
    out["refresh 400 (unknown token)"] = _per_call_us(lambda: sandbox.handle(unknown()), n)
    m = max(200, n // 10)
    out["authorize 302 (mint code)"] = _per_call_us(lambda: sandbox.handle(authorize()), m)
    fresh = iter([post(TOKEN_PATH, token_body(new_code()))() for _ in range(m)])
    answers: list[bytes] = []
    out["token 200 (mint tokens)"] = _per_call_us(
        lambda: answers.append(sandbox.handle(next(fresh)).body), m)
    refreshes = iter([post(REFRESH_PATH, refresh_body(json.loads(a)["refresh_token"]))()
                      for a in answers])
    out["refresh 200 (rotate)"] = _per_call_us(lambda: sandbox.handle(next(refreshes)), m)
    out.update(measure_addon(n, sandbox))
    return out


def measure_addon(n: int, sandbox: Any) -> dict[str, float]:
    """The addon's own cost per request: flow -> Request -> handle -> flow (+ the log line).

    It runs on an event loop that turns every 10 requests, as mitmproxy's does
    under load, so the exchange log writes its lines (to /dev/null) in batches
    the way ``upsproxy replay`` does (``upsproxy.logsink``)."""
    import asyncio

    from mitmproxy import http
    from mitmproxy.test import tflow
    from upsproxy.addons.replay import Replay

    from upsproxy import logsink

    addon = Replay(sandbox)
    request = http.Request.make("POST", UPS_ORIGIN + TOKEN_PATH, token_body(FIXED_CODE),
                                REQUEST_HEADERS)

    def one() -> None:
        addon.request(tflow.tflow(req=request))

    def just_the_flow() -> None:
        tflow.tflow(req=request)

    async def per_call_us(fn: Callable[[], None]) -> float:
        start = time.thread_time()
        for i in range(n):
            fn()
            if i % 10 == 9:
                await asyncio.sleep(0)
        return (time.thread_time() - start) / n * 1e6

    async def measure() -> dict[str, float]:
        base = await per_call_us(just_the_flow)
        return {"Replay.request, token 400, log on": await per_call_us(one) - base}

    saved = logsink.writer()
    with open(os.devnull, "w") as sink:
        logsink.write_to(sink)
        try:
            return asyncio.run(measure())
        finally:
            logsink.flush()
            logsink.use(saved)


# -- the report ----------------------------------------------------------------------------


def _pct(share: float) -> str:
    return "-" if share != share else f"{share * 100:.0f}"


def _num(value: float) -> str:
    return "-" if value != value else f"{value:.0f}"


def _mix(counts: dict[str, int]) -> str:
    return " ".join(f"{k}:{v}" for k, v in sorted(counts.items())) or "-"


def verdicts(report: Report) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def add(what: str, value: float, op: str, goal: float, primary: bool) -> None:
        ok = value >= goal if op == ">=" else value <= goal
        rows.append({"what": what, "value": value, "target": f"{op} {goal:g}",
                     "verdict": ("PASS" if ok else "MISS") if value == value else "n/a",
                     "primary": primary})

    for endpoint in CELL_ENDPOINTS:
        primary = endpoint == "token"
        for transport in TRANSPORTS:
            ups = report.cell("upsproxy", transport, endpoint)
            if ups is None:
                continue
            for ref in ("floor", "server-replay"):
                other = report.cell(ref, transport, endpoint)
                if other is None:
                    continue
                goal = RATIO_TARGETS[ref][transport]
                add(f"{endpoint:<7} {transport:<12} upsproxy / {ref}  req/s", ups.rps / other.rps,
                    ">=", goal, primary)
                add(f"{endpoint:<7} {transport:<12} upsproxy / {ref}  by CPU/req",
                    other.cpu_us / ups.cpu_us, ">=", goal, primary)
            add(f"{endpoint:<7} {transport:<12} upsproxy p99 ms", ups.p99_ms, "<=",
                P99_TARGET_MS, primary)
    if report.startup_s.get("upsproxy") and report.startup_s.get("mitmdump"):
        ratio = (statistics.median(report.startup_s["upsproxy"])
                 / statistics.median(report.startup_s["mitmdump"]))
        add("start-up upsproxy / bare mitmdump (median)", ratio, "<=", STARTUP_TARGET, True)
    for name, us in report.core_us.items():
        if name.startswith(("token", "refresh")):
            # Judged on decisions that sign nothing: minting signs a JWT (~1.3 ms
            # with UPS's 4096-bit key size), like the token-200 rows.
            add(f"core µs/decision: {name}", us, "<=", CORE_TARGET_US,
                name.startswith("token 400"))
    return rows


def print_report(report: Report) -> None:
    w = sys.stdout.write
    s = report.settings
    w(f"\nupsproxy replay benchmark: {s['concurrency']} keep-alive clients, {s['duration']:g} s "
      f"per cell x {s['rounds']} round(s), hey on core {s['load_core']}, servers on core "
      f"{s['server_core']}\n\n")
    w(f"{'server':<14}{'transport':<13}{'endpoint':<9}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}"
      f"{'B/resp':>7}{'CPUµs':>7}{'srv%':>5}{'bg%':>4}  statuses\n")
    for c in sorted(report.cells, key=lambda c: (CELL_ENDPOINTS.index(c.endpoint),
                                                 TRANSPORTS.index(c.transport),
                                                 SERVERS.index(c.server))):
        errors = f"  errors: {sum(c.errors.values())}" if c.errors else ""
        w(f"{c.server:<14}{c.transport:<13}{c.endpoint:<9}{c.rps:>8.1f}{c.p50_ms:>8.1f}"
          f"{c.p99_ms:>8.1f}{c.bytes_per_response:>7}{_num(c.cpu_us):>7}"
          f"{_pct(c.server_cpu):>5}{_pct(c.background_cpu):>4}  {_mix(c.statuses)}{errors}\n")
        if c.rules:
            w(f"{'':<8}upsproxy rules: {_mix(c.rules)}\n")
        for message, n in c.errors.items():
            w(f"{'':<8}error x{n}: {message}\n")
    noisy = [c for c in report.cells if c.background_cpu > NOISY]
    w("\nCPUµs = the server's own CPU time per answered request (steadier under other load);\n"
      "srv% = the server's use of its core (~100: the server, not hey, is the limit);\n"
      "bg% = share of the two pinned cores taken by other processes or the hypervisor\n"
      "during the cell (worst round).\n")
    if noisy:
        w(f"WARNING: {len(noisy)} cell(s) ran with more than {NOISY:.0%} foreign CPU load on the "
          "pinned cores;\nthe numbers are disturbed: rerun on a quiet machine or with more "
          "--rounds.\n")
    w("\nNote: upsproxy's token and refresh endpoints are stateful. In the token and refresh\n"
      "rows hey repeats one body, so only the first request of a cell gets 200 (a code\n"
      "minted just before); the rest are 400 UPS envelopes (code reused / refresh token\n"
      "rotated), each still a full core decision (form, Basic auth, store lookup). The\n"
      "token-200 rows send a fresh code in every request (scripts/loadgen.py, same loader\n"
      "for all three servers), so upsproxy mints and signs a token for each: with the\n"
      "bundled cassette that is an RS384 signature with a 4096-bit key (UPS's own token\n"
      "size): ~1.3 ms of CPU each, about three quarters of the row's CPU per request\n"
      "(at most ~760 signatures a second per core). floor and server-replay answer 200\n"
      "with a canned body (floor ~100 B; server-replay a UPS-shaped token answer)\n"
      "whatever the body, so token-200 rows are informative, not targets.\n")
    if report.tls_checks:
        w("\nTLS through the proxy (Python ssl, CA file only):\n")
        for name, result in report.tls_checks.items():
            w(f"  {name:<14}{result}\n")
    if report.startup_s:
        w("\nStart-up to first answer on the reverse listener (s):\n")
        for name, values in report.startup_s.items():
            w(f"  {name:<14}median {statistics.median(values):.3f}   runs "
              + " ".join(f"{v:.3f}" for v in values) + "\n")
    if report.core_us:
        w("\nIn-process, CPU µs per call (Sandbox.handle with a new Request each call;\n"
          "Replay.request with a new flow each call, minus building the flow):\n")
        for name, us in report.core_us.items():
            w(f"  {name:<40}{us:8.1f}\n")
    w("\nTargets (DESIGN §7); token rows are the targets, refresh and token-200 rows are\n"
      "informative.\n"
      "\"req/s\" compares measured throughput; \"by CPU/req\" compares the servers' CPU time\n"
      "per request (what each could do with its core to itself): trust it when bg% is high.\n")
    for v in report.verdicts:
        mark = "" if v["primary"] else "  (info)"
        w(f"  {v['what']:<58}{v['value']:>8.2f}  {v['target']:<8}{v['verdict']}{mark}\n")
    for failure in report.failures:
        w(f"\nFAILED: {failure}\n")


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


# -- main -----------------------------------------------------------------------------------


@contextlib.contextmanager
def workspace(keep: str | None) -> Iterator[Path]:
    if keep:
        path = Path(keep)
        path.mkdir(parents=True, exist_ok=True)
        yield path
    else:
        with tempfile.TemporaryDirectory(prefix="bench_replay.") as tmp:
            yield Path(tmp)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=3.0,
                        help="seconds of load per cell (18 cells per round) [3]")
    parser.add_argument("--warmup", type=float, default=1.0,
                        help="seconds of warm-up per server and transport [1]")
    parser.add_argument("--concurrency", type=int, default=10, help="keep-alive clients [10]")
    parser.add_argument("--rounds", type=int, default=3,
                        help="repeat the cells, server order rotated; the table shows medians "
                             "[3]")
    parser.add_argument("--startup-reps", type=int, default=3,
                        help="start-up measurements per server (0: skip) [3]")
    parser.add_argument("--core-iterations", type=int, default=20000,
                        help="in-process core calls per path (0: skip) [20000]")
    parser.add_argument("--servers", default=",".join(SERVERS),
                        help=f"comma-separated subset of {','.join(SERVERS)}")
    parser.add_argument("--replay-flow-lines", action="store_true",
                        help="let mitmdump --server-replay print its per-flow line (into its "
                             "log), as it does by default; without this flag it runs with -q, "
                             "the faster and stricter reference")
    parser.add_argument("--upsproxy", metavar="PATH",
                        help="the upsproxy command to measure (default: next to this python)")
    parser.add_argument("--no-pin", action="store_true", help="do not use taskset")
    parser.add_argument("--workdir", help="keep logs, flows and CA here (default: a temp dir)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if not (0 < args.duration <= 120 and 0 < args.warmup <= 60 and 1 <= args.rounds <= 20
            and 1 <= args.concurrency <= 200):
        parser.error("--duration 0-120, --warmup 0-60, --rounds 1-20, --concurrency 1-200")
    servers = [s for s in args.servers.split(",") if s]
    if unknown := set(servers) - set(SERVERS):
        parser.error(f"unknown servers: {', '.join(sorted(unknown))}")

    try:
        import mitmproxy  # noqa: F401 - the flow file, the CA and the addon timing need it
    except ImportError:
        parser.error(f"mitmproxy is not importable by {sys.executable}: run this script with "
                     "the python of the venv that has upsproxy (e.g. /tmp/v311/bin/python)")
    listening = Listening.of_upsproxy()
    tools = Tools.find(args.upsproxy)
    pinning = Pinning.detect(not args.no_pin)
    if pinning.load_core is not None:
        os.sched_setaffinity(0, {pinning.load_core})  # our own polling stays off the server
    else:
        log.warning("not pinning (fewer than 2 cores, no taskset, or --no-pin)")
    report = Report(settings={
        "duration": args.duration, "warmup": args.warmup, "concurrency": args.concurrency,
        "rounds": args.rounds, "server_core": pinning.server_core,
        "load_core": pinning.load_core, "python": sys.version.split()[0],
        "tools": asdict(tools), "mitmproxy_setup": asdict(listening),
    })
    with workspace(args.workdir) as workdir:
        confdir = workdir / "conf"
        cafile = ensure_ca(confdir)
        flows = workdir / "ups-token.flows"
        write_flows(flows, listening.reverse_target)
        running: list[ServerProcess] = []
        rounds: list[list[Cell]] = []
        try:
            for name in servers:
                server = server_process(name, tools, workdir, confdir, flows, listening,
                                        not args.replay_flow_lines)
                try:
                    log.info("starting and warming up %s", name)
                    server.start(pinning.server)
                    warm_up(server, args, tools, pinning, cafile, report)
                    running.append(server)
                except (RuntimeError, OSError, subprocess.TimeoutExpired,
                        http.client.HTTPException) as exc:
                    report.failures.append(f"{name}: {exc}")
                    log.error("%s failed: %s", name, exc)
                    server.stop()
            if running:
                rounds = measure_all(running, args, tools, pinning)
        except (RuntimeError, OSError, subprocess.TimeoutExpired,
                http.client.HTTPException) as exc:
            report.failures.append(f"measurement: {exc}")
            log.error("measurement failed: %s", exc)
        finally:
            for server in running:
                server.stop()
        report.cells = merge_rounds(rounds)
        if args.startup_reps > 0:
            log.info("start-up to first answer, %d runs each", args.startup_reps)
            try:
                report.startup_s = measure_startup(tools, pinning, confdir, workdir,
                                                   args.startup_reps)
            except (RuntimeError, OSError) as exc:
                report.failures.append(f"start-up: {exc}")
        if args.core_iterations > 0:
            log.info("in-process core, %d calls per path", args.core_iterations)
            try:
                report.core_us = measure_core(args.core_iterations)
            except ImportError as exc:
                report.failures.append(f"core benchmark needs upsproxy importable: {exc}")
        report.verdicts = verdicts(report)
        print_report(report)
        if args.json:
            Path(args.json).write_text(json.dumps(_json_safe(asdict(report)), indent=2) + "\n")
            log.info("wrote %s", args.json)
    return 2 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
