"""The intake's reader: `crime-reports` in bulk, through aiokafka's batch consumer.

Faust hands every message of a stream to its agent one at a time, through a
path that costs far more than the intake's work on it (docs/PERFORMANCE.md).
The input topic is the only one with a message per event (every later stage
speaks in one envelope per partition per batch), so it is the only one read
this way: the register, ledger and ranker stay Faust agents over Faust tables.

The reader is a member of its own consumer group, `<app id>-intake`, so
several workers share the input partitions like any Kafka consumers. It is
at-least-once: a batch's envelopes are sent and acknowledged by the broker
before its offsets are committed, so a crash re-sends the batch and loses
nothing; the register drops the re-sent events by event_id.
A rebalance waits for the batch in hand to be sent and committed before the
partitions move.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, Awaitable, Callable, Mapping, Optional

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, KafkaError
from aiokafka.partitioner import murmur2
from mode import Service

from schemas.events import MERGE_KEY

log = logging.getLogger("harmrank")

#: Records per batch: large enough to spread a batch's fixed costs (sends,
#: acknowledgements), small enough that one batch stays well under a second.
MAX_RECORDS = 5000
#: How long `getmany` waits for data when none is buffered (the loop's idle tick).
IDLE_WAIT_MS = 200
#: After a failed send, how long the reader waits before it reads the batch again.
RETRY_SECONDS = 1.0
#: How often offsets are committed (and always on a rebalance and at a clean stop). A commit
#: is a round trip to the broker; after a crash, what was not committed is sent again and
#: dropped downstream by event_id.
COMMIT_SECONDS = 1.0

Handler = Callable[[list], Awaitable[None]]


def merge_partition(partitions: int) -> int:
    """The input partition that the key `suspects.merged` lands in (Kafka's default partitioner, murmur2)."""
    return (murmur2(MERGE_KEY) & 0x7FFFFFFF) % partitions


class _WaitForBatch(ConsumerRebalanceListener):
    """Lets a revocation wait for the batch in hand: it is sent and committed by its old owner."""

    def __init__(self, reader: "IntakeReader"):
        self.reader = reader

    async def on_partitions_revoked(self, revoked) -> None:
        async with self.reader.busy:
            await self.reader.commit()

    async def on_partitions_assigned(self, assigned) -> None:
        log.info("intake: assigned %s", sorted(f"{tp.topic}[{tp.partition}]" for tp in assigned))


class IntakeReader(Service):
    """Reads batches of input records and hands each to `handle`; commits once it has returned.

    `handle(records)` gets aiokafka ConsumerRecords (topic, partition, offset,
    timestamp, key, value) in partition order and must return only once
    everything it produced is acknowledged. If it raises, the batch is read
    again from its first offsets after `RETRY_SECONDS`: the worker never skips
    an event it could not pass on.
    """

    def __init__(self, *, topic: str, group_id: str, bootstrap_servers: list[str], handle: Handler,
                 fetch_max_wait_ms: int = 500, max_records: int = MAX_RECORDS, window_s: float = 0.0,
                 client_kwargs: Optional[Mapping[str, Any]] = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.topic = topic
        self.group_id = group_id
        self.bootstrap_servers = bootstrap_servers
        self.client_kwargs = dict(client_kwargs or {})  # TLS / SASL (agents.kafka_clients.aiokafka_kwargs)
        self.handle = handle
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.max_records = max_records
        self.window_s = window_s  # once records are there, gather more for this long (one batch, not several)
        self.busy = asyncio.Lock()
        self.consumer: Optional[AIOKafkaConsumer] = None
        self.processed: dict[int, int] = {}  # partition -> last offset handed on (for the lag)
        self.uncommitted: dict = {}  # TopicPartition -> next offset to read, passed on but not committed
        self.committed_at = float("-inf")  # so the first batch commits at once
        self.batches = 0

    async def on_start(self) -> None:
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # The local broker holds a JoinGroup for half the session timeout.
            session_timeout_ms=6000,
            heartbeat_interval_ms=1000,
            fetch_max_wait_ms=self.fetch_max_wait_ms,
            max_partition_fetch_bytes=4 * 1024 * 1024,
            **self.client_kwargs,
        )
        await self.consumer.start()
        self.consumer.subscribe([self.topic], listener=_WaitForBatch(self))
        log.info("intake: reading %s in batches of up to %d (group %s)", self.topic, self.max_records,
                 self.group_id)

    async def on_stop(self) -> None:
        if self.consumer is not None:
            async with self.busy:
                await self.commit()
            await self.consumer.stop()

    def partitions(self) -> int:
        """How many partitions the input topic has (from the consumer's metadata)."""
        assert self.consumer is not None
        return len(self.consumer.partitions_for_topic(self.topic) or ())

    def lag(self) -> Optional[int]:
        """Records in the assigned partitions not yet handed on, or None before the first fetch."""
        consumer = self.consumer
        if consumer is None:
            return None
        total, known = 0, False
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            if high is None:
                continue
            known = True
            last = self.processed.get(tp.partition)
            total += max(0, high - (last + 1 if last is not None else 0))
        return total if known else None

    @Service.task
    async def _read(self) -> None:
        consumer = self.consumer
        assert consumer is not None
        while not self.should_stop:
            batch = await consumer.getmany(timeout_ms=IDLE_WAIT_MS, max_records=self.max_records)
            if batch and self.window_s > 0:
                await self._gather(batch)
            if not batch:
                if self.uncommitted and time.monotonic() - self.committed_at >= COMMIT_SECONDS:
                    async with self.busy:
                        await self.commit()
                continue
            async with self.busy:
                records = [r for tp in sorted(batch, key=lambda tp: tp.partition) for r in batch[tp]]
                try:
                    await self.handle(records)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.error("intake: a batch of %d could not be passed on (%r); reading it again in %.0f s",
                              len(records), exc, RETRY_SECONDS)
                    for tp, recs in batch.items():
                        with contextlib.suppress(Exception):  # a partition revoked meanwhile is its new owner's
                            consumer.seek(tp, recs[0].offset)
                    failed = True
                else:
                    failed = False
                    self._passed_on(batch)
                    if time.monotonic() - self.committed_at >= COMMIT_SECONDS:
                        await self.commit()
            if failed:
                await asyncio.sleep(RETRY_SECONDS)

    async def _gather(self, batch: dict) -> None:
        """Add to `batch` what arrives within the window (in each partition's order), up to max_records."""
        consumer = self.consumer
        assert consumer is not None
        deadline = time.monotonic() + self.window_s
        count = sum(len(recs) for recs in batch.values())
        while count < self.max_records:
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0:
                break
            more = await consumer.getmany(timeout_ms=left_ms, max_records=self.max_records - count)
            for tp, recs in more.items():
                batch.setdefault(tp, []).extend(recs)
                count += len(recs)

    def _passed_on(self, batch: dict) -> None:
        for tp, recs in batch.items():
            self.processed[tp.partition] = recs[-1].offset
            self.uncommitted[tp] = recs[-1].offset + 1
        self.batches += 1

    async def commit(self) -> None:
        """Commit what was passed on (callers hold `busy`, so no batch is half done)."""
        consumer, offsets = self.consumer, self.uncommitted
        if consumer is None or not offsets:
            return
        self.committed_at = time.monotonic()
        self.uncommitted = {}
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            # The partitions moved: the new owner re-sends what was not committed, and the
            # register drops the events it has already seen by their event_id.
            log.warning("intake: offsets not committed (%r); those events may be sent again", exc)
