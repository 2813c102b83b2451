"""Shapes of secret values, and minting fresh values of a recorded shape.

A cassette never stores a real code or token, only its shape: alphabet and
length (plus padding for standard base64), or for a JWT its header, claim
names and signature length. Replay mints new values of the same shape, so an
app whose column holds 164 characters, or whose parser expects ``+ / =``, sees
what real UPS sends. Randomness is injected (a ``random.Random``), so tests
can seed it; the default draws from the OS.
"""

from __future__ import annotations

import base64
import json
import random
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # signing (and cryptography) is the sandbox's business, not a shape's
    from upsproxy.jwtkeys import JwtSigner

__all__ = ["SUPPORTED_ALGS", "JwtShape", "Minter", "Shape", "TokenShape", "shape_from_mapping"]

SUPPORTED_ALGS = ("RS256", "RS384", "RS512", "HS256", "HS384", "HS512")
"""JWS algorithms replay can sign minted tokens with (``jwtkeys``)."""

_ALPHABETS = ("base64", "base64url", "hex", "alnum")
_TIME_CLAIMS = frozenset({"iat", "nbf", "auth_time"})
_NO_URL_PUNCT = str.maketrans("-_", "xQ")
_RANDOM = re.compile(r"<<random:([1-9][0-9]{0,3})>>")


@dataclass(frozen=True)
class TokenShape:
    """An opaque token: ``length`` characters of ``alphabet``."""

    alphabet: str
    length: int
    padding: int = 0
    """For standard base64: how many ``=`` end the value (0, 1 or 2)."""

    def __post_init__(self) -> None:
        if self.alphabet not in _ALPHABETS:
            raise ValueError(f"alphabet must be one of {', '.join(_ALPHABETS)}")
        if not 8 <= self.length <= 8192:
            raise ValueError("length must be between 8 and 8192")
        if self.alphabet == "base64":
            if self.length % 4:
                raise ValueError("a standard base64 length is a multiple of 4")
            if self.padding not in (0, 1, 2):
                raise ValueError("padding must be 0, 1 or 2")
        elif self.padding:
            raise ValueError("padding applies to standard base64 only")
        elif self.alphabet == "base64url" and self.length % 4 == 1:
            raise ValueError("no byte string encodes to that base64url length")

    @property
    def nbytes(self) -> int:
        if self.alphabet == "base64":
            return self.length // 4 * 3 - self.padding
        if self.alphabet == "base64url":
            return self.length * 3 // 4
        if self.alphabet == "hex":
            return (self.length + 1) // 2
        return self.length


@dataclass(frozen=True)
class JwtShape:
    """A JWS compact token: recorded header, recorded claims, signature size.

    Claim values are kept from the recording except: ``iat``/``nbf``/
    ``auth_time`` become the mint time, ``exp`` the mint time plus the access
    lifetime, ``<<client_id>>`` the requesting client, and ``<<random:N>>`` N
    fresh alphanumerics (so each token is unique). With a signer, the token is
    signed per ``alg`` and a recorded ``kid`` names the signer's key.
    """

    header: dict[str, Any]
    claims: dict[str, Any]
    signature_length: int = 512
    """Characters of base64url signature (RS384 with a 2048-bit key: 342)."""


Shape = TokenShape | JwtShape


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def shape_from_mapping(data: Any) -> Shape:
    """Build a shape from its cassette form; raises ValueError with the reason."""
    if not isinstance(data, dict):
        raise ValueError("a shape is a mapping")
    if "jwt" in data:
        jwt = data["jwt"]
        if not isinstance(jwt, dict):
            raise ValueError("jwt: must be a mapping")
        header, claims = jwt.get("header"), jwt.get("claims")
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise ValueError("jwt: needs 'header' and 'claims' mappings")
        for part, values in (("header", header), ("claims", claims)):
            try:  # checked now, so minting can never fail after a code is spent
                json.dumps(values, allow_nan=False)
            except (TypeError, ValueError):
                raise ValueError(f"jwt.{part}: values must be plain JSON (text, numbers, "
                                 "true/false, null, lists, mappings)") from None
        alg = header.get("alg")
        if alg not in SUPPORTED_ALGS:
            raise ValueError(f"jwt.header.alg must be one of {', '.join(SUPPORTED_ALGS)} "
                             f"(replay signs minted tokens with it), not {alg!r}")
        sig = jwt.get("signature_length", 342)
        if not isinstance(sig, int) or not 16 <= sig <= 4096:
            raise ValueError("jwt.signature_length must be an integer from 16 to 4096")
        return JwtShape(dict(header), dict(claims), sig)
    unknown = set(data) - {"alphabet", "length", "padding"}
    if unknown:
        raise ValueError(f"unknown shape key(s): {', '.join(sorted(unknown))}")
    alphabet, length = data.get("alphabet"), data.get("length")
    padding = data.get("padding", 0)
    if not isinstance(alphabet, str) or not isinstance(length, int):
        raise ValueError("a token shape needs 'alphabet' (text) and 'length' (integer)")
    if not isinstance(padding, int):
        raise ValueError("padding must be an integer")
    return TokenShape(alphabet, length, padding)


class Minter:
    """Mints fresh values of recorded shapes."""

    def __init__(self, rng: random.Random | None = None,
                 signer: JwtSigner | None = None) -> None:
        """Without ``signer`` a JWT's signature is random bytes of the recorded
        length (shape tests only); the sandbox always passes one."""
        self._rng = rng if rng is not None else random.SystemRandom()
        self.signer = signer
        self._headers: dict[int, tuple[JwtShape, str]] = {}

    def token(self, shape: TokenShape) -> str:
        raw = self._rng.randbytes(shape.nbytes)
        if shape.alphabet == "base64":
            return base64.b64encode(raw).decode("ascii")
        if shape.alphabet == "base64url":
            return _b64url(raw)[: shape.length]
        if shape.alphabet == "hex":
            return raw.hex()[: shape.length]
        return self.alnum(shape.length)

    def alnum(self, length: int) -> str:
        """``length`` random letters and digits (base64url with ``-_`` mapped away:
        a slight bias that no client can notice, at a tenth of a per-character loop)."""
        raw = self._rng.randbytes(length * 3 // 4 + 3)
        return _b64url(raw).translate(_NO_URL_PUNCT)[:length]

    def _fill(self, value: Any, client_id: str) -> Any:
        if value == "<<client_id>>":
            return client_id
        if isinstance(value, str) and value.startswith("<<random:"):
            match = _RANDOM.fullmatch(value)
            if match is not None:
                return self.alnum(int(match.group(1)))
        return value

    def _header(self, shape: JwtShape) -> str:
        """The encoded header; placeholders in it (a ``kid``) are filled once per
        minter, since a key id names the sandbox's key, not one token."""
        cached = self._headers.get(id(shape))
        if cached is None or cached[0] is not shape:
            header = {name: self._fill(value, "") for name, value in shape.header.items()}
            if self.signer is not None and "kid" in header:
                header["kid"] = self.signer.kid
            cached = (shape, _b64url(json.dumps(header, separators=(",", ":")).encode()))
            self._headers[id(shape)] = cached
        return cached[1]

    def jwt(self, shape: JwtShape, *, now_s: int, ttl_s: int, client_id: str,
            scope: str | None = None) -> str:
        claims: dict[str, Any] = {}
        for name, value in shape.claims.items():
            if name in _TIME_CLAIMS:
                value = now_s
            elif name == "exp":
                value = now_s + ttl_s
            elif name == "scope" and scope is not None:
                value = scope
            else:
                value = self._fill(value, client_id)
            claims[name] = value
        payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = f"{self._header(shape)}.{payload}"
        if self.signer is not None:
            signature = _b64url(self.signer.sign(shape.header["alg"], signing_input.encode()))
        else:
            sig_bytes = self._rng.randbytes(shape.signature_length * 3 // 4 + 1)
            signature = _b64url(sig_bytes)[: shape.signature_length]
        return f"{signing_input}.{signature}"

    def mint(self, shape: Shape, *, now_s: int = 0, ttl_s: int = 0, client_id: str = "",
             scope: str | None = None) -> str:
        if isinstance(shape, JwtShape):
            return self.jwt(shape, now_s=now_s, ttl_s=ttl_s, client_id=client_id, scope=scope)
        return self.token(shape)
