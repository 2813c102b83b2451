"""The sandbox clock: every time the sandbox reads comes from one of these.

A ``SandboxClock`` follows the wall clock plus an offset that tests (and the
control API) can move forward or set, so an app sees its four-hour token
expire without waiting four hours. ``FrozenClock`` never moves on its own;
unit tests use it for exact timestamps.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

__all__ = ["Clock", "FrozenClock", "SandboxClock"]


class Clock(Protocol):
    def now_ms(self) -> int:
        """Milliseconds since the epoch, as the sandbox believes."""
        ...


class SandboxClock:
    """Wall-clock time shifted by an adjustable offset (thread-safe)."""

    def __init__(self) -> None:
        self._offset_ms = 0
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000 + self._offset_ms

    def advance(self, seconds: float) -> int:
        with self._lock:
            self._offset_ms += int(seconds * 1000)
        return self.now_ms()

    def set(self, epoch_ms: int) -> int:
        with self._lock:
            self._offset_ms = epoch_ms - time.time_ns() // 1_000_000
        return self.now_ms()


class FrozenClock:
    """A clock that moves only when told to."""

    def __init__(self, epoch_ms: int = 1_717_000_000_000) -> None:
        self._now = epoch_ms

    def now_ms(self) -> int:
        return self._now

    def advance(self, seconds: float) -> int:
        self._now += int(seconds * 1000)
        return self._now

    def set(self, epoch_ms: int) -> int:
        self._now = epoch_ms
        return self._now
