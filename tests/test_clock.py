"""The sandbox clock: moves on request and tells a persistent store where it is."""

import time

from upsproxy.clock import FrozenClock, SandboxClock


def test_sandbox_clock_moves_and_reports_each_move():
    seen = []
    clock = SandboxClock(on_change=seen.append)
    real = time.time_ns() // 1_000_000
    assert clock.now_ms() - real < 1000
    clock.advance(3600)
    assert seen == [3_600_000] and clock.offset_ms == 3_600_000
    clock.set(real - 86_400_000)
    assert seen[-1] in range(-86_401_000, -86_399_000)
    clock.reset()
    assert seen[-1] == 0 and clock.offset_ms == 0


def test_a_saved_offset_is_where_a_restarted_clock_starts():
    clock = SandboxClock(7_200_000)
    assert clock.now_ms() - time.time_ns() // 1_000_000 in range(7_199_000, 7_201_000)


def test_frozen_clock_moves_only_when_told():
    clock = FrozenClock(1000)
    assert clock.now_ms() == 1000 and clock.advance(2) == 3000 and clock.set(5) == 5
