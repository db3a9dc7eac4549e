"""streams.hourindex: an hour's entries in chunks of a bounded size, read as one sorted multiset.

A random mix of adds, removes, due takes and crossing reads, most in a few
hours, out of order and many at one time, with chunks of three, against a plain
sorted list; after each step every chunk is sorted and bounded and an hour's
chunks have no gaps. An hour held in one value larger than a chunk, as existing
state may hold it, reads and grows alike. Each add writes one chunk, however
full its hour. And the core's oracle checks, with chunks of two and events
minutes apart.
"""
from __future__ import annotations

import contextlib
import random
from bisect import insort

import orjson

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams import hourindex
from streams.hourindex import US_PER_HOUR, HourIndex
from streams.store import DictStore
from tests.streams import test_property, test_retention_property
from tests.streams.helpers import DAY, T0


@contextlib.contextmanager
def chunks_of(n: int):
    saved, hourindex.CHUNK = hourindex.CHUNK, n
    try:
        yield
    finally:
        hourindex.CHUNK = saved


class CopyingStore(DictStore):
    """Values kept as JSON, as RocksDB keeps them: a value read is a copy, so only what is written back stays."""

    def get(self, key, default=None):
        raw = super().get(key)
        return default if raw is None else orjson.loads(raw)

    def __setitem__(self, key, value):
        super().__setitem__(key, orjson.dumps(value))


class WriteLog(DictStore):
    """A DictStore that records every key written."""

    def __init__(self):
        super().__init__()
        self.written: list = []

    def __setitem__(self, key, value):
        self.written.append(key)
        super().__setitem__(key, value)


SUSPECTS = ["A1", "K2", "S3", "S4", "Z5"]  # ids on both sides of the crime_refs' first letters
REFS = ["B1", "C2", "M3", "R4", "Y5"]


def check_layout(index: HourIndex, hours) -> None:
    for hour in hours:
        chunks = index.chunks(hour)
        for i, (key, chunk) in enumerate(chunks):
            entries = list(zip(*chunk))
            assert entries == sorted(entries), key
            assert len(entries) <= hourindex.CHUNK or i == 0, key
            assert entries or i < len(chunks) - 1, f"{key}: an empty last chunk"
        assert index.store.get(index.key(hour, len(chunks))) is None
        assert not any(k.startswith(f"{index.prefix}{hour}.") and k not in {c for c, _ in chunks}
                       for k in index.store), f"a gap in hour {hour}"


def test_random_operations_equal_a_sorted_list():
    for seed in range(30):
        rng = random.Random(seed)
        index, model = HourIndex(CopyingStore(), "x:", "x-cursor", 3), []
        base = T0 + rng.randrange(5) * US_PER_HOUR
        with chunks_of(3):
            for _ in range(400):
                roll = rng.random()
                if roll < 0.55:
                    at = base + (rng.randrange(40) * US_PER_HOUR // 10 if rng.random() < 0.6  # many at one time
                                 else rng.randrange(4 * US_PER_HOUR))
                    entry = (at, rng.choice(SUSPECTS), rng.choice(REFS))
                    index.add(entry)
                    insort(model, entry)
                elif roll < 0.75 and model:
                    entry = rng.choice(model) if rng.random() < 0.8 else (base, "S9", "C9")
                    assert index.remove(entry) == (entry in model)
                    if entry in model:
                        model.remove(entry)
                elif roll < 0.85:
                    low = base + rng.randrange(-US_PER_HOUR, 4 * US_PER_HOUR)
                    high = low + rng.randrange(2 * US_PER_HOUR)
                    assert index.crossing(low, high) == [e for e in model if low < e[0] <= high]
                else:
                    cutoff = base + rng.randrange(-US_PER_HOUR, 3 * US_PER_HOUR)
                    if model and rng.random() < 0.5:
                        cutoff = rng.choice(model)[0]  # an entry at the cutoff: taken only when `inclusive`
                    inclusive = rng.random() < 0.5
                    due = [e for e in model if (e[0] <= cutoff if inclusive else e[0] < cutoff)]
                    assert index.take_due(cutoff, inclusive) == due, seed
                    model = [e for e in model if e not in due]
                check_layout(index, range(base // US_PER_HOUR - 1, base // US_PER_HOUR + 5))
            assert index.take_due(base + 10 * US_PER_HOUR, True) == model
            assert not [k for k in index.store if k.startswith("x:")]


def test_an_hour_held_in_one_value_larger_than_a_chunk_is_read_and_grown_alike():
    store = CopyingStore()
    hour = T0 // US_PER_HOUR
    old = sorted((T0 + i * 1000, f"S{i % 3}", f"C{i}") for i in range(10))
    store["x:" + str(hour)] = [list(column) for column in zip(*old)]
    store["x-cursor"] = hour
    index = HourIndex(store, "x:", "x-cursor", 3)
    with chunks_of(4):
        index.add((T0 + 500, "S1", "C99"))  # the old bucket is full: a new chunk takes it
        assert store.get(f"x:{hour}.1") == [[T0 + 500], ["S1"], ["C99"]]
        assert index.remove(old[3]) and not index.remove(old[3])
        model = sorted(old[:3] + old[4:] + [(T0 + 500, "S1", "C99")])
        assert index.crossing(T0 - 1, T0 + 10**9) == model
        assert index.take_due(T0 + 4000, True) == [e for e in model if e[0] <= T0 + 4000]


def test_each_add_writes_one_chunk_however_full_the_hour():
    store = WriteLog()
    index = HourIndex(store, "f:", "f-cursor", 2)
    for i in range(5 * hourindex.CHUNK):
        store.written.clear()
        index.add((T0 + (i * 7919) % US_PER_HOUR, f"r:C{i}"))  # out of order within the hour
        chunks = [k for k in store.written if k.startswith("f:")]
        assert len(chunks) == 1 and len(store.get(chunks[0])[0]) <= hourindex.CHUNK
    assert len(index.chunks(T0 // US_PER_HOUR)) == 5


minutes = st.lists(st.tuples(test_property.ops, st.one_of(st.integers(-20 * 60_000_000, 40 * 60_000_000),
                                                          st.integers(-2 * DAY, 3 * DAY))),
                   min_size=1, max_size=60)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(minutes)
def test_the_core_equals_its_oracle_with_chunks_of_two(seq):
    with chunks_of(2):
        test_property.check(3, 5, None, seq)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([5, 6]), minutes)
def test_retention_equals_its_oracle_with_chunks_of_two(retention_days, seq):
    with chunks_of(2):
        test_retention_property.check(retention_days, seq)
