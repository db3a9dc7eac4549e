"""The ledger on its own: expiry index, clock jumps, restart over the same store, stats, tallies."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings

from streams import ledger as ledger_mod
from streams.ledger import Ledger
from streams.messages import Allegation, AllegationUpdate
from streams.store import DictStore
from tests.streams.helpers import DAY, T0
from tests.streams.test_property import check, steps

HOUR = DAY // 24


def add(led, suspect, ref, recorded_at, cents=500, vawg=True, at=None, victims=("V1",)):
    led.apply(AllegationUpdate(suspect, ref, Allegation("105/01", cents, vawg, recorded_at, victims), "added",
                               f"e-{ref}", recorded_at if at is None else at))


def remove(led, suspect, ref, at):
    led.apply(AllegationUpdate(suspect, ref, None, "corrected", f"x-{ref}", at))


def refs(led, suspect):
    return sorted(led.allegations(suspect))


def test_expiry_across_hour_boundaries():
    led = Ledger(DictStore(), top_n=2, window_days=1)
    times = [T0 + HOUR - 1, T0 + HOUR, T0 + HOUR + 1, T0 + 3 * HOUR - 1]
    for i, t in enumerate(times):
        add(led, "A", f"C{i}", t)
    for i, t in enumerate(times):
        led.advance(t + DAY - 1)
        assert refs(led, "A") == [f"C{j}" for j in range(i, 4)]  # still in, one microsecond before
        led.advance(t + DAY)
        assert refs(led, "A") == [f"C{j}" for j in range(i + 1, 4)]
    assert not [k for k, _ in led.store.scan("x:")]  # every bucket emptied and deleted


def test_clock_jump_of_many_days_expires_everything_once():
    led = Ledger(DictStore(), top_n=2, window_days=5)
    for i in range(50):
        add(led, f"S{i % 7}", f"C{i}", T0 + i * 3 * HOUR)
    led.flush()
    led.advance(T0 + 400 * DAY)
    assert not list(led.store.scan("p:")) and not list(led.store.scan("x:"))
    assert led.stats() == (0, 0)
    assert all(not u.candidate and u.why == "expired" for u in led.flush())
    led.advance(T0 + 401 * DAY)  # nothing left: O(1)
    assert led.store.get("x-cursor") == (T0 + 396 * DAY) // HOUR


def test_clock_jump_expires_members_with_reason_expired():
    led = Ledger(DictStore(), top_n=2, window_days=5)
    for i in range(4):
        add(led, "A", f"C{i}", T0 + i * HOUR)
    assert [(u.suspect, u.candidate) for u in led.flush()] == [("A", True)]
    led.advance(T0 + 30 * DAY)
    (u,) = led.flush()
    assert (u.suspect, u.candidate, u.why, u.summary) == ("A", False, "expired", None)


def test_stats_count_tracked_and_eligible():
    led = Ledger(DictStore(), top_n=1, window_days=10, min_allegations=2)
    add(led, "A", "C1", T0)
    add(led, "B", "C2", T0, vawg=False)
    assert led.stats() == (2, 0)  # non-VAWG allegations are tracked too
    add(led, "A", "C3", T0 + 1)
    assert led.stats() == (2, 1)
    remove(led, "A", "C1", T0 + 2)
    assert led.stats() == (2, 0)
    remove(led, "B", "C2", T0 + 2)
    remove(led, "A", "C3", T0 + 2)
    assert led.stats() == (0, 0)


def fill(led):
    for i in range(6):
        add(led, f"S{i}", f"C{i}a", T0 + i, cents=100 * (i + 1))
        add(led, f"S{i}", f"C{i}b", T0 + i, cents=100)


def test_restart_rebuilds_book_and_announces_nothing_new():
    store = DictStore()
    led = Ledger(store, top_n=3, window_days=10)
    fill(led)
    first = led.flush()
    assert sorted(u.suspect for u in first if u.candidate) == ["S3", "S4", "S5"]
    again = Ledger(store, top_n=3, window_days=10)
    assert again.book.members() == ["S5", "S4", "S3"]
    assert again.flush() == []
    add(again, "S0", "C0a", T0, cents=100)  # a replayed update: no change
    assert again.flush() == []


def test_restart_reannounces_what_was_lost_before_flush():
    store = DictStore()
    led = Ledger(store, top_n=3, window_days=10)
    fill(led)
    led.flush()
    add(led, "S0", "C0c", T0 + 7, cents=10_000)  # S0 enters, S3 is displaced; then a crash before flush
    again = Ledger(store, top_n=3, window_days=10)
    add(again, "S0", "C0c", T0 + 7, cents=10_000)  # the input is replayed: nothing changes in the store
    got = {u.suspect: (u.candidate, u.why) for u in again.flush()}
    assert got == {"S0": (True, "added"), "S3": (False, "displaced")}
    assert again.flush() == []


def test_restart_with_bounded_book():
    store = DictStore()
    led = Ledger(store, top_n=2, window_days=10, book_capacity=3)
    fill(led)
    led.flush()
    again = Ledger(store, top_n=2, window_days=10, book_capacity=3)
    assert again.book.members() == ["S5", "S4"] and len(again.book) == 3
    for i in (5, 4, 3):  # the held ones leave: the book refills from the store
        remove(again, f"S{i}", f"C{i}a", T0 + 8)
    assert again.book.members() == ["S2", "S1"]


def test_running_sums_match_summarise():
    """The sums a record carries equal a fresh sum of its allegations after every change,
    including taking out the newest (found again) and expiries. (They replaced the in-memory
    _Tally that big records kept.)"""
    led = Ledger(DictStore(), top_n=2, window_days=10)
    for i in range(10):
        add(led, "A", f"C{i}", T0 + i, cents=7 + i, victims=(f"V{i % 3}", "V9"), vawg=i % 4 != 0)
        assert led.summary("A") == ledger_mod.summarise(led.store.get("p:A"))
    for i in [9, 0, 5, 8]:  # the newest goes first: newest is found again
        remove(led, "A", f"C{i}", T0 + 20)
        assert led.summary("A") == ledger_mod.summarise(led.store.get("p:A"))
    led.advance(T0 + 10 * DAY + 6)  # only C7 is left
    assert refs(led, "A") == ["C7"]
    assert led.summary("A") == ledger_mod.summarise(led.store.get("p:A"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_running_sums_pipeline_equals_recomputation(seq):
    check(top_n=2, window_days=5, capacity=None, seq=seq)


def test_ranker_restart_reannounces_what_was_lost_before_flush():
    from streams.messages import CandidateUpdate, Summary
    from streams.ranker import Ranker

    store = DictStore()
    rk = Ranker(store, top_n=1)
    rk.apply(CandidateUpdate("A", True, Summary(500, 2, T0, 1), "added", "e1"))
    assert [e["suspect_id"] for e in rk.flush()] == ["A"]
    b = CandidateUpdate("B", True, Summary(900, 2, T0, 1), "added", "e2")
    rk.apply(b)  # then a crash before the flush
    again = Ranker(store, top_n=1)
    again.apply(b)  # replayed
    got = [(e["type"], e["suspect_id"], e.get("reason")) for e in again.flush()]
    assert got == [("ranking.exited", "A", "displaced"), ("ranking.entered", "B", None)]
    assert again.flush() == []
