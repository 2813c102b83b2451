"""Pieces every ``upsproxy`` command shares: addresses, the confdir and fault
options, logging set-up, the banner's faults line and a clean exit.

Its own module, so that ``cli`` (the group) and the modules of its
subcommands (``cli_record``, ...) import these without importing each other.
"""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import os
import re
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, NoReturn

import click

from upsproxy import logsink

__all__ = [
    "DEFAULT_CONFDIR",
    "confdir_option",
    "fault_option",
    "faults_banner",
    "faults_option",
    "serve_until_stopped",
]

DEFAULT_CONFDIR = "~/.upsproxy"


def _address(value: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep:
        host, port = default_host, value
    host = host.strip("[]") or default_host
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise click.BadParameter(f"{value!r} is not HOST:PORT (port 0-65535)")
    return host, int(port)


def _address_option(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, int]:
    return _address(value)

confdir_option: Callable[[Callable[..., Any]], Callable[..., Any]] = click.option(
    "--confdir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_CONFDIR,
    envvar="UPSPROXY_CONFDIR", show_default=True, show_envvar=True,
    help="Where upsproxy keeps its CA, JWT signing key and recording key (never "
         "mitmproxy's own ~/.mitmproxy).")


faults_option: Callable[[Callable[..., Any]], Callable[..., Any]] = click.option(
    "--faults", "fault_files", multiple=True, metavar="FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="YAML fault rules (UPS errors, delays, resets, timeouts); repeatable.")
fault_option: Callable[[Callable[..., Any]], Callable[..., Any]] = click.option(
    "--fault", "fault_specs", multiple=True, metavar="ENDPOINT:WHAT[:KEY=VALUE,...]",
    help="One fault rule in short form, e.g. token:rate_limited or "
         "refresh:invalid_refresh_token:after=1,times=1; repeatable.")


def faults_banner(rules: list[dict[str, Any]], reverse_url: str | None) -> None:
    """The banner line that says which fault rules are loaded, if any."""
    if rules:
        click.echo(f"  faults    {len(rules)} rule(s): {', '.join(r['name'] for r in rules)}   "
                   f"(control API {reverse_url}/_upsproxy/faults)", err=True)


def _setup_logging(verbose: bool) -> None:
    faulthandler.enable()  # a crash in a native extension still leaves a trace
    # Records need none of these, and gathering them (a stack walk for the
    # caller, thread and process names) was most of the log line's cost.
    logging._srcfile = None  # the logging HOWTO's own advice for speed
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging.logAsyncioTasks = False  # type: ignore[attr-defined]  # 3.12: a task lookup per record
    # One batched writer for exchange lines and log records alike (``logsink``).
    handler = logsink.LineHandler(logsink.write_to(sys.stderr))
    root = logging.getLogger("upsproxy")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False
    logging.getLogger("mitmproxy").setLevel(logging.INFO if verbose else logging.ERROR)
    if verbose:
        logging.getLogger("mitmproxy").addHandler(handler)


def serve_until_stopped(main: Coroutine[Any, Any, None]) -> NoReturn:
    """Run a listening command (replay, record) until Ctrl-C/SIGTERM, then exit.
    A start-up failure (a port in use, ...) is one clear line, never a traceback."""
    from upsproxy.errors import StartupError, UpsproxyError

    try:
        try:
            asyncio.run(main)
        finally:
            logsink.flush()  # the last loop turn's lines, before any message below
    except StartupError as exc:
        hint = (" Is another upsproxy running? Pick other ports, or 0 for free ones: "
                "--listen 127.0.0.1:0 --reverse-listen 127.0.0.1:0"
                if "in use" in str(exc) else "")
        reason = re.sub(r"^\[Errno \d+\] ", "", str(exc))  # mitmproxy says the errno twice
        click.echo(f"Error: {reason}.{hint}", err=True)
        _exit_now(1)
    except UpsproxyError as exc:
        click.echo(f"Error: {exc}", err=True)
        _exit_now(1)
    _exit_now(0)


def _exit_now(code: int) -> NoReturn:
    """Leave without interpreter finalization once everything is shut down.

    mitmproxy's native helper threads (mitmproxy_rs) can still be alive while
    CPython finalizes, and a garbage collection racing them segfaults now and
    then (seen in about one of ten runs here). Listeners are closed and every
    file is written by now, so skipping finalization loses nothing.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
