"""Private key files made once: the JWT signing key and the recording key.

Both are secrets that upsproxy makes on first use and several processes may
want at the same moment (a test suite, a second sandbox). So a new key is
written to a temporary file (``mkstemp``: mode 0600), flushed to disk, then
hard-linked into place: a link never replaces an existing file, so when two
processes race, both end up using the one that was linked first.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["create_private_file"]


def create_private_file(path: Path, data: bytes) -> None:
    """Write ``data`` to the new file ``path`` (mode 0600, its folder made 0700 if
    missing). FileExistsError if the file exists, OSError if it cannot be made."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.link(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
