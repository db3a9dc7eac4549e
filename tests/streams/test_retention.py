"""One test per retention rule of SPEC §9, through the in-process Pipeline and the Register."""
from __future__ import annotations

from streams.pipeline import Pipeline
from streams.register import Register
from streams.store import DictStore
from tests.streams.helpers import (DAY, HARM, T0, cancelled, linked, merged, recorded, reclassified,
                                   unlinked)

F = (("V1", "F"),)
R = 30  # retention days in these tests (window 10)


def pipe(**kw) -> Pipeline:
    kw.setdefault("top_n", 3)
    kw.setdefault("window_days", 10)
    kw.setdefault("retention_days", R)
    return Pipeline(HARM, **kw)


def status(outcome) -> str:
    return outcome.status if outcome.status != "rejected" else outcome.rejection[0]


def keys(p: Pipeline) -> set:
    return {k for k, _ in p.register.store.scan("")}


def test_a_report_exactly_retention_old_is_kept_one_microsecond_more_is_forgotten():
    p = pipe()
    p.apply(recorded("C1", "105/01", ["A"], T0, F))
    p.advance(T0 + R * DAY)
    assert p.register.report("C1") is not None
    assert status(p.apply(reclassified("C1", "008/06", T0 + R * DAY))) == "accepted"
    p.advance(T0 + R * DAY + 1)
    assert p.register.report("C1") is None
    assert status(p.apply(reclassified("C1", "008/06", T0 + R * DAY + 2))) == "unknown_crime_ref"


def test_every_event_for_a_forgotten_report_is_unknown():
    p = pipe()
    p.apply(recorded("C1", "105/01", ["A"], T0, F))
    p.apply(recorded("C2", "105/01", ["B"], T0 + (R + 1) * DAY, F))
    later = T0 + (R + 2) * DAY
    for ev in (reclassified("C1", "008/06", later), cancelled("C1", later), linked("C1", "X", later),
               unlinked("C1", "A", later)):
        assert status(p.apply(ev)) == "unknown_crime_ref", ev


def test_a_forgotten_report_may_be_recorded_again_as_new():
    p = pipe()
    first = recorded("C1", "105/01", ["A"], T0, F)
    p.apply(first)
    p.advance(T0 + (R + 1) * DAY)
    assert status(p.apply(recorded("C1", "105/01", ["B"], T0 + (R + 1) * DAY, F))) == "accepted"
    assert p.register.report("C1")[4] == ["B"]


def test_the_event_ids_that_touched_it_go_with_it():
    p = pipe()
    link = linked("C1", "B", T0 + 1)
    p.apply(recorded("C1", "105/01", ["A"], T0, F))
    p.apply(link)
    assert status(p.apply(link)) == "duplicate"
    p.advance(T0 + (R + 1) * DAY)
    assert status(p.apply(link)) == "unknown_crime_ref"  # not a duplicate: its id is forgotten too
    assert not any(link.event_id in str(v) for _, v in p.register.store.scan(""))


def test_the_suspect_index_loses_a_forgotten_report_and_its_key_when_empty():
    p = pipe()
    p.apply(recorded("C1", "105/01", ["A"], T0, F))
    p.apply(recorded("C2", "105/01", ["A", "B"], T0 + 5 * DAY, F))
    p.advance(T0 + (R + 1) * DAY)
    assert p.register.store["al:A"] == ["C2"]
    assert p.register.store["al:B"] == ["C2"]
    p.advance(T0 + (R + 6) * DAY)
    assert "al:A" not in keys(p) and "al:B" not in keys(p)
    assert not [k for k in keys(p) if k.startswith(("r:", "f:"))]  # nor reports, nor their time buckets


def test_a_report_recorded_already_past_retention_is_accepted_and_forgotten_at_once():
    p = pipe()
    p.apply(recorded("C2", "105/01", ["B"], T0 + (R + 5) * DAY, F))
    late = recorded("C1", "019/08", ["A"], T0, F)
    assert status(p.apply(late)) == "accepted"
    assert p.register.report("C1") is None and "al:A" not in keys(p)
    assert p.ledger.summary("A") is None  # out of the window too: it never counted
    assert status(p.apply(reclassified("C1", "008/06", T0 + (R + 5) * DAY))) == "unknown_crime_ref"


def test_late_reports_do_not_move_the_clock_back():
    """Each of two late reports is judged against the newest clock, not the late one before it."""
    p = pipe()
    p.apply(recorded("C3", "105/01", ["B"], T0 + (R + 5) * DAY, F))
    for ref, at in (("C1", T0), ("C2", T0 + DAY)):
        assert status(p.apply(recorded(ref, "019/08", ["A"], at, F))) == "accepted"
        assert p.register.report(ref) is None, ref
    assert "al:A" not in keys(p)


def test_a_cancelled_report_keeps_only_its_mark():
    p = pipe()
    cancel = cancelled("C1", T0 + 2)
    p.apply(recorded("C1", "019/08", ["A", "B"], T0, (("V1", "F"), ("V2", "M"))))
    p.apply(cancel)
    rec = p.register.report("C1")
    assert rec[3] == [] and rec[4] == [] and rec[0] is None and rec[5] is True
    assert "al:A" not in keys(p) and "al:B" not in keys(p)
    assert status(p.apply(linked("C1", "C", T0 + 3))) == "cancelled_crime_ref"
    assert status(p.apply(cancel)) == "duplicate"
    p.advance(T0 + R * DAY + 1)  # and the mark goes with retention
    assert p.register.report("C1") is None
    assert status(p.apply(linked("C1", "C", T0 + R * DAY + 1))) == "unknown_crime_ref"


def test_a_merge_after_a_cancel_does_not_touch_the_cancelled_report():
    p = pipe()
    p.apply(recorded("C1", "019/08", ["A"], T0, F))
    p.apply(recorded("C2", "105/01", ["A"], T0 + 1, F))
    p.apply(cancelled("C1", T0 + 2))
    p.apply(merged("A", "B", T0 + 3))
    assert p.register.report("C1")[4] == [] and p.register.report("C2")[4] == ["B"]
    assert p.ledger.summary("B").allegations == 1


def test_a_merge_forgets_its_id_but_keeps_its_alias():
    p = pipe(retention_days=20)
    merge = merged("A", "B", T0 + 1)
    p.apply(recorded("C1", "105/01", ["A"], T0 + 15 * DAY, F))
    p.apply(merge)
    p.advance(T0 + 20 * DAY + 2)
    assert "e:" + merge.event_id not in keys(p)  # the id kept to drop a re-send goes with retention
    assert p.register.canonical("A") == "B"  # the alias stays: the old id still names the merged record
    assert p.register.report("C1")[4] == ["B"]
    p.apply(recorded("C2", "105/01", ["A"], T0 + 20 * DAY + 2, F))
    assert p.ledger.summary("A") is None and p.ledger.summary("B").allegations == 2
    assert status(p.apply(merge)) == "self_merge"  # its id is forgotten: applied again, A and B are one


def test_an_event_whose_own_time_puts_the_merge_past_retention_still_follows_its_alias():
    """Two reports of A a day apart, the first moving the clock past the merge's retention: both are B's,
    as in a worker whose partitions' clocks lag, so that `rank` and the worker agree."""
    p = pipe(retention_days=20)
    p.apply(merged("A", "B", T0))
    p.apply(recorded("C1", "019/08", ["A"], T0 + 30 * DAY, F))
    p.apply(recorded("C2", "019/08", ["A"], T0 + 31 * DAY, F))
    p.flush()
    assert p.ledger.summary("A") is None and p.ledger.summary("B").allegations == 2
    assert [s for _, s, _ in p.ranking()] == ["B"]


def test_a_chain_keeps_every_link():
    p = pipe(retention_days=20)
    p.apply(merged("A", "B", T0))
    p.apply(merged("B", "C", T0 + 10 * DAY))
    p.advance(T0 + 40 * DAY)
    assert p.register.canonical("A") == "C" and p.register.canonical("B") == "C"
    assert not [k for k in keys(p) if k.startswith("e:")]


def test_a_merge_made_already_past_retention_moves_allegations_and_keeps_its_alias_not_its_id():
    p = pipe()
    p.apply(recorded("C1", "105/01", ["A"], T0 + (R + 5) * DAY, F))
    assert status(p.apply(merged("A", "B", T0))) == "accepted"
    assert p.register.report("C1")[4] == ["B"]
    assert p.register.canonical("A") == "B"
    assert not [k for k in keys(p) if k.startswith("e:")]


def test_the_default_retention_is_the_window_and_90_days():
    p = Pipeline(HARM, window_days=10)
    p.apply(recorded("C1", "105/01", ["A"], T0, F))
    p.advance(T0 + 100 * DAY)
    assert p.register.report("C1") is not None
    p.advance(T0 + 100 * DAY + 1)
    assert p.register.report("C1") is None


def test_without_a_retention_the_register_forgets_nothing():
    reg = Register(DictStore(), HARM)
    reg.apply(recorded("C1", "105/01", ["A"], T0, F))
    reg.apply(merged("A", "B", T0))
    reg.advance(T0 + 10_000 * DAY)
    assert reg.report("C1") is not None and reg.canonical("A") == "B"
    assert not [k for k, _ in reg.store.scan("f:")]


class CountingStore(DictStore):
    """Counts reads, writes and deletions."""

    ops = 0

    def get(self, key, default=None):
        self.ops += 1
        return super().get(key, default)

    def __setitem__(self, key, value):
        self.ops += 1
        super().__setitem__(key, value)

    def __delitem__(self, key):
        self.ops += 1
        super().__delitem__(key)


def test_advance_costs_what_it_forgets_not_the_state():
    store = CountingStore()
    reg = Register(store, HARM, retention_days=R)
    for i in range(2000):  # a large state, all within retention
        reg.apply(recorded(f"C{i}", "105/01", [f"S{i}"], T0 + R * DAY + i, F))
    reg.apply(recorded("OLD", "105/01", ["X"], T0, F))
    reg.advance(T0 + R * DAY)
    store.ops = 0
    reg.advance(T0 + R * DAY + 1)  # forgets the one old report
    assert reg.report("OLD") is None
    assert store.ops < 20, store.ops
    store.ops = 0
    reg.advance(T0 + R * DAY + 2)  # forgets nothing
    assert store.ops < 10, store.ops


def test_a_late_report_exactly_retention_old_is_kept_one_microsecond_more_is_forgotten_at_once():
    p = pipe()
    p.apply(recorded("C3", "105/01", ["B"], T0 + R * DAY, F))
    p.apply(recorded("C1", "105/01", ["A"], T0, F))
    p.apply(recorded("C2", "105/01", ["A"], T0 - 1, F))
    assert p.register.report("C1") is not None and p.register.report("C2") is None


def test_reports_of_one_hour_are_forgotten_in_the_order_of_their_time_not_of_their_arrival():
    """Within one hour's retention bucket: a report that arrives late, older than the last one
    indexed there, is forgotten first; the cutoff can also fall between them."""
    hour = 3_600_000_000
    p = pipe()
    p.apply(recorded("C1", "105/01", ["A"], T0 + 40 * 60_000_000, F))
    p.apply(recorded("C9", "105/01", ["B"], T0 + 10 * 60_000_000, F))  # later crime_ref, earlier time
    p.apply(recorded("C5", "105/01", ["C"], T0 + 50 * 60_000_000, F))
    p.advance(T0 + R * DAY + 20 * 60_000_000)  # cutoff between C9 and C1
    assert [p.register.report(r) is None for r in ("C9", "C1", "C5")] == [True, False, False]
    p.advance(T0 + R * DAY + 45 * 60_000_000)  # between C1 and C5: the rest of the bucket was kept
    assert [p.register.report(r) is None for r in ("C9", "C1", "C5")] == [True, True, False]
    p.advance(T0 + R * DAY + hour)
    assert p.register.report("C5") is None
