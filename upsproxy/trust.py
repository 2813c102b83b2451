"""Telling clients to trust upsproxy's CA.

``SSL_CERT_FILE`` and ``REQUESTS_CA_BUNDLE`` *replace* a client's trust store,
so an app that reaches real hosts besides UPS would break if they named only
upsproxy's CA. ``combined_bundle`` writes the system (certifi) roots plus
upsproxy's CA into one file for those variables; Node's
``NODE_EXTRA_CA_CERTS`` adds to its own roots and gets the CA alone.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from pathlib import Path

__all__ = ["BUNDLE_NAME", "combined_bundle", "env_lines"]

BUNDLE_NAME = "upsproxy-ca-bundle.pem"


def _system_roots() -> str:
    try:
        import certifi

        return Path(certifi.where()).read_text(encoding="ascii")
    except (ImportError, OSError):
        cafile = ssl.get_default_verify_paths().cafile
        return Path(cafile).read_text(encoding="ascii") if cafile else ""


def combined_bundle(ca_cert: Path) -> Path:
    """Write (atomically) and return ``<confdir>/upsproxy-ca-bundle.pem``."""
    target = ca_cert.parent / BUNDLE_NAME
    content = _system_roots().rstrip("\n") + "\n" + ca_cert.read_text(encoding="ascii")
    if target.exists() and target.read_text(encoding="ascii") == content:
        return target
    fd, tmp = tempfile.mkstemp(dir=ca_cert.parent, prefix=".bundle-")
    os.fchmod(fd, 0o644)  # public certificates; mkstemp's 0600 would lock out other users
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(content)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, target)
    return target


def env_lines(proxy_url: str, ca_cert: Path, bundle: Path) -> list[str]:
    """``export`` lines that point common HTTP clients at the sandbox."""
    return [
        f"export HTTPS_PROXY={proxy_url}",
        f"export https_proxy={proxy_url}",
        f"export SSL_CERT_FILE={bundle}",
        f"export REQUESTS_CA_BUNDLE={bundle}",
        f"export CURL_CA_BUNDLE={bundle}",
        f"export NODE_EXTRA_CA_CERTS={ca_cert}",
    ]
