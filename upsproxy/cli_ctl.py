"""``upsproxy ctl``: drive a running sandbox through its control API.

    upsproxy ctl state                       live codes and tokens (values redacted)
    upsproxy ctl clock [advance 4h | set 2026-01-01T00:00:00Z | reset]
    upsproxy ctl code --client-id C --redirect-uri URL [--code-challenge X] [--scope S]
    upsproxy ctl reset                       forget all state; clock back to real time
    upsproxy ctl exchanges [--limit N]       what the sandbox answered lately
    upsproxy ctl jwks                        the key minted JWTs are signed with
    upsproxy ctl faults [list | add RULE... [--file F] | clear [--name N]]

Plain HTTP to the reverse listener (``--url``, env ``UPSPROXY_URL``), with the
standard library only, so ``ctl`` needs nothing beyond upsproxy's own
dependencies. Output is JSON, except ``code`` (the bare code, for
``CODE=$(upsproxy ctl code ...)``) and ``exchanges`` (one line each).
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import click

__all__ = ["ctl", "parse_duration", "parse_time"]

DEFAULT_URL = "http://127.0.0.1:8081"
_DURATION = re.compile(r"(-?\d+(?:\.\d+)?)\s*([smhd]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """``90``, ``30s``, ``15m``, ``4h``, ``2d``, ``1.5h`` → seconds; ValueError otherwise."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise ValueError(f"{text!r} is not a duration like 30s, 15m, 4h or 2d")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_time(text: str) -> int:
    """Epoch milliseconds, or ISO-8601 (``2026-01-01T00:00:00Z``; no zone means
    UTC) → epoch ms; ValueError otherwise."""
    text = text.strip()
    if text.isascii() and text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is neither epoch milliseconds nor an ISO-8601 time "
                         "like 2026-01-01T00:00:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


@dataclass
class Target:
    url: str

    def call(self, method: str, name: str, payload: object = None,
             query: dict[str, str] | None = None) -> Any:
        address = f"{self.url.rstrip('/')}/_upsproxy/{name}"
        if query:
            address += "?" + urlencode(query)
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(address, data=data, method=method,  # noqa: S310
                                         headers={"Content-Type": "application/json"})
        # No proxy: the control API is on loopback, and HTTPS_PROXY may point at
        # the sandbox's own proxy, which does not serve it.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=10) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            try:
                reason = json.loads(exc.read()).get("error", "")
            except (ValueError, AttributeError):
                reason = ""
            hint = (" (is this the sandbox's reverse listener, the `base URL` that "
                    "`upsproxy replay` printed?)" if exc.code == 404 and not reason else "")
            raise click.ClickException(
                f"the sandbox refused {method} {name}: HTTP {exc.code}"
                f"{': ' + reason if reason else ''}{hint}") from None
        except (urllib.error.URLError, OSError) as exc:
            why = getattr(exc, "reason", exc)
            raise click.ClickException(
                f"cannot reach the sandbox at {self.url} ({why}). Is `upsproxy replay` "
                "running? Give its base URL with --url or UPSPROXY_URL.") from None
        except ValueError:
            raise click.ClickException(f"{self.url} answered something that is not JSON: "
                                       "is it an upsproxy sandbox?") from None


def _show(payload: object) -> None:
    click.echo(json.dumps(payload, indent=2, ensure_ascii=False))


@click.group()
@click.option("--url", envvar="UPSPROXY_URL", default=DEFAULT_URL, show_default=True,
              show_envvar=True,
              help="The sandbox's reverse listener (the `base URL` `upsproxy replay` printed).")
@click.pass_context
def ctl(ctx: click.Context, url: str) -> None:
    """Control a running sandbox: state, clock, codes, reset, exchanges, faults.

    Talks to the control API under /_upsproxy/ on the reverse listener, which
    answers loopback clients only.
    """
    if not url.startswith(("http://", "https://")):  # checked: urllib also opens file:
        raise click.BadParameter(f"{url!r} is not an http:// URL", param_hint="--url")
    ctx.obj = Target(url)


@ctl.command()
@click.pass_obj
def state(target: Target) -> None:
    """Live codes, access and refresh tokens: client, expiry, lifetime left.

    Token values are never shown: each has an id, the first 12 hex digits of
    its SHA-256 and its length.
    """
    _show(target.call("GET", "state"))


@ctl.command()
@click.argument("action", required=False, type=click.Choice(["advance", "set", "reset"]))
@click.argument("value", required=False)
@click.pass_obj
def clock(target: Target, action: str | None, value: str | None) -> None:
    """Show the sandbox clock, or move it.

    \b
    upsproxy ctl clock                  show it
    upsproxy ctl clock advance 4h       move it forward (s, m, h, d; a number is seconds)
    upsproxy ctl clock set 2026-01-01T00:00:00Z   (or epoch milliseconds)
    upsproxy ctl clock reset            back to real time

    Codes and tokens expire by this clock, so `advance 4h` lets an app see its
    access token expire now. With `upsproxy replay --state`, the moved clock
    survives a restart.
    """
    if action is None:
        if value is not None:
            raise click.UsageError("give an action (advance, set or reset) before the value")
        _show(target.call("GET", "clock"))
        return
    if action == "reset":
        if value is not None:
            raise click.UsageError("clock reset takes no value")
        _show(target.call("POST", "clock", {"reset": True}))
        return
    if value is None:
        raise click.UsageError(f"clock {action} needs a value, e.g. "
                               + ("4h" if action == "advance" else "2026-01-01T00:00:00Z"))
    try:
        payload: dict[str, object] = ({"advance": parse_duration(value)} if action == "advance"
                                      else {"set": parse_time(value)})
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="VALUE") from None
    _show(target.call("POST", "clock", payload))


@ctl.command()
@click.option("--client-id", required=True, help="The client the code is issued to.")
@click.option("--redirect-uri", required=True,
              help="The redirect_uri the token request must repeat exactly.")
@click.option("--code-challenge", help="A PKCE S256 challenge: the token request then needs "
                                       "the matching code_verifier.")
@click.option("--scope", help="The scope the tokens will carry.")
@click.pass_obj
def code(target: Target, client_id: str, redirect_uri: str, code_challenge: str | None,
         scope: str | None) -> None:
    """Mint an authorization code, as if the user had approved at the login page.

    Prints the bare code (for CODE=$(upsproxy ctl code ...)); for backend
    tests that skip the browser.
    """
    payload: dict[str, str] = {"client_id": client_id, "redirect_uri": redirect_uri}
    if code_challenge is not None:
        payload["code_challenge"] = code_challenge
    if scope is not None:
        payload["scope"] = scope
    click.echo(target.call("POST", "codes", payload)["code"])


@ctl.command()
@click.pass_obj
def reset(target: Target) -> None:
    """Forget every code, token, pending login and exchange; clock back to real time."""
    _show(target.call("POST", "reset", {}))


@ctl.command()
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000),
              help="How many of the latest exchanges to show.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of lines.")
@click.pass_obj
def exchanges(target: Target, limit: int, as_json: bool) -> None:
    """The latest exchanges: time, method, host, path, status, rule, client.

    Never bodies, queries or headers: nothing secret is kept.
    """
    answer = target.call("GET", "exchanges", query={"limit": str(limit)})
    if as_json:
        _show(answer)
        return
    for x in answer["exchanges"]:
        client = f" client={x['client_id']}" if x.get("client_id") else ""
        click.echo(f"{x['at']} {x['method']} {x['host']}{x['path']} -> {x['status']} "
                   f"{x['rule']}{client}")


@ctl.command()
@click.pass_obj
def jwks(target: Target) -> None:
    """The JWK Set of the key minted access tokens are signed with."""
    _show(target.call("GET", "jwks"))


@ctl.command()
@click.argument("action", required=False, default="list",
                type=click.Choice(["list", "add", "clear"]))
@click.argument("rules", nargs=-1)
@click.option("--file", "rule_file", type=click.Path(dir_okay=False, exists=True),
              help="With add: a YAML rule file (a list of rules), as for --faults.")
@click.option("--name", help="With clear: remove only the rule of this name.")
@click.pass_obj
def faults(target: Target, action: str, rules: tuple[str, ...], rule_file: str | None,
           name: str | None) -> None:
    """List fault rules with their counts, add rules, or clear them.

    add takes shorthands (token:rate_limited, refresh:reset:after=1) or rules as
    JSON objects ('{"endpoint": "api", "delay_ms": 2000}'), and --file. All the
    rules of one call are added, or none. Works against replay and record.
    """
    if action == "list":
        if rules or rule_file or name:
            raise click.UsageError("list takes no rules, --file or --name")
        _show(target.call("GET", "faults"))
    elif action == "clear":
        if rules or rule_file:
            raise click.UsageError("clear takes no rules or --file (use --name for one)")
        _show(target.call("DELETE", "faults", query={"name": name} if name else None))
    else:
        if name:
            raise click.UsageError("--name goes with clear; name a rule inside it instead")
        batch: list[object] = []
        if rule_file:
            batch.extend(_rule_file(rule_file))
        for text in rules:
            if text.lstrip().startswith("{"):
                try:
                    batch.append(json.loads(text))
                except ValueError:
                    raise click.BadParameter(f"{text[:60]!r} is not a JSON object",
                                             param_hint="RULES") from None
            else:
                batch.append(text)
        if not batch:
            raise click.UsageError("add needs rules (shorthands or JSON objects) or --file")
        _show(target.call("POST", "faults", batch))


def _rule_file(path: str) -> list[object]:
    """The rules of a YAML file, with the file and line of a YAML error."""
    from upsproxy.errors import FaultRuleError
    from upsproxy.yamlfile import parse_text, read_text

    try:
        data = parse_text(read_text(path, FaultRuleError), path, FaultRuleError)
    except FaultRuleError as exc:
        raise click.ClickException(str(exc)) from None
    if not isinstance(data, list):
        raise click.ClickException(f"{path}: a fault rule file is a list of rules")
    return data
