"""The core's Store over one partition of a RocksDB-backed Faust table, with a write-back cache.

Faust writes a changelog record for every table assignment, and per-event
writes are where Faust loses most of its speed. Each stage therefore works a
batch of messages against this cache and writes every touched key once, at the
end of the batch, after its downstream messages were acknowledged (so a crash
in between replays the batch instead of losing its output).

Reads and writes go straight to the partition's RocksDB, and every write also
goes to the table's changelog partition of the same number, so Faust's own
recovery restores the table after a restart or on another worker. (Faust's
`table[key] = ...` cannot be used from a batch of events: it needs a
current event, which the batch's background drainer task does not set.)
"""
from __future__ import annotations

import asyncio
import logging
import os
from typing import Any, Awaitable, Callable, Iterator, Optional

from faust.types import TP
from rocksdict import WriteBatch

from streams.stages.base import write_order
from streams.store import GONE, MISSING, CachedReads

from .codec import dumps, loads
from .compat import aiokafka_producer, partition_db

log = logging.getLogger("harmrank")

_MISSING, _GONE = MISSING, GONE  # CachedReads' marks

#: The worker's exit code when a changelog write fails (EX_TEMPFAIL: a restart is the remedy).
CHANGELOG_FAILED_EXIT = 75

#: Local only, in each partition's database beside Faust's own offset key: the keys of the last
#: batch written there, which the changelog may not hold yet (see `resend_pending`).
PENDING_KEY = b"__harmrank\0changelog-pending__"


class PartitionStore(CachedReads):
    """One partition of a table, as the core's Store (get / set / del / scan).

    With `keep`, up to that many decoded values stay cached after a batch is
    written (the oldest loaded go first), so a stage that keeps its store
    decodes a hot key once, not once a batch: a suspect with hundreds of
    allegations is a large record, and ageing them out one batch at a time
    (mass expiry) decoded it again in every batch. The cache then only ever
    holds what the database holds: every write goes through it, and after a
    failed batch the stage drops the store (the ledger stage forgets the
    partition's Ledger) instead of reusing values a half-done batch changed.

    With `keep_bytes` as well, the values kept hold at most that many bytes of
    JSON (their stored form; decoded, they take several times that): the hot
    keys are the large records, so a bound in values alone bounds no memory.
    """

    def __init__(self, table, partition: int, keep: int = 0, keep_bytes: int = 0):
        self.table = table
        self.partition = partition
        self.keep = keep
        self.keep_bytes = keep_bytes  # 0: no bound in bytes
        self._db = partition_db(table, partition)
        self._cache: dict = {}
        self._dirty: set = set()
        self._sizes: dict = {}  # with keep_bytes: each cached value's stored length (0 for a missing key)
        self._kept_bytes = 0  # their sum

    def _load(self, key: str) -> Optional[bytes]:
        raw = self._db.get(key.encode())
        if self.keep_bytes:
            self._sized(key, 0 if raw is None else len(raw))
        return raw

    def _sized(self, key: str, size: int) -> None:
        self._kept_bytes += size - self._sizes.get(key, 0)
        self._sizes[key] = size

    def __setitem__(self, key: str, value: Any) -> None:
        self._cache[key] = value
        self._dirty.add(key)

    def __delitem__(self, key: str) -> None:
        self._cache[key] = _GONE
        self._dirty.add(key)

    def scan(self, prefix: str) -> Iterator[tuple[str, Any]]:
        """Keys with `prefix` in key order, the cache's view winning over the database.

        The keys this batch changed are merged in order with the database's (UTF-8 byte order is
        code point order), so a scan over a partition of a million suspects holds no set of their keys.
        """
        start = prefix.encode()
        changed = iter(sorted(k for k in self._dirty if k.startswith(prefix)))
        pending = next(changed, None)
        for raw_key, raw_value in self._db.items(from_key=start):
            if not raw_key.startswith(start):
                break
            key = raw_key.decode()
            while pending is not None and pending <= key:
                if pending < key:
                    yield from self._cached(pending)  # written in this batch, not in the database yet
                pending = next(changed, None)
            value = self._cache.get(key, _MISSING)
            if value is _MISSING:
                yield key, loads(raw_value)
            elif value is not _GONE:
                yield key, value
        while pending is not None:
            yield from self._cached(pending)
            pending = next(changed, None)

    def _cached(self, key: str) -> Iterator[tuple[str, Any]]:
        value = self._cache[key]
        if value is not _GONE:
            yield key, value

    @property
    def dirty(self) -> int:
        return len(self._dirty)

    def _write_local(self) -> list:
        """Write the changed keys to the partition's database in one atomic batch; returns the changelog records."""
        if not self._dirty:
            self._trim_cache()
            return []
        batch = WriteBatch(raw_mode=True)
        batch.put(PENDING_KEY, dumps(list(self._dirty)))
        records = []
        for key in write_order(self._dirty):  # output first, input offset last (in case the write is cut short)
            value = self._cache[key]
            raw_key = key.encode()
            if value is _GONE:
                batch.delete(raw_key)
                records.append((raw_key, None))
            else:
                raw_value = dumps(value)
                batch.put(raw_key, raw_value)
                records.append((raw_key, raw_value))
            if self.keep_bytes:
                self._sized(key, 0 if value is _GONE else len(raw_value))
        self._db.write(batch)
        self._dirty.clear()
        self._trim_cache()
        return records

    def _trim_cache(self) -> None:
        """After a write: keep at most `keep` cached values and `keep_bytes` of their JSON, the newest
        loaded, all of them clean."""
        if self.keep == 0:
            self._forget()
            return
        cache = self._cache
        excess = len(cache) - self.keep
        evicted = []
        for key in cache:  # the oldest loaded first, until both bounds hold
            if excess <= 0 and (not self.keep_bytes or self._kept_bytes <= self.keep_bytes):
                break
            evicted.append(key)
            excess -= 1
            self._kept_bytes -= self._sizes.pop(key, 0)
        for key in evicted:
            del cache[key]

    def _forget(self) -> None:
        self._cache.clear()
        self._sizes.clear()
        self._kept_bytes = 0

    def changelog_done(self) -> None:
        """The changelog holds the last local write: its list of keys is not needed any more (local only)."""
        self._db.delete(PENDING_KEY)

    def discard_changes(self) -> None:
        self._dirty.clear()
        self._forget()


async def start_flush(stores: list) -> list:
    """Write every store's changed keys to its database and send them to its changelog; returns what is in flight.

    Each database takes its partition's batch in one atomic RocksDB write batch:
    a kill -9 leaves either all of a batch's state (with the input offset it
    includes) or none of it, never half. The write is ours, not
    `table[key] = ...`: Faust's store deletes a key from whichever partition
    last wrote it (or from all of them), and our partitions share key names
    ("clock", "x:<hour>"). The changelog records then go straight to the
    producer rather than one by one through Faust's producer buffer (which
    costs most of a stage's CPU), every partition's together, so a batch waits for
    one acknowledgement, not one per partition (`finish_flush`); once the broker
    has them, each partition's persisted offset is set, as Faust does, so
    recovery reads from there.
    """
    pending = []  # (store, topic, sent batches)
    for store in stores:
        records = store._write_local()
        if not records:
            continue
        table = store.table
        topic = table.changelog_topic.get_topic_name()
        sent = await send_records(table.app, topic, store.partition, records)
        pending.append((store, topic, sent))
    return pending


async def resend_pending(app, tables: list, done: set) -> int:
    """Put in the changelog what a crash may have left only in local RocksDB; returns the records sent.

    A batch's state goes to the partition's database (with the input offset it
    includes) before its changelog is acknowledged. After a kill -9 between the
    two, a restart on the same data directory finds that state and rightly skips
    the batch's input, so nothing would ever send that batch's keys to the
    changelog: a later move of the partition, or a lost disk, would restore the
    table without them. Each local write therefore names its keys under
    PENDING_KEY, in the same atomic write, and this sends their values again.

    Called when recovery is complete and before any stage works (Faust awaits
    `on_rebalance_complete` before it resumes the streams), for each partition
    that recovery has just brought up to date and that is not yet in `done`
    (its first assignment in this process: no batch of this process can be in
    flight for it). The values are the database's after recovery, so the
    newest ones even if another worker owned the partition meanwhile: sending
    them again is harmless. If another rebalance has begun meanwhile (Faust
    still completes the old one), nothing more is sent: what it assigns has
    not been recovered yet, and its own completion comes back here.
    """
    recovery = app.tables.recovery
    sent_records = 0
    for table in tables:
        for tp in sorted(recovery.actives_for_table.get(table, ())):
            if tp in done:
                continue
            if recovery.signal_recovery_start.is_set():
                return sent_records
            db = partition_db(table, tp.partition)
            raw = db.get(PENDING_KEY)
            if raw is not None:
                records = [(key.encode(), db.get(key.encode())) for key in loads(raw)]
                if records:
                    sent = await send_records(app, tp.topic, tp.partition, records)
                    table.data.set_persisted_offset(tp, await last_offset(sent))
                    sent_records += len(records)
                db.delete(PENDING_KEY)
            done.add(tp)
    return sent_records


async def finish_flush(pending: list) -> None:
    """Wait for the changelog records of `start_flush`; sets each partition's persisted offset, as Faust does.

    Once the changelog holds the batch, its list of keys (PENDING_KEY) has done its work and goes: it
    names the keys of the batch, deleted ones too, which retention must not leave behind (SPEC §9).
    """
    for store, topic, sent in pending:
        store.table.data.set_persisted_offset(TP(topic, store.partition), await last_offset(sent))
        store.changelog_done()


class ChangelogPipe:
    """A stage's state writes, with one batch's changelog in flight while the next batch works.

    The order that keeps a crash from losing anything stays: a batch's output is
    acknowledged, then its state is written (the partition's database, then the
    changelog), then its input messages are acknowledged to Faust, which commits
    their offsets later. What changes is that the stage does not wait for the
    changelog's acknowledgement before it takes the next batch: that round trip
    overlaps the next batch's work instead of adding to every hop's latency.
    `write()` first settles the batch before it (so changelog writes and
    persisted offsets stay in order), and an idle stage settles on its own.
    """

    def __init__(self, stream):
        self.stream = stream
        self._pending: Optional[asyncio.Future] = None

    async def settle(self) -> None:
        """Wait until the last batch's changelog is acknowledged and its input acknowledged to Faust."""
        pending, self._pending = self._pending, None
        if pending is not None:
            await pending

    async def write(self, stores: list, events: list) -> None:
        """After a batch's output is acknowledged: write its state, and ack `events` once that is durable."""
        await self.settle()
        in_flight = await start_flush(stores)
        self._pending = asyncio.ensure_future(self._finish(in_flight, events))

    async def write_first(self, stores: list, events: list, send: Callable[[], Awaitable]) -> None:
        """A write-first stage's batch: its state (holding its output) is written and in the changelog,
        then `send()` sends the output, then `events` are acknowledged."""
        await self.settle()
        in_flight = await start_flush(stores)
        await self._finish(in_flight, events, send)

    async def _finish(self, in_flight: list, events: list, then: Optional[Callable[[], Awaitable]] = None) -> None:
        try:
            await finish_flush(in_flight)
            if then is not None:
                await then()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            # The batch is in local RocksDB and maybe not in the changelog (or its output not sent). Faust
            # would restart the agent in this process, whose next batch names other keys as pending; a
            # restart of the process sends these again first (resend_pending, the stages' recover), so
            # stop as a crash would.
            log.critical("a batch's state is written but its changelog or output is not (%r): the worker stops "
                         "(exit %d) so that a restart sends them again", exc, CHANGELOG_FAILED_EXIT)
            for handler in logging.getLogger().handlers:
                handler.flush()
            os._exit(CHANGELOG_FAILED_EXIT)
        for event in events:
            await self.stream.ack(event)


async def send_records(app, topic: str, partition: int, records: list) -> list:
    """Send (key, value) records to one partition in record batches; returns [(future, records in it)].

    The records stay one per key (a compacted changelog keeps the newest of
    each), but go to the producer as ready-made batches: one future per batch
    instead of one per record, which is most of what a record costs otherwise.
    A future gives the metadata of its batch's first record.
    """
    aio = aiokafka_producer(app)
    sent = []
    batch = aio.create_batch()
    for key, value in records:
        if batch.append(key=key, value=value, timestamp=None) is None:
            count = batch.record_count()
            if count:
                sent.append((await aio.send_batch(batch, topic, partition=partition), count))
                batch = aio.create_batch()
            if batch.append(key=key, value=value, timestamp=None) is None:  # bigger than a whole batch
                sent.append((await aio.send(topic, value, key=key, partition=partition), 1))
    count = batch.record_count()
    if count:
        sent.append((await aio.send_batch(batch, topic, partition=partition), count))
    return sent


async def last_offset(sent: list) -> int:
    """Wait for every batch of `send_records`; the offset of the last record they put in the log."""
    metas = await asyncio.gather(*(future for future, _ in sent))
    return max(meta.offset + count - 1 for meta, (_, count) in zip(metas, sent))
