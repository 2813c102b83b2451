"""``upsproxy record``: capture an app's real UPS exchanges into a redacted cassette."""

from __future__ import annotations

import asyncio
import signal
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

__all__ = ["MODES", "record"]

MODES = ("new", "append", "overwrite")
"""As ``upsproxy.recorder.MODES``; not imported from there, so that `upsproxy
replay` does not load the whole recorder at start-up (tests keep them equal)."""


@click.command()
@click.option("--cassette", type=click.Path(dir_okay=False, path_type=Path),
              help="File to write (default: cassettes/recorded-YYYYmmdd-HHMMSS.yaml).")
@click.option("--upstream", default="cie", show_default=True, metavar="cie|prod|URL",
              help="Where UPS traffic goes: cie (https://wwwcie.ups.com), prod "
                   "(https://onlinetools.ups.com) or any https:// URL.")
@click.option("--upstream-ca", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="PEM bundle to verify the upstream's certificate with "
                   "(default: the system store).")
@click.option("--listen", default="127.0.0.1:8080", metavar="HOST:PORT",
              callback=_address_option, show_default=True,
              help="Regular proxy for HTTPS_PROXY (port 0: pick a free port).")
@click.option("--reverse-listen", default="127.0.0.1:8081", metavar="HOST:PORT",
              callback=_address_option, show_default=True,
              help="Plain-HTTP listener that forwards to the upstream, for apps whose UPS "
                   "base URL can be set.")
@confdir_option
@click.option("--mode", type=click.Choice(MODES), default="new", show_default=True,
              help="new: refuse an existing file; append: add to it (existing placeholders "
                   "keep their meaning, and a value recorded before with this confdir's "
                   "recording key keeps its placeholder); overwrite: replace it.")
@click.option("--config", type=click.Path(dir_okay=False, path_type=Path),
              help="YAML config; its redact: section adds or relaxes personal-data rules.")
@faults_option
@fault_option
@click.option("-v", "--verbose", is_flag=True, help="Also show mitmproxy's own log.")
def record(cassette: Path | None, upstream: str, upstream_ca: Path | None,
           listen: tuple[str, int], reverse_listen: tuple[str, int], confdir: Path,
           mode: str, config: Path | None, fault_files: tuple[Path, ...],
           fault_specs: tuple[str, ...], verbose: bool) -> None:
    """Forward your app's UPS traffic to UPS and record it, redacted, into a cassette.

    Point the app at the proxy (HTTPS_PROXY, trusting upsproxy's CA) or its UPS
    base URL at the reverse listener, run the flows you want to capture, then
    stop with Ctrl-C. Secrets (client credentials, codes, verifiers, state,
    tokens, cookies) and personal fields of API bodies become <<kind:N>>
    placeholders; a leak guard refuses any write that would still contain one.
    Every completed exchange is on disk at once. Replay with `upsproxy replay FILE`.
    Fault rules (--faults, --fault) answer instead of UPS when they fire; such
    answers are not recorded.
    """
    from upsproxy.addons.record import build_faults, build_recorder
    from upsproxy.recorder import default_cassette

    _setup_logging(verbose)
    path = cassette or default_cassette()
    config_path = str(config) if config else ""
    try:
        faults = build_faults(config_path, [str(f) for f in fault_files], fault_specs)
    except UpsproxyError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        recorder = build_recorder(str(path), upstream, mode, config_path, confdir)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--upstream") from None
    except UpsproxyError as exc:
        raise click.ClickException(str(exc)) from None
    serve_until_stopped(_serve_record(recorder, faults, listen, reverse_listen, confdir,
                                      upstream_ca))


async def _serve_record(recorder: Any, faults: Any, listen: tuple[str, int],
                        reverse_listen: tuple[str, int], confdir: Path,
                        upstream_ca: Path | None) -> None:
    from upsproxy import mitm
    from upsproxy.addons.record import Record
    from upsproxy.trust import combined_bundle, env_lines

    addon = Record(recorder, faults)
    settings = mitm.record_settings(confdir, listen, reverse_listen, recorder.upstream,
                                    upstream_ca)
    running = await mitm.start_proxy(settings, [addon])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    bundle = combined_bundle(running.ca_cert)
    verify = f"verified with {upstream_ca}" if upstream_ca else "verified with the system store"
    logsink.flush()  # log lines so far come before what is echoed
    click.echo(f"upsproxy {__version__} record: forwarding UPS traffic to {recorder.upstream} "
               f"({verify})", err=True)
    click.echo(f"  cassette  {recorder.path}   (mode {recorder.mode}; written after every "
               "exchange)", err=True)
    click.echo(f"  proxy     {running.proxy_url}   (HTTPS_PROXY; trust {running.ca_cert})",
               err=True)
    click.echo(f"  base URL  {running.reverse_url}   (use instead of {recorder.upstream})",
               err=True)
    click.echo("  env       " + "\n            ".join(
        env_lines(running.proxy_url or "", running.ca_cert, bundle)), err=True)
    faults_banner(faults.rules(), running.reverse_url)
    click.echo("  Ctrl-C to stop.", err=True)
    try:
        await stop.wait()
    finally:
        await mitm.stop_proxy(running)
        logsink.flush()  # log lines so far come before what is echoed
        failed = f"; {addon.failed} NOT recorded (see above)" if addon.failed else ""
        click.echo(f"upsproxy stopped: {recorder.recorded} interactions recorded in "
                   f"{recorder.path}{failed}.", err=True)
