"""agents.compat.faust_bulk_recovery: a changelog read in bulk writes what Faust's recovery writes.

A changelog of puts, overwrites and deletes (records without a value) goes to
the session's real broker in many producer batches. The oracle is Faust's own
`rocksdb.Store.apply_changelog_batch`, applied to the same records in a second
database: both databases must hold the same keys, values and persisted offset,
from an empty database and from one already part way, up to a last offset
short of the log's end, and when the budget runs out between two chunks.
"""
from __future__ import annotations

import asyncio
import inspect
import random
from types import SimpleNamespace

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from faust.stores.rocksdb import Store
from faust.tables.recovery import Recovery
from faust.types import TP
from rocksdict import Options, Rdict

from agents.compat import faust_bulk_recovery as bulk
from agents.kafka_admin import ensure_topics

OFFSET_KEY = Store.offset_key
PARTITIONS = 2


class Databases:
    """A RocksDB store's partitions, as Faust's Store and the work-around reach them."""

    use_rocksdict = True
    offset_key = OFFSET_KEY

    def __init__(self, root):
        self.root = root
        self._dbs: dict = {}

    def _db_for_partition(self, partition: int):
        if partition not in self._dbs:
            self._dbs[partition] = Rdict(str(self.root / f"p{partition}"), options=Options(raw_mode=True))
        return self._dbs[partition]

    def set_persisted_offset(self, tp, offset: int) -> None:
        Store.set_persisted_offset(self, tp, offset)

    def contents(self, partition: int) -> dict:
        return {bytes(k): bytes(v) for k, v in self._db_for_partition(partition).items()}

    def close(self) -> None:
        for db in self._dbs.values():
            db.close()


def faust_applies(store: Databases, topic: str, records: list) -> None:
    """Faust's own recovery write of `records` [(partition, offset, key, value)], as changelog events."""
    events = [SimpleNamespace(message=SimpleNamespace(tp=TP(topic, p), partition=p, offset=o, key=k, value=v))
              for p, o, k, v in records]
    if events:
        Store.apply_changelog_batch(store, events, None, None)


@pytest.fixture(scope="module")
def changelog(broker):
    """A two-partition changelog on the real broker; [(partition, offset, key, value)] in log order."""
    topic = f"bulk-recovery-{random.randrange(10**9)}-changelog"
    ensure_topics(broker.bootstrap, {topic: PARTITIONS})
    rng = random.Random(7)
    wanted = [(rng.randrange(PARTITIONS), f"key-{rng.randrange(60)}".encode(),
               None if rng.random() < 0.15 else rng.randbytes(rng.randrange(1, 300))) for _ in range(1500)]

    async def produce() -> list:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=5)
        await producer.start()
        try:
            futures = [await producer.send(topic, value, key=key, partition=p) for p, key, value in wanted]
            metas = await asyncio.gather(*futures)
        finally:
            await producer.stop()
        return [(m.partition, m.offset, key, value) for m, (_, key, value) in zip(metas, wanted)]

    return topic, asyncio.run(produce())


def fake_recovery(topic: str, store: Databases, lasts: dict, timeout: float = 90.0):
    table = SimpleNamespace(data=store)
    return SimpleNamespace(tp_to_table={TP(topic, p): table for p in lasts},
                           active_highwaters={TP(topic, p): last for p, last in lasts.items()},
                           app=SimpleNamespace(conf=SimpleNamespace(broker_request_timeout=timeout)))


def read(broker, recovery, destination: dict, clock=None, chunk: int = 50) -> int:
    async def run() -> int:
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False,
                                    auto_offset_reset="earliest", fetch_max_wait_ms=50)
        await consumer.start()
        try:
            reads = bulk.reads_for(recovery, list(recovery.tp_to_table), destination)
            ticks = clock or (lambda: 0.0)
            return await bulk.read_in_bulk(consumer, reads, destination, 1.0, clock=ticks, chunk=chunk)
        finally:
            await consumer.stop()

    return asyncio.run(run())


@pytest.fixture
def stores(tmp_path):
    ours, faust = Databases(tmp_path / "ours"), Databases(tmp_path / "faust")
    yield ours, faust
    ours.close()
    faust.close()


def last_offsets(records: list) -> dict:
    return {p: max(o for q, o, _, _ in records if q == p) for p in range(PARTITIONS)}


@pytest.mark.parametrize("already", [0.0, 0.4])
def test_a_bulk_read_writes_what_faust_recovery_writes(broker, changelog, stores, already):
    """From an empty database, and from one Faust brought part of the way (its persisted offset set)."""
    topic, records = changelog
    ours, faust = stores
    lasts = last_offsets(records)
    cuts = {p: int(last * already) if already else None for p, last in lasts.items()}
    destination: dict = {TP(topic, p): cut for p, cut in cuts.items()}
    for p, cut in cuts.items():
        if cut is not None:
            faust_applies(ours, topic, [r for r in records if r[0] == p and r[1] <= cut])
    written = read(broker, fake_recovery(topic, ours, lasts), destination)
    faust_applies(faust, topic, records)
    for p, last in lasts.items():
        assert ours.contents(p) == faust.contents(p)
        assert ours.contents(p)[OFFSET_KEY] == str(last).encode()
        assert destination[TP(topic, p)] == last
    assert written == sum(1 for p, o, _, _ in records if cuts[p] is None or o > cuts[p])
    assert any(v is None for *_, v in records) and any(len(faust.contents(p)) > 1 for p in lasts)


def test_records_past_the_last_offset_are_left_for_faust(broker, changelog, stores):
    topic, records = changelog
    ours, faust = stores
    lasts = {p: last // 2 for p, last in last_offsets(records).items()}
    destination: dict = {TP(topic, p): None for p in lasts}
    read(broker, fake_recovery(topic, ours, lasts), destination)
    faust_applies(faust, topic, [r for r in records if r[1] <= lasts[r[0]]])
    for p, last in lasts.items():
        assert ours.contents(p) == faust.contents(p)
        assert destination[TP(topic, p)] == last


def test_a_budget_spent_between_chunks_leaves_the_offsets_naming_what_is_written(broker, changelog, stores):
    """The deadline passes after the first fetch: each partition's database, persisted offset and start
    offset agree wherever it stopped, and a second read from there ends where one read would have."""
    topic, records = changelog
    ours, faust = stores
    lasts = last_offsets(records)
    destination: dict = {TP(topic, p): None for p in lasts}
    ticks = iter([0.0, 2.0])
    read(broker, fake_recovery(topic, ours, lasts), destination, clock=lambda: next(ticks, 2.0))
    stopped = {p: destination[TP(topic, p)] for p in lasts}
    assert any(at is not None and at < lasts[p] for p, at in stopped.items()), stopped
    for p, at in stopped.items():
        partial = Databases(faust.root / f"at-{p}")
        faust_applies(partial, topic, [r for r in records if r[0] == p and at is not None and r[1] <= at])
        assert ours.contents(p) == partial.contents(p)
        partial.close()
    read(broker, fake_recovery(topic, ours, lasts), destination)
    faust_applies(faust, topic, records)
    assert all(ours.contents(p) == faust.contents(p) for p in lasts)


def test_only_rocksdb_partitions_behind_their_changelog_are_read(tmp_path):
    store = Databases(tmp_path)
    recovery = fake_recovery("t", store, {0: 10, 1: 10, 2: -1})
    recovery.tp_to_table[TP("t", 3)] = SimpleNamespace(data=object())  # a store without RocksDB databases
    recovery.active_highwaters[TP("t", 3)] = 10
    reads = bulk.reads_for(recovery, list(recovery.tp_to_table), {TP("t", 0): 10, TP("t", 1): 4, TP("t", 2): None,
                                                                  TP("t", 3): None})
    assert [(r.tp.partition, r.done, r.last) for r in reads] == [(1, 4, 10)]
    store.close()


def test_faust_builds_the_actives_high_watermarks_then_their_offsets_inside_its_wait():
    """The pin: the work-around runs in `_build_offsets`, after the highwaters it reads, under `_wait`."""
    source = inspect.getsource(Recovery._restart_recovery.fun)  # a mode ServiceTask
    highwaters = source.index("self._build_highwaters)(\n                        consumer, assigned_active_tps, "
                              "active_highwaters")
    offsets = source.index("self._build_offsets)(\n                        consumer, assigned_active_tps, "
                           "active_offsets")
    assert highwaters < offsets
    assert source.rfind("await self._wait(", 0, offsets) > highwaters
    original = Recovery._build_offsets
    try:
        assert bulk.install("127.0.0.1:9") and not bulk.install("127.0.0.1:9")
        assert Recovery._build_offsets is not original and bulk.is_installed()
    finally:
        bulk.uninstall()
    assert Recovery._build_offsets is original and not bulk.is_installed()


def test_faust_builds_its_start_offsets_from_where_the_bulk_read_ended(broker, changelog, stores):
    """Through the installed `Recovery._build_offsets`: the actives are read in bulk, then Faust's own step
    (its log start against what is persisted) keeps the offsets the read reached."""
    topic, records = changelog
    ours, faust = stores
    lasts = last_offsets(records)
    recovery = fake_recovery(topic, ours, lasts)
    recovery.active_offsets = destination = {TP(topic, p): None for p in lasts}
    recovery.log = SimpleNamespace(info=lambda *args: None)
    recovery._start_offsets_logtable = lambda offsets, title: ""

    class Consumer:
        async def earliest_offsets(self, *tps):
            return {tp: 0 for tp in tps}

    bulk.install(broker.bootstrap)
    try:
        asyncio.run(Recovery._build_offsets(recovery, Consumer(), set(destination), destination, "active"))
    finally:
        bulk.uninstall()
    faust_applies(faust, topic, records)
    assert destination == {TP(topic, p): last for p, last in lasts.items()}
    assert all(ours.contents(p) == faust.contents(p) for p in lasts)


def test_a_broker_out_of_reach_leaves_everything_to_faust(stores, caplog):
    ours, _ = stores
    recovery = fake_recovery("t", ours, {0: 10}, timeout=3.0)
    destination: dict = {TP("t", 0): None}
    bulk._client.update(bootstrap_servers="127.0.0.1:9", request_timeout_ms=1000)
    try:
        with caplog.at_level("INFO", logger="harmrank"):
            asyncio.run(bulk.catch_up(recovery, list(destination), destination))
    finally:
        bulk._client.clear()
    assert destination == {TP("t", 0): None} and ours.contents(0) == {}
    assert "Faust's recovery reads the rest" in caplog.text and "left to Faust's recovery" in caplog.text
