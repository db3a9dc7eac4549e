"""The worker's stages over P partitions, in seeded random interleavings with crashes, against the oracle.

The in-process driver runs the very stage classes the worker runs between Kafka
topics (routing, merge broadcast, envelopes, ticks, offsets); the expected
ranking comes from the independent oracle (tests/streams/oracle.py), never from
the core's own classes.
"""
from __future__ import annotations

import random
from decimal import Decimal

import pytest

from schemas.events import MERGE_KEY, SuspectsMerged
from schemas.harm_table import load_harm_table
from schemas.validate import Rejected, event_to_json, validate
from streams import simulate
from streams.driver import Driver
from tests.streams.helpers import DAY, T0, FakeHarm, linked, merged, recorded, reclassified, unlinked
from tests.streams.oracle import Oracle

HARM = load_harm_table()


def oracle_view(harm) -> dict:
    return {e.code: (Decimal(e.days_cents) / 100, e.vawg) for e in harm}


def feed(driver: Driver, events: list) -> None:
    for e in events:
        key = MERGE_KEY if isinstance(e, SuspectsMerged) else e.crime_ref.encode()
        driver.publish(event_to_json(e), key)


def members_after(output: list, top_n: int) -> set:
    """Replay entered/exited, dropping re-sent events by event_id: no double entry, never more than N;
    an update is about a member; an event dropped as a re-send would have changed nothing."""
    members, seen = set(), set()
    for ev in output:
        if ev["event_id"] in seen:
            entered, member = ev["type"] == "ranking.entered", ev["suspect_id"] in members
            assert ev["type"] == "ranking.updated" or entered == member, ev
            continue
        seen.add(ev["event_id"])
        if ev["type"] == "ranking.entered":
            assert ev["suspect_id"] not in members, ev
            members.add(ev["suspect_id"])
            assert len(members) <= top_n
        elif ev["type"] == "ranking.updated":
            assert ev["suspect_id"] in members, ev
        else:
            assert ev["suspect_id"] in members, ev
            members.discard(ev["suspect_id"])
    return members


def expected_ranking(oracle: Oracle) -> list:
    return [(s, (int(sc * 100), n, nw, v)) for _, s, sc, n, nw, v in oracle.ranking()]


def run(events, harm, oracle_harm, partitions, seed, top_n=100, window_days=365, min_allegations=2,
        crash_rate=0.05, input_partitions=None):
    oracle = Oracle(oracle_harm, top_n=top_n, window_days=window_days, min_allegations=min_allegations)
    for e in events:
        oracle.apply(e)
    rng = random.Random(seed)
    driver = Driver(harm, partitions, top_n, window_days, min_allegations, rng=rng, max_batch=40,
                    book_capacity=3 * top_n, input_partitions=input_partitions)
    cut = len(events) // 2  # the second half arrives while the first is being worked
    feed(driver, events[:cut])
    for _ in range(rng.randint(0, 200)):
        ready = [r for r in ("input", "register", "ledger", "candidates") if driver._unread(r)]
        if not ready:
            break
        driver.step(rng.choice(ready), crash=rng.random() < crash_rate)
    feed(driver, events[cut:])
    driver.run(crash_rate=crash_rate)
    driver.flush_ticks()
    driver.run()
    got = [(s, tuple(x)) for _, s, x in driver.ranker.ranker.ranking()]
    want = expected_ranking(oracle)
    assert got == want
    assert members_after(driver.output(), top_n) == {s for s, _ in want}
    return want


def simulated(seed: int, events: int, days: float = 400.0) -> list:
    out = [validate(simulate.dumps(ev).encode(), HARM)
           for ev in simulate.generate(seed=seed, events=events, days=days)]
    return [e for e in out if not isinstance(e, Rejected)]


@pytest.mark.parametrize("partitions", [1, 2, 4])
@pytest.mark.parametrize("seed", [1, 2])
def test_a_simulated_feed_over_p_partitions_equals_the_oracle(partitions, seed):
    want = run(simulated(31, 4000), HARM, oracle_view(HARM), partitions, seed)
    assert len(want) == 100


@pytest.mark.parametrize("partitions", [1, 4])
def test_a_feed_longer_than_retention_equals_the_oracle_that_keeps_every_alias(partitions):
    """1,000 days with the default retention (455): reports and merges' ids are forgotten on the way, and
    old ids named more than that after their merge still name the merged record, in every partition."""
    run(simulated(2, 6000, days=1000), HARM, oracle_view(HARM), partitions, seed=3)


def merge_races(seed: int, rounds: int = 40) -> list:
    """Merges each followed at once by events that name the old id: they must resolve to the merged record."""
    rng = random.Random(seed)
    at = T0
    events, refs, refs_of = [], [], {}
    for k in range(300):
        at += 60_000_000
        refs.append(f"R{k}")
        refs_of.setdefault(f"S{k % 150}", []).append(f"R{k}")
        events.append(recorded(f"R{k}", rng.choice(["105/01", "008/06", "008/66"]), [f"S{k % 150}"], at,
                               victims=((f"V{k % 70}", "F"),)))
    for k in range(rounds):
        at += 60_000_000
        src, into = rng.sample([f"S{i}" for i in range(150)], 2)
        events.append(merged(src, into, at))
        events.append(unlinked(rng.choice(refs_of[into]), src, at))  # one of into's reports, by the old id
        events.append(linked(rng.choice(refs), src, at))
        events.append(reclassified(rng.choice(refs), rng.choice(["105/01", "019/08"]), at))
        refs.append(f"N{k}")
        events.append(recorded(f"N{k}", "008/06", [src], at, victims=((f"W{k}", "F"),)))
    return events


@pytest.mark.parametrize("partitions", [1, 2, 4])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_events_right_after_a_merge_resolve_the_old_id(partitions, seed):
    """With one input partition (the only order there is between a merge and what follows it), over P stages."""
    want = run(merge_races(seed), HARM, oracle_view(HARM), partitions, seed, input_partitions=1)
    assert len(want) >= 10


TIES = FakeHarm({"105/01": ("5", True), "008/06": ("5", True), "092/11": ("5", False)})


def tied_feed(seed: int, window_days: int) -> list:
    """Every offence worth the same, many suspects with the same count: the tie-breaks decide the cut."""
    rng = random.Random(seed)
    events, at = [], T0
    for k in range(400):
        at += rng.choice([0, 0, 1, DAY // 12])  # equal times too: then the suspect id decides
        suspects = [f"S{rng.randrange(60)}" for _ in range(rng.choice([1, 1, 2]))]
        events.append(recorded(f"C{k}", rng.choice(list(TIES.rows)), suspects, at,
                               victims=((f"V{rng.randrange(30)}", rng.choice("FFM")),)))
        if k % 25 == 24:
            events.append(merged(f"S{rng.randrange(60)}", f"S{rng.randrange(60)}", at))
    return events


@pytest.mark.parametrize("partitions", [1, 2, 4])
@pytest.mark.parametrize("min_allegations", [1, 2, 3])
@pytest.mark.parametrize("window_days", [5, 365])
def test_ties_at_the_cut(partitions, min_allegations, window_days):
    seed = partitions * 100 + min_allegations * 10 + window_days
    events = tied_feed(seed, window_days)
    want = run(events, TIES, TIES.oracle_view(), partitions, seed, top_n=7, window_days=window_days,
               min_allegations=min_allegations, input_partitions=1)
    assert len(want) == 7
