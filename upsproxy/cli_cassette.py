"""``upsproxy cassette check|show|import``: look after cassette files."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import click

from upsproxy.cli_common import DEFAULT_CONFDIR
from upsproxy.errors import CassetteError, UpsproxyError

__all__ = ["cassette"]


@click.group()
def cassette() -> None:
    """Check, summarise and import cassette files."""


@cassette.command()
@click.argument("paths", nargs=-1, required=True,
                type=click.Path(dir_okay=False, path_type=Path))
def check(paths: tuple[Path, ...]) -> None:
    """Validate cassettes and look for live-looking credentials.

    Checks the schema (as `upsproxy replay` loads it), then looks for JWTs,
    Basic and Bearer values, secret-named fields, query parameters and cookies
    that hold a value instead of a <<kind:N>> placeholder, and long
    random-looking tokens. Prints FILE:LINE: reason for each finding (never
    the value) and exits 1 if there is any: usable as a pre-commit hook.
    """
    from upsproxy.cassette import load_cassette
    from upsproxy.cassette_check import scan
    from upsproxy.yamlfile import parse_text, read_text

    problems = 0
    for path in paths:
        try:
            load_cassette(path)
            text = read_text(path, CassetteError)
            findings = scan(text, parse_text(text, str(path), CassetteError))
        except CassetteError as exc:
            click.echo(str(exc))
            problems += 1
            continue
        for finding in findings:
            where = f"{path}:{finding.line}" if finding.line else str(path)
            click.echo(f"{where}: {finding.reason}")
        problems += len(findings)
    if problems:
        raise SystemExit(1)
    click.echo(f"{len(paths)} cassette(s) OK", err=True)


@cassette.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def show(path: Path) -> None:
    """Print a summary table of a cassette: #, kind, method, path, status, name."""
    from upsproxy.cassette import load_cassette

    try:
        loaded = load_cassette(path)
    except CassetteError as exc:
        raise click.ClickException(str(exc)) from None
    meta = loaded.meta
    click.echo(f"{path}: {len(loaded.interactions)} interactions, "
               f"{meta.get('how', '?')} {meta.get('recorded_at', '')} "
               f"from {meta.get('upstream', '?')}".rstrip())
    if loaded.shapes:
        click.echo("shapes: " + ", ".join(
            f"{kind} ({'JWT' if hasattr(shape, 'claims') else _token(shape)})"
            for kind, shape in loaded.shapes.items()))
    rows = [("#", "kind", "method", "path", "status", "name")]
    for n, interaction in enumerate(loaded.interactions, 1):
        url = urlsplit(interaction.request.url)
        rows.append((str(n), interaction.kind, interaction.request.method, url.path,
                     str(interaction.response.status), interaction.name or ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths,
                                                                     strict=True)).rstrip())


def _token(shape: object) -> str:
    return f"{getattr(shape, 'length', '?')} chars {getattr(shape, 'alphabet', '?')}"


@cassette.command(name="import")
@click.argument("flows", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Cassette to write.")
@click.option("--mode", type=click.Choice(["new", "append", "overwrite"]), default="new",
              show_default=True, help="As for `upsproxy record`.")
@click.option("--config", type=click.Path(dir_okay=False, path_type=Path),
              help="YAML config whose redact: section extends the redaction rules.")
@click.option("--confdir", type=click.Path(file_okay=False, path_type=Path),
              default=DEFAULT_CONFDIR, envvar="UPSPROXY_CONFDIR", show_default=True,
              help="Where upsproxy keeps its recording key, as for `upsproxy record`: "
                   "with the same key, --mode append gives a value recorded or imported "
                   "before its old placeholder.")
def import_(flows: Path, output: Path, mode: str, config: Path | None, confdir: Path) -> None:
    """Convert a mitmproxy flow file (mitmdump -w) or a HAR file into a redacted cassette.

    Only UPS exchanges are kept (the OAuth endpoints, the sign-in page and
    /api/... calls on wwwcie.ups.com, onlinetools.ups.com and www.ups.com);
    they are redacted and leak-guarded exactly as `upsproxy record` does,
    fingerprints included.
    """
    from upsproxy.config import load_config
    from upsproxy.errors import LeakError
    from upsproxy.fingerprint import load_recording_key
    from upsproxy.har import looks_like_har, read_har
    from upsproxy.recorder import Exchange, Recorder
    from upsproxy.redact_rules import RedactRules
    from upsproxy.routes import endpoint_of

    try:
        rules = load_config(config).redact if config else RedactRules()
        raw = flows.read_bytes()
        if looks_like_har(raw):
            pairs = list(read_har(raw))
        else:
            from upsproxy import mitm

            pairs = list(mitm.read_flows(flows))
    except ValueError as exc:
        raise click.ClickException(f"{flows}: {exc}") from None
    except OSError as exc:
        raise click.ClickException(f"{flows}: cannot read: {exc.strerror}") from None
    except UpsproxyError as exc:
        raise click.ClickException(str(exc)) from None
    existed = output.exists()
    exchanges = []
    upstream = None
    for request, response in pairs:
        kind = endpoint_of(request)
        if kind is None:
            continue
        host = request.host if request.origin is None else (
            "www.ups.com" if kind == "login" else "wwwcie.ups.com")
        upstream = upstream or f"https://{host if kind != 'login' else 'wwwcie.ups.com'}"
        url = f"https://{host}{request.path}" + (f"?{request.query}" if request.query else "")
        exchanges.append(Exchange(kind, url, request, response))
    try:
        key = load_recording_key(confdir)
    except UpsproxyError as exc:
        raise click.ClickException(str(exc)) from None
    recorder = Recorder(output, mode=mode, upstream=upstream or "https://wwwcie.ups.com",
                        rules=rules, meta={"imported_from": flows.name}, key=key)
    try:
        recorder.open()
        for exchange in exchanges:
            recorder.record(exchange)
    except LeakError as exc:
        if not existed:
            output.unlink(missing_ok=True)
        raise click.ClickException(str(exc)) from None
    except UpsproxyError as exc:
        raise click.ClickException(str(exc)) from None
    skipped = len(pairs) - len(exchanges)
    click.echo(f"{output}: {len(exchanges)} UPS interactions imported from {flows}"
               + (f" ({skipped} other exchanges skipped)" if skipped else ""), err=True)
