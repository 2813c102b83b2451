"""A compiled-cassette cache, so a big cassette pays for YAML parsing once.

Python builds YAML objects slowly even through libyaml (``CSafeLoader``): about
1-2 MB of cassette per second here, so 10,000 recorded interactions (~10 MB)
take seconds, every time ``upsproxy replay`` or a test session starts. JSON
of the same data loads some forty times faster. So after a cassette has been
parsed (and validated), its data is kept as JSON under the user's cache
directory, named by the SHA-256 of the cassette's text: any edit to the file
makes a new key, and an old entry is simply never read again.

What is cached is what the YAML said, not a trusted result: it goes through
the same validation as freshly parsed YAML. The cache is an optimisation only;
every failure to read or write it falls back to parsing the YAML, silently.
Small cassettes (the bundled one) are not cached: they parse in milliseconds.

``UPSPROXY_CACHE_DIR`` names another directory; ``UPSPROXY_CACHE_DIR=off``
turns the cache off.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["MIN_CACHED_BYTES", "cache_dir", "load_cached", "store_cached"]

log = logging.getLogger(__name__)

MIN_CACHED_BYTES = 256 * 1024
_FORMAT = b"upsproxy-cassette-cache-1\0"


def cache_dir() -> Path | None:
    """Where entries live, or None when the cache is off."""
    configured = os.environ.get("UPSPROXY_CACHE_DIR")
    if configured is not None:
        return None if configured.strip().lower() in ("", "off", "0", "no") else Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "upsproxy" / "cassettes"


def _entry(text: str) -> Path | None:
    if len(text) < MIN_CACHED_BYTES:
        return None
    directory = cache_dir()
    if directory is None:
        return None
    digest = hashlib.sha256(_FORMAT + text.encode("utf-8", "surrogatepass")).hexdigest()
    return directory / f"{digest}.json"


def load_cached(text: str) -> tuple[Any, str] | None:
    """The data parsed earlier from exactly this cassette text, and its JSON
    text (validation scans it for placeholders), or None."""
    entry = _entry(text)
    if entry is None:
        return None
    try:
        flat = entry.read_bytes().decode("utf-8")
        return json.loads(flat), flat
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:  # a torn or foreign file: parse the YAML instead
        log.debug("ignoring cassette cache entry %s: %s", entry.name, type(exc).__name__)
        return None


def store_cached(text: str, data: Any) -> None:
    """Keep ``data`` for ``text`` if JSON represents it exactly.

    YAML has values JSON lacks (dates, integer keys); such a cassette is just
    not cached, since a lossy copy would validate differently than the file.
    """
    entry = _entry(text)
    if entry is None:
        return
    try:
        encoded = json.dumps(data, ensure_ascii=False, separators=(",", ":"),
                             allow_nan=False).encode("utf-8")
    except (TypeError, ValueError):
        return
    if json.loads(encoded) != data:
        return
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=entry.parent, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(encoded)
            os.replace(tmp, entry)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        log.debug("cannot write the cassette cache: %s", exc.strerror)
