"""agents.faust_store.PartitionStore over a real RocksDB (rocksdict): its write-back cache, `keep` and `keep_bytes`.

A ledger partition keeps its store from batch to batch, and with `keep` the
decoded values it read or wrote stay cached after a batch is written. These
tests count the reads that reach RocksDB and check that what the cache keeps is
what the database holds.
"""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from rocksdict import Options, Rdict

from agents.codec import loads
from agents.faust_store import PartitionStore


class CountingDb:
    """A real Rdict that counts the reads that reach it."""

    def __init__(self, path):
        self.db = Rdict(str(path), options=Options(raw_mode=True))  # as Faust opens it
        self.gets: list = []

    def get(self, key):
        self.gets.append(key)
        return self.db.get(key)

    def items(self, **kwargs):
        return self.db.items(**kwargs)

    def write(self, batch):
        self.db.write(batch)

    def delete(self, key):
        self.db.delete(key)

    def close(self):
        self.db.close()


@pytest.fixture
def db(tmp_path):
    d = CountingDb(tmp_path / "p0")
    yield d
    d.close()


def store_over(db, keep: int = 0, keep_bytes: int = 0) -> PartitionStore:
    table = SimpleNamespace(data=SimpleNamespace(_db_for_partition=lambda partition: db))
    return PartitionStore(table, 0, keep=keep, keep_bytes=keep_bytes)


def on_disk(db, key: str):
    raw = db.db.get(key.encode())
    return None if raw is None else loads(raw)


def test_without_keep_every_batch_reads_the_database_again(db):
    store = store_over(db)
    store["p:a"] = [1, 2]
    store._write_local()
    assert on_disk(db, "p:a") == [1, 2]
    assert store.get("p:a") == [1, 2]
    assert store.get("p:a") == [1, 2]  # within a batch: cached
    assert db.gets == [b"p:a"]
    store._write_local()
    assert store.get("p:a") == [1, 2]
    assert db.gets == [b"p:a", b"p:a"]  # the next batch: read again


def test_with_keep_a_hot_key_is_read_once_and_stays_what_the_database_holds(db):
    store = store_over(db, keep=10)
    store["p:a"] = [1, 2]
    store._write_local()
    value = store.get("p:a")
    value.append(3)  # a stage changes a value in place, then writes it
    store["p:a"] = value
    store._write_local()
    assert on_disk(db, "p:a") == [1, 2, 3]
    assert store.get("p:a") == [1, 2, 3]
    del store["p:a"]
    store._write_local()
    assert on_disk(db, "p:a") is None
    assert store.get("p:a") is None and store.get("p:a", "gone") == "gone"
    with pytest.raises(KeyError):
        store["p:a"]
    assert db.gets == []  # every value came from the cache: written through it, never read back


def written(db, values: dict) -> None:
    """Have the database hold `values`, written through a store of their own."""
    seed = store_over(db)
    for key, value in values.items():
        seed[key] = value
    seed._write_local()


def test_keep_bounds_the_cache_and_drops_the_oldest_loaded(db):
    written(db, {f"k{i}": i for i in range(10)})
    store = store_over(db, keep=3)
    for i in range(10):
        assert store.get(f"k{i}") == i
    store._write_local()
    assert len(store._cache) == 3
    db.gets.clear()
    assert [store.get(f"k{i}") for i in range(10)] == list(range(10))
    assert db.gets == [f"k{i}".encode() for i in range(7)]  # k7..k9 were kept


def json_of(size: int) -> str:
    """A value whose stored JSON is `size` bytes (a string: two quotes and its characters)."""
    return "x" * (size - 2)


def test_keep_bytes_bounds_the_kept_json_and_drops_the_oldest_loaded(db):
    written(db, {f"k{i}": json_of(100) for i in range(10)})
    store = store_over(db, keep=100, keep_bytes=350)
    for i in range(10):
        store.get(f"k{i}")
    store.get("missing")  # a missing key is kept as such, at no bytes
    store._write_local()
    assert list(store._cache) == ["k7", "k8", "k9", "missing"]
    db.gets.clear()
    assert [store.get(f"k{i}") for i in range(10)] == [json_of(100)] * 10
    assert store.get("missing") is None
    assert db.gets == [f"k{i}".encode() for i in range(7)]  # k7..k9 and the missing key were kept


def test_keep_bytes_counts_a_value_at_its_size_when_last_written(db):
    store = store_over(db, keep=100, keep_bytes=1000)
    store["a"], store["b"] = json_of(10), json_of(10)
    store._write_local()
    store["a"] = json_of(900)  # grows in place: 910 bytes kept, within the bound
    store._write_local()
    assert list(store._cache) == ["a", "b"]
    store["c"] = json_of(200)  # 1,110 bytes: the oldest, a, goes; b and c (210 bytes) stay
    store._write_local()
    assert list(store._cache) == ["b", "c"]
    del store["c"]  # a deleted key weighs nothing
    store["d"] = json_of(780)  # 10 + 0 + 780
    store._write_local()
    assert list(store._cache) == ["b", "c", "d"]
    db.gets.clear()
    assert (store.get("b"), store.get("c"), store.get("d")) == (json_of(10), None, json_of(780))
    assert db.gets == []
    assert store.get("a") == json_of(900) and db.gets == [b"a"]


def test_keep_bytes_holds_with_the_count_bound_and_after_a_discarded_batch(db):
    written(db, {f"k{i}": json_of(10) for i in range(6)})
    store = store_over(db, keep=2, keep_bytes=1000)
    for i in range(6):
        store.get(f"k{i}")
    store._write_local()
    assert list(store._cache) == ["k4", "k5"]  # the count binds first
    store["k4"] = json_of(990)
    store.discard_changes()  # the batch failed: nothing kept, the tally too
    for i in range(6):
        store.get(f"k{i}")
    store["k0"] = json_of(600)
    store._write_local()
    assert list(store._cache) == ["k4", "k5"]  # count first; then 20 bytes, far below the bound
    store["k5"] = json_of(995)  # 1,005 bytes: k4 goes, though the count holds
    store._write_local()
    assert list(store._cache) == ["k5"]


def test_scan_after_writes_with_keep_agrees_with_the_database(db):
    store = store_over(db, keep=100)
    for i in range(5):
        store[f"p:{i}"] = [i]
    store["x:1"] = "other prefix"
    store._write_local()
    store["p:2"] = [20]
    del store["p:3"]
    store._write_local()
    assert list(store.scan("p:")) == [("p:0", [0]), ("p:1", [1]), ("p:2", [20]), ("p:4", [4])]
    assert [(k, v) for k, v in store.scan("p:")] == [(k.decode(), loads(v)) for k, v in db.db.items()
                                                        if k.startswith(b"p:")]


def test_discarded_changes_leave_nothing_cached(db):
    store = store_over(db, keep=100)
    store["p:a"] = [1]
    store._write_local()
    store["p:a"] = [2]  # a batch that fails before it is written
    store.discard_changes()
    assert store._cache == {} and store.dirty == 0
    assert store.get("p:a") == [1]  # the database's value, read again
    assert db.gets == [b"p:a"]


def test_each_local_write_names_its_keys_for_the_changelog_in_the_same_batch(db):
    """PENDING_KEY names the keys of the last local write, deletions too, for resend_pending after a kill -9."""
    from agents.faust_store import PENDING_KEY

    store = store_over(db)
    store["p:a"], store["p:b"] = [1], [2]
    store._write_local()
    assert sorted(loads(db.db.get(PENDING_KEY))) == ["p:a", "p:b"]
    store["p:c"] = [3]
    del store["p:a"]
    records = store._write_local()
    assert sorted(loads(db.db.get(PENDING_KEY))) == ["p:a", "p:c"] == sorted(k.decode() for k, _ in records)
    assert on_disk(db, "p:a") is None and on_disk(db, "p:c") == [3]
    store._write_local()  # nothing changed: nothing written, the last batch's names stand
    assert sorted(loads(db.db.get(PENDING_KEY))) == ["p:a", "p:c"]
    store.changelog_done()  # once the changelog holds them, the names (of deleted keys too) go
    assert db.db.get(PENDING_KEY) is None
    assert [k for k, _ in store.scan("p:")] == ["p:b", "p:c"]  # the local key is no state of the core's


@pytest.mark.parametrize("seed", range(20))
def test_scan_in_a_batch_merges_its_changes_in_key_order(db, seed):
    """Keys written, rewritten and deleted in a batch, before, between and after those on disk (non-ASCII
    ones too), come out of a scan in key order with the batch's values, as a dict of the state would give."""
    import random

    rng = random.Random(seed)
    names = [f"p:{c}{i}" for c in "aé€z" for i in range(6)] + ["o:other", "q:after"]
    state: dict = {}
    store = store_over(db, keep=rng.choice([0, 5]), keep_bytes=rng.choice([0, 40]))
    for _batch in range(3):
        for _ in range(rng.randint(0, 12)):
            key = rng.choice(names)
            if rng.random() < 0.3:
                del store[key]
                state.pop(key, None)
            else:
                store[key] = state[key] = [rng.randint(0, 99)]
        expected = sorted((k, v) for k, v in state.items() if k.startswith("p:"))
        assert list(store.scan("p:")) == expected  # in the batch, before its write
        store._write_local()
        assert list(store.scan("p:")) == expected
