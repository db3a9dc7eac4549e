"""Property: with retention, the core equals the from-scratch reference, and forgets everything it should.

Random event sequences over many retention periods: the same outcome per event
(unknown_crime_ref for a forgotten report, a re-sent id applied again once it
is forgotten), the same top N with the same exact figures at every step; and
once the clock has passed the retention of every report and merge, no store
holds any crime_ref, suspect, victim or event id, but for the register's
aliases, which are the reference's.
"""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.pipeline import Pipeline
from tests.streams.helpers import DAY, HARM, T0
from tests.streams.oracle_retention import RetentionOracle
from tests.streams.test_property import CODES, VICTIMS, build, steps
from tests.streams.test_retention_scan import aliases_in, names_in


def check(retention_days, seq, window_days=5, top_n=3):
    pipe = Pipeline(HARM, top_n=top_n, window_days=window_days, min_allegations=2, retention_days=retention_days)
    oracle = RetentionOracle(HARM.oracle_view(), top_n=top_n, window_days=window_days, min_allegations=2,
                             retention_days=retention_days)
    at, history, names = T0, [], set()
    for op, dt in seq:
        at = max(T0, at + dt)
        if op[0] == "tick":
            if oracle.as_of is None or at <= oracle.as_of:
                continue
            oracle.advance(at)
            pipe.advance(at)
        else:
            ev = build(op, at, history)
            if ev is None:
                continue
            history.append(ev)
            names |= event_names(ev)
            expected = oracle.apply(ev)
            outcome = pipe.apply(ev)
            got = outcome.status if outcome.status != "rejected" else outcome.rejection[0]
            assert got == expected, (ev, got, expected)
        pipe.flush()
        want = oracle.ranking()
        got = [(r, s, summ.score, summ.allegations, summ.newest, summ.victims) for r, s, summ in pipe.ranking()]
        assert got == [(r, s, int(sc * 100), n, nw, v) for r, s, sc, n, nw, v in want]
    if not history:
        return
    pipe.advance(max(e.at for e in history) + retention_days * DAY + 1)
    # The write-first stages keep their last batch's output until their next batch (the next wall
    # clock tick at the latest), so that a restart can send it again: one more tick replaces it.
    pipe.advance(max(e.at for e in history) + retention_days * DAY + 2)
    pipe.flush()
    stores = {"register": pipe.register.store, "ledger": pipe.ledger.store, "ranker": pipe.ranker.store}
    for name, store in stores.items():
        assert not names & names_in(store), (name, names & names_in(store))
    assert aliases_in(pipe.register.store) == oracle.aliases


def event_names(ev) -> set:
    """Every crime_ref, suspect, victim and event id an event names."""
    out = {ev.event_id}
    for field in ("crime_ref", "suspect_id", "into"):
        if hasattr(ev, field):
            out.add(getattr(ev, field))
    out.update(getattr(ev, "suspects", ()))
    out.update(v.id for v in getattr(ev, "victims", ()))
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([5, 6, 8]), steps)
def test_retention_equals_recomputation(retention_days, seq):
    check(retention_days, seq)


# Few ids, many merges, links and unlinks over many retention periods: aliases named long after their merge.
FEW = ["S0", "S1", "S2"]
merge_heavy = st.lists(st.tuples(st.one_of(
    st.tuples(st.just("rec"), st.sampled_from(["C0", "C1", "C2", "C3"]), st.sampled_from(CODES[:3]),
              st.lists(st.sampled_from(FEW), min_size=1, max_size=2), st.just([VICTIMS[0]]), st.just(None)),
    st.tuples(st.just("merge"), st.sampled_from(FEW), st.sampled_from(FEW)),
    st.tuples(st.just("link"), st.sampled_from(["C0", "C1", "C2", "C3"]), st.sampled_from(FEW)),
    st.tuples(st.just("unlink"), st.sampled_from(["C0", "C1", "C2", "C3"]), st.sampled_from(FEW)),
    st.tuples(st.just("tick"),),
), st.integers(0, 2 * DAY)), min_size=1, max_size=40)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(merge_heavy)
def test_old_aliases_equal_recomputation(seq):
    check(5, seq, window_days=5, top_n=3)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_retention_equal_to_the_window(seq):
    check(5, seq, window_days=5, top_n=1)
