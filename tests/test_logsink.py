"""upsproxy.logsink: exchange lines batched per loop turn, in order, never raising."""

from __future__ import annotations

import asyncio
import io
import logging
import re

import pytest

from upsproxy import logsink

STAMPED = re.compile(r"^\d\d:\d\d:\d\d (.*)$")


class CountingStream(io.StringIO):
    """A text stream that counts its write calls (one per flush is the point)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def lines(stream: io.StringIO) -> list[str]:
    out = []
    for line in stream.getvalue().splitlines():
        match = STAMPED.match(line)
        assert match, f"not a time-stamped line: {line!r}"
        out.append(match.group(1))
    return out


@pytest.fixture
def restore_writer():
    saved = logsink.writer()
    yield
    logsink.use(saved)


def test_without_a_loop_each_line_is_written_at_once():
    stream = CountingStream()
    writer = logsink.LineWriter(stream)
    writer.write("POST /a -> 400 token.code_reused")
    assert lines(stream) == ["POST /a -> 400 token.code_reused"]
    writer.write("POST /b -> 200 token.issued")
    assert lines(stream)[-1] == "POST /b -> 200 token.issued" and stream.writes == 2


def test_on_a_loop_one_turn_of_lines_is_one_write():
    stream = CountingStream()
    writer = logsink.LineWriter(stream)

    async def main() -> tuple[list[str], int]:
        for n in range(5):
            writer.write(f"line {n}")
        before = stream.getvalue()
        await asyncio.sleep(0)  # the turn ends: the pending lines go out together
        return [before], stream.writes

    (before,), writes = asyncio.run(main())
    assert before == ""
    assert writes == 1
    assert lines(stream) == [f"line {n}" for n in range(5)]


def test_log_records_and_exchange_lines_keep_their_order(restore_writer):
    stream = CountingStream()
    handler = logsink.LineHandler(logsink.write_to(stream))
    logger = logging.getLogger("upsproxy.test_logsink")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        async def main() -> None:
            logsink.emit("first exchange")
            logger.warning("a warning in between")
            logsink.emit("second exchange")
            await asyncio.sleep(0)

        asyncio.run(main())
    finally:
        logger.removeHandler(handler)
    assert lines(stream) == ["first exchange", "a warning in between", "second exchange"]


def test_flush_writes_what_is_pending_before_the_turn_ends(restore_writer):
    stream = CountingStream()
    logsink.write_to(stream)

    async def main() -> str:
        logsink.emit("pending")
        logsink.flush()  # what a command does before it echoes or exits
        return stream.getvalue()

    assert "pending" in asyncio.run(main())


def test_a_closed_stream_never_raises():
    stream = io.StringIO()
    writer = logsink.LineWriter(stream)
    stream.close()
    writer.write("after close")  # ValueError inside: swallowed, the proxy keeps serving


def test_without_a_writer_lines_go_to_the_exchange_logger(caplog, restore_writer):
    logsink.use(None)
    with caplog.at_level(logging.INFO, logger="upsproxy.exchange"):
        logsink.emit("GET /x -> 404 unknown_path")
    assert [r.getMessage() for r in caplog.records] == ["GET /x -> 404 unknown_path"]
    assert caplog.records[0].name == "upsproxy.exchange"


def test_a_loop_that_stops_before_its_flush_never_silences_the_writer():
    stream = CountingStream()
    writer = logsink.LineWriter(stream)
    loop = asyncio.new_event_loop()
    try:
        loop.call_soon(loop.stop)
        loop.call_soon(writer.write, "in the loop's last turn")  # its flush never runs
        loop.run_forever()
    finally:
        loop.close()
    writer.write("later, with no loop")  # written at once, with the stranded line

    async def main() -> None:
        writer.write("on a new loop")
        await asyncio.sleep(0)

    asyncio.run(main())
    assert lines(stream) == ["in the loop's last turn", "later, with no loop", "on a new loop"]
