"""Where upsproxy's log lines go: the ``logging`` module, or a batched stream.

Replay writes one line per answered request (the exchange log). Sent through
``logging`` to stderr, that line cost about 3 % of a whole request's CPU under
load (a ``LogRecord``, handler locks, and one ``write`` system call per line),
more than the sandbox's own decision. So lines go through ``emit``:

- by default to the logger ``upsproxy.exchange``, so pytest's ``caplog`` and
  apps that embed the sandbox see them like any other log record;
- once a command calls ``write_to(stream)`` (``upsproxy replay`` and
  ``record`` do), straight to that stream as ``HH:MM:SS text`` lines, gathered
  and written with one system call per turn of the event loop. The command
  routes its other log records through the same writer (``LineHandler``), so
  every line keeps its order.

A line waits at most until the current loop turn ends; ``flush`` writes what is
pending at once (a command calls it before it exits).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import TextIO

__all__ = ["LineHandler", "LineWriter", "emit", "flush", "use", "write_to", "writer"]

exchange_logger = logging.getLogger("upsproxy.exchange")


class LineWriter:
    """Time-stamped lines to ``stream``, written once per event-loop turn."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._pending: list[str] = []
        self._lock = threading.Lock()
        self._second = -1
        self._stamp = ""
        self._flush_on: asyncio.AbstractEventLoop | None = None
        """The loop a flush is scheduled on. A loop can stop before its turn ends,
        so a flush due on another loop (or none) never stops this one."""

    def write(self, text: str) -> None:
        now = time.time()
        second = int(now)
        if second != self._second:  # formatting the clock once a second, not once a line
            self._stamp = time.strftime("%H:%M:%S ", time.localtime(now))
            self._second = second
        with self._lock:
            self._pending.append(f"{self._stamp}{text}\n")
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop in this thread: nothing would flush later
            self.flush()
            return
        if self._flush_on is not loop:
            self._flush_on = loop
            loop.call_soon(self.flush)

    def flush(self) -> None:
        with self._lock:
            lines, self._pending = self._pending, []
            self._flush_on = None
        if not lines:
            return
        try:
            self.stream.write("".join(lines))
            self.stream.flush()
        except (OSError, ValueError):  # stderr closed or gone: the proxy keeps serving
            pass


class LineHandler(logging.Handler):
    """A logging handler that writes through a ``LineWriter`` (so log records and
    exchange lines share one order)."""

    def __init__(self, writer: LineWriter) -> None:
        super().__init__()
        self.writer = writer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.writer.write(self.format(record))
        except Exception:  # noqa: BLE001 - logging's own contract: never raise
            self.handleError(record)


_writer: LineWriter | None = None


def write_to(stream: TextIO) -> LineWriter:
    """Send exchange lines straight to ``stream`` from now on; returns the writer
    (for a ``LineHandler``)."""
    writer = LineWriter(stream)
    use(writer)
    return writer


def use(writer: LineWriter | None) -> None:
    """Make ``writer`` the destination of exchange lines; None: the logger again."""
    global _writer
    _writer = writer


def writer() -> LineWriter | None:
    """The writer exchange lines go to, or None (the logger ``upsproxy.exchange``)."""
    return _writer


def emit(text: str) -> None:
    """Log one exchange line (already free of secrets and control characters)."""
    if _writer is not None:
        _writer.write(text)
    else:
        exchange_logger.info("%s", text)


def flush() -> None:
    """Write pending lines now (before the process exits)."""
    if _writer is not None:
        _writer.flush()
