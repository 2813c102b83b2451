"""The sandbox config file: registered apps and overrides of error answers.

    apps:                        # optional; without it any client_id is accepted
      - client_id: TESTCLIENT
        client_secret: S3CRET    # Basic auth must carry it; omit for PKCE-only apps
        redirect_uris: [https://app.example.test/cb]
        name: Test App           # the appname/displayname headers on authorize
    errors:                      # optional; change a sandbox-chosen answer
      invalid_code: {status: 400, code: "10400", message: Invalid Authorization Code}

With apps configured, an unknown client gets UPS's ``10401 ClientId is
Invalid`` and an unregistered redirect_uri ``10400 Invalid Redirect URL``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from upsproxy.envelopes import CATALOGUE, ErrorSpec
from upsproxy.errors import ConfigError
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
    errors: dict[str, ErrorSpec] = field(default_factory=lambda: dict(CATALOGUE))


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
        raise Invalid((), "a config file is a mapping with 'apps' and/or 'errors'")
    unknown = set(data) - {"apps", "errors"}
    if unknown:
        key = sorted(map(str, unknown))[0]
        raise Invalid((key,), f"unknown key {key!r}; known: apps, errors")
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
    errors = dict(CATALOGUE)
    raw_errors = data.get("errors") or {}
    if not isinstance(raw_errors, dict):
        raise Invalid(("errors",), "'errors' must map error names to {status, code, message}")
    for name, raw in raw_errors.items():
        if name not in errors:
            raise Invalid(("errors", name), f"unknown error name {name!r}; known: "
                          f"{', '.join(sorted(CATALOGUE))}")
        errors[name] = _error(errors[name], raw, ("errors", name))
    return SandboxConfig(apps, errors)


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
    secret = raw.get("client_secret")
    if secret is not None and not isinstance(secret, str):
        raise Invalid((*where, "client_secret"), "client_secret must be text")
    uris = raw.get("redirect_uris")
    if not isinstance(uris, list) or not uris or not all(isinstance(u, str) for u in uris):
        raise Invalid((*where, "redirect_uris") if "redirect_uris" in raw else where,
                      "redirect_uris must be a non-empty list of URLs")
    name = raw.get("name")
    if name is not None and not isinstance(name, str):
        raise Invalid((*where, "name"), "name must be text")
    return App(client_id, secret, tuple(uris), name)


def _error(base: ErrorSpec, raw: Any, where: tuple[str | int, ...]) -> ErrorSpec:
    if not isinstance(raw, dict) or set(raw) - {"status", "code", "message"}:
        raise Invalid(where, "an error override has only status, code and message")
    status = raw.get("status", base.status)
    if not isinstance(status, int) or not 400 <= status <= 599:
        raise Invalid((*where, "status"), "status must be an integer 400-599")
    code, message = raw.get("code", base.code), raw.get("message", base.message)
    if not isinstance(code, str) or not isinstance(message, str):
        raise Invalid(where, "code and message must be text (quote numbers: \"10400\")")
    return replace(base, status=status, code=code, message=message, observed=False)
