"""streams.stages.register.Ticks: the register's clock ticks to every ledger partition, throttled, none lost."""
from __future__ import annotations

from streams.stages.register import Ticks


def test_a_tick_is_taken_at_once_then_at_most_once_per_interval():
    t = Ticks(0.2)
    assert t.take(10.0) is None  # nothing pending
    t.later(5)
    assert t.take(10.0) == 5
    t.later(7)
    assert t.take(10.1) is None  # too soon: stays pending
    t.later(6)  # an older event time never lowers the pending tick
    assert t.pending == 7
    assert t.take(10.25) == 7
    assert t.pending is None


def test_force_sends_what_is_pending_whatever_the_time():
    t = Ticks(0.2)
    t.later(5)
    assert t.take(1.0) == 5
    t.later(9)
    assert t.take(1.01, force=True) == 9
    assert t.take(5.0, force=True) is None


def test_a_tick_that_could_not_be_sent_comes_back():
    t = Ticks(0.2)
    t.later(5)
    tick = t.take(1.0)
    t.later(8)  # a newer event arrived meanwhile
    t.later(tick)  # the send of 5 failed: it must not lower 8
    assert t.pending == 8
    t.later(None)
    assert t.pending == 8
