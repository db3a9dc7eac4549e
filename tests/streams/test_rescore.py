"""A worker restarted with another harm table scores its state again (SPEC §9), against the oracle.

The state is built with table A, then the stages restart with table B (two values
changed, one code dropped): the register re-sends every allegation as B scores it,
with cause `rescore:<first 12 hex>`, and the ranking equals the oracle's over the
same events with B, where a report whose code B dropped counts for nothing.
"""
from __future__ import annotations

import random

import pytest

from schemas.events import MERGE_KEY, SuspectsMerged
from schemas.validate import event_to_json
from streams.driver import Driver
from tests.streams.helpers import DAY, T0, FakeHarm, cancelled, linked, merged, recorded, reclassified, unlinked
from tests.streams.oracle import Oracle
from tests.streams.test_driver import members_after

A = FakeHarm({"019/08": ("1825", True), "008/06": ("182.5", True), "105/01": ("5", True),
              "008/66": ("0.25", True), "092/11": ("1460", False)})
B = FakeHarm({"019/08": ("1825", True), "008/06": ("2000", True), "105/01": ("0.5", True),
              "092/11": ("1460", False)})
FINGERPRINT = "ab12" * 16


def feed(seed: int, codes: list, start: int, n: int, refs: list) -> list:
    rng = random.Random(seed)
    events, at = [], start
    for k in range(n):
        at += rng.randrange(DAY // 4)
        roll = rng.random()
        if roll < 0.6 or not refs:
            ref = f"C{seed}-{start}-{k}"
            refs.append(ref)
            events.append(recorded(ref, rng.choice(codes), [f"S{rng.randrange(40)}" for _ in range(rng.choice([1, 2]))],
                                   at, victims=((f"V{rng.randrange(30)}", rng.choice("FFM")),)))
        elif roll < 0.72:
            events.append(reclassified(rng.choice(refs), rng.choice([c for c in codes if c != "008/66"]), at))
        elif roll < 0.8:
            events.append(linked(rng.choice(refs), f"S{rng.randrange(40)}", at))
        elif roll < 0.88:
            events.append(unlinked(rng.choice(refs), f"S{rng.randrange(40)}", at))
        elif roll < 0.95:
            events.append(cancelled(rng.choice(refs), at))  # a cancelled report is not scored again
        else:
            events.append(merged(f"S{rng.randrange(40)}", f"S{rng.randrange(40)}", at))
    return events


def publish(driver: Driver, events: list) -> None:
    for e in events:
        driver.publish(event_to_json(e), MERGE_KEY if isinstance(e, SuspectsMerged) else e.crime_ref.encode())


@pytest.mark.parametrize("partitions", [1, 2, 4])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_restart_with_another_table_scores_the_state_again(partitions, seed):
    refs: list = []
    before = feed(seed, list(A.rows), T0, 300, refs)
    after = feed(seed + 100, list(B.rows), before[-1].at, 100, refs)
    oracle_view = {**B.oracle_view(), "008/66": None}
    oracle = RescoreOracle(oracle_view, top_n=10, window_days=30)
    for e in before + after:
        oracle.apply(e)
    rng = random.Random(seed)
    driver = Driver(A, partitions, 10, 30, 2, rng=rng, max_batch=30, input_partitions=1)
    publish(driver, before)
    driver.run(crash_rate=0.05)
    emitted = len(driver.output())
    driver.restart(B, FINGERPRINT)
    driver.run(crash_rate=0.05)
    causes = {e["cause"] for e in driver.output()[emitted:]}
    publish(driver, after)
    driver.run(crash_rate=0.05)
    got = [(s, tuple(x)) for _, s, x in driver.ranker.ranker.ranking()]
    want = [(s, (int(sc * 100), n, nw, v)) for _, s, sc, n, nw, v in oracle.ranking()]
    assert got == want
    assert members_after(driver.output(), 10) == {s for s, _ in want}
    assert causes <= {"rescore:" + FINGERPRINT[:12]} and causes, causes


def test_a_restart_with_the_same_files_changes_nothing():
    refs: list = []
    driver = Driver(A, 2, 10, 30, 2, rng=random.Random(7), max_batch=30, input_partitions=1)
    driver.register.fingerprint = FINGERPRINT
    publish(driver, feed(7, list(A.rows), T0, 200, refs))
    driver.run()
    driver.restart(A, FINGERPRINT)  # first start with a fingerprint: the state is scored once
    driver.run()
    emitted = len(driver.output())
    driver.restart(A, FINGERPRINT)
    driver.run()
    assert driver.output()[emitted:] == []


class RescoreOracle(Oracle):
    """The oracle, where a report whose offence code the table dropped (None) counts for nothing."""

    def standings(self, as_of=None):
        kept = {ref: rep for ref, rep in self.reports.items() if self.harm[rep["code"]] is not None}
        saved, self.reports = self.reports, kept
        try:
            return super().standings(as_of)
        finally:
            self.reports = saved
