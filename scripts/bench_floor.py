"""The "floor" server of ``bench_replay.py``: the cheapest mitmproxy that answers.

DESIGN §7 sets upsproxy's throughput target against this master: only the
addons a proxy cannot do without (core, proxyserver, next_layer, tlsconfig,
errorcheck) plus one trivial addon that answers every request with a canned
~100 B JSON body. Whatever upsproxy costs beyond this is the price of its own
adapter, core and logging, so "upsproxy / floor" isolates that price.

It listens like ``upsproxy replay`` (a regular proxy and a plain-HTTP reverse
listener with the same target, lazy connections, no upstream certs, TLS
interception for UPS hosts only; ``bench_replay`` passes upsproxy's exact
options with ``--set``) and prints its bound addresses on stderr in the same
format, so the benchmark starts and reads all servers alike:

    python scripts/bench_floor.py --confdir DIR [--listen 127.0.0.1:0] [--reverse-listen ...]
        [--reverse-target URL] [--set KEY=VALUE ...]

Stop it with SIGINT or SIGTERM. Never connects anywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import sys

from mitmproxy import http
from mitmproxy.addons import core, errorcheck, next_layer, proxyserver, tlsconfig
from mitmproxy.master import Master
from mitmproxy.options import Options
from mitmproxy.proxy.mode_specs import ReverseMode

CANNED_BODY = (b'{"token_type":"Bearer","status":"approved","expires_in":"14399",'
               b'"issued_at":"1717200000000","client_id":"bench"}')
"""~100 B, the size DESIGN §7 used for its canned-response numbers."""

REVERSE_TARGET = "http://wwwcie.ups.com:443"
"""What ``upsproxy replay``'s reverse listener targets: plain HTTP, so no server
TLS layer sits under the HTTP layer of each reverse connection."""
UPS_ALLOW_HOSTS = r"^(?:wwwcie|onlinetools|www)\.ups\.com(?::[0-9]+)?$"


class Canned:
    """Answers every request at once; prints the listeners when they are up."""

    def request(self, flow: http.HTTPFlow) -> None:
        flow.response = http.Response.make(200, CANNED_BODY,
                                           {"Content-Type": "application/json"})

    def running(self) -> None:
        proxy = reverse = None
        for server in _proxyserver().servers:
            if not server.listen_addrs:
                continue
            host, port = server.listen_addrs[0][:2]
            url = f"http://{host}:{port}"
            if isinstance(server.mode, ReverseMode):
                reverse = url
            else:
                proxy = url
        print(f"  proxy     {proxy}", file=sys.stderr, flush=True)
        print(f"  base URL  {reverse}", file=sys.stderr, flush=True)


_master: Master | None = None


def _proxyserver() -> proxyserver.Proxyserver:
    assert _master is not None
    return _master.addons.get("proxyserver")


def _address(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


async def serve(confdir: str, listen: tuple[str, int], reverse: tuple[str, int],
                target: str, sets: list[str]) -> None:
    global _master
    if listen[1] == 0 and reverse[1] == 0 and listen[0] == reverse[0]:
        # mitmproxy refuses two modes on the same "host:0" (as upsproxy.mitm does).
        reverse = (reverse[0], _free_port(reverse[0]))
    master = _master = Master(Options(), with_termlog=False)
    master.addons.add(core.Core(), proxyserver.Proxyserver(), next_layer.NextLayer(),
                      tlsconfig.TlsConfig(), errorcheck.ErrorCheck(), Canned())
    master.options.update(
        mode=[f"regular@{listen[0]}:{listen[1]}",
              f"reverse:{target}@{reverse[0]}:{reverse[1]}"],
        connection_strategy="lazy", upstream_cert=False, allow_hosts=[UPS_ALLOW_HOSTS])
    master.options.set(*sets)  # bench_replay passes upsproxy's own
    master.options.update(confdir=confdir)  # last, see DESIGN §8
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, master.shutdown)
    await master.run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--confdir", required=True, help="CA directory (shared with the others)")
    parser.add_argument("--listen", default="127.0.0.1:0", help="regular proxy HOST:PORT")
    parser.add_argument("--reverse-listen", default="127.0.0.1:0",
                        help="reverse listener HOST:PORT")
    parser.add_argument("--reverse-target", default=REVERSE_TARGET,
                        help=f"the reverse listener's target, never dialled [{REVERSE_TARGET}]")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="a mitmproxy option, as mitmdump --set takes it; repeatable")
    args = parser.parse_args()
    asyncio.run(serve(args.confdir, _address(args.listen), _address(args.reverse_listen),
                      args.reverse_target, args.sets))


if __name__ == "__main__":
    main()
