"""The sandbox clock: every time the sandbox reads comes from one of these.

A ``SandboxClock`` follows the wall clock plus an offset that tests (and the
control API) can move forward or set, so an app sees its four-hour token
expire without waiting four hours. ``FrozenClock`` never moves on its own;
unit tests use it for exact timestamps.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["Clock", "FrozenClock", "MovableClock", "SandboxClock"]


class Clock(Protocol):
    def now_ms(self) -> int:
        """Milliseconds since the epoch, as the sandbox believes."""
        ...


class MovableClock(Clock, Protocol):
    """A clock the control API can move."""

    @property
    def offset_ms(self) -> int: ...
    def advance(self, seconds: float) -> int: ...
    def set(self, epoch_ms: int) -> int: ...
    def reset(self) -> int: ...


class SandboxClock:
    """Wall-clock time shifted by an adjustable offset (thread-safe).

    ``on_change`` is called with the new offset after every move, so a
    persistent state store can keep it: a restarted sandbox then still lives
    at the time a test moved it to.
    """

    def __init__(self, offset_ms: int = 0,
                 on_change: Callable[[int], None] | None = None) -> None:
        self._offset_ms = offset_ms
        self._lock = threading.Lock()
        self.on_change = on_change

    @property
    def offset_ms(self) -> int:
        return self._offset_ms

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000 + self._offset_ms

    def _moved(self) -> int:
        if self.on_change is not None:
            self.on_change(self._offset_ms)
        return self.now_ms()

    def advance(self, seconds: float) -> int:
        with self._lock:
            self._offset_ms += int(seconds * 1000)
        return self._moved()

    def set(self, epoch_ms: int) -> int:
        with self._lock:
            self._offset_ms = epoch_ms - time.time_ns() // 1_000_000
        return self._moved()

    def set_offset(self, offset_ms: int) -> int:
        with self._lock:
            self._offset_ms = offset_ms
        return self._moved()

    def reset(self) -> int:
        """Back to real time."""
        return self.set_offset(0)


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

    @property
    def offset_ms(self) -> int:
        return self._now - time.time_ns() // 1_000_000

    def reset(self) -> int:
        return self.set(time.time_ns() // 1_000_000)
