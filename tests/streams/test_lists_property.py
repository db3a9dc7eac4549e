"""Property: with several lists (SPEC §7), escalation among them, the core equals the lists oracle at every step.

One event (or one tick of the wall clock) at a time through the worker's stages:
each list's top N, scores, counts and victims equal `ListsOracle`'s, and the
events of each list are exactly those the change calls for (SPEC §3): entered,
exited, and `ranking.updated` for a member whose own score, allegations or
victims changed, never for a rank move caused by others; every entered or
updated event carries the member's state after the change.
"""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.lists import parse_lists
from streams.pipeline import Pipeline
from tests.streams.helpers import CODES, DAY, HARM, T0
from tests.streams.oracle import Oracle
from tests.streams.oracle_lists import ListsOracle
from tests.streams.test_property import VICTIMS, build, ops

REFS = [f"R{i}" for i in range(14)]
SUSPECTS = ["S0", "S1", "S2", "S3"]
# Mostly new reports of few suspects over days, so that allegations cross the recent part and the windows.
new_report = st.tuples(st.just("rec"), st.sampled_from(REFS), st.sampled_from(CODES),
                       st.lists(st.sampled_from(SUSPECTS), min_size=1, max_size=2),
                       st.lists(st.sampled_from(VICTIMS), max_size=2), st.sampled_from([None, None, True, False]))
gaps = st.one_of(st.sampled_from([0, DAY // 2, DAY, 2 * DAY, 3 * DAY, -DAY]), st.integers(-DAY, 2 * DAY))
steps = st.lists(st.tuples(st.one_of(new_report, new_report, ops), gaps), min_size=1, max_size=60)

LISTS = parse_lists("""
[[list]]
name = "vawg"
window_days = 5
top_n = 3

[[list]]
name = "all"
offences = "all"
window_days = 3
min_allegations = 1
top_n = 2

[[list]]
name = "assault"
offences = ["008/", "105"]
window_days = 4
top_n = 2

[[list]]
name = "rising"
window_days = 6
recent_days = 2
factor = 1.5
min_allegations = 1
top_n = 3
""")


def check_step(pipe: Pipeline, lists: ListsOracle, before: dict, events: list) -> dict:
    """Compare each list's ranking and this step's events with the oracle; returns the rankings now."""
    after = {}
    for spec in LISTS:
        want = lists.ranking(spec.name)
        got = [(r, s, x.score, x.allegations, x.newest, x.victims)
               for r, s, x in pipe.driver.ranker.ranker_of(spec.name).ranking()]
        assert got == [(r, s, int(sc * 100), n, nw, v) for r, s, sc, n, nw, v in want], spec.name
        mine = [ev for ev in events if ev["list"] == spec.name]
        assert {(ev["type"], ev["suspect_id"]) for ev in mine} == lists.expected_events(
            spec.name, before[spec.name], want), (spec.name, mine)
        assert len(mine) == len({ev["suspect_id"] for ev in mine})  # one event a suspect a change
        rows = {row[1]: row for row in want}
        for ev in mine:
            if ev["type"] != "ranking.exited":
                rank, _, score, n, _, victims = rows[ev["suspect_id"]]
                assert (ev["rank"], ev["score"], ev["allegations"], ev["victims"]) == (rank, float(score), n, victims)
        after[spec.name] = want
    return after


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_each_list_and_its_events_equal_the_oracle(seq):
    pipe = Pipeline(HARM, lists=LISTS)
    oracle = Oracle(HARM.oracle_view())
    lists = ListsOracle(oracle, LISTS)
    before = {spec.name: [] for spec in LISTS}
    at, history = T0, []
    for op, dt in seq:
        at = max(T0, at + dt)
        if op[0] == "tick":  # the wall clock moves with no input: escalation parts and windows move
            if oracle.as_of is None or at <= oracle.as_of:
                continue
            oracle.as_of = at
            pipe.advance(at)
        else:
            ev = build(op, at, history)
            if ev is None:
                continue
            history.append(ev)
            oracle.apply(ev)
            pipe.apply(ev)
        before = check_step(pipe, lists, before, pipe.flush())
