"""The sandbox config file: registered apps and overrides of error answers.

    apps:                        # optional; without it any client_id is accepted
      - client_id: TESTCLIENT
        client_secret: S3CRET    # Basic auth must carry it; omit for PKCE-only apps
        redirect_uris: [https://app.example.test/cb]
        name: Test App           # the appname/displayname headers on authorize
    errors:                      # optional; change a sandbox-chosen answer
      invalid_code: {status: 400, code: "10400", message: Invalid Authorization Code}
    redact:                      # optional; `upsproxy record`'s personal-data rules
      fields: [customerReference]     # see upsproxy.redact_rules

With apps configured, an unknown client gets UPS's ``10401 ClientId is
Invalid`` and an unregistered redirect_uri ``10400 Invalid Redirect URL``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from upsproxy.envelopes import CATALOGUE
from upsproxy.errors import ConfigError
from upsproxy.redact_rules import RedactRules, parse_rules
from upsproxy.yamlfile import Invalid, locate, parse_text, read_text

__all__ = ["App", "SandboxConfig", "load_config"]


@dataclass(frozen=True)
class App:
    client_id: str
    client_secret: str | None
    redirect_uris: tuple[str, ...]
    name: str | None = None

    def __repr__(self) -> str:
        return f"App(client_id={self.client_id!r}, redirect_uris={self.redirect_uris!r})"


@dataclass(frozen=True)
class SandboxConfig:
    apps: dict[str, App] | None = None
    """None: open sandbox (any client accepted and bound to its codes)."""
    error_overrides: dict[str, dict[str, int | str]] = field(default_factory=dict)
    """Changed fields of catalogue entries, by name; applied after the cassette's."""
    redact: RedactRules = field(default_factory=RedactRules)
    """What `upsproxy record` treats as personal, beyond OAuth secrets."""


def load_config(path: str | Path) -> SandboxConfig:
    text = read_text(path, ConfigError)
    data = parse_text(text, str(path), ConfigError)
    try:
        return _build(data)
    except Invalid as bad:
        raise ConfigError(str(path), bad.reason, locate(text, bad.where)) from None


def _build(data: Any) -> SandboxConfig:
    if data is None:
        return SandboxConfig()
    if not isinstance(data, dict):
        raise Invalid((), "a config file is a mapping with 'apps', 'errors' and/or 'redact'")
    unknown = set(data) - {"apps", "errors", "redact"}
    if unknown:
        key = sorted(map(str, unknown))[0]
        raise Invalid((key,), f"unknown key {key!r}; known: apps, errors, redact")
    apps = None
    if "apps" in data:
        raw_apps = data["apps"]
        if not isinstance(raw_apps, list):
            raise Invalid(("apps",), "'apps' must be a list")
        apps = {}
        for i, raw in enumerate(raw_apps):
            app = _app(raw, ("apps", i))
            if app.client_id in apps:
                raise Invalid(("apps", i), f"client_id {app.client_id!r} is listed twice")
            apps[app.client_id] = app
    overrides: dict[str, dict[str, int | str]] = {}
    raw_errors = data.get("errors") or {}
    if not isinstance(raw_errors, dict):
        raise Invalid(("errors",), "'errors' must map error names to {status, code, message}")
    for name, raw in raw_errors.items():
        if name not in CATALOGUE:
            raise Invalid(("errors", name), f"unknown error name {name!r}; known: "
                          f"{', '.join(sorted(CATALOGUE))}")
        overrides[name] = _error(raw, ("errors", name))
    return SandboxConfig(apps, overrides, parse_rules(data.get("redact")))


def _app(raw: Any, where: tuple[str | int, ...]) -> App:
    if not isinstance(raw, dict):
        raise Invalid(where, "each app is a mapping with client_id and redirect_uris")
    unknown = set(raw) - {"client_id", "client_secret", "redirect_uris", "name"}
    if unknown:
        key = sorted(map(str, unknown))[0]
        raise Invalid((*where, key), f"unknown app key {key!r}")
    client_id = raw.get("client_id")
    if not isinstance(client_id, str) or not client_id:
        raise Invalid(where, "app needs a client_id (text)")
    if ":" in client_id or not client_id.isprintable() or client_id != client_id.strip():
        # Basic credentials split at the first colon: such a client could never sign in.
        raise Invalid((*where, "client_id"), "client_id must be printable text without ':' "
                      "or surrounding spaces (Basic auth splits id and secret at the first ':')")
    secret = raw.get("client_secret")
    if secret is not None and not isinstance(secret, str):
        raise Invalid((*where, "client_secret"), "client_secret must be text")
    uris = raw.get("redirect_uris")
    if not isinstance(uris, list) or not uris or not all(isinstance(u, str) for u in uris):
        raise Invalid((*where, "redirect_uris") if "redirect_uris" in raw else where,
                      "redirect_uris must be a non-empty list of URLs")
    for n, uri in enumerate(uris):
        parts = urlsplit(uri)
        if (parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment
                or not uri.isprintable() or " " in uri):
            raise Invalid((*where, "redirect_uris", n),
                          f"redirect_uris: {uri!r} is not an absolute http(s) URL "
                          "without a fragment, spaces or control characters")
    name = raw.get("name")
    if name is not None and not (isinstance(name, str) and name.isprintable()):
        raise Invalid((*where, "name"), "name must be text on one line (it becomes a header)")
    return App(client_id, secret, tuple(uris), name)


def _error(raw: Any, where: tuple[str | int, ...]) -> dict[str, int | str]:
    if not isinstance(raw, dict) or not raw or set(raw) - {"status", "code", "message"}:
        raise Invalid(where, "an error override has status, code and/or message, nothing else")
    if "status" in raw and (not isinstance(raw["status"], int) or isinstance(raw["status"], bool)
                            or not 400 <= raw["status"] <= 599):
        raise Invalid((*where, "status"), "status must be an integer 400-599")
    for key in ("code", "message"):
        if key in raw and not isinstance(raw[key], str):
            raise Invalid((*where, key), f"{key} must be text (quote numbers: \"10400\")")
        if key in raw and not raw[key].isprintable():
            # The message is also sent as the APIErrorMessage header: no line breaks.
            raise Invalid((*where, key), f"{key} must be one line without control characters")
    return dict(raw)
