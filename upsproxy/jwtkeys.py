"""The sandbox's JWT signing key: minted access tokens verify, and say the truth.

An app that decodes its access token (to read ``exp``, or to verify it) must
see a real JWS, not random bytes after the second dot. So minted JWTs are
signed per the recorded header's ``alg``:

- ``RS256``/``RS384``/``RS512``: RSASSA-PKCS1-v1_5 (RFC 7518 §3.3) with one RSA
  key whose size follows the recorded signature length (UPS's 683-character
  signatures are a 4096-bit key), so tokens keep UPS's length;
- ``HS256``/``HS384``/``HS512``: HMAC with a sandbox secret derived from that
  key (nobody outside can verify these; they are not published);
- any other ``alg`` is refused when the cassette is loaded (``shapes``).

The key is made once and kept in the confdir (``upsproxy-jwt-key.pem`` for
2048 bits, ``upsproxy-jwt-key-4096.pem`` and so on; 0600) when there is one,
else once per process; its public half is served as a
JWKS (RFC 7517) at ``/_upsproxy/jwks``. Its ``kid`` is the RFC 7638 thumbprint
written as a UUID, the 36-character form UPS's own key ids have. Loading and
generating happen when a sandbox is built, never on the request path.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import uuid
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from upsproxy.errors import StartupError
from upsproxy.keyfiles import create_private_file
from upsproxy.shapes import SUPPORTED_ALGS

__all__ = ["KEY_FILE", "SUPPORTED_ALGS", "JwtSigner", "key_bits_for", "load_signer"]

KEY_FILE = "upsproxy-jwt-key.pem"
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}
_HMAC = {"256": hashlib.sha256, "384": hashlib.sha384, "512": hashlib.sha512}
_BITS = (2048, 3072, 4096)


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def key_bits_for(signature_length: int) -> int:
    """The RSA modulus size whose signatures encode to ``signature_length``
    base64url characters (342 → 2048, 512 → 3072, 683 → 4096); 2048 otherwise."""
    for bits in _BITS:
        if len(b64url(b"\0" * (bits // 8))) == signature_length:
            return bits
    return 2048


class JwtSigner:
    """Signs JWS compact tokens with one RSA key (and an HMAC secret from it)."""

    def __init__(self, key: rsa.RSAPrivateKey) -> None:
        self._key = key
        numbers = key.public_key().public_numbers()
        self._jwk = {"kty": "RSA", "e": _uint(numbers.e), "n": _uint(numbers.n)}
        thumbprint = hashlib.sha256(json.dumps(
            self._jwk, separators=(",", ":"), sort_keys=True).encode()).digest()
        self.kid = str(uuid.UUID(bytes=thumbprint[:16]))
        """Names this key in token headers and in the JWKS."""
        der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        self._hs_secret = hashlib.sha256(b"upsproxy HS* secret\0" + der).digest()
        self.bits = key.key_size

    def sign(self, alg: str, signing_input: bytes) -> bytes:
        family, size = alg[:2], alg[2:]
        if family == "RS" and size in _HASHES:
            return self._key.sign(signing_input, padding.PKCS1v15(), _HASHES[size]())
        if family == "HS" and size in _HMAC:
            return hmac.new(self._hs_secret, signing_input, _HMAC[size]).digest()
        raise ValueError(f"cannot sign alg {alg!r}; supported: {', '.join(SUPPORTED_ALGS)}")

    def jwks(self, algs: tuple[str, ...] = ("RS384",)) -> dict[str, Any]:
        """The public key as a JWK Set; one entry per RS* alg in use."""
        rs = [a for a in algs if a.startswith("RS")] or ["RS384"]
        return {"keys": [{**self._jwk, "kid": self.kid, "use": "sig", "alg": a} for a in rs]}

    def public_pem(self) -> bytes:
        return self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _uint(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


_cache: dict[tuple[str, int], JwtSigner] = {}
_cache_lock = threading.Lock()


def load_signer(confdir: Path | None, bits: int = 2048) -> JwtSigner:
    """The signer for ``confdir`` (its key file, made if missing) or, without a
    confdir, this process's own key. Cached: a test suite that builds a sandbox
    per test pays for one key. StartupError names a key file that is unusable."""
    where = str(confdir.expanduser()) if confdir is not None else ""
    with _cache_lock:
        signer = _cache.get((where, bits))
        if signer is None:
            key = _key_from_dir(Path(where), bits) if where else _new_key(bits)
            signer = _cache[(where, bits)] = JwtSigner(key)
        return signer


def _new_key(bits: int) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def _key_from_dir(confdir: Path, bits: int) -> rsa.RSAPrivateKey:
    name = KEY_FILE if bits == 2048 else f"upsproxy-jwt-key-{bits}.pem"
    path = confdir / name
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        data = None
    except OSError as exc:
        raise StartupError(f"cannot read the JWT key {path}: {exc.strerror}") from None
    if data is not None:
        try:
            # Our own key, written 0600 by us: its (costly, ~0.25 s for 4096 bits)
            # mathematical validation adds nothing but start-up time.
            key = serialization.load_pem_private_key(data, password=None,
                                                     unsafe_skip_rsa_key_validation=True)
        except (ValueError, TypeError):
            raise StartupError(f"{path} is not an unencrypted PEM private key; move it away "
                               "and upsproxy makes a new one") from None
        if not isinstance(key, rsa.RSAPrivateKey) or key.key_size != bits:
            raise StartupError(f"{path} is not a {bits}-bit RSA key; move it away and "
                               "upsproxy makes a new one")
        return key
    key = _new_key(bits)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    try:
        create_private_file(path, pem)
    except FileExistsError:  # another upsproxy made it meanwhile: use that one
        return _key_from_dir(confdir, bits)
    except OSError as exc:
        raise StartupError(f"cannot write the JWT key {path}: {exc.strerror}") from None
    return key
