"""The control API: plain HTTP under ``/_upsproxy/`` on the reverse listener.

Tests and ``upsproxy ctl`` use it to read state, move the clock, add faults
and so on. Each feature registers its own endpoints with ``ControlApi.add``,
so this module only routes, guards and encodes:

- only the reverse listener serves it (through the proxy, ``/_upsproxy/`` on a
  UPS host is just an unknown UPS path);
- only loopback peers are answered: the sandbox can mint codes for anyone;
- bodies are JSON both ways; a problem is ``{"error": "..."}`` with a 4xx.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from typing import Any

from upsproxy.messages import Request, Response

__all__ = ["CONTROL_PREFIX", "ControlApi", "ControlError", "control_json"]

CONTROL_PREFIX = "/_upsproxy/"
MAX_CONTROL_BODY = 1024 * 1024

Handler = Callable[[Request, Any], object]
"""Takes the request and its parsed JSON body (None when empty); returns a
JSON-able payload (answered 200) or a ready ``Response``."""


class ControlError(Exception):
    """A control request that cannot be done; answered ``status`` with the reason."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


def control_json(status: int, payload: object, rule: str) -> Response:
    """A control answer. Text from the wire (a path with invalid UTF-8 in the
    exchanges list) can hold lone surrogates: they become "?", never a 500."""
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8", "replace")
    return Response(status, (("Content-Type", "application/json"),
                             ("Cache-Control", "no-store")), body, rule)


def is_loopback(peer: str | None) -> bool:
    if not peer:
        return False
    try:
        address = ipaddress.ip_address(peer.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bool((mapped or address).is_loopback)


class ControlApi:
    """Routes ``METHOD /_upsproxy/NAME`` to the handler registered for it."""

    def __init__(self) -> None:
        self._routes: dict[str, dict[str, Handler]] = {}

    def add(self, method: str, name: str, handler: Handler) -> None:
        self._routes.setdefault(name, {})[method.upper()] = handler

    def names(self) -> list[str]:
        return sorted(self._routes)

    def handle(self, req: Request) -> Response:
        if not is_loopback(req.peer):
            return control_json(403, {"error": "the control API answers loopback clients only"},
                                "control.not_loopback")
        name = req.path[len(CONTROL_PREFIX):].strip("/")
        methods = self._routes.get(name)
        if methods is None:
            return control_json(404, {"error": f"no control endpoint {name!r}",
                                      "endpoints": self.names()}, "control.unknown")
        handler = methods.get(req.method)
        if handler is None:
            return control_json(405, {"error": f"{req.method} not allowed here",
                                      "allowed": sorted(methods)}, "control.method")
        body: Any = None
        if req.body:
            if len(req.body) > MAX_CONTROL_BODY:
                return control_json(413, {"error": "body too large"}, "control.too_large")
            try:
                body = json.loads(req.body)
            except (ValueError, RecursionError):  # not JSON, or nested past the stack
                return control_json(400, {"error": "the body must be JSON"}, "control.bad_json")
        try:
            result = handler(req, body)
        except ControlError as exc:
            return control_json(exc.status, {"error": exc.reason}, f"control.{name}.refused")
        if isinstance(result, Response):
            return result
        return control_json(200, result, f"control.{name}")
