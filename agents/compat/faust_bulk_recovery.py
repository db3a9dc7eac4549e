"""Recover table partitions from their changelogs in bulk, before Faust reads them record by record.

Faust restores a table partition by handing every changelog record through its
conductor as an event, one queue step, timeout and progress check at a time
(docs/PERFORMANCE.md). After a lost data directory, or when a partition moves
to another process, that is most of the time to ready.

This work-around reads each active changelog partition of a RocksDB-backed
table from its persisted offset up to the high watermark Faust has just built,
with an aiokafka consumer of its own (no group), and writes every fetched chunk
to the partition's database in one RocksDB write batch that also sets the
persisted offset: what Faust's `apply_changelog_batch` writes, in the same
order (a record without a value deletes its key). Faust's recovery then starts
from there and finds nothing left to read, or only what the budget left.

It runs where Faust builds the actives' start offsets (`Recovery._build_offsets`),
inside Faust's wait, which cancels it when a new rebalance begins: each chunk
and its offset are one atomic write, so what was written stands and the next
round starts after it. It stops at half of Faust's request timeout, under which
that wait runs, and leaves the rest to Faust.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence, Union

from .faust_private import partition_db
from .patching import Patched

log = logging.getLogger("harmrank")

#: Records fetched and written at a time: one getmany and, per partition, one RocksDB write batch.
CHUNK = 5_000
#: The share of Faust's request timeout the reads may take (Faust's wait gives up at all of it).
BUDGET_SHARE = 0.5

_patch = Patched()
_client: dict = {}  # bootstrap_servers and the security keyword arguments of the reader's consumer


@dataclass
class Read:
    """One changelog partition to read: `done` is the last offset in its database, `last` the last to read."""

    tp: Any  # Faust's TP
    db: Any  # the partition's rocksdict database
    offset_key: bytes
    done: int
    last: int
    written: int = 0  # records written so far


def reads_for(recovery: Any, tps, destination: Mapping) -> list:
    """The active partitions whose changelog holds records past their persisted offset, of RocksDB tables."""
    reads = []
    for tp in sorted(tps):
        table = recovery.tp_to_table.get(tp)
        store = getattr(table, "data", None)
        if not hasattr(store, "_db_for_partition") or not hasattr(store, "offset_key"):
            continue  # not a RocksDB store: Faust recovers it
        done = destination.get(tp)
        done = -1 if done is None else done
        last = recovery.active_highwaters.get(tp)
        if last is not None and last > done:
            reads.append(Read(tp, partition_db(table, tp.partition), store.offset_key, done, last))
    return reads


def apply_records(read: Read, records: Sequence) -> int:
    """Write the records up to `read.last` and their last offset in one atomic batch; returns how many."""
    from rocksdict import WriteBatch

    batch = WriteBatch(raw_mode=True)
    count, last = 0, read.done
    for record in records:
        if record.offset <= read.done:
            continue  # already in the database
        if record.offset > read.last:
            break
        if record.value is None:
            batch.delete(record.key)
        else:
            batch.put(record.key, record.value)
        count, last = count + 1, record.offset
    if count:
        batch.put(read.offset_key, str(last).encode())
        read.db.write(batch)
        read.done, read.written = last, read.written + count
    return count


async def read_in_bulk(consumer: Any, reads: list, destination: Any, deadline: float,
                       clock: Callable[[], float] = time.monotonic, chunk: int = CHUNK) -> int:
    """Read every `Read` up to its last offset, or until `deadline`; returns the records written.

    `destination` (Faust's start offsets) follows each write, so that whatever
    stops this (the deadline, a cancellation) leaves it naming what the database holds.
    """
    from aiokafka import TopicPartition

    by_tp = {TopicPartition(r.tp.topic, r.tp.partition): r for r in reads}
    consumer.assign(list(by_tp))
    for ktp, read in by_tp.items():
        consumer.seek(ktp, read.done + 1)  # before the log's start, the consumer resets to it (earliest)
    while by_tp and clock() < deadline:
        fetched = await consumer.getmany(*by_tp, timeout_ms=200, max_records=chunk)
        for ktp, records in fetched.items():
            read = by_tp[ktp]
            if apply_records(read, records):
                destination[read.tp] = read.done
        for ktp, read in list(by_tp.items()):
            if read.done >= read.last or await consumer.position(ktp) > read.last:
                del by_tp[ktp]  # read up to its last offset (a compacted log may end past its last record)
    return sum(r.written for r in reads)


async def catch_up(recovery: Any, tps, destination: Any) -> None:
    """Bring the databases of `tps` up to the high watermarks in bulk, within the budget (logged).

    A failure (the broker, a database) is logged and leaves the rest to Faust: what was written
    stands, and `destination` names it."""
    from aiokafka import AIOKafkaConsumer

    reads = reads_for(recovery, tps, destination)
    if not reads:
        return
    budget = BUDGET_SHARE * float(recovery.app.conf.broker_request_timeout)
    started = time.monotonic()
    consumer = AIOKafkaConsumer(group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
                                fetch_max_wait_ms=50, **_client)
    try:
        await consumer.start()
        await read_in_bulk(consumer, reads, destination, started + budget)
    except Exception as exc:  # not CancelledError: a new rebalance ends this as it ends Faust's own steps
        log.warning("changelogs read in bulk: stopped by %r; Faust's recovery reads the rest", exc)
    finally:
        await consumer.stop()
    left = {str(r.tp): r.last - r.done for r in reads if r.done < r.last}
    log.info("changelogs read in bulk: %d records into %d partitions in %.1f s%s", sum(r.written for r in reads),
             len(reads), time.monotonic() - started, f"; left to Faust's recovery: {left}" if left else "")


def install(bootstrap_servers: Union[str, Sequence[str]], client_kwargs: Optional[Mapping[str, Any]] = None) -> bool:
    """Read the actives' changelogs in bulk before Faust's recovery; False if already installed."""
    from faust.tables.recovery import Recovery

    if _patch.active:
        return False
    original = Recovery._build_offsets

    async def _build_offsets(self: Any, consumer: Any, tps: Any, destination: Any, title: str) -> None:
        if destination is self.active_offsets:
            await catch_up(self, tps, destination)
        await original(self, consumer, tps, destination, title)

    _client.clear()
    _client.update(client_kwargs or {}, bootstrap_servers=bootstrap_servers)
    _patch.apply(Recovery, _build_offsets=_build_offsets)
    return True


def uninstall() -> None:
    """Undo :func:`install` (for tests)."""
    _patch.undo()
    _client.clear()


def is_installed() -> bool:
    return _patch.active
