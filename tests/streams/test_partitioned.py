"""The partitioned topology, driven in-process with random interleavings, equals the one-process batch.

The worker runs the register and ledger stages on several partitions and the
messages between them arrive in whatever order the broker and scheduling give.
This drives the same stage classes the worker runs, with the worker's routing
(a stable hash of crime_ref / suspect id) and its batching, under seeded random
schedules, and checks the final ranking against `Pipeline` (what `harmrank rank` runs).
"""
from __future__ import annotations

import random
import zlib
from collections import deque

import pytest

from schemas.events import SuspectsMerged, SuspectUnlinked
from schemas.harm_table import load_harm_table
from schemas.validate import Rejected, validate
from streams import simulate
from streams.ledger import Ledger
from streams.pipeline import Pipeline
from streams.ranker import Ranker
from streams.register import ACCEPTED, Register
from streams.store import DictStore
from tests.streams.helpers import T0, linked, merged, recorded, unlinked

HARM = load_harm_table()
PARTITIONS = 4


def part(key: str) -> int:
    return zlib.crc32(key.encode()) % PARTITIONS


def run_partitioned(events: list, rng: random.Random) -> list:
    regs = [Register(DictStore(), HARM) for _ in range(PARTITIONS)]
    leds = [Ledger(DictStore(), 100, 365, 2, book_capacity=300) for _ in range(PARTITIONS)]
    ranker = Ranker(DictStore(), 100)
    regq = [deque() for _ in range(PARTITIONS)]
    ledq = [deque() for _ in range(PARTITIONS)]
    rkq: deque = deque()
    pending = deque(events)

    def step_register(p):
        out, newest = {}, None
        for _ in range(min(len(regq[p]), rng.randint(1, 50))):
            x = regq[p].popleft()
            outcome = regs[p].apply(x)
            if outcome.status != ACCEPTED:
                continue
            updates, at = outcome.updates, x.at
            newest = at if newest is None else max(newest, at)
            for u in updates:
                out.setdefault(part(u.suspect), []).append(u)
        for q in range(PARTITIONS):
            if q in out or newest is not None:
                ledq[q].append((out.get(q, []), newest))

    def step_ledger(p):
        for _ in range(min(len(ledq[p]), rng.randint(1, 20))):
            updates, as_of = ledq[p].popleft()
            for u in updates:
                leds[p].apply(u)
            if as_of is not None:
                leds[p].advance(as_of)
        rkq.append((leds[p].flush(), leds[p].as_of))

    def step_ranker():
        while rkq:
            cands, as_of = rkq.popleft()
            for c in cands:
                ranker.apply(c)
            ranker.advance(as_of)
        ranker.flush()

    while pending or any(regq) or any(ledq) or rkq:
        r = rng.random()
        if pending and r < 0.3:
            for _ in range(rng.randint(1, 30)):
                if not pending:
                    break
                e = pending.popleft()
                if isinstance(e, SuspectsMerged):  # every register partition, in input order
                    for q in range(PARTITIONS):
                        regq[q].append(e)
                else:
                    regq[part(e.crime_ref)].append(e)
        elif r < 0.5:
            p = rng.randrange(PARTITIONS)
            if regq[p]:
                step_register(p)
        elif r < 0.85:
            p = rng.randrange(PARTITIONS)
            if ledq[p]:
                step_ledger(p)
        else:
            step_ranker()
    step_ranker()
    return [(s, tuple(x)) for _, s, x in ranker.ranking()]


@pytest.mark.parametrize("schedule_seed", [1, 2, 3])
def test_partitioned_interleavings_equal_the_batch(schedule_seed):
    events = [validate(simulate.dumps(ev).encode(), HARM) for ev in simulate.generate(seed=31, events=6000)]
    events = [e for e in events if not isinstance(e, Rejected)]
    pipe = Pipeline(HARM)
    for e in events:
        pipe.apply(e)
    pipe.flush()
    expected = [(s, tuple(x)) for _, s, x in pipe.ranking()]
    assert len(expected) == 100
    assert run_partitioned(events, random.Random(schedule_seed)) == expected


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
        refs.append(f"N{k}")
        events.append(recorded(f"N{k}", "008/06", [src], at, victims=((f"W{k}", "F"),)))
    return events


@pytest.mark.parametrize("schedule_seed", [1, 2, 3, 4, 5])
def test_events_right_after_a_merge_resolve_the_old_id_as_the_batch_does(schedule_seed):
    events = merge_races(seed=schedule_seed)
    pipe = Pipeline(HARM)
    moved = 0
    for e in events:
        outcome = pipe.apply(e)
        moved += isinstance(e, SuspectUnlinked) and bool(outcome.updates)
    pipe.flush()
    expected = [(s, tuple(x)) for _, s, x in pipe.ranking()]
    assert len(expected) >= 10 and moved >= 5, "the feed should rank people and unlink merged ids"
    assert run_partitioned(events, random.Random(schedule_seed)) == expected
