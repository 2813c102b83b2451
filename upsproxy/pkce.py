"""PKCE (RFC 7636) checks, exactly as the RFC words them; nothing is repaired.

UPS has no ``code_challenge_method`` parameter: every challenge is S256
(DESIGN §3), so a client that sends ``plain`` fails at the token step.
"""

from __future__ import annotations

import base64
import hashlib
import re

__all__ = ["s256_challenge", "verifier_is_well_formed", "verifier_matches"]

# RFC 7636 §4.1: code-verifier = 43*128unreserved,
# unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~"
_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")


def verifier_is_well_formed(verifier: str) -> bool:
    """RFC 7636 §4.1: 43 to 128 characters of the unreserved set."""
    return _VERIFIER.fullmatch(verifier) is not None


def s256_challenge(verifier: str) -> str:
    """RFC 7636 §4.2: BASE64URL-ENCODE(SHA256(ASCII(code_verifier))), no padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def verifier_matches(verifier: str, challenge: str) -> bool:
    """RFC 7636 §4.6: the server recomputes the S256 challenge and compares."""
    if not verifier_is_well_formed(verifier):
        return False
    return s256_challenge(verifier) == challenge
