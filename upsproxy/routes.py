"""Which UPS endpoint a request is for: one answer for replay, record and faults.

The decision is by host and exact path (``/api/security/v1/oauth/token`` is
not the token endpoint). A request on the reverse listener (``origin`` set)
is for UPS whatever its Host header says; through the proxy, only the UPS
host names count, and the login page lives on ``www.ups.com``.
"""

from __future__ import annotations

from upsproxy.messages import Request

__all__ = ["API_HOSTS", "ENDPOINTS", "LOGIN_HOSTS", "LOGIN_PATH", "OAUTH_PATHS", "UPS_HOSTS",
           "endpoint_of"]

API_HOSTS = frozenset({"wwwcie.ups.com", "onlinetools.ups.com"})
LOGIN_HOSTS = frozenset({"www.ups.com"})
UPS_HOSTS = API_HOSTS | LOGIN_HOSTS
LOGIN_PATH = "/lasso/signin"
OAUTH_PATHS = {
    "/security/v1/oauth/authorize": "authorize",
    "/security/v1/oauth/token": "token",
    "/security/v1/oauth/refresh": "refresh",
}
ENDPOINTS = frozenset({"authorize", "login", "token", "refresh", "api"})


def endpoint_of(req: Request) -> str | None:
    """``authorize``, ``login``, ``token``, ``refresh``, ``api`` or None (no UPS endpoint)."""
    on_listener = req.origin is not None
    path = req.path
    if path == LOGIN_PATH:
        return "login" if on_listener or req.host in LOGIN_HOSTS else None
    if not (on_listener or req.host in API_HOSTS):
        return None
    oauth = OAUTH_PATHS.get(path)
    if oauth is not None:
        return oauth
    if path.startswith("/api/") and not path.startswith("/api/security/"):
        return "api"
    return None
