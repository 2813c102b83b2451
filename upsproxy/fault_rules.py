"""Fault rules: the model, and one validator for rule files, control API bodies
and ``--fault`` shorthands (``fault_sources`` reads those).

A rule is a flat mapping (README "Faults" lists every key)::

    - name: second-refresh-fails          # optional; default rule1, rule2, ...
      endpoint: refresh                   # authorize|login|token|refresh|api|any (default any)
      after: 1                            # skip the first match
      times: 1                            # then fire once
      preset: invalid_refresh_token       # a named UPS error (or status/code/message)

Every source goes through ``parse_rule``, so a file, a POST body and a
shorthand are refused for the same reasons in the same words; a file adds the
line. Globs are compiled here, once: matching a request never compiles.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import translate
from typing import Any

from upsproxy.forms import FormError, parse_basic, parse_form
from upsproxy.messages import Request
from upsproxy.routes import ENDPOINTS
from upsproxy.yamlfile import Where

__all__ = ["ACTIONS", "STATE_ACTIONS", "FaultRule", "Presets", "RuleProblem", "client_id_of",
           "parse_rule", "parse_rules"]

ACTIONS = ("reset", "timeout", "drop_state", "wrong_state")
STATE_ACTIONS = frozenset({"drop_state", "wrong_state"})
"""Actions on the redirect back to the app: they need the sandbox's answer first."""
_STATE_ENDPOINTS = frozenset({"authorize", "login"})
KEYS = ("name", "endpoint", "client_id", "path", "header", "after", "times", "every",
        "probability", "seed", "preset", "status", "code", "message", "headers", "body",
        "delay_ms", "action")
MAX_DELAY_MS = 10 * 60 * 1000
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_FRAMING = frozenset({"content-length", "transfer-encoding", "connection"})

Presets = Mapping[str, tuple[int, str, str]]
"""Preset name -> (status, code, message)."""


class RuleProblem(ValueError):
    """A rule cannot be used; ``where`` is the path to the bad key."""

    def __init__(self, where: Where, reason: str) -> None:
        super().__init__(reason)
        self.where = where
        self.reason = reason

    def __str__(self) -> str:
        path = ".".join(str(step) for step in self.where)
        return f"{path}: {self.reason}" if path else self.reason


@dataclass(frozen=True)
class ErrorAnswer:
    """What a rule answers instead of the sandbox (before its name is known)."""

    status: int
    code: str
    message: str
    body: str | None = None
    """None: the UPS envelope; ``html``, ``empty`` or literal text otherwise."""


@dataclass(frozen=True)
class FaultRule:
    spec: dict[str, Any]
    """The rule as given (normalised), for listings."""
    name: str | None = None
    endpoints: frozenset[str] | None = None
    """None: every UPS endpoint."""
    client_id: str | None = None
    path: re.Pattern[str] | None = None
    header: tuple[tuple[str, re.Pattern[str]], ...] = ()
    after: int = 0
    times: int | None = None
    every: int | None = None
    probability: float | None = None
    seed: int | None = None
    error: ErrorAnswer | None = None
    headers: tuple[tuple[str, str], ...] = ()
    delay_ms: int = 0
    action: str | None = None

    @property
    def on_redirect(self) -> bool:
        """True for state actions, which are decided on the sandbox's answer."""
        return self.action in STATE_ACTIONS

    def matches(self, req: Request, endpoint: str, client_id: str | None = None) -> bool:
        """Whether ``req`` (for ``endpoint``) is one this rule is about.
        ``client_id`` is a fallback for requests that do not name their client."""
        if self.endpoints is not None and endpoint not in self.endpoints:
            return False
        if self.path is not None and self.path.match(req.path) is None:
            return False
        for name, pattern in self.header:
            if not any(pattern.match(value) for value in req.header_all(name)):
                return False
        if self.client_id is not None:
            return (client_id_of(req) or client_id) == self.client_id
        return True


def client_id_of(req: Request) -> str | None:
    """The client a request names: Basic credentials, a form field, or the query."""
    auth = req.header("authorization")
    if auth:
        creds = parse_basic(auth)
        if creds is not None:
            return creds.client_id
    if req.body:
        try:
            form = parse_form(req.header("content-type"), req.body,
                              req.header("content-encoding"))
        except FormError:
            form = {}
        if "client_id" in form:
            return form["client_id"]
    if "client_id" in req.query:
        try:
            for key, value in req.query_pairs:
                if key == "client_id":
                    return value
        except ValueError:
            return None
    return None


# -- validation ---------------------------------------------------------------------------


def _int(raw: Mapping[str, Any], key: str, low: int, high: int | None = None) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < low or (
            high is not None and value > high):
        bound = f"{low}-{high}" if high is not None else f">= {low}"
        raise RuleProblem((key,), f"{key} must be an integer {bound}")
    return value


def _text(raw: Mapping[str, Any], key: str, *, numbers: bool = False) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if numbers and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value or not value.isprintable():
        raise RuleProblem((key,), f"{key} must be text on one line")
    return value


def _glob(text: str) -> re.Pattern[str]:
    return re.compile(translate(text), re.DOTALL)


def _endpoints(raw: Mapping[str, Any]) -> frozenset[str] | None:
    value = raw.get("endpoint", "any")
    names = [value] if isinstance(value, str) else value
    known = [*sorted(ENDPOINTS), "any"]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise RuleProblem(("endpoint",), f"endpoint must be one of {', '.join(known)} "
                          "(or a list of them)")
    for name in names:
        if name not in known:
            raise RuleProblem(("endpoint",), f"unknown endpoint {name!r}; known: "
                              f"{', '.join(known)}")
    return None if "any" in names else frozenset(names)


def _header_match(raw: Mapping[str, Any]) -> tuple[tuple[str, re.Pattern[str]], ...]:
    value = raw.get("header")
    if value is None:
        return ()
    if not isinstance(value, dict) or not value:
        raise RuleProblem(("header",), "header must map header names to values (globs)")
    out = []
    for name, pattern in value.items():
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise RuleProblem(("header",), f"{name!r} is not a header name")
        if isinstance(pattern, int) and not isinstance(pattern, bool):
            pattern = str(pattern)
        if not isinstance(pattern, str) or not pattern.isprintable():
            raise RuleProblem(("header", name), "a header value must be text on one line")
        out.append((name.lower(), _glob(pattern)))
    return tuple(out)


def _answer_headers(raw: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    value = raw.get("headers")
    if value is None:
        return ()
    if not isinstance(value, dict) or not value:
        raise RuleProblem(("headers",), "headers must map header names to values")
    out = []
    for name, text in value.items():
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise RuleProblem(("headers",), f"{name!r} is not a header name")
        if name.lower() in _FRAMING:
            raise RuleProblem(("headers", name), f"{name} is set by the proxy, not by a rule")
        if isinstance(text, int | float) and not isinstance(text, bool):
            text = str(text)
        if not isinstance(text, str) or not text.isprintable():
            raise RuleProblem(("headers", name), "a header value must be text on one line")
        out.append((name, text))
    return tuple(out)


def _error(raw: Mapping[str, Any], presets: Presets) -> ErrorAnswer | None:
    preset = raw.get("preset")
    status = _int(raw, "status", 200, 599)
    code = _text(raw, "code", numbers=True)
    message = _text(raw, "message")
    body = raw.get("body")
    if body is not None and (not isinstance(body, str) or not body):
        raise RuleProblem(("body",), "body is html, empty, or the literal text to send")
    if preset is None and status is None:
        for key in ("code", "message", "body"):
            if key in raw:
                raise RuleProblem((key,), f"{key} needs a status or a preset")
        return None
    if preset is not None:
        if not isinstance(preset, str) or preset not in presets:
            raise RuleProblem(("preset",), f"unknown preset {preset!r}; known: "
                              f"{', '.join(sorted(presets))}")
        base_status, base_code, base_message = presets[preset]
    else:
        assert status is not None
        base_status, base_code, base_message = status, f"10{status}", "Fault Injected"
    return ErrorAnswer(status if status is not None else base_status,
                       code if code is not None else base_code,
                       message if message is not None else base_message, body)


def parse_rule(raw: Any, presets: Presets) -> FaultRule:
    """One rule from its mapping; RuleProblem names the key that is wrong."""
    if not isinstance(raw, dict):
        raise RuleProblem((), "a rule is a mapping (endpoint, preset, action, ...)")
    for key in raw:
        if key not in KEYS:
            raise RuleProblem((str(key),), f"unknown key {key!r}; known: {', '.join(KEYS)}")
    name = raw.get("name")
    if name is not None and (not isinstance(name, str) or not _NAME.fullmatch(name)):
        raise RuleProblem(("name",), "name must be 1-64 of A-Z a-z 0-9 _ . : -")
    endpoints = _endpoints(raw)
    client_id = _text(raw, "client_id")
    path = _text(raw, "path")
    if path is not None and not path.startswith(("/", "*")):
        raise RuleProblem(("path",), "path is a glob of the URL path, starting with /")
    probability = raw.get("probability")
    if probability is not None and (isinstance(probability, bool)
                                    or not isinstance(probability, int | float)
                                    or not math.isfinite(probability)
                                    or not 0 <= probability <= 1):
        raise RuleProblem(("probability",), "probability must be a number from 0 to 1")
    seed = _int(raw, "seed", -(2**63), 2**63)
    if seed is not None and probability is None:
        raise RuleProblem(("seed",), "seed only makes sense with probability")
    action = raw.get("action")
    if action is not None and action not in ACTIONS:
        raise RuleProblem(("action",), f"unknown action {action!r}; known: {', '.join(ACTIONS)}")
    error = _error(raw, presets)
    headers = _answer_headers(raw)
    delay_ms = _int(raw, "delay_ms", 0, MAX_DELAY_MS) or 0
    if action is not None and error is not None:
        raise RuleProblem(("action",), f"action {action} and an error answer "
                          "(preset/status) exclude each other")
    if action in ("reset", "timeout") and headers:
        raise RuleProblem(("headers",), f"action {action} sends no answer, so no headers")
    if action == "timeout" and delay_ms:
        raise RuleProblem(("delay_ms",), "action timeout never answers: delay_ms means nothing")
    if action in STATE_ACTIONS and not (endpoints is None or endpoints <= _STATE_ENDPOINTS):
        raise RuleProblem(("endpoint",), f"action {action} changes the redirect back to the "
                          "app: endpoint must be authorize, login or any")
    if error is None and action is None and not delay_ms and not headers:
        raise RuleProblem((), "the rule does nothing: give a preset, status, action, "
                          "delay_ms or headers")
    return FaultRule(
        spec=dict(raw), name=name, endpoints=endpoints, client_id=client_id,
        path=_glob(path) if path is not None else None, header=_header_match(raw),
        after=_int(raw, "after", 0) or 0, times=_int(raw, "times", 1),
        every=_int(raw, "every", 1), probability=probability, seed=seed, error=error,
        headers=headers, delay_ms=delay_ms, action=action)


def parse_rules(raw: Any, presets: Presets) -> list[FaultRule]:
    """A list of rules (a single mapping is a list of one); all or nothing."""
    if isinstance(raw, dict) and set(raw) == {"faults"}:
        raw = raw["faults"]
        prefix: Where = ("faults",)
    else:
        prefix = ()
    if isinstance(raw, dict):
        return [parse_rule(raw, presets)]
    if not isinstance(raw, list):
        raise RuleProblem(prefix, "expected a list of rules (or one rule mapping)")
    rules: list[FaultRule] = []
    for index, item in enumerate(raw):
        try:
            rule = parse_rule(item, presets)
        except RuleProblem as bad:
            raise RuleProblem((*prefix, index, *bad.where), bad.reason) from None
        if rule.name is not None and any(other.name == rule.name for other in rules):
            raise RuleProblem((*prefix, index, "name"), f"a rule named {rule.name!r} "
                              "is listed twice")
        rules.append(rule)
    return rules
