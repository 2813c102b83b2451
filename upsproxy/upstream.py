"""Where ``upsproxy record`` sends UPS traffic, and which UPS host it records it under.

``cie`` and ``prod`` name UPS's two hosts; any other upstream is an https URL
(a private test server, or the fake UPS of upsproxy's own tests). UPS is HTTPS
only, and the upstream gets the app's paths unchanged, so a URL with a path is
refused rather than silently dropped.
"""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["UPSTREAMS", "recorded_host", "resolve_upstream"]


UPSTREAMS = {"cie": "https://wwwcie.ups.com", "prod": "https://onlinetools.ups.com"}


def resolve_upstream(value: str) -> str:
    """``cie``, ``prod`` or an ``https://host[:port]`` URL -> the upstream URL;
    ValueError otherwise (UPS is HTTPS only, and a path would be silently dropped)."""
    text = value.strip()
    if text.lower() in UPSTREAMS:
        return UPSTREAMS[text.lower()]
    parts = urlsplit(text)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(f"upstream {value!r} is not cie, prod or an https:// URL")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"upstream {value!r}: give scheme, host and port only, no path")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValueError(f"upstream {value!r}: bad port") from None
    return f"https://{parts.netloc}"


def recorded_host(upstream: str) -> str:
    """The UPS host a reverse-listener exchange is recorded under: the app meant UPS,
    whatever stood in for it."""
    return "onlinetools.ups.com" if upstream == UPSTREAMS["prod"] else "wwwcie.ups.com"

