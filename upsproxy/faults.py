"""The fault engine: which rule fires for a request, decided exactly under concurrency.

Rules are checked in order and the first that fires answers (a rule that
matches but does not fire, e.g. inside its ``after``, lets later rules try).
A rule's ``matched`` counter counts the requests it was checked against and
matched; ``fired`` the times it answered. Both change under one lock, together
with the decision, so 20 concurrent refreshes against ``after: 1, times: 1``
give exactly one fault.

Two moments, because two kinds of fault need different things:

- ``decide(req)`` before the sandbox answers: errors, resets and timeouts are
  answered *instead* of the sandbox (a rate-limited token request does not
  use up the code), and ``delay_ms``/``headers`` alone ask for the normal
  answer, late or with extra headers;
- ``decide_redirect(req, answer)`` after it, for ``drop_state``/``wrong_state``:
  they change the redirect back to the app, so they fire only on answers that
  are such a redirect (an authorize that goes to the login page is not).

The engine knows no mitmproxy: ``upsproxy.mitm.apply_fault`` carries a
decision out on a flow, for replay and record alike.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from upsproxy.control import ControlApi, ControlError
from upsproxy.envelopes import CATALOGUE
from upsproxy.errors import FaultRuleError
from upsproxy.fault_answers import error_answer, is_callback_redirect, merge_headers, rewrite_state
from upsproxy.fault_rules import FaultRule, Presets, RuleProblem, parse_rule
from upsproxy.fault_sources import load_rule_file, parse_shorthand
from upsproxy.messages import Request, Response
from upsproxy.routes import endpoint_of

__all__ = ["FaultDecision", "FaultEngine", "load_sources", "presets_of", "register_control"]

log = logging.getLogger(__name__)

_STATE_ENDPOINTS = frozenset({"authorize", "login"})


@dataclass(frozen=True)
class FaultDecision:
    """What a fired rule wants done with one exchange.

    ``action`` ``reset`` or ``timeout``: no answer at all (after ``delay_s``
    for a reset). Otherwise the answer is ``answer(normal)``: the rule's own
    ``response``, or, when it has none, the sandbox's normal answer with
    ``headers`` added; sent ``delay_s`` late.
    """

    rule: str
    """The rule's name; logged as ``fault:<rule>``."""
    response: Response | None = None
    headers: tuple[tuple[str, str], ...] = ()
    delay_s: float = 0.0
    action: str | None = None

    @property
    def label(self) -> str:
        return f"fault:{self.rule}"

    @property
    def needs_normal(self) -> bool:
        """True when the sandbox (or upstream, in record) must still answer."""
        return self.response is None and self.action is None

    def answer(self, normal: Response | None) -> Response | None:
        if self.action in ("reset", "timeout"):
            return None
        base = self.response if self.response is not None else normal
        if base is None or not self.headers:
            return base
        return replace(base, headers=merge_headers(base.headers, self.headers))


class _Live:
    """A rule in an engine: its name, id, counters and ready-made decision."""

    __slots__ = ("decision", "fired", "id", "matched", "name", "rng", "rule")

    def __init__(self, rule: FaultRule, rule_id: int, name: str) -> None:
        self.rule = rule
        self.id = rule_id
        self.name = name
        self.matched = 0
        self.fired = 0
        self.rng = random.Random(rule.seed)  # noqa: S311 - reproducible faults, not secrets
        label = f"fault:{name}"
        response = error_answer(rule.error, label, rule.headers) if rule.error else None
        self.decision = FaultDecision(name, response, () if response else rule.headers,
                                      rule.delay_ms / 1000, None if rule.on_redirect
                                      else rule.action)

    def fires(self) -> bool:
        """Count one match and decide; only ever called under the engine's lock."""
        self.matched += 1
        rule = self.rule
        nth = self.matched - rule.after
        if nth <= 0:
            return False
        if rule.every is not None and nth % rule.every:
            return False
        if rule.probability is not None and self.rng.random() >= rule.probability:
            return False
        if rule.times is not None and self.fired >= rule.times:
            return False
        self.fired += 1
        log.debug("fault %s fired (match %d, fire %d)", self.name, self.matched, self.fired)
        return True

    def view(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, **self.rule.spec,
                "matched": self.matched, "fired": self.fired}


class FaultEngine:
    """The rules of one sandbox. ``active`` is False while there are none, so a
    proxy without faults pays one attribute check per request."""

    def __init__(self, presets: Presets | None = None) -> None:
        self.presets: Presets = dict(presets) if presets is not None else {
            name: (spec.status, spec.code, spec.message) for name, spec in CATALOGUE.items()}
        self._lock = threading.Lock()
        self._rules: tuple[_Live, ...] = ()
        self._next_id = 1
        self.active = False
        self.on_redirect = False
        """True while some rule acts on the redirect back to the app."""

    # -- rules in --------------------------------------------------------------------
    def add(self, raw: Any) -> list[dict[str, Any]]:
        """Add a rule mapping, a shorthand string, or a list of them (all or none);
        RuleProblem says what is wrong and where. Returns the added rules."""
        items = raw if isinstance(raw, list) else [raw]
        rules = []
        for index, item in enumerate(items):
            try:
                rules.append(parse_shorthand(item, self.presets) if isinstance(item, str)
                             else parse_rule(item, self.presets))
            except RuleProblem as bad:
                where = (index, *bad.where) if isinstance(raw, list) else bad.where
                raise RuleProblem(where, bad.reason) from None
        return self.add_rules(rules)

    def add_rules(self, rules: list[FaultRule]) -> list[dict[str, Any]]:
        with self._lock:
            taken = {live.name for live in self._rules}
            for index, rule in enumerate(rules):
                if rule.name is not None and rule.name in taken:
                    raise RuleProblem((index, "name"), f"a rule named {rule.name!r} exists")
                if rule.name is not None:
                    taken.add(rule.name)
            added = []
            for rule in rules:
                rule_id = self._next_id
                self._next_id += 1
                name = rule.name or f"rule{rule_id}"
                suffix = 1
                while rule.name is None and name in taken:
                    suffix += 1
                    name = f"rule{rule_id}-{suffix}"
                taken.add(name)
                added.append(_Live(rule, rule_id, name))
            self._rules = (*self._rules, *added)
            self._refresh_flags()
            return [live.view() for live in added]

    def load_file(self, path: str | Path) -> list[dict[str, Any]]:
        """Rules from a YAML file; FaultRuleError with the file and line."""
        rules = load_rule_file(path, self.presets)
        try:
            return self.add_rules(rules)
        except RuleProblem as bad:
            raise FaultRuleError(str(path), f"rule {int(bad.where[0]) + 1}: {bad.reason}",
                                 None) from None

    def add_shorthand(self, text: str) -> list[dict[str, Any]]:
        try:
            return self.add_rules([parse_shorthand(text, self.presets)])
        except RuleProblem as bad:
            raise FaultRuleError(f"--fault {text!r}", str(bad)) from None

    def clear(self, name: str | None = None) -> int:
        """Remove every rule, or the one called ``name``; returns how many went."""
        with self._lock:
            before = len(self._rules)
            self._rules = () if name is None else tuple(
                live for live in self._rules if live.name != name)
            self._refresh_flags()
            return before - len(self._rules)

    def rules(self) -> list[dict[str, Any]]:
        """Every rule with its id, name, keys, ``matched`` and ``fired`` counts."""
        with self._lock:
            return [live.view() for live in self._rules]

    def _refresh_flags(self) -> None:
        self.active = bool(self._rules)
        self.on_redirect = any(live.rule.on_redirect for live in self._rules)

    # -- decisions ---------------------------------------------------------------------
    def decide(self, req: Request) -> FaultDecision | None:
        """The decision of the first rule that fires for ``req``, before any answer."""
        endpoint = endpoint_of(req)
        if endpoint is None:
            return None
        with self._lock:
            for live in self._rules:
                if (not live.rule.on_redirect and live.rule.matches(req, endpoint)
                        and live.fires()):
                    return live.decision
        return None

    def decide_redirect(self, req: Request, response: Response) -> FaultDecision | None:
        """A ``drop_state``/``wrong_state`` rule's decision for the answer to ``req``,
        when that answer is the redirect back to the app with a code or an error."""
        if not self.on_redirect:
            return None
        endpoint = endpoint_of(req)
        if endpoint not in _STATE_ENDPOINTS or not is_callback_redirect(response):
            return None
        assert endpoint is not None
        client = response.extra.get("client_id")
        with self._lock:
            for live in self._rules:
                rule = live.rule
                if rule.on_redirect and rule.matches(req, endpoint, client) and live.fires():
                    assert rule.action is not None
                    changed = rewrite_state(response, rule.action, live.decision.label)
                    return replace(live.decision, response=changed)
        return None


def presets_of(*catalogues: Mapping[str, Any]) -> Presets:
    """Preset names to (status, code, message): later catalogues win. Each maps a
    name to anything with ``status``, ``code`` and ``message`` (ErrorSpec,
    RecordedError)."""
    out: dict[str, tuple[int, str, str]] = {}
    for catalogue in catalogues:
        out.update({name: (e.status, e.code, e.message) for name, e in catalogue.items()})
    return out


def load_sources(engine: FaultEngine, files: Iterable[str | Path],
                 specs: Iterable[str]) -> FaultEngine:
    """Rule files in order, then ``--fault`` shorthands; FaultRuleError names the
    file and line (or the shorthand) of the first bad rule."""
    for path in files:
        engine.load_file(path)
    for spec in specs:
        engine.add_shorthand(spec)
    return engine


def register_control(control: ControlApi, engine: FaultEngine) -> None:
    """``/_upsproxy/faults``: POST adds (one rule or a list), GET lists with
    counts, DELETE clears all or ``?name=``."""

    def add(req: Request, body: Any) -> object:
        if body is None:
            raise ControlError("send a rule (a JSON object), a shorthand string, or a list")
        try:
            return {"rules": engine.add(body)}
        except RuleProblem as bad:
            raise ControlError(str(bad)) from None

    def listing(req: Request, body: Any) -> object:
        return {"rules": engine.rules()}

    def clear(req: Request, body: Any) -> object:
        try:
            params = dict(req.query_pairs)
        except ValueError:
            raise ControlError("the query is not UTF-8") from None
        unknown = set(params) - {"name"}
        if unknown:
            raise ControlError(f"unknown parameter {sorted(unknown)[0]!r}; known: name")
        name = params.get("name")
        removed = engine.clear(name)
        if name is not None and not removed:
            raise ControlError(f"no rule named {name!r}", 404)
        return {"removed": removed}

    control.add("POST", "faults", add)
    control.add("GET", "faults", listing)
    control.add("DELETE", "faults", clear)
