"""The ``upsproxy`` command line.

    upsproxy replay [CASSETTE]   the offline UPS sandbox (proxy + reverse listener)
    upsproxy demo                run the whole OAuth flow against a running sandbox
    upsproxy ca                  print (and create) the CA certificate path
    upsproxy env                 print export lines for HTTPS_PROXY and CA trust
"""

from __future__ import annotations

import asyncio
import gc
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

import click

from upsproxy import __version__, logsink
from upsproxy.cli_common import (
    _address_option,
    _setup_logging,
    confdir_option,
    fault_option,
    faults_banner,
    faults_option,
    serve_until_stopped,
)
from upsproxy.errors import UpsproxyError

REPLAY_REVERSE_TARGET = "http://wwwcie.ups.com:443"
BODY_SIZE_LIMIT = str(2 * 1024 * 1024)
"""2 MiB, in bytes: mitmproxy parses this option on every request, and a plain
number is its fast path (``"2m"`` costs a caught ValueError each time).
mitmproxy buffers a whole body before any addon sees it; past this it refuses
(413) while reading, so a 100 MB upload cannot grow the sandbox. Smaller bodies
over the form limit (64 KiB) still get UPS's envelope from the core."""
NO_TRAFFIC_HINT = (
    "upsproxy saw no UPS traffic. If your app did call UPS, it bypassed the sandbox:\n"
    "  - some clients ignore HTTPS_PROXY (Node's fetch, aiohttp without trust_env=True,\n"
    "    a JVM without -Dhttps.proxyHost); point their UPS base URL at the reverse\n"
    "    listener instead;\n"
    "  - check that NO_PROXY does not list ups.com."
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="upsproxy")
def main() -> None:
    """upsproxy: an offline, stateful sandbox for UPS's OAuth Authorization Code API.

    Start the sandbox with `upsproxy replay`, then point your app at it with
    HTTPS_PROXY (see `upsproxy env`) or at its plain-HTTP base URL.
    """


@main.command()
@click.argument("cassette", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--listen", default="127.0.0.1:8080", metavar="HOST:PORT",
              callback=_address_option, show_default=True,
              help="Regular proxy for HTTPS_PROXY (port 0: pick a free port).")
@click.option("--reverse-listen", default="127.0.0.1:8081", metavar="HOST:PORT",
              callback=_address_option, show_default=True,
              help="Plain-HTTP listener that acts as UPS, for apps whose UPS base URL can be set.")
@confdir_option
@click.option("--config", "config", type=click.Path(dir_okay=False, path_type=Path),
              help="YAML config: registered apps (client_id, client_secret, redirect_uris) "
                   "and overrides of sandbox-chosen error answers.")
@click.option("--auto-approve", is_flag=True,
              help="Skip the login page: authorize redirects straight to the callback "
                   "with a code (for headless clients).")
@click.option("--block-other-hosts", is_flag=True,
              help="Refuse requests for any host but UPS's (403, or a refused tunnel) "
                   "instead of passing them through: proves an app talks to nothing else.")
@faults_option
@fault_option
@click.option("--state", type=click.Path(dir_okay=False, path_type=Path),
              help="Keep codes, tokens and the clock in this SQLite file, so a restarted "
                   "sandbox honours what apps saved (default: in memory).")
@click.option("--access-ttl", type=click.IntRange(1, 315_360_000), metavar="SECONDS",
              help="Access token lifetime (expires_in) instead of the cassette's.")
@click.option("--refresh-ttl", type=click.IntRange(1, 315_360_000), metavar="SECONDS",
              help="Refresh token lifetime (refresh_token_expires_in) instead of the cassette's.")
@click.option("--code-ttl", type=click.IntRange(1, 315_360_000), metavar="SECONDS",
              help="Authorization code lifetime (default 300).")
@click.option("-v", "--verbose", is_flag=True, help="Also show mitmproxy's own log.")
def replay(cassette: Path | None, listen: tuple[str, int], reverse_listen: tuple[str, int],
           confdir: Path, config: Path | None, auto_approve: bool, block_other_hosts: bool,
           state: Path | None,
           access_ttl: int | None, refresh_ttl: int | None, code_ttl: int | None,
           fault_files: tuple[Path, ...], fault_specs: tuple[str, ...], verbose: bool) -> None:
    """Answer UPS OAuth (and recorded API) traffic offline, from CASSETTE.

    CASSETTE defaults to the bundled cassettes/ups-cie.yaml. The sandbox mints
    fresh codes and tokens of the recorded shapes and enforces UPS's rules:
    client binding, exact redirect_uri, single-use expiring codes, PKCE (S256),
    Basic auth, refresh-token rotation. Nothing is sent to UPS; other hosts pass
    through untouched. Stop with Ctrl-C.
    """
    from upsproxy.sandbox import Sandbox, SandboxOptions

    _setup_logging(verbose)
    try:
        sandbox = Sandbox.from_options(SandboxOptions(
            cassette=str(cassette) if cassette else None,
            config=str(config) if config else None, auto_approve=auto_approve,
            block_other_hosts=block_other_hosts,
            state=str(state) if state else None, access_ttl=access_ttl,
            refresh_ttl=refresh_ttl, code_ttl=code_ttl, keydir=str(confdir),
            faults=tuple(map(str, fault_files)), fault_specs=fault_specs))
    except UpsproxyError as exc:
        raise click.ClickException(str(exc)) from None
    serve_until_stopped(_serve_replay(sandbox, listen, reverse_listen, confdir,
                                      config_note=f" with apps from {config}" if config
                                      else ""))


def _program() -> str:
    """How to run upsproxy again, as the user did: ``upsproxy`` when that is on
    PATH, else the path they typed (``.venv/bin/upsproxy``)."""
    invoked = sys.argv[0] if sys.argv and sys.argv[0] else "upsproxy"
    on_path = shutil.which("upsproxy")
    if on_path and Path(on_path).resolve() == Path(invoked).resolve():
        return "upsproxy"
    return invoked if Path(invoked).name == "upsproxy" else "upsproxy"


def replay_settings(confdir: Path, listen: tuple[str, int] | None,
                    reverse_listen: tuple[str, int] | None) -> Any:
    """mitmproxy settings for replay: lazy connections, intercept UPS hosts only."""
    from upsproxy import mitm

    return mitm.ProxySettings(
        confdir=confdir, listen=listen, reverse_listen=reverse_listen,
        # An http:// target keeps the reverse listener TCP only: with https://
        # mitmproxy also opens a UDP (HTTP/3) socket, which replay never needs
        # and which mitmproxy 11 cannot bind on IPv6. Replay never dials it.
        reverse_target=REPLAY_REVERSE_TARGET,
        # keep_host_header: replay never forwards, so rewriting each request's Host
        # header to the (never dialled) target would be work for nothing.
        options={"connection_strategy": "lazy", "allow_hosts": mitm.UPS_ALLOW_HOSTS,
                 "upstream_cert": False, "body_size_limit": BODY_SIZE_LIMIT,
                 "keep_host_header": True},
    )


async def _serve_replay(sandbox: Any, listen: tuple[str, int], reverse_listen: tuple[str, int],
                        confdir: Path, config_note: str = "") -> None:
    from upsproxy import mitm
    from upsproxy.addons.replay import Replay
    from upsproxy.trust import combined_bundle, env_lines

    replay_addon = Replay(sandbox)
    running = await mitm.start_proxy(replay_settings(confdir, listen, reverse_listen),
                                     [replay_addon])
    # Everything loaded so far (mitmproxy, cryptography, the cassette) lives until
    # exit; frozen out of the collector, full collections stop walking it, which
    # took tens of milliseconds out of the p99 latency. No gc.collect() first: it
    # finds a few hundred unreachable objects here, and would hold the loop for
    # ~25 ms just as the listeners open.
    gc.freeze()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    bundle = combined_bundle(running.ca_cert)
    cassette = sandbox.cassette
    logsink.flush()  # log lines so far come before the banner
    click.echo(f"upsproxy {__version__} replay: offline UPS sandbox "
               f"({len(cassette.interactions)} interactions from {cassette.path}{config_note})",
               err=True)
    click.echo(f"  proxy     {running.proxy_url}   (HTTPS_PROXY; trust {running.ca_cert})",
               err=True)
    click.echo(f"  base URL  {running.reverse_url}   (use instead of https://wwwcie.ups.com)",
               err=True)
    faults_banner(sandbox.faults.rules(), running.reverse_url)
    click.echo("  env       " + "\n            ".join(
        env_lines(running.proxy_url or "", running.ca_cert, bundle)), err=True)
    demo_hint = (" (register client UPSPROXYDEMO, or pass --client-id/--client-secret/"
                 "--redirect-uri)" if sandbox.config.apps is not None else "")
    click.echo(f"  try it    {_program()} demo --base-url {running.reverse_url}{demo_hint}",
               err=True)
    if getattr(sandbox.store, "path", None) is not None:
        click.echo(f"  state     {sandbox.store.path}", err=True)
    click.echo(f"  control   {running.reverse_url}/_upsproxy/ (upsproxy ctl --url "
               f"{running.reverse_url} ...)", err=True)
    click.echo("  Ctrl-C to stop.", err=True)
    try:
        await stop.wait()
    finally:
        await mitm.stop_proxy(running)
        sandbox.close()
        logsink.flush()  # log lines so far come before what is echoed
        if replay_addon.answered == 0:
            click.echo(NO_TRAFFIC_HINT, err=True)
        click.echo("upsproxy stopped.", err=True)


@main.command()
@confdir_option
def ca(confdir: Path) -> None:
    """Print the path of upsproxy's CA certificate, creating the CA if needed.

    Trust this certificate in clients that go through HTTPS_PROXY.
    """
    from upsproxy import mitm

    click.echo(str(mitm.ensure_ca(confdir)))


@main.command()
@confdir_option
@click.option("--listen", default="127.0.0.1:8080", metavar="HOST:PORT",
              callback=_address_option, show_default=True,
              help="The proxy address `upsproxy replay` listens on.")
def env(confdir: Path, listen: tuple[str, int]) -> None:
    """Print export lines that send HTTP clients through the sandbox.

    SSL_CERT_FILE, REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE name a bundle of the
    system roots plus upsproxy's CA (they replace a client's trust store), and
    NODE_EXTRA_CA_CERTS the CA alone. Use as: eval "$(upsproxy env)".
    """
    from upsproxy import mitm
    from upsproxy.trust import combined_bundle, env_lines

    host, port = listen
    if port == 0:
        raise click.BadParameter("give the port `upsproxy replay` printed, not 0",
                                 param_hint="--listen")
    ca_cert = mitm.ensure_ca(confdir)
    url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    for line in env_lines(url, ca_cert, combined_bundle(ca_cert)):
        click.echo(line)


@main.command()
@click.option("--proxy", metavar="URL",
              help="Go through the sandbox's proxy (e.g. http://127.0.0.1:8080) to UPS's URL.")
@confdir_option
@click.option("--base-url", metavar="URL",
              help="Talk to the sandbox's reverse listener (e.g. http://127.0.0.1:8081).")
@click.option("--ups-url", default="https://wwwcie.ups.com", show_default=True,
              help="The UPS URL to use through --proxy.")
@click.option("--client-id", default="UPSPROXYDEMO", show_default=True,
              help="Client to authorize as (register it when the sandbox has a --config).")
@click.option("--client-secret", default="demo-secret", show_default=True,
              help="Its secret, sent with Basic auth on refresh; '' for a public app "
                   "(registered without a secret), which refreshes by client_id.")
@click.option("--redirect-uri", default="https://app.example.test/callback", show_default=True,
              help="Its registered callback URL.")
def demo(proxy: str | None, confdir: Path, base_url: str | None, ups_url: str, client_id: str,
         client_secret: str, redirect_uri: str) -> None:
    """Run the whole OAuth flow against a running sandbox and show each step.

    authorize, login page, approve, PKCE token exchange, code reuse refused,
    refresh, old refresh token refused. Exits non-zero on any deviation.
    """
    from upsproxy.demo import DemoFailure, run_demo

    if bool(proxy) == bool(base_url):
        raise click.UsageError("give exactly one of --proxy URL or --base-url URL")
    cafile = None
    if proxy:
        cafile = str(Path(confdir).expanduser() / "mitmproxy-ca-cert.pem")
        if not Path(cafile).exists():
            raise click.ClickException(f"no CA at {cafile}: is `upsproxy replay --confdir "
                                       f"{confdir}` running?")
    target = (base_url or ups_url).rstrip("/")
    click.echo(f"upsproxy demo against {target}" + (f" through {proxy}" if proxy else ""))
    try:
        run_demo(base_url=target, proxy=proxy, cafile=cafile, say=click.echo,
                 client_id=client_id, client_secret=client_secret, redirect_uri=redirect_uri)
    except DemoFailure as exc:
        raise click.ClickException(f"deviation: {exc}") from None
    except OSError as exc:
        raise click.ClickException(f"cannot reach the sandbox: {exc}") from None
    click.echo("OK: the sandbox behaved as UPS does.")


from upsproxy.cli_cassette import cassette  # noqa: E402 - attached after the helpers above
from upsproxy.cli_ctl import ctl  # noqa: E402
from upsproxy.cli_record import record  # noqa: E402

main.add_command(record)
main.add_command(cassette)
main.add_command(ctl)

if __name__ == "__main__":  # pragma: no cover
    main()
