"""The briefing body of SPEC §8 (streams/briefing.py) against what the output events and the oracle say.

Members with the as_of of their last entered event, `new` after `since`, their
linked offences as the lists oracle counts them; exits newest first, only those
since `since` and not members now; eligible counts; the same after a restart;
and an exit kept for 400 days, then forgotten.
"""
from __future__ import annotations

import random

from agents.commands.briefing import check_briefing
from schemas.events import us_to_iso
from streams.briefing import briefing_body
from streams.driver import Driver
from streams.partitioning import partition_for
from streams.pipeline import Pipeline
from tests.streams.helpers import DAY, HARM as FAKE_HARM, T0, recorded
from tests.streams.oracle import Oracle
from tests.streams.oracle_lists import ListsOracle
from tests.streams.test_driver import HARM, feed, oracle_view
from tests.streams.test_driver_lists import EVENTS, LISTS


def expected_history(events: list) -> tuple[dict, dict]:
    """(suspect -> as_of of his last entry, suspect -> (as_of, reason, score) of his last exit), re-sends dropped."""
    entered, exited, seen = {}, {}, set()
    for ev in events:
        if ev["event_id"] in seen:
            continue
        seen.add(ev["event_id"])
        if ev["type"] == "ranking.entered":
            entered[ev["suspect_id"]] = ev["as_of"]
        elif ev["type"] == "ranking.exited":
            exited[ev["suspect_id"]] = (ev["as_of"], ev["reason"], ev["score"])
    return entered, exited


def briefing_of(driver: Driver, name: str, since) -> dict:
    def linked(suspect: str) -> int:
        return driver.ledger.ledger(partition_for(suspect, driver.partitions)).linked_offences(suspect, name)

    eligible = sum(driver.ledger.ledger(p).stats(name)[1] for p in range(driver.partitions))
    return briefing_body(driver.ranker.ranker_of(name), since, eligible, linked)


def test_the_briefing_of_every_list_agrees_with_the_events_and_the_oracle():
    oracle = Oracle(oracle_view(HARM))
    for e in EVENTS:
        oracle.apply(e)
    lists = ListsOracle(oracle, LISTS)
    driver = Driver(HARM, 2, rng=random.Random(9), max_batch=40, lists=LISTS)
    feed(driver, EVENTS)
    driver.run(crash_rate=0.05)
    driver.flush_ticks()
    driver.run()
    since = oracle.as_of - 60 * DAY
    for spec in LISTS:
        body = check_briefing(briefing_of(driver, spec.name, since))
        entered, exited = expected_history([ev for ev in driver.output() if ev["list"] == spec.name])
        ranking = lists.ranking(spec.name)
        assert [(m["rank"], m["suspect_id"], m["score"], m["allegations"], m["victims"]) for m in body["members"]] \
            == [(r, s, float(sc), n, v) for r, s, sc, n, _, v in ranking]
        for m in body["members"]:
            assert m["entered_at"] == entered[m["suspect_id"]]
            assert m["new"] == (m["entered_at"] > us_to_iso(since))
            assert m["linked_offences"] == lists.linked_offences(spec.name, m["suspect_id"])
        members = {row[1] for row in ranking}
        want = sorted(((at, s, reason, score) for s, (at, reason, score) in exited.items()
                       if s not in members and at > us_to_iso(since)), key=lambda x: (x[0], [-ord(c) for c in x[1]]),
                      reverse=True)
        assert [(x["at"], x["suspect_id"], x["reason"], x["score"]) for x in body["exited"]] == want
        eligible = sum(1 for *_, ok in lists.standings(spec.name).values() if ok)
        assert body["counts"] == {"members": len(ranking), "new": sum(m["new"] for m in body["members"]),
                                  "exited": len(want), "eligible": eligible}
        assert body["list"] == spec.name and body["as_of"] == us_to_iso(oracle.as_of)
    assert any(check_briefing(briefing_of(driver, s.name, since))["exited"] for s in LISTS)
    before = [briefing_of(driver, spec.name, since) for spec in LISTS]
    driver.ranker.reset()  # a restart: the rankers are rebuilt from their stores
    driver.ledger.reset()
    assert [briefing_of(driver, spec.name, since) for spec in LISTS] == before


def test_an_exit_is_kept_400_days_then_forgotten():
    p = Pipeline(FAKE_HARM, top_n=2, window_days=5)
    p.apply(recorded("C1", "019/08", ["A"], T0))
    p.apply(recorded("C2", "105/01", ["A"], T0 + 1))
    p.advance(T0 + 10 * DAY)  # his allegations age out: he exits
    left = T0 + 10 * DAY
    ranker = p.ranker
    assert [(s, at, reason) for s, (at, reason, _) in ranker.exits()] == [("A", left, "expired")]
    assert briefing_body(ranker, None, 0, lambda s: 0)["exited"] == [
        {"suspect_id": "A", "at": us_to_iso(left), "reason": "expired", "score": 0.0}]
    p.advance(left + 399 * DAY)
    assert list(ranker.exits()) and briefing_body(ranker, T0, 0, lambda s: 0)["counts"]["exited"] == 1
    p.advance(left + 401 * DAY)
    assert list(ranker.exits()) == []
    assert not [key for key, _ in ranker.store.scan("") if "A" in key]
