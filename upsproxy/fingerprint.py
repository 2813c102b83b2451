"""Keyed fingerprints: how an appending session knows a value it saw before.

A cassette keeps no raw secret, so a later ``--mode append`` session cannot
tell on its own that the client id (or the refresh token) it sees now is the
one an earlier session wrote as ``<<client_id:1>>``. The recorder therefore
stores, per placeholder, an HMAC-SHA256 of the raw value under a random
per-user *recording key*, truncated to 120 bits (30 hex digits), in the
cassette's ``meta.fingerprints``:

    meta:
      fingerprints:
        key-3f9a:                      # which recording key made them
          <<client_id:1>>: 5c0e...     # HMAC(key, value), 30 hex digits

The key never enters the cassette (which is committed): it lives in the
confdir (``upsproxy-recording-key``, 32 random bytes, mode 0600, made
atomically on first use). Without it a fingerprint says nothing about a
value, however short or guessable the value is: unlike a plain or salted
hash, it cannot be brute-forced from the file. Another machine (another
key) cannot match them either: its values get new placeholders, as before
fingerprints existed. 30 hex digits stay under ``cassette check``'s
32-character threshold for random-looking tokens.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path

from upsproxy.errors import StartupError
from upsproxy.keyfiles import create_private_file

__all__ = ["FINGERPRINT_HEX", "KEY_BYTES", "KEY_FILE", "Fingerprinter", "load_recording_key"]

KEY_FILE = "upsproxy-recording-key"
KEY_BYTES = 32
FINGERPRINT_HEX = 30
"""Hex digits kept of each HMAC (120 bits)."""
_VALUE = b"upsproxy placeholder value\x00"
_KEY_ID = b"upsproxy recording key id"


class Fingerprinter:
    """Fingerprints of raw values under one recording key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"a recording key is {KEY_BYTES} bytes")
        self._key = key
        self.key_id = "key-" + hmac.new(key, _KEY_ID, hashlib.sha256).hexdigest()[:4]
        """Names the key in the cassette (16 bits: a label, not an identity proof)."""

    def __call__(self, value: str) -> str:
        message = _VALUE + value.encode("utf-8", "surrogatepass")
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:FINGERPRINT_HEX]

    def __repr__(self) -> str:  # never the key
        return f"Fingerprinter({self.key_id})"


def load_recording_key(confdir: str | Path) -> bytes:
    """The recording key of ``confdir``, made (0600, atomically) if missing.
    StartupError names a key file that cannot be read, written or used."""
    directory = Path(confdir).expanduser()
    path = directory / KEY_FILE
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise StartupError(f"cannot read the recording key {path}: {exc.strerror}") from None
    else:
        if len(key) != KEY_BYTES:
            raise StartupError(f"{path} is not a {KEY_BYTES}-byte upsproxy recording key; "
                               "move it away and upsproxy makes a new one (appends then "
                               "no longer recognise values recorded with the old one)")
        return key
    key = secrets.token_bytes(KEY_BYTES)
    try:
        create_private_file(path, key)
    except FileExistsError:  # another upsproxy made it meanwhile: use that one
        return load_recording_key(directory)
    except OSError as exc:
        raise StartupError(f"cannot write the recording key {path}: {exc.strerror}") from None
    return key
